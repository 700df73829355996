/**
 * The simulator's kernel: virtual time, the one event queue and its dispatch, host microtasks,
 * the trace hash, readable trace lines, logs and host errors.
 *
 * Everything that happens in a simulation is an event popped from one queue in (time, sequence)
 * order and run here, so this is where determinism is kept: events of one instant run in the
 * order they were pushed, microtasks a host deferred run right after the event that deferred
 * them, and each event is folded into the trace hash. The kernel knows a host only as a
 * {@link KernelHost} (which incarnation runs, whether it is up, down or paused) and a packet only
 * as the event kind of the transport that receives it ({@link PacketSink}), so hosts, the fabric,
 * UDP and TCP are built on it without it knowing them.
 *
 * @module
 */
import type { LogLevel, Timer } from "../src/platform.ts";
import { WheelQueue } from "./_wheel.ts";
import { TraceHash } from "./_trace_hash.ts";
import type { SimHostError, SimLogEntry, SimStats } from "./simulation.ts";

/** Event kind: host code, run only in the incarnation that scheduled it. */
export const K_CALL = 0;
/** Event kind: a datagram arrives at its host (payload: the datagram). */
export const K_DGRAM = 1;
/** Event kind: a stream segment arrives at its host (payload: the segment). */
export const K_SEG = 2;
/** Event kind: world code, tied to no host (faults, checks, the transports' own timers). */
export const K_WORLD = 3;

/** The `seq` of a host's timer event once it has fired: it may be set again (see `rearm`). */
const FIRED = -1;

const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** What the kernel needs of a host: who it is, which incarnation runs and whether it is up. */
export interface KernelHost {
  readonly name: string;
  /** Position in creation order: folded into the trace hash. */
  readonly index: number;
  readonly incarnation: number;
  readonly state: "up" | "down" | "paused";
  /** Events that reached the host while paused, run in order on resume. */
  deferred: SimEvent[];
}

/**
 * One queued event. Packet events carry their receiving host in `host` (for host errors); host
 * code carries the incarnation that scheduled it. A cancelled timer has its payload set to null.
 *
 * @example
 * ```ts
 * import { K_WORLD, SimEvent } from "./_kernel.ts";
 * const event = new SimEvent(1000, 0, K_WORLD, null, 0, () => {});
 * console.assert(event.timeUs === 1000 && event.next === undefined);
 * ```
 */
export class SimEvent implements Timer {
  /** Link of the queue's per-instant list. */
  next: SimEvent | undefined = undefined;
  constructor(
    public timeUs: number,
    public seq: number,
    public kind: number,
    public host: KernelHost | null,
    public incarnation: number,
    // deno-lint-ignore no-explicit-any
    public payload: any,
  ) {}

  /** As a {@link Timer}: the event stays queued but does nothing (one object per timer). */
  cancel(): void {
    this.payload = null;
  }
}

/** A transport's receiving side: the kernel hands it each of its packets' arrival events. */
export interface PacketSink {
  arrive(event: SimEvent): void;
}

/** What the kernel is wired to once the parts built on it exist. */
export interface KernelParts {
  /** Receives `K_DGRAM` events. */
  readonly datagrams: PacketSink;
  /** Receives `K_SEG` events. */
  readonly segments: PacketSink;
  /** Crashes a host whose code threw, under `hostErrors: "crash"`. */
  readonly crash: (host: KernelHost) => void;
}

/** Options of a {@link Kernel}: what it records and what a host error does. */
export interface KernelOptions {
  readonly traceLimit: number;
  readonly logLimit: number;
  readonly logLevel: LogLevel;
  readonly onLog?: (entry: SimLogEntry) => void;
  readonly hostErrors: "throw" | "crash";
}

const UNWIRED: PacketSink = {
  arrive() {
    throw new Error("Cannot deliver a packet: the kernel has no transports attached");
  },
};

/**
 * Converts a delay in milliseconds to whole microseconds, refusing what cannot be scheduled.
 *
 * @example
 * ```ts
 * import { toUs } from "./_kernel.ts";
 * console.assert(toUs(1.5) === 1500);
 * ```
 */
export function toUs(ms: number): number {
  if (!(ms >= 0) || !Number.isFinite(ms)) {
    throw new RangeError(`Cannot schedule ${ms} ms ahead: need a finite number >= 0`);
  }
  return Math.round(ms * 1000);
}

