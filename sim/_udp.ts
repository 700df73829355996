/**
 * The simulator's UDP: datagram sockets, binding (ports, wildcard and broadcast addresses,
 * `reuseAddress`), unicast and subnet broadcast, loss and duplication, and delivery to the
 * socket a real kernel would pick.
 *
 * Sockets reach this part only through {@link DatagramPart}, the three things a socket needs
 * (the size limit, send, unbind); the fabric draws each datagram's fate and latency, the kernel
 * carries it as a `K_DGRAM` event and hands it back to {@link Udp.arrive}. This is the
 * simulator's hottest path (one send, one event, one delivery per datagram), so it does no more
 * than the original single-file simulator did: no extra allocation, no extra draws.
 *
 * @module
 */
import {
  type Address,
  type DatagramBindOptions,
  type DatagramHandlers,
  type DatagramSocket,
  NetError,
} from "../src/platform.ts";
import { K_DGRAM, type Kernel, type PacketSink, SimEvent } from "./_kernel.ts";
import {
  ANY,
  type DatagramBinder,
  type HostDirectory,
  type HostState,
  validateHandlers,
} from "./_hosts.ts";
import { type Fabric, PATH_CUT, PATH_HELD, type Resender } from "./_fabric.ts";
import { inSubnet, parseIpv4 } from "./_ipv4.ts";
import { digestBytes } from "./_trace_hash.ts";
import type { PacketVerdict, SimStats } from "./simulation.ts";

/**
 * One datagram in flight, and its arrival event (one object, not two: a broadcast makes one
 * for each host). Every receiver of a broadcast gets the same `data` (read-only). Once it has
 * arrived (or is dropped), {@link Udp} reuses the object for a later datagram: nothing else
 * keeps it.
 */
export class Datagram extends SimEvent {
  constructor(
    public from: HostState,
    /** `from.index`, read while the sender is at hand (the arrival need not touch it). */
    public fromIndex: number,
    public fromAddress: Address,
    public to: HostState,
    public toHost: string,
    public toPort: number,
    public broadcast: boolean,
    public data: Uint8Array,
    /** `digestBytes(data)`: what the trace hash takes of the payload at each arrival. */
    public digest: number,
  ) {
    super(0, 0, K_DGRAM, to, 0, null);
  }

  /** The same datagram again (a duplicate), with a copy of its bytes. */
  copy(): Datagram {
    return new Datagram(
      this.from,
      this.fromIndex,
      this.fromAddress,
      this.to,
      this.toHost,
      this.toPort,
      this.broadcast,
      this.data.slice(),
      this.digest,
    );
  }
}

/** Most datagram objects kept for reuse (a broadcast to a large subnet frees many at once). */
const FREE_DATAGRAMS_MAX = 4096;

/** What a datagram socket asks of its UDP part. */
export interface DatagramPart {
  /** Largest datagram payload; larger sends throw a `RangeError`. */
  readonly maxDatagramBytes: number;
  /**
   * Sends one datagram the socket has validated: a broadcast, or a unicast datagram to `dest`
   * (see {@link hostAt}; none there: dropped). `digest` is {@link digest} of `data`.
   */
  send(
    from: HostState,
    fromAddress: Address,
    data: Uint8Array,
    toHost: string,
    toPort: number,
    dest: HostState | undefined,
    broadcast: boolean,
    digest: number,
  ): void;
  /** What the trace hash folds in for a datagram's payload. */
  digest(data: Uint8Array): number;
  /**
   * The host a unicast datagram from `from` to the address `target` (a number) reaches, if any:
   * `from` itself for loopback. A host found stays the one (hosts are only ever added).
   */
  hostAt(from: HostState, target: number): HostState | undefined;
  /** Removes a closed socket from its host. */
  unbind(host: HostState, socket: SimDatagramSocket): void;
}

/** Options of a {@link Udp}. */
export interface UdpOptions {
  readonly maxDatagramBytes: number;
  /** Bytes of each payload folded into the trace hash. */
  readonly traceHashBytes: number;
}

/**
 * Datagram sockets of every host, and datagrams between them.
 *
 * @example
 * ```ts
 * import { Simulation } from "./simulation.ts";
 * // Udp is wired inside a Simulation; hosts reach it through platform.net.bindDatagram.
 * const sim = new Simulation({ seed: 3 });
 * let got = 0;
 * sim.addHost("b", (platform) =>
 *   platform.net.bindDatagram({ host: "0.0.0.0", port: 7 }, { onMessage: () => void got++ }));
 * sim.addHost("a", (platform) => {
 *   const socket = platform.net.bindDatagram({ host: "0.0.0.0", port: 0 }, { onMessage() {} });
 *   socket.send(new Uint8Array(4), { host: "10.0.0.1", port: 7 });
 * });
 * sim.run(10);
 * console.assert(got === 1 && sim.stats.datagramsDelivered === 1);
 * ```
 */
