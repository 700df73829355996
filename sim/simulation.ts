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
import type { Address, LogLevel, Platform, Timer } from "../src/platform.ts";
import { Kernel } from "./_kernel.ts";
import { type HostState, HostTable } from "./_hosts.ts";
import { Fabric, mergeConditions } from "./_fabric.ts";
import { Udp } from "./_udp.ts";
import { Tcp } from "./_tcp.ts";
import { deriveSeed, SeededRandom } from "./_random.ts";
import { parseSubnet } from "./_ipv4.ts";

// This file is the public facade: options, types and the verbs users call. The work is done by
// private parts, each behind a narrow interface: _kernel.ts (virtual time, the event loop, trace
// hash, logs), _hosts.ts (host state, lifecycle, platforms), _fabric.ts (paths between hosts:
// draws, the packet rule, partitions and holds), _udp.ts (datagram sockets) and _tcp.ts (streams).

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
  /** Counters of what the network did. */
  readonly stats: SimStats;
  readonly #kernel: Kernel;
  readonly #hosts: HostTable;
  readonly #fabric: Fabric;
  readonly #tcp: Tcp;

  constructor(options: SimulationOptions = {}) {
    const seed = options.seed ?? 1;
    if (!Number.isSafeInteger(seed)) {
      throw new TypeError(`Cannot create simulation: seed ${seed} is not a safe integer`);
    }
    this.seed = seed;
    // Checked in this order: bad network conditions are reported before a bad subnet.
    const conditions = mergeConditions(NO_CONDITIONS, {
      latencyMsMin: options.latencyMsMin ?? 1,
      latencyMsMax: options.latencyMsMax ?? 5,
      lossProbability: options.lossProbability ?? 0,
      duplicateProbability: options.duplicateProbability ?? 0,
    });
    const subnet = parseSubnet(options.subnet ?? "10.0.0.0/16");
    const traceHashBytes = options.traceHashBytes ?? 32;
    const kernel = new Kernel({
      traceLimit: options.traceLimit ?? 0,
      logLimit: options.logLimit ?? 10_000,
      logLevel: options.logLevel ?? "debug",
      onLog: options.onLog,
      hostErrors: options.hostErrors ?? "throw",
    });
    const hosts = new HostTable(kernel, {
      seed,
      subnet,
      epochMs: options.epochMs ?? 1_767_225_600_000,
    });
    const fabric = new Fabric(
      kernel,
      hosts,
      conditions,
      new SeededRandom(deriveSeed(seed, 0x6e6574)),
    );
    const udp = new Udp(kernel, fabric, hosts, {
      maxDatagramBytes: options.maxDatagramBytes ?? 65507,
      traceHashBytes,
    });
    const tcp = new Tcp(kernel, fabric, hosts, {
      streamHighWaterBytes: options.streamHighWaterBytes ?? 65536,
      connectTimeoutMs: options.connectTimeoutMs ?? 127_000,
      streamTimeoutMs: options.streamTimeoutMs ?? 900_000,
      retransmitMs: options.retransmitMs ?? 200,
      traceHashBytes,
    });
    kernel.attach({
      datagrams: udp,
      segments: tcp,
      crash: (host) => hosts.crash(host as HostState),
    });
    hosts.attach(udp, tcp);
    this.stats = kernel.stats;
    this.#kernel = kernel;
    this.#hosts = hosts;
    this.#fabric = fabric;
    this.#tcp = tcp;
  }

  /** Virtual time in milliseconds since the start. */
  get now(): number {
    return this.#kernel.nowUs / 1000;
  }

  /** How many events have run. */
  get events(): number {
    return this.stats.events;
  }

  /** How many events are waiting. */
  get pending(): number {
    return this.#kernel.pending;
  }

  /** The trace hash so far: 16 hex digits, equal for equal seeds and inputs on every runtime. */
  get traceHash(): string {
    return this.#kernel.hash.hex();
  }

  /** The last `traceLimit` readable trace lines, oldest first. */
  get trace(): readonly string[] {
    return this.#kernel.trace;
  }

  /** The last `logLimit` log entries, oldest first. */
  get logs(): readonly SimLogEntry[] {
    return this.#kernel.logs;
  }

  /** Exceptions host code threw, under `hostErrors: "crash"`. */
  get errors(): readonly SimHostError[] {
    return this.#kernel.errors;
  }

  /** Every host, in creation order. */
  get hosts(): readonly SimHost[] {
    return this.#hosts.list;
  }

  /** The current network conditions (a copy). */
  get network(): NetworkConditions {
    return this.#fabric.conditions;
  }

  /** Changes network conditions from now on, e.g. for a loss burst. */
  setNetwork(conditions: Partial<NetworkConditions>): void {
    this.#fabric.setConditions(conditions);
  }

  /** Adds a host and (unless `start: false`) starts it now. */
  addHost<T>(name: string, factory: HostFactory<T>, options: HostOptions = {}): SimHost<T> {
    return this.#hosts.add(name, factory as HostFactory<unknown>, options) as SimHost<T>;
  }

  /** The host with that name; throws a `TypeError` if there is none. */
  host<T = unknown>(name: string): SimHost<T> {
    const host = this.#hosts.named(name);
    if (!host) throw new TypeError(`Cannot find host "${name}"`);
    return host as SimHost<T>;
  }

  /**
   * Schedules world-level code (not tied to a host) at `delayMs` from now: faults at set
   * times, traffic, checks.
   */
  schedule(delayMs: number, fn: () => void): Timer {
    return this.#kernel.schedule(delayMs, fn);
  }

  /** Runs the next event; returns `false` when there is none. */
  step(): boolean {
    return this.#kernel.step();
  }

  /** Runs every event due in the next `forMs` milliseconds, then sets the time to the end. */
  run(forMs: number): void {
    this.#kernel.run(forMs);
  }

  /**
   * Runs until `predicate` holds (checked before starting and after each distinct instant) or
   * `maxMs` pass; returns whether it held. On success the time is that instant.
   */
  runUntil(predicate: () => boolean, maxMs: number): boolean {
    return this.#kernel.runUntil(predicate, maxMs);
  }

  // ---- fault verbs ---------------------------------------------------------------------------

  /** Stops a host at once: its timers die, its sockets vanish silently, its peers hear nothing. */
  crash(target: string | SimHost): void {
    this.#hosts.crash(this.#hosts.resolve(target));
  }

  /**
   * Starts a host anew (crashing it first if it is up): a new incarnation, fresh randomness,
   * the factory run again. Stream segments that reached it while down now meet the new
   * incarnation, which answers them with resets.
   */
  restart(target: string | SimHost): void {
    const host = this.#hosts.resolve(target);
    if (host.state !== "down") this.#hosts.crash(host);
    this.#hosts.start(host);
    this.#tcp.resendQueued(host);
  }

  /** Freezes a host: nothing of it runs and what reaches it waits, until `resume`. */
  pause(target: string | SimHost): void {
    this.#hosts.pause(this.#hosts.resolve(target));
  }

  /** Lets a paused host run again; what waited runs now, in arrival order. */
  resume(target: string | SimHost): void {
    this.#hosts.resume(this.#hosts.resolve(target));
  }

  /** Cuts traffic both ways between two hosts (or two groups): datagrams are lost, stream bytes wait. */
  partition(a: HostSet, b: HostSet): void {
    this.#fabric.partition(a, b);
  }

  /** Cuts traffic from `from` to `to` only. */
  partitionOneWay(from: HostSet, to: HostSet): void {
    this.#fabric.partitionOneWay(from, to);
  }

  /**
   * Removes partitions: all of them, those touching `a`, or those between `a` and `b`. Stream
   * bytes that waited are delivered.
   */
  heal(a?: HostSet, b?: HostSet): void {
    this.#fabric.heal(a, b);
  }

  /** Holds all traffic between two hosts (or groups) until `release`; nothing is lost. */
  hold(a: HostSet, b: HostSet): void {
    this.#fabric.hold(a, b);
  }

  /** Releases held traffic: all, that of `a`, or that between `a` and `b`. */
  release(a?: HostSet, b?: HostSet): void {
    this.#fabric.release(a, b);
  }

  /** Whether traffic from `from` to `to` is currently cut. */
  isPartitioned(from: string | SimHost, to: string | SimHost): boolean {
    return this.#fabric.isPartitioned(from, to);
  }

  /** Skews a host's clock: it reads `offsetMs + rate × virtual time`, and its timers follow. */
  setClockSkew(target: string | SimHost, skew: ClockSkew): void {
    this.#hosts.setClockSkew(this.#hosts.resolve(target), skew);
  }

  /** Sets (or with `undefined` clears) the per-packet rule hook. */
  setPacketRule(rule: PacketRule | undefined): void {
    this.#fabric.rule = rule;
  }
}

/** A host, a host's name, or a list of them. */
export type HostSet = string | SimHost | ReadonlyArray<string | SimHost>;

const NO_CONDITIONS: NetworkConditions = {
  latencyMsMin: 0,
  latencyMsMax: 0,
  lossProbability: 0,
  duplicateProbability: 0,
};