/**
 * Virtual time and the event loop: push events, run them in (time, sequence) order.
 *
 * @example
 * ```ts
 * import { Kernel } from "./_kernel.ts";
 * const kernel = new Kernel({ traceLimit: 0, logLimit: 0, logLevel: "info", hostErrors: "throw" });
 * const order: string[] = [];
 * kernel.schedule(2, () => order.push("later"));
 * kernel.schedule(1, () => order.push("sooner"));
 * kernel.run(5);
 * console.assert(order.join() === "sooner,later" && kernel.nowUs === 5000);
 * ```
 */
export class Kernel {
  /** Virtual time in microseconds. */
  nowUs = 0;
  /** The running hash of everything that happened. */
  readonly hash: TraceHash = new TraceHash();
  /** Counters of what the network did; the transports count into it. */
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
  /** Readable trace lines kept; 0 keeps none (the transports skip formatting them then). */
  readonly traceLimit: number;
  readonly #options: KernelOptions;
  readonly #queue = new WheelQueue<SimEvent>();
  #seq = 0;
  /** Deferred host callbacks: run after the current event, before the next, like microtasks. */
  #microtasks: Array<{ host: KernelHost; incarnation: number; fn: () => void }> = [];
  #running = false;
  readonly #trace: string[] = [];
  #traceNext = 0;
  readonly #logs: SimLogEntry[] = [];
  #logNext = 0;
  readonly #errors: SimHostError[] = [];
  #datagrams: PacketSink = UNWIRED;
  #segments: PacketSink = UNWIRED;
  #crash: (host: KernelHost) => void = () => {};

  constructor(options: KernelOptions) {
    this.#options = options;
    this.traceLimit = options.traceLimit;
  }

  /** Wires the transports that receive packet events and the crash a host error causes. */
  attach(parts: KernelParts): void {
    this.#datagrams = parts.datagrams;
    this.#segments = parts.segments;
    this.#crash = parts.crash;
  }

  /** How many events are waiting. */
  get pending(): number {
    return this.#queue.size;
  }

  /** The last `traceLimit` trace lines, oldest first. */
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

