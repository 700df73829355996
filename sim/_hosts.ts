/**
 * The simulator's hosts: each host's state (address, ports, incarnation, up/down/paused, clock
 * skew), the table that names and numbers them, their lifecycle (start, crash, pause, resume)
 * and the {@link Platform} each incarnation's code gets.
 *
 * A host's code runs only in the incarnation that started it: once it crashes, the kernel skips
 * every callback that incarnation queued, and a restart runs the factory again on a fresh
 * platform with fresh randomness. Hosts are kept and iterated in creation order, which every
 * other part relies on for its fixed order.
 *
 * @module
 */
import {
  type Address,
  type Clock,
  type DatagramBindOptions,
  type DatagramHandlers,
  type DatagramSocket,
  type ListenHandlers,
  type ListenOptions,
  type Net,
  NetError,
  type Platform,
  type StreamConn,
  type StreamHandlers,
  type StreamListener,
  type Timer,
} from "../src/platform.ts";
import { K_CALL, type Kernel, type KernelHost, SimEvent, toUs } from "./_kernel.ts";
import { deriveSeed, SeededRandom } from "./_random.ts";
import { formatIpv4, inSubnet, parseIpv4, parseSubnet, type Subnet } from "./_ipv4.ts";
import type { SimDatagramSocket } from "./_udp.ts";
import type { Segment, SimListener } from "./_tcp.ts";
import type { ClockSkew, HostFactory, HostOptions, HostSet, SimHost } from "./simulation.ts";

/** The wildcard address a socket binds to for every address of its host. */
export const ANY = "0.0.0.0";
const FIRST_EPHEMERAL_PORT = 49152;

/**
 * One host: what the public {@link SimHost} shows, plus its sockets, clock skew and the events
 * and segments waiting for it.
 *
 * @example
 * ```ts
 * import { HostState } from "./_hosts.ts";
 * import { parseSubnet } from "./_ipv4.ts";
 * const host = new HostState("a", 0, "10.0.0.1", parseSubnet("10.0.0.0/16"), () => {});
 * console.assert(host.ephemeralPort() === 49152 && host.ownsAddress("127.0.0.1", false));
 * ```
 */
export class HostState implements SimHost<unknown>, KernelHost {
  // The fields every event at the host reads come first, together (a cluster's hosts are in no
  // CPU cache: each further cache line is another miss per event).
  /** Position in creation order. */
  readonly index: number;
  incarnation = 0;
  state: "up" | "down" | "paused" = "down";
  /**
   * Where the last unicast datagram to this host went: its port, the address it was sent to
   * (`ANY` when the port has one socket, bound to any address, which takes every unicast
   * datagram to the port), and the handlers of the socket chosen (see `_udp.ts`). Reset when a
   * datagram socket binds or unbinds here.
   */
  lastDatagramPort = -1;
  lastDatagramHost = "";
  lastDatagramHandlers: DatagramHandlers | undefined = undefined;
  /** Read by every clock reading of the host's code. */
  clockOffsetMs = 0;
  clockRate = 1;
  // The rest (declared, not constructor parameters, which would come first).
  readonly name: string;
  readonly address: string;
  readonly subnetInfo: Subnet;
  readonly factory: HostFactory<unknown>;
  app: unknown = undefined;
  platform: Platform | undefined = undefined;
  nextPort = FIRST_EPHEMERAL_PORT;
  readonly datagramSockets: Map<number, SimDatagramSocket[]> = new Map();
  readonly listeners: Map<number, SimListener> = new Map();
  /** Events that arrived while paused, run in order on resume. */
  deferred: SimEvent[] = [];
  /** Stream segments that reached this host while it was down: retransmitted on restart. */
  downQueue: Segment[] = [];
  readonly addressNumber: number;

  /** The host's clock reading (what its `clock.now()` returns) at simulated time `nowUs`. */
  nowMs(nowUs: number): number {
    return (nowUs / 1000) * this.clockRate + this.clockOffsetMs;
  }

  constructor(
    name: string,
    index: number,
    address: string,
    subnetInfo: Subnet,
    factory: HostFactory<unknown>,
  ) {
    this.index = index;
    this.name = name;
    this.address = address;
    this.subnetInfo = subnetInfo;
    this.factory = factory;
    this.addressNumber = parseIpv4(address)!;
  }

  /** Forgets the socket the last unicast datagram went to (a socket bound or went away). */
  forgetDatagramRoute(): void {
    this.lastDatagramPort = -1;
    this.lastDatagramHandlers = undefined;
  }

  get subnet(): string {
    return this.subnetInfo.cidr;
  }