export class Udp implements DatagramPart, DatagramBinder, PacketSink, Resender<Datagram> {
  readonly maxDatagramBytes: number;
  readonly #kernel: Kernel;
  readonly #fabric: Fabric;
  readonly #hosts: readonly HostState[];
  readonly #byAddress: ReadonlyMap<number, HostState>;
  readonly #stats: SimStats;
  readonly #traceHashBytes: number;
  /**
   * Datagrams that arrived or were dropped, for reuse: a quiet cluster sends some two per node
   * and round, and reusing the few just freed keeps them in the CPU's caches and out of the
   * garbage collector's way.
   */
  readonly #free: Datagram[] = [];

  constructor(kernel: Kernel, fabric: Fabric, hosts: HostDirectory, options: UdpOptions) {
    this.#kernel = kernel;
    this.#fabric = fabric;
    this.#hosts = hosts.list;
    this.#byAddress = hosts.byAddress;
    this.#stats = kernel.stats;
    this.maxDatagramBytes = options.maxDatagramBytes;
    this.#traceHashBytes = options.traceHashBytes;
  }

  /** Binds a datagram socket on `host` (called through the host's platform). */
  bind(
    host: HostState,
    incarnation: number,
    options: DatagramBindOptions,
    handlers: DatagramHandlers,
  ): DatagramSocket {
    validateHandlers(handlers, ["onMessage"], "bind datagram socket");
    const kernel = this.#kernel;
    const socket = new SimDatagramSocket(this, host, options, handlers);
    const fail = (error: NetError) => {
      socket.closed = true;
      kernel.call(host, 0, () => handlers.onError?.(error));
      return socket;
    };
    if (!host.isLive(incarnation)) {
      return fail(new NetError("EIO", `Cannot bind on ${host.name}: the host is down`));
    }
    const bindHost = options.host;
    if (!host.ownsAddress(bindHost, true)) {
      return fail(
        new NetError(
          "EADDRNOTAVAIL",
          `Cannot bind datagram socket to ${bindHost}: not an address of ${host.name}`,
        ),
      );
    }
    const port = options.port === 0 ? host.ephemeralPort() : options.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(`Cannot bind datagram socket to port ${options.port}`);
    }
    const existing = host.datagramSockets.get(port);
    if (existing && !(options.reuseAddress && existing.every((s) => s.reuseAddress))) {
      return fail(
        new NetError(
          "EADDRINUSE",
          `Cannot bind datagram socket to ${bindHost}:${port}: address in use`,
        ),
      );
    }
    socket.local = { host: bindHost, port };
    if (existing) existing.push(socket);
    else host.datagramSockets.set(port, [socket]);
    host.forgetDatagramRoute();
    kernel.call(host, 0, () => {
      if (!socket.closed) handlers.onReady?.(socket);
    });
    return socket;
  }

  unbind(host: HostState, socket: SimDatagramSocket): void {
    const list = host.datagramSockets.get(socket.local.port);
    if (!list) return;
    const index = list.indexOf(socket);
    if (index >= 0) list.splice(index, 1);
    host.forgetDatagramRoute();
    if (list.length === 0) host.datagramSockets.delete(socket.local.port);
  }

  send(
    from: HostState,
    fromAddress: Address,
    data: Uint8Array,
    toHost: string,
    toPort: number,
    dest: HostState | undefined,
    broadcast: boolean,
    digest: number,
  ): void {
    if (broadcast) {
      const subnet = from.subnetInfo;
      for (const host of this.#hosts) {
        if (host.state !== "down" && inSubnet(subnet, host.addressNumber)) {
          // Every host gets the same array: received datagrams are read-only (see platform.ts).
          this.#transmit(
            this.#datagram(from, fromAddress, host, toHost, toPort, true, data, digest),
          );
        }
      }
      return;
    }
    if (dest === undefined) {
      this.#stats.datagramsSent++;
      this.#stats.datagramsDropped++;
      return;
    }
    this.#transmit(this.#datagram(from, fromAddress, dest, toHost, toPort, false, data, digest));
  }

  digest(data: Uint8Array): number {
    return digestBytes(data, this.#traceHashBytes);
  }

  hostAt(from: HostState, target: number): HostState | undefined {
    return (target >>> 24) === 127 ? from : this.#byAddress.get(target);
  }

  /** A datagram object: a freed one if there is one, else a new one. */
  #datagram(
    from: HostState,
    fromAddress: Address,
    to: HostState,
    toHost: string,
    toPort: number,
    broadcast: boolean,
    data: Uint8Array,
    digest: number,
  ): Datagram {
    const datagram = this.#free.pop();
    if (datagram === undefined) {
      return new Datagram(
        from,
        from.index,
        fromAddress,
        to,
        toHost,
        toPort,
        broadcast,
        data,
        digest,
      );
    }
    datagram.from = from;
    datagram.fromIndex = from.index;
    datagram.fromAddress = fromAddress;
    datagram.to = to;
    datagram.host = to;
    datagram.toHost = toHost;
    datagram.toPort = toPort;
    datagram.broadcast = broadcast;
    datagram.data = data;
    datagram.digest = digest;
    return datagram;
  }

  /** Keeps a datagram that is done with (arrived or dropped) for reuse. */
  #release(datagram: Datagram): void {
    if (this.#free.length < FREE_DATAGRAMS_MAX) this.#free.push(datagram);
  }

  /** A datagram parked on a held path goes on, with a fresh latency. */
  resend(datagram: Datagram): void {
    this.#kernel.pushEvent(datagram, this.#fabric.latencyUs());
  }

  /** A datagram reaches its host: a cut, a hold, a pause or a crash may still stop it. */
  arrive(event: SimEvent): void {
    const datagram = event as Datagram;
    const host = datagram.to;
    const stats = this.#stats;
    if (host.state === "down") {
      stats.datagramsDropped++;
      this.#release(datagram);
      return;
    }
    if (host.state === "paused") {
      host.deferred.push(event);
      return;
    }
    const fabric = this.#fabric;
    if (datagram.from !== host && fabric.hasFaults) {
      const path = fabric.pathBetween(datagram.from, host);
      if (path === PATH_CUT) {
        stats.datagramsLost++;
        this.#release(datagram);
        return;
      }
      if (path === PATH_HELD) {
        fabric.park(datagram.from, host, datagram, this);
        return;
      }
    }
    const kernel = this.#kernel;
    const hash = kernel.hash;
    hash.word(kernel.nowUs);
    hash.word((host.index << 16) ^ datagram.fromIndex);
    hash.word(datagram.digest);
    if (kernel.traceLimit > 0) {
      kernel.traceLine(
        host,
        `dgram from ${datagram.from.name} ${datagram.data.length}B port ${datagram.toPort}`,
      );
    }
    // What the receiving socket gets is read out first: the object is free for reuse after.
    const data = datagram.data;
    const fromAddress = datagram.fromAddress;
    const toHost = datagram.toHost;
    const toPort = datagram.toPort;
    const broadcast = datagram.broadcast;
    this.#release(datagram);
    // The receiver's clock now, handed over with the datagram (the host is in the cache now;
    // its clock object would be one more object to read).
    const atMs = host.nowMs(kernel.nowUs);
    if (
      host.lastDatagramPort === toPort && !broadcast &&
      (host.lastDatagramHost === ANY || host.lastDatagramHost === toHost)
    ) {
      // As the last one to this port (a member's beats, say): the same socket.
      stats.datagramsDelivered++;
      host.lastDatagramHandlers!.onMessage(data, fromAddress, atMs);
      return;
    }
    const sockets = host.datagramSockets.get(toPort);
    if (sockets === undefined) {
      stats.datagramsDropped++;
      return;
    }
    if (broadcast) {
      if (sockets.length === 1) {
        const socket = sockets[0];
        if (socket.local.host === ANY || socket.local.host === toHost) {
          stats.datagramsDelivered++;
          socket.handlers.onMessage(data, fromAddress, atMs);
        }
        return;
      }
      let first = true;
      for (const socket of sockets.slice()) {
        if (socket.local.host !== ANY && socket.local.host !== toHost) continue;
        stats.datagramsDelivered++;
        socket.handlers.onMessage(first ? data : data.slice(), fromAddress, atMs);
        first = false;
      }
      return;
    }
    // Unicast: an exact address match beats a wildcard; among equals the last bound wins.
    let chosen: SimDatagramSocket | undefined;
    for (let i = sockets.length - 1; i >= 0; i--) {
      const socket = sockets[i];
      const bound = socket.local.host;
      if (bound === toHost) {
        chosen = socket;
        break;
      }
      if (bound === ANY && chosen === undefined) chosen = socket;
    }
    if (chosen === undefined) {
      stats.datagramsDropped++;
      return;
    }
    host.lastDatagramPort = toPort;
    // The port's one socket, bound to any address, takes every unicast datagram to the port,
    // whatever address it was sent to: the next needs no compare of address texts.
    host.lastDatagramHost = sockets.length === 1 && chosen.local.host === ANY ? ANY : toHost;
    host.lastDatagramHandlers = chosen.handlers;
    stats.datagramsDelivered++;
    chosen.handlers.onMessage(data, fromAddress, atMs);
  }

  #transmit(datagram: Datagram): void {
    this.#stats.datagramsSent++;
    const kernel = this.#kernel;
    const fabric = this.#fabric;
    const verdict = fabric.rule === undefined ? "pass" : this.#verdict(datagram);
    if (verdict === "drop" || fabric.drawLoss()) {
      this.#stats.datagramsLost++;
      this.#release(datagram);
      return;
    }
    const extraUs = typeof verdict === "object" ? Math.round(verdict.delayMs * 1000) : 0;
    kernel.pushEvent(datagram, fabric.latencyUs() + extraUs);
    if (verdict === "duplicate" || fabric.drawDuplicate()) {
      this.#stats.datagramsDuplicated++;
      kernel.pushEvent(datagram.copy(), fabric.latencyUs() + extraUs);
    }
  }

  // Apart from #transmit: a closure there would cost a context on every datagram, rule or not.
  #verdict(datagram: Datagram): PacketVerdict {
    return this.#fabric.verdict(() => ({
      kind: "datagram",
      from: datagram.from.name,
      to: datagram.to.name,
      fromAddress: datagram.fromAddress,
      toAddress: { host: datagram.toHost, port: datagram.toPort },
      data: datagram.data,
      timeMs: this.#kernel.nowUs / 1000,
      attempt: 0,
    }));
  }
}

