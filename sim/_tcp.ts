/**
 * The simulator's TCP: listeners, stream ends, the handshake, ordered segments, resets,
 * retransmission of segments the packet rule drops, timeouts and back-pressure.
 *
 * Streams are reliable and ordered as TCP's are: a segment on a cut or held path, or to a host
 * that is down, waits (and its sender times out if it waits too long); one the packet rule drops
 * is sent again with a doubling delay; jitter never reorders what a stream delivers. Stream ends
 * reach this part only through {@link StreamPart} (the high-water mark, sending a segment,
 * closing, scheduling a drain); the fabric carries segments, the kernel runs their arrival.
 *
 * @module
 */
import {
  type Address,
  type CloseReason,
  type ListenHandlers,
  type ListenOptions,
  NetError,
  type StreamConn,
  type StreamHandlers,
  type StreamListener,
} from "../src/platform.ts";
import { K_SEG, K_WORLD, type Kernel, type PacketSink, type SimEvent, toUs } from "./_kernel.ts";
import {
  ANY,
  type HostDirectory,
  type HostState,
  type StreamOpener,
  validateHandlers,
} from "./_hosts.ts";
import { type Fabric, PATH_OPEN, type Resender } from "./_fabric.ts";
import { parseIpv4 } from "./_ipv4.ts";
import type { PacketVerdict, SimStats } from "./simulation.ts";

/** Segment type: opens a connection (client to listener). */
export const SYN = 0;
/** Segment type: accepts it; the first segment of the server's direction. */
export const SYNACK = 1;
/** Segment type: stream bytes. */
export const DATA = 2;
/** Segment type: a graceful end of one direction. */
export const FIN = 3;
/** Segment type: a reset (or, with `refused`, a refused connection). */
export const RST = 4;
const SEGMENT_NAMES = ["syn", "synack", "data", "fin", "rst"] as const;

/** One segment in flight. */
export interface Segment {
  readonly type: number;
  readonly fromHost: HostState;
  readonly toHost: HostState;
  /** Sending end; for a SYN the client end. */
  readonly from: StreamEnd;
  /** Receiving end; null for a SYN, which the listener resolves. */
  readonly to: StreamEnd | null;
  readonly toAddress: Address;
  readonly data: Uint8Array | undefined;
  /** Position in its direction's byte stream; -1 for unsequenced control segments. */
  readonly seq: number;
  readonly refused: boolean;
  attempt: number;
}

/** What a stream end asks of its TCP part. */
export interface StreamPart {
  /** `write` returns `false` at or above this many buffered bytes. */
  readonly highWaterBytes: number;
  /** Sends a segment from `end` in its direction's order. */
  sendSequenced(end: StreamEnd, type: number, data: Uint8Array | undefined): void;
  /** Closes an end from its own side: the callback comes in a later event. */
  closeLocally(end: StreamEnd, graceful: boolean): void;
  /** Schedules a drain callback for an end (acknowledgements arrive with the data). */
  drainLater(end: StreamEnd): void;
}

/** Options of a {@link Tcp}. */
export interface TcpOptions {
  readonly streamHighWaterBytes: number;
  readonly connectTimeoutMs: number;
  readonly streamTimeoutMs: number;
  readonly retransmitMs: number;
  /** Bytes of each payload folded into the trace hash. */
  readonly traceHashBytes: number;
}

/**
 * Listeners and stream connections of every host, and the segments between them.
 *
 * @example
 * ```ts
 * import { Simulation } from "./simulation.ts";
 * // Tcp is wired inside a Simulation; hosts reach it through platform.net.listen and connect.
 * const sim = new Simulation({ seed: 4 });
 * let got = 0;
 * sim.addHost("server", (platform) =>
 *   platform.net.listen({ host: "0.0.0.0", port: 80 }, {
 *     onConnection: () => ({ onData: (_conn, data) => void (got += data.length), onClose() {} }),
 *   }));
 * sim.addHost("client", (platform) =>
 *   platform.net.connect({ host: "10.0.0.1", port: 80 }, {
 *     onOpen: (conn) => conn.write(new Uint8Array(5)),
 *     onData() {},
 *     onClose() {},
 *   }));
 * sim.run(50);
 * console.assert(got === 5 && sim.stats.connectionsOpened === 1);
 * ```
 */
