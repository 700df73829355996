/**
 * The deterministic network simulator: hosts on a virtual subnet, virtual time, datagrams and
 * TCP-like streams, and fault verbs, all derived from one root seed.
 *
 * Each host runs code started by a factory that is handed a {@link Platform}, the same seam the
 * real adapters implement, so the node logic of `src/` runs here unchanged. `crash` then
 * `restart` re-runs the factory with fresh state, a new incarnation and fresh randomness.
 *
 * @module
 */
import {
  type Address,
  type CloseReason,
  type DatagramBindOptions,
  type DatagramHandlers,
  type DatagramSocket,
  type ListenHandlers,
  type ListenOptions,
  type LogLevel,
  type Net,
  NetError,
  type Platform,
  type StreamConn,
  type StreamHandlers,
  type StreamListener,
  type Timer,
} from "../src/platform.ts";
import { WheelQueue } from "./_wheel.ts";
import { deriveSeed, SeededRandom } from "./_random.ts";
import { TraceHash } from "./_trace_hash.ts";
import { formatIpv4, inSubnet, parseIpv4, parseSubnet, type Subnet } from "./_ipv4.ts";

/** Options of a {@link Simulation}; every one has a default. */
export interface SimulationOptions {
  /** The root seed every random draw derives from. Default 1. */
  readonly seed?: number;
  /** One-way latency of a packet is drawn uniformly in [min, max] (µs resolution). Default 1. */
  readonly latencyMsMin?: number;
  /** Default 5. Jitter (max > min) reorders datagrams; streams stay ordered. */
  readonly latencyMsMax?: number;
  /** Probability that a datagram is lost. Default 0. Streams are reliable. */
  readonly lossProbability?: number;
  /** Probability that a datagram is delivered twice. Default 0. */
  readonly duplicateProbability?: number;
  /** The subnet hosts get addresses in unless they ask for another. Default `10.0.0.0/16`. */
  readonly subnet?: string;
  /** Largest datagram payload; larger sends throw a `RangeError`. Default 65507. */
  readonly maxDatagramBytes?: number;
  /** A stream's `write` returns `false` at or above this many buffered bytes. Default 65536. */
  readonly streamHighWaterBytes?: number;
  /** A connection attempt nobody answers fails with `"timeout"` after this. Default 127000. */
  readonly connectTimeoutMs?: number;
  /** Stream bytes undeliverable for this long (partition, dead peer) time out. Default 900000. */
  readonly streamTimeoutMs?: number;
  /** First retransmission delay of a stream segment the packet rule dropped. Default 200. */
  readonly retransmitMs?: number;
  /** Keep this many readable trace lines (`trace`); 0 keeps none, the hash is always kept. */
  readonly traceLimit?: number;
  /** Keep this many log entries (`logs`). Default 10000. */
  readonly logLimit?: number;
  /** Least severe level recorded in `logs` and passed to `onLog`. Default `"debug"`. */
  readonly logLevel?: LogLevel;
  /** Called with every log entry at or above `logLevel`. */
  readonly onLog?: (entry: SimLogEntry) => void;
  /**
   * What an exception thrown by host code does: `"throw"` (default) rethrows it out of
   * `step`/`run`; `"crash"` records it in `errors` and crashes that host, as a real process dies.
   */
  readonly hostErrors?: "throw" | "crash";
  /** Bytes of each packet's payload folded into the trace hash (and its length). Default 32. */
  readonly traceHashBytes?: number;
  /** Wall-clock epoch that virtual time 0 maps to in `clock.wallNow()`. */
  readonly epochMs?: number;
}

/** Network parameters that can change during a run (e.g. a loss burst). */
export interface NetworkConditions {
  latencyMsMin: number;
  latencyMsMax: number;
  lossProbability: number;
  duplicateProbability: number;
}

/** One log entry of a host. */
export interface SimLogEntry {
  readonly timeMs: number;
  readonly host: string;
  readonly incarnation: number;
  readonly level: LogLevel;
  readonly event: string;
  readonly fields?: Readonly<Record<string, unknown>>;
}

/** A packet as the packet rule sees it. */
export interface PacketInfo {
  readonly kind: "datagram" | "syn" | "synack" | "data" | "fin" | "rst";
  readonly from: string;
  readonly to: string;
  readonly fromAddress: Address;
  readonly toAddress: Address;
  readonly data: Uint8Array | undefined;
  readonly timeMs: number;
  /** 0 for the first transmission, then 1, 2… for retransmissions of a dropped segment. */
  readonly attempt: number;
}

/**
 * What the packet rule decides. `"drop"` loses a datagram; a dropped stream segment is
 * retransmitted later, as TCP does. `"duplicate"` doubles a datagram; streams ignore it.
 */
export type PacketVerdict = "pass" | "drop" | "duplicate" | { readonly delayMs: number };

/** The per-packet hook: called once per transmission while set. */
export type PacketRule = (packet: PacketInfo) => PacketVerdict | undefined | void;

/** Starts a host's code on its platform; its result is available as `host.app`. */
export type HostFactory<T> = (platform: Platform, host: SimHost) => T;

/** Options of one host. */
export interface HostOptions {
  /** Its IPv4 address; default: the next free one in its subnet. */
  readonly address?: string;
  /** Its subnet (broadcasts stay inside it); default: the simulation's. */
  readonly subnet?: string;
  /** Start it now (default) or leave it down until `restart`. */
  readonly start?: boolean;
}

/** Clock skew of a host: its clock reads `offsetMs + rate × virtual time`. */
export interface ClockSkew {
  readonly offsetMs?: number;
  readonly rate?: number;
}

/** A simulated host. */
export interface SimHost<T = unknown> {
  readonly name: string;
  /** Position in creation order; iteration over hosts always follows it. */
  readonly index: number;
  readonly address: string;
  readonly subnet: string;
  /** 0 before the first start, then 1, 2… one per start. */
  readonly incarnation: number;
  readonly state: "up" | "down" | "paused";
  /** What the factory returned for the current incarnation. */
  readonly app: T | undefined;
  /** The platform of the current incarnation. */
  readonly platform: Platform | undefined;
}

/** A host error recorded under `hostErrors: "crash"`. */
export interface SimHostError {
  readonly timeMs: number;
  readonly host: string;
  readonly incarnation: number;
  readonly error: unknown;
}

/** Counters of what the network did. */
export interface SimStats {
  events: number;
  datagramsSent: number;
  datagramsDelivered: number;
  datagramsLost: number;
  datagramsDuplicated: number;
  datagramsDropped: number;
  segmentsSent: number;
  segmentsDelivered: number;
  segmentsHeld: number;
  segmentsRetransmitted: number;
  connectionsOpened: number;
  connectionsRefused: number;
  connectionsReset: number;
}