  /** Whether `incarnation` is the one running now (a crashed host has none running). */
  isLive(incarnation: number): boolean {
    return this.incarnation === incarnation && this.state !== "down";
  }

  /** Whether a socket of this host may bind to `text`. */
  ownsAddress(text: string, allowBroadcast: boolean): boolean {
    if (text === ANY || text === this.address || text.startsWith("127.")) return true;
    if (!allowBroadcast) return false;
    // A datagram socket may bind to its subnet's broadcast or to the limited broadcast, and then
    // receives only broadcasts sent to that address (as Linux does).
    const number = parseIpv4(text);
    return number === this.subnetInfo.broadcast || number === 0xffffffff;
  }

  portInUse(port: number): boolean {
    return this.datagramSockets.has(port) || this.listeners.has(port);
  }

  ephemeralPort(): number {
    for (let i = 0; i < 16384; i++) {
      const port = this.nextPort;
      this.nextPort = port >= 65535 ? FIRST_EPHEMERAL_PORT : port + 1;
      if (!this.portInUse(port)) return port;
    }
    throw new NetError(
      "EADDRINUSE",
      `Cannot pick a port on ${this.name}: all ephemeral ports used`,
    );
  }
}

/** What the fabric and the transports look hosts up in. */
export interface HostDirectory {
  /** Every host, in creation order. */
  readonly list: readonly HostState[];
  /** Hosts by their address as a number. */
  readonly byAddress: ReadonlyMap<number, HostState>;
  /** The host named by `target`; throws a `TypeError` if it is not one of these hosts. */
  resolve(target: string | SimHost): HostState;
  /** The hosts named by `set`, in its order. */
  resolveSet(set: HostSet): HostState[];
}

/** The datagram part of a host's {@link Net}. */
export interface DatagramBinder {
  bind(
    host: HostState,
    incarnation: number,
    options: DatagramBindOptions,
    handlers: DatagramHandlers,
  ): DatagramSocket;
}

/** The stream part of a host's {@link Net}. */
export interface StreamOpener {
  listen(
    host: HostState,
    incarnation: number,
    options: ListenOptions,
    handlers: ListenHandlers,
  ): StreamListener;
  connect(host: HostState, incarnation: number, to: Address, handlers: StreamHandlers): StreamConn;
}

/** Options of a {@link HostTable}. */
export interface HostTableOptions {
  /** The root seed each incarnation's randomness derives from. */
  readonly seed: number;
  /** The subnet hosts get addresses in unless they ask for another. */
  readonly subnet: Subnet;
  /** Wall-clock epoch that virtual time 0 maps to in `clock.wallNow()`. */
  readonly epochMs: number;
}

/**
 * Every host of a simulation, by creation order, name and address, and their lifecycle.
 *
 * @example
 * ```ts
 * import { Kernel } from "./_kernel.ts";
 * import { HostTable } from "./_hosts.ts";
 * import { parseSubnet } from "./_ipv4.ts";
 * const kernel = new Kernel({ traceLimit: 0, logLimit: 0, logLevel: "info", hostErrors: "throw" });
 * const hosts = new HostTable(kernel, { seed: 1, subnet: parseSubnet("10.0.0.0/16"), epochMs: 0 });
 * const a = hosts.add("a", () => "app a", {});
 * console.assert(a.address === "10.0.0.1" && a.state === "up" && a.app === "app a");
 * hosts.crash(a);
 * console.assert(a.state === "down" && hosts.resolve("a") === a);
 * ```
 */
export class HostTable implements HostDirectory {
  readonly list: HostState[] = [];
  readonly byAddress: Map<number, HostState> = new Map();
  readonly #byName = new Map<string, HostState>();
  readonly #kernel: Kernel;
  readonly #options: HostTableOptions;
  #nextAddress: number;
  #datagrams: DatagramBinder | undefined;
  #streams: StreamOpener | undefined;

  constructor(kernel: Kernel, options: HostTableOptions) {
    this.#kernel = kernel;
    this.#options = options;
    this.#nextAddress = options.subnet.network + 1;
  }

  /** Wires the transports each host's `Net` is made of. */
  attach(datagrams: DatagramBinder, streams: StreamOpener): void {
    this.#datagrams = datagrams;
    this.#streams = streams;
  }