const NO_DATA = new Uint8Array(0);

/** A destination a datagram socket keeps (see `SimDatagramSocket.send`). */
class Recent {
  toHost = "";
  toPort = 0;
  /** The address as a number once checked (see `#check`); undefined until then. */
  target: number | undefined = undefined;
  broadcast = false;
  /** The host it reaches, once found. */
  dest: HostState | undefined = undefined;
  /** The payload sent there last (none yet: an array no caller has), and its digest. */
  data: Uint8Array = NO_DATA;
  digest = 0;
  /** When it was last sent to, in the socket's count of sends. */
  used = 0;
}

/**
 * A host's datagram socket. It checks what host code hands it, as a real socket would, and
 * leaves the rest to its {@link DatagramPart}.
 *
 * @example
 * ```ts
 * import { Simulation } from "./simulation.ts";
 * import { SimDatagramSocket } from "./_udp.ts";
 * const sim = new Simulation();
 * const host = sim.addHost("a", (platform) =>
 *   platform.net.bindDatagram({ host: "0.0.0.0", port: 0 }, { onMessage() {} }));
 * const socket = host.app;
 * if (!(socket instanceof SimDatagramSocket)) throw new Error("not a simulated socket");
 * console.assert(socket.local.port === 49152);
 * let refused = false;
 * try {
 *   socket.send(new Uint8Array(70_000), { host: "10.0.0.1", port: 9 });
 * } catch (error) {
 *   refused = error instanceof RangeError;
 * }
 * console.assert(refused);
 * ```
 */