const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

// Event kinds: host code (guarded by incarnation), datagram arrival, segment arrival, world code.
const K_CALL = 0;
const K_DGRAM = 1;
const K_SEG = 2;
const K_WORLD = 3;

// Segment types.
const SYN = 0;
const SYNACK = 1;
const DATA = 2;
const FIN = 3;
const RST = 4;
const SEGMENT_NAMES = ["syn", "synack", "data", "fin", "rst"] as const;

const ANY = "0.0.0.0";
const FIRST_EPHEMERAL_PORT = 49152;

class SimEvent {
  /** Link of the queue's per-instant list. */
  next: SimEvent | undefined = undefined;
  constructor(
    public timeUs: number,
    public seq: number,
    public kind: number,
    public host: HostState | null,
    public incarnation: number,
    // deno-lint-ignore no-explicit-any
    public payload: any,
  ) {}
}

interface Datagram {
  readonly from: HostState;
  readonly fromAddress: Address;
  readonly to: HostState;
  readonly toHost: string;
  readonly toPort: number;
  readonly broadcast: boolean;
  readonly data: Uint8Array;
}

interface Segment {
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

class HostState implements SimHost<unknown> {
  incarnation = 0;
  state: "up" | "down" | "paused" = "down";
  app: unknown = undefined;
  platform: Platform | undefined = undefined;
  clockOffsetMs = 0;
  clockRate = 1;
  nextPort = FIRST_EPHEMERAL_PORT;
  readonly datagramSockets: Map<number, SimDatagramSocket[]> = new Map();
  readonly listeners: Map<number, SimListener> = new Map();
  /** Events that arrived while paused, run in order on resume. */
  deferred: SimEvent[] = [];
  /** Stream segments that reached this host while it was down: retransmitted on restart. */
  downQueue: Segment[] = [];
  readonly addressNumber: number;

  constructor(
    readonly name: string,
    readonly index: number,
    readonly address: string,
    readonly subnetInfo: Subnet,
    readonly factory: HostFactory<unknown>,
  ) {
    this.addressNumber = parseIpv4(address)!;
  }

  get subnet(): string {
    return this.subnetInfo.cidr;
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

/**
 * A seeded, deterministic simulated network of hosts.
 *
 * @example
 * ```ts
 * import { Simulation } from "./simulation.ts";
 * const sim = new Simulation({ seed: 42 });
 * const got: string[] = [];
 * sim.addHost("b", (platform) => {
 *   platform.net.bindDatagram({ host: "0.0.0.0", port: 9999 }, {
 *     onMessage: (data) => got.push(new TextDecoder().decode(data)),
 *   });
 * });
 * sim.addHost("a", (platform) => {
 *   const socket = platform.net.bindDatagram({ host: "0.0.0.0", port: 0 }, { onMessage() {} });
 *   platform.clock.schedule(10, () => socket.send(new TextEncoder().encode("hi"), { host: "10.0.0.1", port: 9999 }));
 * });
 * sim.run(100);
 * console.assert(got[0] === "hi");
 * ```
 */
export class Simulation {
  readonly seed: number;
  readonly #options: Required<Omit<SimulationOptions, "onLog">> & Pick<SimulationOptions, "onLog">;
  readonly #conditions: NetworkConditions;
  readonly #queue = new WheelQueue<SimEvent>();
  readonly #network: SeededRandom;
  readonly #hash = new TraceHash();
  readonly #hosts: HostState[] = [];
  readonly #byName = new Map<string, HostState>();
  readonly #byAddress = new Map<number, HostState>();
  readonly #subnet: Subnet;
  readonly #blocked = new Set<number>();
  readonly #heldPairs = new Set<number>();
  /** Packets waiting for a heal or release, by directed host pair. */
  readonly #parked = new Map<number, Array<Datagram | Segment>>();
  readonly #trace: string[] = [];
  #traceNext = 0;
  readonly #logs: SimLogEntry[] = [];
  #logNext = 0;
  readonly #errors: SimHostError[] = [];
  #rule: PacketRule | undefined;
  readonly #traceHashBytes: number;
  #nowUs = 0;
  #seq = 0;
  #latencyMinUs = 0;
  /** Deferred host callbacks: run after the current event, before the next, like microtasks. */
  #microtasks: Array<{ host: HostState; incarnation: number; fn: () => void }> = [];
  #latencySpreadUs = 0;
  #nextAddress: number;
  #running = false;
  readonly stats: SimStats = {
    events: 0,
    datagramsSent: 0,
    datagramsDelivered: 0,
    datagramsLost: 0,
    datagramsDuplicated: 0,
    datagramsDropped: 0,
    segmentsSent: 0,
    segmentsDelivered: 0,
    segmentsHeld: 0,
    segmentsRetransmitted: 0,
    connectionsOpened: 0,
    connectionsRefused: 0,
    connectionsReset: 0,
  };

  constructor(options: SimulationOptions = {}) {
    const seed = options.seed ?? 1;
    if (!Number.isSafeInteger(seed)) {
      throw new TypeError(`Cannot create simulation: seed ${seed} is not a safe integer`);
    }
    this.seed = seed;
    this.#options = {
      seed,
      latencyMsMin: options.latencyMsMin ?? 1,
      latencyMsMax: options.latencyMsMax ?? 5,
      lossProbability: options.lossProbability ?? 0,
      duplicateProbability: options.duplicateProbability ?? 0,
      subnet: options.subnet ?? "10.0.0.0/16",
      maxDatagramBytes: options.maxDatagramBytes ?? 65507,
      streamHighWaterBytes: options.streamHighWaterBytes ?? 65536,
      connectTimeoutMs: options.connectTimeoutMs ?? 127_000,
      streamTimeoutMs: options.streamTimeoutMs ?? 900_000,
      retransmitMs: options.retransmitMs ?? 200,
      traceLimit: options.traceLimit ?? 0,
      logLimit: options.logLimit ?? 10_000,
      logLevel: options.logLevel ?? "debug",
      onLog: options.onLog,
      hostErrors: options.hostErrors ?? "throw",
      traceHashBytes: options.traceHashBytes ?? 32,
      epochMs: options.epochMs ?? 1_767_225_600_000,
    };
    this.#conditions = {
      latencyMsMin: 0,
      latencyMsMax: 0,
      lossProbability: 0,
      duplicateProbability: 0,
    };
    this.setNetwork({
      latencyMsMin: this.#options.latencyMsMin,
      latencyMsMax: this.#options.latencyMsMax,
      lossProbability: this.#options.lossProbability,
      duplicateProbability: this.#options.duplicateProbability,
    });
    this.#subnet = parseSubnet(this.#options.subnet);
    this.#traceHashBytes = this.#options.traceHashBytes;
    this.#nextAddress = this.#subnet.network + 1;
    this.#network = new SeededRandom(deriveSeed(seed, 0x6e6574));
  }