export class Tcp implements StreamPart, StreamOpener, PacketSink, Resender<Segment> {
  readonly highWaterBytes: number;
  readonly #kernel: Kernel;
  readonly #fabric: Fabric;
  readonly #byAddress: ReadonlyMap<number, HostState>;
  readonly #stats: SimStats;
  readonly #options: TcpOptions;

  constructor(kernel: Kernel, fabric: Fabric, hosts: HostDirectory, options: TcpOptions) {
    this.#kernel = kernel;
    this.#fabric = fabric;
    this.#byAddress = hosts.byAddress;
    this.#stats = kernel.stats;
    this.#options = options;
    this.highWaterBytes = options.streamHighWaterBytes;
  }

  /** Listens for stream connections on `host`. */
  listen(
    host: HostState,
    incarnation: number,
    options: ListenOptions,
    handlers: ListenHandlers,
  ): StreamListener {
    validateHandlers(handlers, ["onConnection"], "listen");
    const kernel = this.#kernel;
    const listener = new SimListener(host, handlers);
    const fail = (error: NetError) => {
      listener.closed = true;
      kernel.call(host, 0, () => handlers.onError?.(error));
      return listener;
    };
    if (!host.isLive(incarnation)) {
      return fail(new NetError("EIO", `Cannot listen on ${host.name}: the host is down`));
    }
    if (!host.ownsAddress(options.host, false)) {
      return fail(
        new NetError(
          "EADDRNOTAVAIL",
          `Cannot listen on ${options.host}: not an address of ${host.name}`,
        ),
      );
    }
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
      throw new RangeError(`Cannot listen on port ${options.port}`);
    }
    const port = options.port === 0 ? host.ephemeralPort() : options.port;
    if (host.listeners.has(port)) {
      return fail(
        new NetError("EADDRINUSE", `Cannot listen on ${options.host}:${port}: address in use`),
      );
    }
    listener.local = { host: options.host, port };
    host.listeners.set(port, listener);
    kernel.call(host, 0, () => {
      if (!listener.closed) handlers.onListening?.(listener);
    });
    return listener;
  }

  /** Dials a stream connection from `host`. */
  connect(host: HostState, incarnation: number, to: Address, handlers: StreamHandlers): StreamConn {
    validateHandlers(handlers, ["onData", "onClose"], "connect");
    const kernel = this.#kernel;
    const end = new StreamEnd(this, host, incarnation, handlers, "connecting");
    end.remote = { host: to.host, port: to.port };
    if (!host.isLive(incarnation)) {
      end.state = "closed";
      return end;
    }
    end.local = { host: host.address, port: host.ephemeralPort() };
    const targetNumber = parseIpv4(to.host);
    if (
      targetNumber === undefined || !Number.isInteger(to.port) || to.port <= 0 || to.port > 65535
    ) {
      end.state = "closed";
      kernel.call(host, 0, () =>
        handlers.onClose(
          end,
          "error",
          new NetError(
            "EINVAL",
            `Cannot connect to ${to.host}:${to.port}: not an IPv4 address and port`,
          ),
        ));
      return end;
    }
    const target = (targetNumber >>> 24) === 127 ? host : this.#byAddress.get(targetNumber);
    kernel.call(host, toUs(this.#options.connectTimeoutMs), () => {
      if (end.state === "connecting") {
        closeEnd(
          end,
          "timeout",
          new NetError("ETIMEDOUT", `Cannot connect to ${to.host}:${to.port}: no answer`),
        );
      }
    });
    if (target === undefined) return end; // Nobody there: the SYN goes nowhere, the timer ends it.
    this.#transmit({
      type: SYN,
      fromHost: host,
      toHost: target,
      from: end,
      to: null,
      toAddress: end.remote,
      data: undefined,
      seq: -1,
      refused: false,
      attempt: 0,
    });
    return end;
  }

  sendSequenced(end: StreamEnd, type: number, data: Uint8Array | undefined): void {
    const peer = end.peer!;
    this.#transmit({
      type,
      fromHost: end.host,
      toHost: peer.host,
      from: end,
      to: peer,
      toAddress: end.remote,
      data,
      seq: end.sendSeq++,
      refused: false,
      attempt: 0,
    });
  }

  closeLocally(end: StreamEnd, graceful: boolean): void {
    if (end.state === "closed") return;
    const wasOpen = end.state === "open";
    end.state = "closed";
    if (wasOpen && end.peer !== null) {
      this.sendSequenced(end, graceful ? FIN : RST, undefined);
    }
    // end() before the SYN-ACK: the connection still completes, sends what was written, then
    // FIN (as a kernel does). destroy() drops it: the SYN-ACK then finds it closed and resets.
    end.endWhenOpen = !wasOpen && graceful;
    if (!end.endWhenOpen) end.pending = [];
    this.#kernel.call(end.host, 0, () => end.handlers.onClose(end, "local"));
  }

  drainLater(end: StreamEnd): void {
    if (!end.host.isLive(end.incarnation)) return;
    this.#kernel.call(end.host, 0, () => {
      if (end.state === "open") end.handlers.onDrain?.(end);
    });
  }

  /** A segment parked on a cut or held path goes on, with a fresh latency. */
  resend(segment: Segment): void {
    this.#unhold(segment);
    this.#kernel.push(this.#fabric.latencyUs(), K_SEG, segment.toHost, 0, segment);
  }

  /**
   * A restarted host meets the segments that reached it while down: they are sent again now,
   * and the new incarnation answers them with resets.
   */
  resendQueued(host: HostState): void {
    const queued = host.downQueue;
    host.downQueue = [];
    for (const segment of queued) {
      this.#unhold(segment);
      this.#retransmitLater(segment, 0);
    }
  }

  /** A segment reaches its host: it may wait (cut, hold, host down or paused) or be delivered. */
  arrive(event: SimEvent): void {
    const segment = event.payload as Segment;
    const host = segment.toHost;
    const fabric = this.#fabric;
    if (
      segment.fromHost !== host && fabric.hasFaults &&
      fabric.pathBetween(segment.fromHost, host) !== PATH_OPEN
    ) {
      fabric.park(segment.fromHost, host, segment, this);
      this.#countHeld(segment);
      return;
    }
    if (host.state === "down") {
      if (segment.type !== RST) {
        host.downQueue.push(segment);
        this.#countHeld(segment);
      }
      return;
    }
    if (host.state === "paused") {
      host.deferred.push(event);
      return;
    }
    const stats = this.#stats;
    const kernel = this.#kernel;
    stats.segmentsDelivered++;
    const hash = kernel.hash;
    hash.word(kernel.nowUs);
    hash.word((host.index << 4) ^ segment.type);
    if (segment.data !== undefined) hash.bytes(segment.data, this.#options.traceHashBytes);
    if (kernel.traceLimit > 0) {
      kernel.traceLine(
        host,
        `${SEGMENT_NAMES[segment.type]} from ${segment.fromHost.name}${
          segment.data ? ` ${segment.data.length}B` : ""
        }`,
      );
    }
    switch (segment.type) {
      case SYN:
        return this.#arriveSyn(segment);
      case SYNACK: {
        const client = segment.to!;
        const server = segment.from;
        if (client.endWhenOpen && host.isLive(client.incarnation)) {
          client.endWhenOpen = false;
          client.peer = server;
          client.receiveSeq = segment.seq + 1;
          stats.connectionsOpened++;
          client.flushPending();
          this.sendSequenced(client, FIN, undefined);
          return;
        }
        if (!host.isLive(client.incarnation) || client.state !== "connecting") {
          this.#reset(server, host, false);
          return;
        }
        client.state = "open";
        client.peer = server;
        client.receiveSeq = segment.seq + 1;
        stats.connectionsOpened++;
        client.handlers.onOpen?.(client);
        if (client.closed) return;
        client.flushPending();
        // Bytes the server sent right after accepting may have overtaken the SYN-ACK.
        for (
          let next = client.reorder.get(client.receiveSeq);
          next !== undefined && !client.closed;
          next = client.reorder.get(client.receiveSeq)
        ) {
          client.receiveSeq++;
          client.reorder.delete(next.seq);
          this.#deliverInOrder(client, next);
        }
        return;
      }
      case RST: {
        const end = segment.to!;
        if (!host.isLive(end.incarnation) || end.state === "closed") return;
        if (segment.refused) {
          stats.connectionsRefused++;
          closeEnd(
            end,
            "refused",
            new NetError("ECONNREFUSED", `Cannot connect to ${formatEnd(end.remote)}: refused`),
          );
        } else {
          stats.connectionsReset++;
          closeEnd(
            end,
            "reset",
            new NetError("ECONNRESET", `Connection to ${formatEnd(end.remote)} was reset`),
          );
        }
        return;
      }
      default: {
        const end = segment.to!;
        const sender = segment.from;
        if (!host.isLive(end.incarnation) || end.state === "closed") {
          sender.acknowledge(segment.data?.length ?? 0);
          if (segment.type !== RST) this.#reset(sender, host, false);
          return;
        }
        if (segment.seq !== end.receiveSeq) {
          end.reorder.set(segment.seq, segment);
          return;
        }
        let next: Segment | undefined = segment;
        while (next !== undefined) {
          end.receiveSeq++;
          end.reorder.delete(next.seq);
          this.#deliverInOrder(end, next);
          if (end.closed) break;
          next = end.reorder.get(end.receiveSeq);
        }
      }
    }
  }

  #deliverInOrder(end: StreamEnd, segment: Segment): void {
    const sender = segment.from;
    if (segment.type === DATA) {
      const data = segment.data!;
      end.handlers.onData(end, data);
      sender.acknowledge(data.length);
    } else if (segment.type === FIN) {
      closeEnd(end, "eof");
    } else if (segment.type === RST) {
      this.#stats.connectionsReset++;
      closeEnd(
        end,
        "reset",
        new NetError("ECONNRESET", `Connection to ${formatEnd(end.remote)} was reset`),
      );
    }
  }

  #arriveSyn(segment: Segment): void {
    const host = segment.toHost;
    const client = segment.from;
    const listener = host.listeners.get(segment.toAddress.port);
    const addressOk = listener !== undefined &&
      (listener.local.host === ANY || listener.local.host === segment.toAddress.host ||
        (listener.local.host === host.address && !segment.toAddress.host.startsWith("127.")));
    if (!addressOk || listener.closed) {
      this.#reset(client, host, true);
      return;
    }
    const server = new StreamEnd(this, host, host.incarnation, undefined, "open");
    server.local = { host: segment.toAddress.host, port: segment.toAddress.port };
    server.remote = client.local;
    server.peer = client;
    // The SYN-ACK is the first segment of the server's direction: data the server writes at
    // once is sequenced after it, so the client never sees bytes before it is open.
    this.#transmit({
      type: SYNACK,
      fromHost: host,
      toHost: segment.fromHost,
      from: server,
      to: client,
      toAddress: client.local,
      data: undefined,
      seq: server.sendSeq++,
      refused: false,
      attempt: 0,
    });
    server.handlers = listener.handlers.onConnection(server);
    validateHandlers(server.handlers, ["onData", "onClose"], "accept connection");
  }

  #reset(toEnd: StreamEnd, fromHost: HostState, refused: boolean): void {
    this.#transmit({
      type: RST,
      fromHost,
      toHost: toEnd.host,
      from: toEnd,
      to: toEnd,
      toAddress: toEnd.local,
      data: undefined,
      seq: -1,
      refused,
      attempt: 0,
    });
  }

  #transmit(segment: Segment): void {
    this.#stats.segmentsSent++;
    const kernel = this.#kernel;
    const fabric = this.#fabric;
    let extraUs = 0;
    if (fabric.rule !== undefined) {
      const verdict = this.#verdict(segment);
      if (verdict === "drop") {
        const delayUs = toUs(this.#options.retransmitMs) * 2 ** Math.min(segment.attempt, 6);
        segment.attempt++;
        if (segment.attempt > 15) {
          this.#giveUp(segment);
          return;
        }
        this.#stats.segmentsRetransmitted++;
        this.#retransmitLater(segment, delayUs);
        return;
      }
      if (typeof verdict === "object") extraUs = Math.round(verdict.delayMs * 1000);
    }
    kernel.push(fabric.latencyUs() + extraUs, K_SEG, segment.toHost, 0, segment);
  }

  // Apart from #transmit: a closure there would cost a context on every segment, rule or not.
  #verdict(segment: Segment): PacketVerdict {
    return this.#fabric.verdict(() => ({
      kind: SEGMENT_NAMES[segment.type],
      from: segment.fromHost.name,
      to: segment.toHost.name,
      fromAddress: segment.type === RST ? segment.toAddress : segment.from.local,
      toAddress: segment.toAddress,
      data: segment.data,
      timeMs: this.#kernel.nowUs / 1000,
      attempt: segment.attempt,
    }));
  }

  #retransmitLater(segment: Segment, delayUs: number): void {
    this.#kernel.push(delayUs, K_WORLD, null, 0, () => {
      this.#stats.segmentsSent--;
      this.#transmit(segment);
    });
  }

  /** The sender of a segment that cannot get through times out, as TCP's retries run out. */
  #giveUp(segment: Segment): void {
    const end = segment.type === RST ? null : segment.from;
    if (end === null || end.state === "closed" || !end.host.isLive(end.incarnation)) return;
    this.#kernel.call(end.host, 0, () =>
      closeEnd(
        end,
        "timeout",
        new NetError("ETIMEDOUT", `Connection to ${formatEnd(end.remote)} timed out`),
      ));
  }

  /** Counts a segment that now waits; its sender times out if its bytes wait too long. */
  #countHeld(segment: Segment): void {
    this.#stats.segmentsHeld++;
    const sender = segment.from;
    if (segment.type === DATA || segment.type === FIN) {
      sender.heldSegments++;
      if (sender.heldSinceUs < 0) {
        sender.heldSinceUs = this.#kernel.nowUs;
        this.#scheduleHeldCheck(sender);
      }
    }
  }

  #unhold(segment: Segment): void {
    if (segment.type === DATA || segment.type === FIN) segment.from.heldSegments--;
  }

  #scheduleHeldCheck(end: StreamEnd): void {
    const kernel = this.#kernel;
    const timeoutUs = toUs(this.#options.streamTimeoutMs);
    kernel.push(timeoutUs, K_WORLD, null, 0, () => {
      if (end.heldSegments <= 0) {
        end.heldSinceUs = -1;
        return;
      }
      if (end.state === "closed" || !end.host.isLive(end.incarnation)) return;
      kernel.call(end.host, 0, () =>
        closeEnd(
          end,
          "timeout",
          new NetError("ETIMEDOUT", `Connection to ${formatEnd(end.remote)} timed out`),
        ));
    });
  }
}