  /** Queues an event `delayUs` from now, after every event already queued for that instant. */
  push(
    delayUs: number,
    kind: number,
    host: KernelHost | null,
    incarnation: number,
    payload: unknown,
  ): SimEvent {
    const event = new SimEvent(this.nowUs + delayUs, this.#seq++, kind, host, incarnation, payload);
    this.#queue.push(event);
    return event;
  }

  /**
   * Queues an event built by its transport (a datagram is its own event: one object, not two),
   * `delayUs` from now; one that already ran or waited may be queued again.
   */
  pushEvent(event: SimEvent, delayUs: number): void {
    event.timeUs = this.nowUs + delayUs;
    event.seq = this.#seq++;
    event.next = undefined;
    this.#queue.push(event);
  }

  /** Host code to run `delayUs` from now, if the host is still in the same incarnation. */
  call(host: KernelHost, delayUs: number, fn: () => void): SimEvent {
    return this.push(delayUs, K_CALL, host, host.incarnation, fn);
  }

  /** Runs `fn` right after the current event, if the host is still in that incarnation. */
  defer(host: KernelHost, incarnation: number, fn: () => void): void {
    this.#microtasks.push({ host, incarnation, fn });
  }

  /** Queues an event that waited (e.g. on a paused host) again, now, after everything queued. */
  requeue(event: SimEvent): void {
    event.timeUs = this.nowUs;
    event.seq = this.#seq++;
    this.#queue.push(event);
  }

  /**
   * Queues a host's timer event again, `delayUs` from now, to call `fn`, if it is one that has
   * fired (not queued) and was not cancelled since, of `host` in `incarnation`; otherwise
   * changes nothing and returns false (the caller then pushes a new one).
   */
  rearm(
    event: SimEvent,
    host: KernelHost,
    incarnation: number,
    delayUs: number,
    fn: () => void,
  ): boolean {
    if (
      event.seq !== FIRED || event.payload === null || event.kind !== K_CALL ||
      event.host !== host || event.incarnation !== incarnation
    ) return false;
    event.payload = fn;
    this.pushEvent(event, delayUs);
    return true;
  }

  /** World code (tied to no host) at `delayMs` from now; the timer cancels it. */
  schedule(delayMs: number, fn: () => void): Timer {
    return this.push(toUs(delayMs), K_WORLD, null, 0, fn);
  }

  /** Runs the next event; returns `false` when there is none. */
  step(): boolean {
    if (this.#microtasks.length > 0) this.#drainMicrotasks();
    const event = this.#queue.pop();
    if (!event) return false;
    this.nowUs = event.timeUs;
    this.#dispatch(event);
    return true;
  }

  /** Runs every event due in the next `forMs` milliseconds, then sets the time to the end. */
  run(forMs: number): void {
    const endUs = this.nowUs + toUs(forMs);
    this.#enter();
    try {
      if (this.#microtasks.length > 0) this.#drainMicrotasks();
      const queue = this.#queue;
      for (let next = queue.popUntil(endUs); next !== undefined; next = queue.popUntil(endUs)) {
        this.nowUs = next.timeUs;
        this.#dispatch(next);
      }
      this.nowUs = endUs;
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
    const endUs = this.nowUs + toUs(maxMs);
    this.#enter();
    try {
      const queue = this.#queue;
      for (;;) {
        const next = queue.peek();
        if (next === undefined || next.timeUs > endUs) break;
        const instant = next.timeUs;
        do {
          const event = queue.pop()!;
          this.nowUs = instant;
          this.#dispatch(event);
        } while (queue.peek()?.timeUs === instant);
        if (predicate()) return true;
      }
      this.nowUs = endUs;
    } finally {
      this.#running = false;
    }
    return predicate();
  }

  /**
   * What an exception thrown by host code does: rethrown (world code, or `hostErrors: "throw"`),
   * or recorded, logged and the host crashed.
   */
  hostError(host: KernelHost | null, error: unknown): void {
    if (host === null || this.#options.hostErrors === "throw") throw error;
    this.#errors.push({
      timeMs: this.nowUs / 1000,
      host: host.name,
      incarnation: host.incarnation,
      error,
    });
    this.log(host, "error", "host.uncaught", { error: String(error) });
    this.#crash(host);
  }

  /** Records a host's log entry: always hashed, kept and passed on at or above `logLevel`. */
  log(
    host: KernelHost,
    level: LogLevel,
    event: string,
    fields?: Readonly<Record<string, unknown>>,
  ): void {
    this.hash.word(LEVELS[level] ?? 9);
    this.hash.string(event);
    const options = this.#options;
    if ((LEVELS[level] ?? 0) < LEVELS[options.logLevel]) return;
    const entry: SimLogEntry = {
      timeMs: this.nowUs / 1000,
      host: host.name,
      incarnation: host.incarnation,
      level,
      event,
      fields,
    };
    if (options.logLimit > 0) {
      this.#logNext = pushRing(this.#logs, this.#logNext, entry, options.logLimit);
    }
    options.onLog?.(entry);
  }

  /** Keeps a readable trace line (when `traceLimit` > 0); never part of the hash. */
  traceLine(host: KernelHost | null, text: string): void {
    if (this.traceLimit === 0) return;
    const line = `${(this.nowUs / 1000).toFixed(3)} ${host ? host.name + " " : ""}${text}`;
    this.#traceNext = pushRing(this.#trace, this.#traceNext, line, this.traceLimit);
  }

  #enter(): void {
    if (this.#running) {
      throw new Error("Cannot run the simulation: it is already running (called from an event?)");
    }
    this.#running = true;
  }

  #dispatch(event: SimEvent): void {
    this.stats.events++;
    const kind = event.kind;
    const host = event.host;
    try {
      if (kind === K_DGRAM) {
        this.#datagrams.arrive(event);
      } else if (kind === K_SEG) {
        this.#segments.arrive(event);
      } else if (kind === K_CALL) {
        const fn = event.payload as (() => void) | null;
        if (fn === null || host!.incarnation !== event.incarnation || host!.state === "down") {
          return;
        }
        if (host!.state === "paused") {
          host!.deferred.push(event);
          return;
        }
        this.hash.word(this.nowUs);
        this.hash.word(host!.index);
        // Out of the queue for good unless set again (see rearm).
        event.seq = FIRED;
        fn();
      } else {
        const fn = event.payload as (() => void) | null;
        if (fn === null) return;
        this.hash.word(this.nowUs);
        fn();
      }
    } catch (error) {
      this.hostError(host, error);
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
          host.deferred.push(new SimEvent(this.nowUs, this.#seq++, K_CALL, host, incarnation, fn));
          continue;
        }
        this.hash.word(host.index);
        try {
          fn();
        } catch (error) {
          this.hostError(host, error);
        }
      }
    } finally {
      // If an error escaped (hostErrors "throw"), what was not run yet stays queued.
      this.#microtasks = queue.slice(i + 1);
    }
  }
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