  /** Virtual time in milliseconds since the start. */
  get now(): number {
    return this.#nowUs / 1000;
  }

  /** How many events have run. */
  get events(): number {
    return this.stats.events;
  }

  /** How many events are waiting. */
  get pending(): number {
    return this.#queue.size;
  }

  /** The trace hash so far: 16 hex digits, equal for equal seeds and inputs on every runtime. */
  get traceHash(): string {
    return this.#hash.hex();
  }

  /** The last `traceLimit` readable trace lines, oldest first. */
  get trace(): readonly string[] {
    return ring(this.#trace, this.#traceNext);
  }

  /** The last `logLimit` log entries, oldest first. */
  get logs(): readonly SimLogEntry[] {
    return ring(this.#logs, this.#logNext);
  }

  /** Exceptions host code threw, under `hostErrors: "crash"`. */
  get errors(): readonly SimHostError[] {
    return this.#errors;
  }

  /** Every host, in creation order. */
  get hosts(): readonly SimHost[] {
    return this.#hosts;
  }

  /** The current network conditions (a copy). */
  get network(): NetworkConditions {
    return { ...this.#conditions };
  }

  /** Changes network conditions from now on, e.g. for a loss burst. */
  setNetwork(conditions: Partial<NetworkConditions>): void {
    const given = definedOnly(conditions);
    const next: NetworkConditions = {
      latencyMsMin: given.latencyMsMin ?? this.#conditions.latencyMsMin,
      latencyMsMax: given.latencyMsMax ?? this.#conditions.latencyMsMax,
      lossProbability: given.lossProbability ?? this.#conditions.lossProbability,
      duplicateProbability: given.duplicateProbability ?? this.#conditions.duplicateProbability,
    };
    if (
      !(next.latencyMsMin >= 0) || !(next.latencyMsMax >= next.latencyMsMin) ||
      !Number.isFinite(next.latencyMsMax)
    ) {
      throw new RangeError(
        `Cannot set latency ${next.latencyMsMin}..${next.latencyMsMax} ms: need 0 <= min <= max`,
      );
    }
    for (const key of ["lossProbability", "duplicateProbability"] as const) {
      if (!(next[key] >= 0 && next[key] <= 1)) {
        throw new RangeError(`Cannot set ${key} to ${next[key]}: need a probability in [0, 1]`);
      }
    }
    Object.assign(this.#conditions, next);
    this.#latencyMinUs = Math.round(next.latencyMsMin * 1000);
    this.#latencySpreadUs = Math.round(next.latencyMsMax * 1000) - this.#latencyMinUs;
  }

  /** Adds a host and (unless `start: false`) starts it now. */
  addHost<T>(name: string, factory: HostFactory<T>, options: HostOptions = {}): SimHost<T> {
    if (typeof name !== "string" || name === "" || this.#byName.has(name)) {
      throw new TypeError(`Cannot add host "${name}": the name is empty or taken`);
    }
    const subnet = options.subnet === undefined ? this.#subnet : parseSubnet(options.subnet);
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
      addressNumber = subnet === this.#subnet ? this.#nextAddress : subnet.network + 1;
      while (this.#byAddress.has(addressNumber)) addressNumber++;
      if (subnet === this.#subnet) this.#nextAddress = addressNumber + 1;
    }
    if (
      this.#byAddress.has(addressNumber) || addressNumber <= subnet.network ||
      addressNumber >= subnet.broadcast
    ) {
      throw new TypeError(
        `Cannot add host "${name}": address ${
          formatIpv4(addressNumber)
        } is taken or not a host address`,
      );
    }
    const host = new HostState(
      name,
      this.#hosts.length,
      formatIpv4(addressNumber),
      subnet,
      factory as HostFactory<unknown>,
    );
    this.#hosts.push(host);
    this.#byName.set(name, host);
    this.#byAddress.set(addressNumber, host);
    if (options.start !== false) this.#start(host);
    return host as SimHost<T>;
  }

  /** The host with that name; throws a `TypeError` if there is none. */
  host<T = unknown>(name: string): SimHost<T> {
    const host = this.#byName.get(name);
    if (!host) throw new TypeError(`Cannot find host "${name}"`);
    return host as SimHost<T>;
  }

  /**
   * Schedules world-level code (not tied to a host) at `delayMs` from now: faults at set
   * times, traffic, checks.
   */
  schedule(delayMs: number, fn: () => void): Timer {
    const event = this.#push(this.#toUs(delayMs), K_WORLD, null, 0, fn);
    return { cancel: () => void (event.payload = null) };
  }

  /** Runs the next event; returns `false` when there is none. */
  step(): boolean {
    if (this.#microtasks.length > 0) this.#drainMicrotasks();
    const event = this.#queue.pop();
    if (!event) return false;
    this.#nowUs = event.timeUs;
    this.#dispatch(event);
    return true;
  }

  /** Runs every event due in the next `forMs` milliseconds, then sets the time to the end. */
  run(forMs: number): void {
    const endUs = this.#nowUs + this.#toUs(forMs);
    this.#enter();
    try {
      if (this.#microtasks.length > 0) this.#drainMicrotasks();
      const queue = this.#queue;
      for (let next = queue.popUntil(endUs); next !== undefined; next = queue.popUntil(endUs)) {
        this.#nowUs = next.timeUs;
        this.#dispatch(next);
      }
      this.#nowUs = endUs;
    } finally {
      this.#running = false;
    }
  }

  /**
   * Runs until `predicate` holds (checked before starting and after each distinct instant) or
   * `maxMs` pass; returns whether it held. On success the time is that instant.
   */
  runUntil(predicate: () => boolean, maxMs: number): boolean {
    if (this.#microtasks.length > 0 && !this.#running) this.#drainMicrotasks();
    if (predicate()) return true;
    const endUs = this.#nowUs + this.#toUs(maxMs);
    this.#enter();
    try {
      const queue = this.#queue;
      for (;;) {
        const next = queue.peek();
        if (next === undefined || next.timeUs > endUs) break;
        const instant = next.timeUs;
        do {
          const event = queue.pop()!;
          this.#nowUs = instant;
          this.#dispatch(event);
        } while (queue.peek()?.timeUs === instant);
        if (predicate()) return true;
      }
      this.#nowUs = endUs;
    } finally {
      this.#running = false;
    }
    return predicate();
  }

  // ---- fault verbs ---------------------------------------------------------------------------

  /** Stops a host at once: its timers die, its sockets vanish silently, its peers hear nothing. */
  crash(target: string | SimHost): void {
    const host = this.#resolve(target);
    if (host.state === "down") return;
    this.#traceLine(host, "crash");
    this.#hash.word(0xc7a5);
    this.#hash.word(host.index);
    host.state = "down";
    host.app = undefined;
    host.platform = undefined;
    host.datagramSockets.clear();
    for (const listener of host.listeners.values()) listener.closed = true;
    host.listeners.clear();
    host.deferred = [];
  }

  /**
   * Starts a host anew (crashing it first if it is up): a new incarnation, fresh randomness,
   * the factory run again. Stream segments that reached it while down now meet the new
   * incarnation, which answers them with resets.
   */
  restart(target: string | SimHost): void {
    const host = this.#resolve(target);
    if (host.state !== "down") this.crash(host);
    this.#start(host);
    const queued = host.downQueue;
    host.downQueue = [];
    for (const segment of queued) {
      this.#unhold(segment);
      this.#retransmitLater(segment, 0);
    }
  }

  /** Freezes a host: nothing of it runs and what reaches it waits, until `resume`. */
  pause(target: string | SimHost): void {
    const host = this.#resolve(target);
    if (host.state !== "up") return;
    this.#traceLine(host, "pause");
    host.state = "paused";
  }

  /** Lets a paused host run again; what waited runs now, in arrival order. */
  resume(target: string | SimHost): void {
    const host = this.#resolve(target);
    if (host.state !== "paused") return;
    this.#traceLine(host, "resume");
    host.state = "up";
    const deferred = host.deferred;
    host.deferred = [];
    for (const event of deferred) {
      event.timeUs = this.#nowUs;
      event.seq = this.#seq++;
      this.#queue.push(event);
    }
  }

  /** Cuts traffic both ways between two hosts (or two groups): datagrams are lost, stream bytes wait. */
  partition(a: HostSet, b: HostSet): void {
    for (const x of this.#resolveSet(a)) {
      for (const y of this.#resolveSet(b)) {
        if (x === y) continue;
        this.#blocked.add(pairKey(x, y));
        this.#blocked.add(pairKey(y, x));
      }
    }
    this.#hash.word(0x9a27);
  }

  /** Cuts traffic from `from` to `to` only. */
  partitionOneWay(from: HostSet, to: HostSet): void {
    for (const x of this.#resolveSet(from)) {
      for (const y of this.#resolveSet(to)) {
        if (x !== y) this.#blocked.add(pairKey(x, y));
      }
    }
    this.#hash.word(0x9a28);
  }

  /**
   * Removes partitions: all of them, those touching `a`, or those between `a` and `b`. Stream
   * bytes that waited are delivered.
   */
  heal(a?: HostSet, b?: HostSet): void {
    this.#unset(this.#blocked, a, b);
    this.#hash.word(0x9a29);
    this.#flushParked();
  }

  /** Holds all traffic between two hosts (or groups) until `release`; nothing is lost. */
  hold(a: HostSet, b: HostSet): void {
    for (const x of this.#resolveSet(a)) {
      for (const y of this.#resolveSet(b)) {
        if (x === y) continue;
        this.#heldPairs.add(pairKey(x, y));
        this.#heldPairs.add(pairKey(y, x));
      }
    }
    this.#hash.word(0x401d);
  }

  /** Releases held traffic: all, that of `a`, or that between `a` and `b`. */
  release(a?: HostSet, b?: HostSet): void {
    this.#unset(this.#heldPairs, a, b);
    this.#hash.word(0x401e);
    this.#flushParked();
  }

  /** Whether traffic from `from` to `to` is currently cut. */
  isPartitioned(from: string | SimHost, to: string | SimHost): boolean {
    return this.#blocked.has(pairKey(this.#resolve(from), this.#resolve(to)));
  }

  /** Skews a host's clock: it reads `offsetMs + rate × virtual time`, and its timers follow. */
  setClockSkew(target: string | SimHost, skew: ClockSkew): void {
    const host = this.#resolve(target);
    const rate = skew.rate ?? 1;
    const offsetMs = skew.offsetMs ?? 0;
    if (!(rate > 0.01 && rate < 100) || !Number.isFinite(offsetMs)) {
      throw new RangeError(`Cannot skew clock of "${host.name}": rate ${rate}, offset ${offsetMs}`);
    }
    // Keep the host's clock continuous: only future readings drift.
    const readingMs = (this.#nowUs / 1000) * host.clockRate + host.clockOffsetMs;
    host.clockRate = rate;
    host.clockOffsetMs = readingMs - (this.#nowUs / 1000) * rate + offsetMs;
  }

  /** Sets (or with `undefined` clears) the per-packet rule hook. */
  setPacketRule(rule: PacketRule | undefined): void {
    this.#rule = rule;
  }

  // ---- internals: events -----------------------------------------------------------------------

  #enter(): void {
    if (this.#running) {
      throw new Error("Cannot run the simulation: it is already running (called from an event?)");
    }
    this.#running = true;
  }

  #toUs(ms: number): number {
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new RangeError(`Cannot schedule ${ms} ms ahead: need a finite number >= 0`);
    }
    return Math.round(ms * 1000);
  }

  #push(
    delayUs: number,
    kind: number,
    host: HostState | null,
    incarnation: number,
    payload: unknown,
  ): SimEvent {
    const event = new SimEvent(
      this.#nowUs + delayUs,
      this.#seq++,
      kind,
      host,
      incarnation,
      payload,
    );
    this.#queue.push(event);
    return event;
  }

  /** Host code to run `delayUs` from now, if the host is still in the same incarnation. */
  #call(host: HostState, delayUs: number, fn: () => void): SimEvent {
    return this.#push(delayUs, K_CALL, host, host.incarnation, fn);
  }

  #dispatch(event: SimEvent): void {
    this.stats.events++;
    const kind = event.kind;
    let host: HostState | null = null;
    try {
      if (kind === K_DGRAM) {
        host = (event.payload as Datagram).to;
        this.#arriveDatagram(event);
      } else if (kind === K_SEG) {
        host = (event.payload as Segment).toHost;
        this.#arriveSegment(event);
      } else if (kind === K_CALL) {
        host = event.host!;
        const fn = event.payload as (() => void) | null;
        if (fn === null || host.incarnation !== event.incarnation || host.state === "down") return;
        if (host.state === "paused") {
          host.deferred.push(event);
          return;
        }
        this.#hash.word(this.#nowUs);
        this.#hash.word(host.index);
        fn();
      } else {
        const fn = event.payload as (() => void) | null;
        if (fn === null) return;
        this.#hash.word(this.#nowUs);
        fn();
      }
    } catch (error) {
      this.#hostError(host, error);
    }
    if (this.#microtasks.length > 0) this.#drainMicrotasks();
  }

  #drainMicrotasks(): void {
    // Microtasks queued by microtasks run in the same drain, as in JavaScript.
    const queue = this.#microtasks;
    let i = 0;
    try {
      for (; i < queue.length; i++) {
        const { host, incarnation, fn } = queue[i];
        if (host.incarnation !== incarnation || host.state === "down") continue;
        if (host.state === "paused") {
          host.deferred.push(new SimEvent(this.#nowUs, this.#seq++, K_CALL, host, incarnation, fn));
          continue;
        }
        this.#hash.word(host.index);
        try {
          fn();
        } catch (error) {
          this.#hostError(host, error);
        }
      }
    } finally {
      // If an error escaped (hostErrors "throw"), what was not run yet stays queued.
      this.#microtasks = queue.slice(i + 1);
    }
  }

  #hostError(host: HostState | null, error: unknown): void {
    if (host === null || this.#options.hostErrors === "throw") throw error;
    this.#errors.push({
      timeMs: this.now,
      host: host.name,
      incarnation: host.incarnation,
      error,
    });
    this.#log(host, "error", "host.uncaught", { error: String(error) });
    this.crash(host);
  }

  #start(host: HostState): void {
    host.incarnation++;
    host.state = "up";
    host.deferred = [];
    const platform = this.#platform(host);
    host.platform = platform;
    this.#traceLine(host, `start #${host.incarnation}`);
    this.#hash.word(0x57a7);
    this.#hash.word(host.index);
    try {
      host.app = host.factory(platform, host);
    } catch (error) {
      this.#hostError(host, error);
    }
  }

  #platform(host: HostState): Platform {
    const incarnation = host.incarnation;
    const epochMs = this.#options.epochMs;
    const now = () => (this.#nowUs / 1000) * host.clockRate + host.clockOffsetMs;
    return {
      name: "sim",
      clock: {
        now,
        wallNow: () => epochMs + now(),
        defer: (fn: () => void): void => {
          if (typeof fn !== "function") {
            throw new TypeError("Cannot defer: the callback is not a function");
          }
          this.#microtasks.push({ host, incarnation, fn });
        },
        schedule: (delayMs: number, fn: () => void): Timer => {
          if (typeof fn !== "function") {
            throw new TypeError("Cannot schedule: the callback is not a function");
          }
          const delayUs = this.#toUs(delayMs / host.clockRate);
          const event = this.#push(delayUs, K_CALL, host, incarnation, fn);
          return { cancel: () => void (event.payload = null) };
        },
      },
      random: new SeededRandom(deriveSeed(this.seed, 0x686f7374, host.index, incarnation)),
      net: new SimNet(this, host, incarnation),
      log: {
        log: (level, event, fields) => {
          if (host.incarnation === incarnation && host.state !== "down") {
            this.#log(host, level, event, fields);
          }
        },
      },
    };
  }

  #log(
    host: HostState,
    level: LogLevel,
    event: string,
    fields?: Readonly<Record<string, unknown>>,
  ): void {
    this.#hash.word(LEVELS[level] ?? 9);
    this.#hash.string(event);
    if ((LEVELS[level] ?? 0) < LEVELS[this.#options.logLevel]) return;
    const entry: SimLogEntry = {
      timeMs: this.now,
      host: host.name,
      incarnation: host.incarnation,
      level,
      event,
      fields,
    };
    if (this.#options.logLimit > 0) {
      this.#logNext = pushRing(this.#logs, this.#logNext, entry, this.#options.logLimit);
    }
    this.#options.onLog?.(entry);
  }

  #traceLine(host: HostState | null, text: string): void {
    if (this.#options.traceLimit === 0) return;
    const line = `${(this.#nowUs / 1000).toFixed(3)} ${host ? host.name + " " : ""}${text}`;
    this.#traceNext = pushRing(this.#trace, this.#traceNext, line, this.#options.traceLimit);
  }

  #resolve(target: string | SimHost): HostState {
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

  #resolveSet(set: HostSet): HostState[] {
    return Array.isArray(set)
      ? set.map((t) => this.#resolve(t))
      : [this.#resolve(set as string | SimHost)];
  }

  #unset(pairs: Set<number>, a?: HostSet, b?: HostSet): void {
    if (a === undefined) {
      pairs.clear();
      return;
    }
    const left = this.#resolveSet(a);
    const right = b === undefined ? this.#hosts : this.#resolveSet(b);
    for (const x of left) {
      for (const y of right) {
        pairs.delete(pairKey(x, y));
        pairs.delete(pairKey(y, x));
      }
    }
  }

  #flushParked(): void {
    // Pairs are visited in the order they were first parked; packets in the order they waited.
    for (const [key, packets] of this.#parked) {
      if (this.#blocked.has(key) || this.#heldPairs.has(key)) continue;
      this.#parked.delete(key);
      for (const packet of packets) {
        if ("type" in packet) {
          this.#unhold(packet);
          this.#push(this.#latencyUs(), K_SEG, null, 0, packet);
        } else {
          this.#push(this.#latencyUs(), K_DGRAM, null, 0, packet);
        }
      }
    }
  }

  #park(from: HostState, to: HostState, packet: Datagram | Segment): void {
    const key = pairKey(from, to);
    let list = this.#parked.get(key);
    if (!list) this.#parked.set(key, list = []);
    list.push(packet);
  }

  #latencyUs(): number {
    const spread = this.#latencySpreadUs;
    return spread > 0 ? this.#latencyMinUs + this.#network.below(spread + 1) : this.#latencyMinUs;
  }

  #chance(probability: number): boolean {
    if (probability <= 0) return false;
    if (probability >= 1) return true;
    return this.#network.next() < probability;
  }

  #applyRule(info: () => PacketInfo): PacketVerdict {
    const rule = this.#rule;
    if (rule === undefined) return "pass";
    const verdict = rule(info());
    if (verdict === undefined || verdict === null) return "pass";
    if (
      verdict !== "pass" && verdict !== "drop" && verdict !== "duplicate" &&
      !(typeof verdict === "object" && verdict.delayMs >= 0)
    ) {
      throw new TypeError(`Cannot apply packet rule verdict ${JSON.stringify(verdict)}`);
    }
    return verdict;
  }