/**
 * A host's stream listener; a crash closes it with the host's other sockets.
 *
 * @example
 * ```ts
 * import { Simulation } from "./simulation.ts";
 * import { SimListener } from "./_tcp.ts";
 * const sim = new Simulation();
 * const host = sim.addHost("a", (platform) =>
 *   platform.net.listen({ host: "0.0.0.0", port: 80 }, {
 *     onConnection: () => ({ onData() {}, onClose() {} }),
 *   }));
 * const listener = host.app;
 * if (!(listener instanceof SimListener)) throw new Error("not a simulated listener");
 * console.assert(!listener.closed);
 * sim.crash("a");
 * console.assert(listener.closed);
 * ```
 */
export class SimListener implements StreamListener {
  local: Address = { host: ANY, port: 0 };
  closed = false;

  constructor(readonly host: HostState, readonly handlers: ListenHandlers) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.host.listeners.get(this.local.port) === this) {
      this.host.listeners.delete(this.local.port);
    }
  }
}

/**
 * One end of a stream connection: its sequence numbers, reorder buffer and back-pressure. It
 * checks what host code hands it and leaves the rest to its {@link StreamPart}.
 *
 * @example
 * ```ts
 * import { Simulation } from "./simulation.ts";
 * import { StreamEnd } from "./_tcp.ts";
 * const sim = new Simulation({ streamHighWaterBytes: 10 });
 * sim.addHost("server", (platform) =>
 *   platform.net.listen({ host: "0.0.0.0", port: 80 }, {
 *     onConnection: () => ({ onData() {}, onClose() {} }),
 *   }));
 * const drains: number[] = [];
 * const client = sim.addHost("client", (platform) =>
 *   platform.net.connect({ host: "10.0.0.1", port: 80 }, {
 *     onData() {},
 *     onDrain: () => void drains.push(sim.now),
 *     onClose() {},
 *   }));
 * const conn = client.app;
 * if (!(conn instanceof StreamEnd)) throw new Error("not a simulated stream end");
 * console.assert(conn.write(new Uint8Array(10)) === false, "at the high-water mark");
 * sim.run(50);
 * console.assert(drains.length === 1 && conn.bufferedBytes === 0);
 * ```
 */