export class SimDatagramSocket implements DatagramSocket {
  #local: Address = { host: ANY, port: 0 };
  // Senders usually reuse one address object and one byte array per destination (a member
  // beats the same bytes to two or three monitors every round): a few destinations are kept,
  // known by the identity of the address object, with what was worked out when it was first
  // sent to and the last payload sent there (checked then, and its digest). A new one takes the
  // place used least recently, so the odd datagram elsewhere (a digest, an answer) does not push
  // a monitor out. The identities are fields of the socket and each place is one object, held
  // in a field (no array between): a repeat reads the socket and that object, and neither the
  // address nor the bytes.
  #to0: Address | undefined = undefined;
  #to1: Address | undefined = undefined;
  #to2: Address | undefined = undefined;
  #to3: Address | undefined = undefined;
  readonly #p0 = new Recent();
  readonly #p1 = new Recent();
  readonly #p2 = new Recent();
  readonly #p3 = new Recent();
  #sends = 0;
  /** The source address its datagrams carry: the host's address when bound to any. */
  source: Address = this.#local;
  closed = false;
  readonly reuseAddress: boolean;
  readonly #broadcast: boolean;
  /** The host's subnet broadcast address, as a number (here: one object fewer per send). */
  readonly #subnetBroadcast: number;

  constructor(
    readonly udp: DatagramPart,
    readonly host: HostState,
    options: DatagramBindOptions,
    readonly handlers: DatagramHandlers,
  ) {
    this.reuseAddress = options.reuseAddress === true;
    this.#broadcast = options.broadcast === true;
    this.#subnetBroadcast = host.subnetInfo.broadcast;
  }