  // ---- internals: datagrams --------------------------------------------------------------------

  /** Sends one datagram from `socket` (validated by the socket). */
  sendDatagram(
    from: HostState,
    fromAddress: Address,
    data: Uint8Array,
    to: Address,
    targetNumber: number,
    broadcast: boolean,
  ): void {
    const subnet = from.subnetInfo;
    if (broadcast) {
      for (const host of this.#hosts) {
        if (host.state !== "down" && inSubnet(subnet, host.addressNumber)) {
          // Every host gets the same array: received datagrams are read-only (see platform.ts).
          this.#transmitDatagram({
            from,
            fromAddress,
            to: host,
            toHost: to.host,
            toPort: to.port,
            broadcast: true,
            data,
          });
        }
      }
      return;
    }
    const target = (targetNumber >>> 24) === 127 ? from : this.#byAddress.get(targetNumber);
    if (target === undefined) {
      this.stats.datagramsSent++;
      this.stats.datagramsDropped++;
      return;
    }
    this.#transmitDatagram({
      from,
      fromAddress,
      to: target,
      toHost: to.host,
      toPort: to.port,
      broadcast: false,
      data,
    });
  }

  #transmitDatagram(datagram: Datagram): void {
    this.stats.datagramsSent++;
    const verdict = this.#rule === undefined ? "pass" : this.#applyRule(() => ({
      kind: "datagram",
      from: datagram.from.name,
      to: datagram.to.name,
      fromAddress: datagram.fromAddress,
      toAddress: { host: datagram.toHost, port: datagram.toPort },
      data: datagram.data,
      timeMs: this.now,
      attempt: 0,
    }));
    if (verdict === "drop" || this.#chance(this.#conditions.lossProbability)) {
      this.stats.datagramsLost++;
      return;
    }
    const extraUs = typeof verdict === "object" ? Math.round(verdict.delayMs * 1000) : 0;
    this.#push(this.#latencyUs() + extraUs, K_DGRAM, null, 0, datagram);
    if (verdict === "duplicate" || this.#chance(this.#conditions.duplicateProbability)) {
      this.stats.datagramsDuplicated++;
      this.#push(this.#latencyUs() + extraUs, K_DGRAM, null, 0, {
        ...datagram,
        data: datagram.data.slice(),
      });
    }
  }

  #arriveDatagram(event: SimEvent): void {
    const datagram = event.payload as Datagram;
    const host = datagram.to;
    if (host.state === "down") {
      this.stats.datagramsDropped++;
      return;
    }
    if (host.state === "paused") {
      host.deferred.push(event);
      return;
    }
    if (datagram.from !== host && (this.#blocked.size > 0 || this.#heldPairs.size > 0)) {
      const key = pairKey(datagram.from, host);
      if (this.#blocked.has(key)) {
        this.stats.datagramsLost++;
        return;
      }
      if (this.#heldPairs.has(key)) {
        this.#park(datagram.from, host, datagram);
        return;
      }
    }
    const sockets = host.datagramSockets.get(datagram.toPort);
    const hash = this.#hash;
    hash.word(this.#nowUs);
    hash.word((host.index << 16) ^ datagram.from.index);
    hash.bytes(datagram.data, this.#traceHashBytes);
    if (this.#options.traceLimit > 0) {
      this.#traceLine(
        host,
        `dgram from ${datagram.from.name} ${datagram.data.length}B port ${datagram.toPort}`,
      );
    }
    if (sockets === undefined) {
      this.stats.datagramsDropped++;
      return;
    }
    if (datagram.broadcast) {
      if (sockets.length === 1) {
        const socket = sockets[0];
        if (socket.local.host === ANY || socket.local.host === datagram.toHost) {
          this.stats.datagramsDelivered++;
          socket.handlers.onMessage(datagram.data, datagram.fromAddress);
        }
        return;
      }
      let first = true;
      for (const socket of sockets.slice()) {
        if (socket.local.host !== ANY && socket.local.host !== datagram.toHost) continue;
        this.stats.datagramsDelivered++;
        socket.handlers.onMessage(
          first ? datagram.data : datagram.data.slice(),
          datagram.fromAddress,
        );
        first = false;
      }
      return;
    }
    // Unicast: an exact address match beats a wildcard; among equals the last bound wins.
    let chosen: SimDatagramSocket | undefined;
    for (let i = sockets.length - 1; i >= 0; i--) {
      const socket = sockets[i];
      const bound = socket.local.host;
      if (bound === datagram.toHost) {
        chosen = socket;
        break;
      }
      if (bound === ANY && chosen === undefined) chosen = socket;
    }
    if (chosen === undefined) {
      this.stats.datagramsDropped++;
      return;
    }
    this.stats.datagramsDelivered++;
    chosen.handlers.onMessage(datagram.data, datagram.fromAddress);
  }

  /** Binds a datagram socket on `host` (called through the host's platform). */
  bindDatagram(
    host: HostState,
    incarnation: number,
    options: DatagramBindOptions,
    handlers: DatagramHandlers,
  ): DatagramSocket {
    validateHandlers(handlers, ["onMessage"], "bind datagram socket");
    const socket = new SimDatagramSocket(this, host, options, handlers);
    const fail = (error: NetError) => {
      socket.closed = true;
      this.#call(host, 0, () => handlers.onError?.(error));
      return socket;
    };
    if (!this.#live(host, incarnation)) {
      return fail(new NetError("EIO", `Cannot bind on ${host.name}: the host is down`));
    }
    const bindHost = options.host;
    if (!this.#ownsAddress(host, bindHost, true)) {
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
    this.#call(host, 0, () => {
      if (!socket.closed) handlers.onReady?.(socket);
    });
    return socket;
  }

  /** Removes a datagram socket from its host. */
  unbindDatagram(host: HostState, socket: SimDatagramSocket): void {
    const list = host.datagramSockets.get(socket.local.port);
    if (!list) return;
    const index = list.indexOf(socket);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) host.datagramSockets.delete(socket.local.port);
  }

  #live(host: HostState, incarnation: number): boolean {
    return host.incarnation === incarnation && host.state !== "down";
  }

  #ownsAddress(host: HostState, text: string, allowBroadcast: boolean): boolean {
    if (text === ANY || text === host.address || text.startsWith("127.")) return true;
    if (!allowBroadcast) return false;
    // A datagram socket may bind to its subnet's broadcast or to the limited broadcast, and then
    // receives only broadcasts sent to that address (as Linux does).
    const number = parseIpv4(text);
    return number === host.subnetInfo.broadcast || number === 0xffffffff;
  }

  get maxDatagramBytes(): number {
    return this.#options.maxDatagramBytes;
  }

  // ---- internals: streams ----------------------------------------------------------------------

  /** Listens for stream connections on `host`. */
  listen(
    host: HostState,
    incarnation: number,
    options: ListenOptions,
    handlers: ListenHandlers,
  ): StreamListener {
    validateHandlers(handlers, ["onConnection"], "listen");
    const listener = new SimListener(host, handlers);
    const fail = (error: NetError) => {
      listener.closed = true;
      this.#call(host, 0, () => handlers.onError?.(error));
      return listener;
    };
    if (!this.#live(host, incarnation)) {
      return fail(new NetError("EIO", `Cannot listen on ${host.name}: the host is down`));
    }
    if (!this.#ownsAddress(host, options.host, false)) {
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
    this.#call(host, 0, () => {
      if (!listener.closed) handlers.onListening?.(listener);
    });
    return listener;
  }

  /** Dials a stream connection from `host`. */
  connect(host: HostState, incarnation: number, to: Address, handlers: StreamHandlers): StreamConn {
    validateHandlers(handlers, ["onData", "onClose"], "connect");
    const end = new StreamEnd(this, host, incarnation, handlers, "connecting");
    end.remote = { host: to.host, port: to.port };
    if (!this.#live(host, incarnation)) {
      end.state = "closed";
      return end;
    }
    end.local = { host: host.address, port: host.ephemeralPort() };
    const targetNumber = parseIpv4(to.host);
    if (
      targetNumber === undefined || !Number.isInteger(to.port) || to.port <= 0 || to.port > 65535
    ) {
      end.state = "closed";
      this.#call(host, 0, () =>
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
    this.#call(host, this.#toUs(this.#options.connectTimeoutMs), () => {
      if (end.state === "connecting") {
        this.#closeEnd(
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

  /** Sends a segment from `end` in its direction's order. */
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
    this.stats.segmentsSent++;
    let extraUs = 0;
    if (this.#rule !== undefined) {
      const verdict = this.#applyRule(() => ({
        kind: SEGMENT_NAMES[segment.type],
        from: segment.fromHost.name,
        to: segment.toHost.name,
        fromAddress: segment.type === RST ? segment.toAddress : segment.from.local,
        toAddress: segment.toAddress,
        data: segment.data,
        timeMs: this.now,
        attempt: segment.attempt,
      }));
      if (verdict === "drop") {
        const delayUs = this.#toUs(this.#options.retransmitMs) * 2 ** Math.min(segment.attempt, 6);
        segment.attempt++;
        if (segment.attempt > 15) {
          this.#giveUp(segment);
          return;
        }
        this.stats.segmentsRetransmitted++;
        this.#retransmitLater(segment, delayUs);
        return;
      }
      if (typeof verdict === "object") extraUs = Math.round(verdict.delayMs * 1000);
    }
    this.#push(this.#latencyUs() + extraUs, K_SEG, null, 0, segment);
  }

  #retransmitLater(segment: Segment, delayUs: number): void {
    this.#push(delayUs, K_WORLD, null, 0, () => {
      this.stats.segmentsSent--;
      this.#transmit(segment);
    });
  }

  /** The sender of a segment that cannot get through times out, as TCP's retries run out. */
  #giveUp(segment: Segment): void {
    const end = segment.type === RST ? null : segment.from;
    if (end === null || end.state === "closed" || !this.#live(end.host, end.incarnation)) return;
    this.#call(end.host, 0, () =>
      this.#closeEnd(
        end,
        "timeout",
        new NetError("ETIMEDOUT", `Connection to ${formatEnd(end.remote)} timed out`),
      ));
  }

  #arriveSegment(event: SimEvent): void {
    const segment = event.payload as Segment;
    const host = segment.toHost;
    if (segment.fromHost !== host && (this.#blocked.size > 0 || this.#heldPairs.size > 0)) {
      const key = pairKey(segment.fromHost, host);
      if (this.#blocked.has(key) || this.#heldPairs.has(key)) {
        this.#holdSegment(segment, (held) => this.#park(segment.fromHost, host, held));
        return;
      }
    }
    if (host.state === "down") {
      if (segment.type !== RST) this.#holdSegment(segment, (s) => host.downQueue.push(s));
      return;
    }
    if (host.state === "paused") {
      host.deferred.push(event);
      return;
    }
    this.stats.segmentsDelivered++;
    const hash = this.#hash;
    hash.word(this.#nowUs);
    hash.word((host.index << 4) ^ segment.type);
    if (segment.data !== undefined) hash.bytes(segment.data, this.#traceHashBytes);
    if (this.#options.traceLimit > 0) {
      this.#traceLine(
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
        if (client.endWhenOpen && this.#live(host, client.incarnation)) {
          client.endWhenOpen = false;
          client.peer = server;
          client.receiveSeq = segment.seq + 1;
          this.stats.connectionsOpened++;
          client.flushPending();
          this.sendSequenced(client, FIN, undefined);
          return;
        }
        if (!this.#live(host, client.incarnation) || client.state !== "connecting") {
          this.#reset(server, host, false);
          return;
        }
        client.state = "open";
        client.peer = server;
        client.receiveSeq = segment.seq + 1;
        this.stats.connectionsOpened++;
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
        if (!this.#live(host, end.incarnation) || end.state === "closed") return;
        if (segment.refused) {
          this.stats.connectionsRefused++;
          this.#closeEnd(
            end,
            "refused",
            new NetError("ECONNREFUSED", `Cannot connect to ${formatEnd(end.remote)}: refused`),
          );
        } else {
          this.stats.connectionsReset++;
          this.#closeEnd(
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
        if (!this.#live(host, end.incarnation) || end.state === "closed") {
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
      this.#closeEnd(end, "eof");
    } else if (segment.type === RST) {
      this.stats.connectionsReset++;
      this.#closeEnd(
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

  #holdSegment(segment: Segment, store: (segment: Segment) => void): void {
    this.stats.segmentsHeld++;
    const sender = segment.from;
    store(segment);
    if (segment.type === DATA || segment.type === FIN) {
      sender.heldSegments++;
      if (sender.heldSinceUs < 0) {
        sender.heldSinceUs = this.#nowUs;
        this.#scheduleHeldCheck(sender);
      }
    }
  }

  #unhold(segment: Segment): void {
    if (segment.type === DATA || segment.type === FIN) segment.from.heldSegments--;
  }

  #scheduleHeldCheck(end: StreamEnd): void {
    const timeoutUs = this.#toUs(this.#options.streamTimeoutMs);
    this.#push(timeoutUs, K_WORLD, null, 0, () => {
      if (end.heldSegments <= 0) {
        end.heldSinceUs = -1;
        return;
      }
      if (end.state === "closed" || !this.#live(end.host, end.incarnation)) return;
      this.#call(end.host, 0, () =>
        this.#closeEnd(
          end,
          "timeout",
          new NetError("ETIMEDOUT", `Connection to ${formatEnd(end.remote)} timed out`),
        ));
    });
  }

  /** Closes an end in the current event, calling its `onClose` once. */
  #closeEnd(end: StreamEnd, reason: CloseReason, error?: Error): void {
    if (end.state === "closed") return;
    end.state = "closed";
    end.handlers.onClose(end, reason, error);
  }

  /** Closes an end from its own side: the callback comes in a later event. */
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
    this.#call(end.host, 0, () => end.handlers.onClose(end, "local"));
  }

  /** Schedules a drain callback for an end (acknowledgements arrive with the data). */
  drainLater(end: StreamEnd): void {
    if (!this.#live(end.host, end.incarnation)) return;
    this.#call(end.host, 0, () => {
      if (end.state === "open") end.handlers.onDrain?.(end);
    });
  }

  get streamHighWaterBytes(): number {
    return this.#options.streamHighWaterBytes;
  }

  isLive(host: HostState, incarnation: number): boolean {
    return this.#live(host, incarnation);
  }
}