  /** Adds a host and (unless `start: false`) starts it now. */
  add(name: string, factory: HostFactory<unknown>, options: HostOptions): HostState {
    if (typeof name !== "string" || name === "" || this.#byName.has(name)) {
      throw new TypeError(`Cannot add host "${name}": the name is empty or taken`);
    }
    const ownSubnet = this.#options.subnet;
    const subnet = options.subnet === undefined ? ownSubnet : parseSubnet(options.subnet);
    let addressNumber: number;
    if (options.address !== undefined) {
      const parsed = parseIpv4(options.address);
      if (parsed === undefined || !inSubnet(subnet, parsed)) {
        throw new TypeError(
          `Cannot add host "${name}": address "${options.address}" is not in ${subnet.cidr}`,
        );
      }
      addressNumber = parsed;
    } else {
      addressNumber = subnet === ownSubnet ? this.#nextAddress : subnet.network + 1;
      while (this.byAddress.has(addressNumber)) addressNumber++;
      if (subnet === ownSubnet) this.#nextAddress = addressNumber + 1;
    }
    if (
      this.byAddress.has(addressNumber) || addressNumber <= subnet.network ||
      addressNumber >= subnet.broadcast
    ) {
      throw new TypeError(
        `Cannot add host "${name}": address ${
          formatIpv4(addressNumber)
        } is taken or not a host address`,
      );
    }
    const host = new HostState(name, this.list.length, formatIpv4(addressNumber), subnet, factory);
    this.list.push(host);
    this.#byName.set(name, host);
    this.byAddress.set(addressNumber, host);
    if (options.start !== false) this.start(host);
    return host;
  }

  /** The host with that name, or undefined. */
  named(name: string): HostState | undefined {
    return this.#byName.get(name);
  }

  resolve(target: string | SimHost): HostState {
    const host = typeof target === "string"
      ? this.#byName.get(target)
      : this.#byName.get(target?.name);
    if (!host || (typeof target !== "string" && host !== target)) {
      throw new TypeError(
        `Cannot find host "${typeof target === "string" ? target : target?.name}"`,
      );
    }
    return host;
  }

  resolveSet(set: HostSet): HostState[] {
    return Array.isArray(set)
      ? set.map((t) => this.resolve(t))
      : [this.resolve(set as string | SimHost)];
  }

  /** Starts a new incarnation: fresh platform and randomness, the factory run again. */
  start(host: HostState): void {
    const kernel = this.#kernel;
    host.incarnation++;
    host.state = "up";
    host.deferred = [];
    const platform = this.#platform(host);
    host.platform = platform;
    kernel.traceLine(host, `start #${host.incarnation}`);
    kernel.hash.word(0x57a7);
    kernel.hash.word(host.index);
    try {
      host.app = host.factory(platform, host);
    } catch (error) {
      kernel.hostError(host, error);
    }
  }

  /** Stops a host at once: its timers die, its sockets vanish silently, its peers hear nothing. */
  crash(host: HostState): void {
    if (host.state === "down") return;
    const kernel = this.#kernel;
    kernel.traceLine(host, "crash");
    kernel.hash.word(0xc7a5);
    kernel.hash.word(host.index);
    host.state = "down";
    host.app = undefined;
    host.platform = undefined;
    host.datagramSockets.clear();
    host.forgetDatagramRoute();
    for (const listener of host.listeners.values()) listener.closed = true;
    host.listeners.clear();
    host.deferred = [];
  }

  /** Freezes a host: nothing of it runs and what reaches it waits, until `resume`. */
  pause(host: HostState): void {
    if (host.state !== "up") return;
    this.#kernel.traceLine(host, "pause");
    host.state = "paused";
  }

  /** Lets a paused host run again; what waited runs now, in arrival order. */
  resume(host: HostState): void {
    if (host.state !== "paused") return;
    this.#kernel.traceLine(host, "resume");
    host.state = "up";
    const deferred = host.deferred;
    host.deferred = [];
    for (const event of deferred) this.#kernel.requeue(event);
  }

  /** Skews a host's clock: it reads `offsetMs + rate × virtual time`, and its timers follow. */
  setClockSkew(host: HostState, skew: ClockSkew): void {
    const rate = skew.rate ?? 1;
    const offsetMs = skew.offsetMs ?? 0;
    if (!(rate > 0.01 && rate < 100) || !Number.isFinite(offsetMs)) {
      throw new RangeError(`Cannot skew clock of "${host.name}": rate ${rate}, offset ${offsetMs}`);
    }
    // Keep the host's clock continuous: only future readings drift.
    const nowUs = this.#kernel.nowUs;
    const readingMs = (nowUs / 1000) * host.clockRate + host.clockOffsetMs;
    host.clockRate = rate;
    host.clockOffsetMs = readingMs - (nowUs / 1000) * rate + offsetMs;
  }