export class StreamEnd implements StreamConn {
  local: Address = { host: ANY, port: 0 };
  remote: Address = { host: ANY, port: 0 };
  peer: StreamEnd | null = null;
  bufferedBytes = 0;
  sendSeq = 0;
  receiveSeq = 0;
  readonly reorder: Map<number, Segment> = new Map();
  pending: Uint8Array[] = [];
  needDrain = false;
  /** end() was called while connecting: finish the handshake, flush, then FIN. */
  endWhenOpen = false;
  heldSegments = 0;
  heldSinceUs = -1;
  handlers: StreamHandlers;

  constructor(
    readonly tcp: StreamPart,
    readonly host: HostState,
    readonly incarnation: number,
    handlers: StreamHandlers | undefined,
    public state: "connecting" | "open" | "closed",
  ) {
    this.handlers = handlers ?? { onData() {}, onClose() {} };
  }

  get closed(): boolean {
    return this.state === "closed";
  }

  write(data: Uint8Array): boolean {
    if (!(data instanceof Uint8Array)) {
      throw new TypeError("Cannot write: data is not a Uint8Array");
    }
    if (this.state === "closed") return false;
    if (data.length === 0) return this.bufferedBytes < this.tcp.highWaterBytes;
    this.bufferedBytes += data.length;
    if (this.state === "connecting") this.pending.push(data);
    else this.tcp.sendSequenced(this, DATA, data);
    const below = this.bufferedBytes < this.tcp.highWaterBytes;
    if (!below) this.needDrain = true;
    return below;
  }

  flushPending(): void {
    const pending = this.pending;
    this.pending = [];
    for (const data of pending) this.tcp.sendSequenced(this, DATA, data);
  }

  acknowledge(bytes: number): void {
    this.bufferedBytes -= bytes;
    if (this.needDrain && this.bufferedBytes === 0 && this.state === "open") {
      this.needDrain = false;
      this.tcp.drainLater(this);
    }
  }

  end(): void {
    this.tcp.closeLocally(this, true);
  }

  destroy(): void {
    this.tcp.closeLocally(this, false);
  }
}

/** Closes an end in the current event, calling its `onClose` once. */
function closeEnd(end: StreamEnd, reason: CloseReason, error?: Error): void {
  if (end.state === "closed") return;
  end.state = "closed";
  end.handlers.onClose(end, reason, error);
}

function formatEnd(address: Address): string {
  return `${address.host}:${address.port}`;
}