/** A host, a host's name, or a list of them. */
export type HostSet = string | SimHost | ReadonlyArray<string | SimHost>;

class SimNet implements Net {
  readonly #sim: Simulation;
  readonly #host: HostState;
  readonly #incarnation: number;

  constructor(sim: Simulation, host: HostState, incarnation: number) {
    this.#sim = sim;
    this.#host = host;
    this.#incarnation = incarnation;
  }

  bindDatagram(options: DatagramBindOptions, handlers: DatagramHandlers): DatagramSocket {
    return this.#sim.bindDatagram(this.#host, this.#incarnation, options, handlers);
  }

  listen(options: ListenOptions, handlers: ListenHandlers): StreamListener {
    return this.#sim.listen(this.#host, this.#incarnation, options, handlers);
  }

  connect(to: Address, handlers: StreamHandlers): StreamConn {
    return this.#sim.connect(this.#host, this.#incarnation, to, handlers);
  }
}

class SimDatagramSocket implements DatagramSocket {
  #local: Address = { host: ANY, port: 0 };
  // Senders usually reuse one address object per destination: remember the last one parsed.
  #lastTo: Address | undefined;
  #lastTarget = 0;
  /** The source address its datagrams carry: the host's address when bound to any. */
  source: Address = this.#local;
  closed = false;
  readonly reuseAddress: boolean;
  readonly #broadcast: boolean;