  get local(): Address {
    return this.#local;
  }

  set local(address: Address) {
    this.#local = address;
    // Bound to any or to the broadcast address, a datagram leaves from the host's own address.
    const number = address.host === ANY ? undefined : parseIpv4(address.host);
    const own = address.host === ANY || number === this.host.subnetInfo.broadcast ||
      number === 0xffffffff;
    this.source = own ? { host: this.host.address, port: address.port } : address;
  }

  send(data: Uint8Array, to: Address): void {
    const place = to === this.#to0
      ? this.#p0
      : to === this.#to1
      ? this.#p1
      : to === this.#to2
      ? this.#p2
      : to === this.#to3
      ? this.#p3
      : this.#place(to);
    // A remembered destination is not read again: what it held when first sent to stands.
    // Nor is a payload sent there last time: it was checked then, and may not have changed.
    let digest = place.digest;
    if (data !== place.data) {
      if (!(data instanceof Uint8Array)) {
        throw new TypeError("Cannot send datagram: data is not a Uint8Array");
      }
      if (data.length > this.udp.maxDatagramBytes) {
        throw new RangeError(
          `Cannot send datagram of ${data.length} bytes: the limit is ${this.udp.maxDatagramBytes}`,
        );
      }
      digest = this.udp.digest(data);
    }
    if (this.closed) throw new NetError("EINVAL", "Cannot send datagram: the socket is closed");
    if (place.target === undefined) this.#check(place);
    place.data = data;
    place.digest = digest;
    place.used = ++this.#sends;
    if (this.host.state === "down") return;
    const broadcast = place.broadcast;
    let dest: HostState | undefined;
    if (!broadcast) {
      // Looked up until found: a host may be added at the address later.
      dest = place.dest;
      if (dest === undefined) place.dest = dest = this.udp.hostAt(this.host, place.target!);
    }
    this.udp.send(
      this.host,
      this.source,
      data,
      place.toHost,
      place.toPort,
      dest,
      broadcast,
      digest,
    );
  }

  /** The place for a destination not kept: the one used least recently, cleared for it. */
  #place(to: Address): Recent {
    // The least recently used; the first of equals.
    let place = this.#p0;
    if (this.#p1.used < place.used) place = this.#p1;
    if (this.#p2.used < place.used) place = this.#p2;
    if (this.#p3.used < place.used) place = this.#p3;
    if (place === this.#p0) this.#to0 = to;
    else if (place === this.#p1) this.#to1 = to;
    else if (place === this.#p2) this.#to2 = to;
    else this.#to3 = to;
    place.toHost = to.host;
    place.toPort = to.port;
    place.target = undefined;
    place.broadcast = false;
    place.dest = undefined;
    place.data = NO_DATA;
    place.digest = 0;
    return place;
  }

  /**
   * Checks a destination on its first send: a valid address, and a broadcast one only from a
   * socket bound for it (a refused one is checked again on the next send).
   */
  #check(place: Recent): void {
    const target = parseIpv4(place.toHost);
    const toPort = place.toPort;
    if (target === undefined || !(toPort > 0 && toPort <= 65535)) {
      throw new NetError(
        "EINVAL",
        `Cannot send datagram to ${place.toHost}:${toPort}: not an IPv4 address and port`,
      );
    }
    const broadcast = target === this.#subnetBroadcast || target === 0xffffffff;
    if (broadcast && !this.#broadcast) {
      throw new NetError(
        "EINVAL",
        `Cannot send to broadcast address ${place.toHost}: the socket was bound without broadcast: true`,
      );
    }
    place.target = target;
    place.broadcast = broadcast;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.udp.unbind(this.host, this);
  }
}