  #platform(host: HostState): Platform {
    const kernel = this.#kernel;
    const incarnation = host.incarnation;
    const epochMs = this.#options.epochMs;
    return {
      name: "sim",
      clock: new SimClock(kernel, host, incarnation, epochMs),
      random: new SeededRandom(deriveSeed(this.#options.seed, 0x686f7374, host.index, incarnation)),
      net: new SimNet(this.#datagrams!, this.#streams!, host, incarnation),
      log: {
        log: (level, event, fields) => {
          if (host.incarnation === incarnation && host.state !== "down") {
            kernel.log(host, level, event, fields);
          }
        },
      },
    };
  }
}

/**
 * A host incarnation's `Clock`: virtual time through the host's skew. A class, not closures:
 * a reading then touches this object and the host (which the event that called already did),
 * where closures would add a function and its context for every reading, and a large cluster
 * reads its clocks millions of times. Call its methods on it, as `Clock`'s are declared.
 */
class SimClock implements Clock {
  readonly #kernel: Kernel;
  readonly #host: HostState;
  readonly #incarnation: number;
  readonly #epochMs: number;

  constructor(kernel: Kernel, host: HostState, incarnation: number, epochMs: number) {
    this.#kernel = kernel;
    this.#host = host;
    this.#incarnation = incarnation;
    this.#epochMs = epochMs;
  }

  now(): number {
    const host = this.#host;
    return host.nowMs(this.#kernel.nowUs);
  }

  wallNow(): number {
    return this.#epochMs + this.now();
  }

  defer(fn: () => void): void {
    if (typeof fn !== "function") {
      throw new TypeError("Cannot defer: the callback is not a function");
    }
    this.#kernel.defer(this.#host, this.#incarnation, fn);
  }

  schedule(delayMs: number, fn: () => void): Timer {
    if (typeof fn !== "function") {
      throw new TypeError("Cannot schedule: the callback is not a function");
    }
    const host = this.#host;
    const delayUs = toUs(delayMs / host.clockRate);
    return this.#kernel.push(delayUs, K_CALL, host, this.#incarnation, fn);
  }

  reschedule(spent: Timer, delayMs: number, fn: () => void): Timer {
    if (spent instanceof SimEvent && typeof fn === "function") {
      const host = this.#host;
      const delayUs = toUs(delayMs / host.clockRate);
      if (this.#kernel.rearm(spent, host, this.#incarnation, delayUs, fn)) return spent;
    }
    // Anything else is a new timer, with schedule's checks.
    return this.schedule(delayMs, fn);
  }
}

/** A host incarnation's `Net`: sockets of that host, refused once the incarnation is gone. */
class SimNet implements Net {
  readonly #datagrams: DatagramBinder;
  readonly #streams: StreamOpener;
  readonly #host: HostState;
  readonly #incarnation: number;

  constructor(
    datagrams: DatagramBinder,
    streams: StreamOpener,
    host: HostState,
    incarnation: number,
  ) {
    this.#datagrams = datagrams;
    this.#streams = streams;
    this.#host = host;
    this.#incarnation = incarnation;
  }

  bindDatagram(options: DatagramBindOptions, handlers: DatagramHandlers): DatagramSocket {
    return this.#datagrams.bind(this.#host, this.#incarnation, options, handlers);
  }

  listen(options: ListenOptions, handlers: ListenHandlers): StreamListener {
    return this.#streams.listen(this.#host, this.#incarnation, options, handlers);
  }

  connect(to: Address, handlers: StreamHandlers): StreamConn {
    return this.#streams.connect(this.#host, this.#incarnation, to, handlers);
  }
}

/**
 * Checks the handlers object host code hands to a socket call: a `TypeError` names what is
 * missing, as the real adapters do.
 *
 * @example
 * ```ts
 * import { validateHandlers } from "./_hosts.ts";
 * validateHandlers({ onMessage() {} }, ["onMessage"], "bind datagram socket");
 * let refused = false;
 * try {
 *   validateHandlers({}, ["onMessage"], "bind datagram socket");
 * } catch (error) {
 *   refused = error instanceof TypeError;
 * }
 * console.assert(refused);
 * ```
 */
export function validateHandlers(handlers: object, required: string[], action: string): void {
  if (handlers === null || typeof handlers !== "object") {
    throw new TypeError(`Cannot ${action}: handlers must be an object`);
  }
  for (const name of required) {
    if (typeof (handlers as Record<string, unknown>)[name] !== "function") {
      throw new TypeError(`Cannot ${action}: handlers.${name} must be a function`);
    }
  }
}