  constructor(
    readonly sim: Simulation,
    readonly host: HostState,
    options: DatagramBindOptions,
    readonly handlers: DatagramHandlers,
  ) {
    this.reuseAddress = options.reuseAddress === true;
    this.#broadcast = options.broadcast === true;
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
    if (!(data instanceof Uint8Array)) {
      throw new TypeError("Cannot send datagram: data is not a Uint8Array");
    }
    if (data.length > this.sim.maxDatagramBytes) {
      throw new RangeError(
        `Cannot send datagram of ${data.length} bytes: the limit is ${this.sim.maxDatagramBytes}`,
      );
    }
    if (this.closed) throw new NetError("EINVAL", "Cannot send datagram: the socket is closed");
    const target = to === this.#lastTo ? this.#lastTarget : parseIpv4(to.host);
    if (target === undefined || !(to.port > 0 && to.port <= 65535)) {
      throw new NetError(
        "EINVAL",
        `Cannot send datagram to ${to.host}:${to.port}: not an IPv4 address and port`,
      );
    }
    const broadcast = target === this.host.subnetInfo.broadcast || target === 0xffffffff;
    if (broadcast && !this.#broadcast) {
      throw new NetError(
        "EINVAL",
        `Cannot send to broadcast address ${to.host}: the socket was bound without broadcast: true`,
      );
    }
    this.#lastTo = to;
    this.#lastTarget = target;
    if (this.host.state === "down") return;
    this.sim.sendDatagram(this.host, this.source, data, to, target, broadcast);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sim.unbindDatagram(this.host, this);
  }
}

class SimListener implements StreamListener {
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

class StreamEnd implements StreamConn {
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
    readonly sim: Simulation,
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
    if (data.length === 0) return this.bufferedBytes < this.sim.streamHighWaterBytes;
    this.bufferedBytes += data.length;
    if (this.state === "connecting") this.pending.push(data);
    else this.sim.sendSequenced(this, DATA, data);
    const below = this.bufferedBytes < this.sim.streamHighWaterBytes;
    if (!below) this.needDrain = true;
    return below;
  }

  flushPending(): void {
    const pending = this.pending;
    this.pending = [];
    for (const data of pending) this.sim.sendSequenced(this, DATA, data);
  }

  acknowledge(bytes: number): void {
    this.bufferedBytes -= bytes;
    if (this.needDrain && this.bufferedBytes === 0 && this.state === "open") {
      this.needDrain = false;
      this.sim.drainLater(this);
    }
  }

  end(): void {
    this.sim.closeLocally(this, true);
  }

  destroy(): void {
    this.sim.closeLocally(this, false);
  }
}

function pairKey(from: HostState, to: HostState): number {
  return from.index * 1048576 + to.index;
}

function formatEnd(address: Address): string {
  return `${address.host}:${address.port}`;
}

function ring<T>(items: T[], next: number): T[] {
  return items.slice(next).concat(items.slice(0, next));
}

function pushRing<T>(items: T[], next: number, item: T, limit: number): number {
  if (items.length < limit) {
    items.push(item);
    return 0;
  }
  items[next] = item;
  return (next + 1) % limit;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) (out as Record<string, unknown>)[key] = item;
  }
  return out;
}

function validateHandlers(handlers: object, required: string[], action: string): void {
  if (handlers === null || typeof handlers !== "object") {
    throw new TypeError(`Cannot ${action}: handlers must be an object`);
  }
  for (const name of required) {
    if (typeof (handlers as Record<string, unknown>)[name] !== "function") {
      throw new TypeError(`Cannot ${action}: handlers.${name} must be a function`);
    }
  }
}
