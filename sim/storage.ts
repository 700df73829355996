/**
 * The simulator's disk: a {@link Storage} that outlives `crash`/`restart` of the hosts using it,
 * and whose crash loses exactly what was not yet durable.
 *
 * The model, on virtual time and from the simulation's seed only:
 * - A write is visible to reads at once (the page cache) and becomes durable after a virtual
 *   fsync delay drawn in [`fsyncMsMin`, `fsyncMsMax`]; writes become durable in call order
 *   (one queue per disk), and a write's Promise resolves when it is durable.
 * - When a host crashes, its writes that were not durable are gone: the Promises never settle
 *   (the code awaiting them is gone too) and reads no longer see them. With `tornTail`, a seeded
 *   random prefix of them (whole batches only) survives instead, as a disk may have written some
 *   of them before the power went.
 * - Several hosts may open one disk (a network disk): a crash loses only the crashed host's
 *   writes. Every host sees every write at once.
 *
 * Promises and virtual time: the simulator runs events in a synchronous loop, and JavaScript runs
 * Promise continuations only once that loop returns. A write's Promise is resolved through its
 * host's `clock.defer` (so a paused host resumes first, and a crashed one never hears), and
 * {@link runAsync} runs the simulation in slices that end at every instant where a storage
 * Promise settled, yielding to JavaScript there: code written as `await storage.put(…)` then goes
 * on at the virtual instant its write became durable. Plain `sim.run` works too, but
 * continuations then run only after it returns, at its end time.
 *
 * @example
 * ```ts
 * import { Simulation } from "./simulation.ts";
 * import { runAsync, SimDisk } from "./storage.ts";
 *
 * const sim = new Simulation({ seed: 1 });
 * const disk = new SimDisk(sim, { fsyncMsMin: 1, fsyncMsMax: 5 });
 * const writer = sim.addHost("writer", (_platform, host) => {
 *   const storage = disk.open(host);
 *   const app = { written: 0 };
 *   (async () => {
 *     for (;;) {
 *       await storage.put("count", new Uint8Array([app.written + 1]));
 *       app.written++;
 *     }
 *   })();
 *   return app;
 * });
 * await runAsync(sim, 100);
 * const acknowledged = writer.app!.written;
 * sim.crash("writer");
 * console.assert(disk.durableEntries()[0].value[0] === acknowledged);
 * ```
 *
 * @module
 */
import type { Platform } from "../src/platform.ts";
import { Histogram, LATENCY_BUCKETS_SECONDS, type MetricFamily } from "../src/metrics.ts";
import {
  checkStorageKey,
  checkStorageOps,
  checkStorageValue,
  copyOps,
  fsyncFamily,
  getFromMap,
  listFromMap,
  type Storage,
  type StorageEntry,
  type StorageOp,
} from "../src/storage.ts";
import type { SimHost, Simulation } from "./simulation.ts";
import { deriveSeed, hashString, SeededRandom } from "./_random.ts";

/** Options of a {@link SimDisk}; every one has a default. */
export interface SimDiskOptions {
  /**
   * Names the disk in errors and in its seed, so two disks of one simulation draw different
   * delays. Unique per simulation; default `disk-1`, `disk-2`… in creation order.
   */
  readonly name?: string;
  /** Least virtual fsync delay of a write, in ms (µs resolution). Default 1. */
  readonly fsyncMsMin?: number;
  /** Greatest virtual fsync delay. Default 5. */
  readonly fsyncMsMax?: number;
  /**
   * A crash keeps a seeded random prefix (whole batches) of the crashed host's writes that were
   * not durable, instead of none of them. Default false.
   */
  readonly tornTail?: boolean;
}

/** Options of {@link runAsync}. */
export interface RunAsyncOptions {
  /** Stop as soon as this holds (checked at each yield and after each instant). */
  readonly until?: () => boolean;
  /**
   * Microtask turns given to JavaScript at each instant where a storage Promise settled: a
   * continuation chain longer than this goes on at a later instant (still deterministically).
   * Default 64.
   */
  readonly microtaskHops?: number;
}

/** One host incarnation writing through one handle. */
interface Writer {
  readonly host: SimHost;
  readonly incarnation: number;
  readonly platform: Platform;
  /** The virtual fsync delay of each of its writes that became durable. */
  readonly fsyncSeconds: Histogram;
}

interface Write {
  readonly ops: readonly StorageOp[];
  readonly dueUs: number;
  /** Its virtual fsync delay, as drawn. */
  readonly fsyncUs: number;
  /** Undefined once orphaned: its host crashed and `tornTail` kept it. */
  writer: Writer | undefined;
  readonly resolve: () => void;
}

/** Per simulation: disk names taken, and whether a storage Promise settled since the last look. */
interface SimState {
  readonly names: Set<string>;
  settled: boolean;
}

const states = new WeakMap<Simulation, SimState>();

function stateOf(sim: Simulation): SimState {
  let state = states.get(sim);
  if (state === undefined) states.set(sim, state = { names: new Set(), settled: false });
  return state;
}

/** A Promise that never settles: what a crashed incarnation's calls get (a fresh one each, so
 * that what waits on it can be collected). */
function never<T>(): Promise<T> {
  return new Promise<T>(() => {});
}

/**
 * A simulated disk: open it on a host (`disk.open(host)`, typically in the host's factory, so
 * each incarnation gets its handle) to get that host's {@link Storage}.
 *
 * @example
 * ```ts
 * import { Simulation } from "./simulation.ts";
 * import { SimDisk } from "./storage.ts";
 *
 * const sim = new Simulation({ seed: 3 });
 * const disk = new SimDisk(sim);
 * const host = sim.addHost("a", () => undefined);
 * const storage = disk.open(host);
 * void storage.put("a", new Uint8Array([1])); // visible now, durable within 5 virtual ms
 * sim.crash(host); // before it was durable: lost
 * sim.restart(host);
 * console.assert((await disk.open(host).get("a")) === undefined);
 * ```
 */
export class SimDisk {
  /** The disk's name. */
  readonly name: string;
  readonly #sim: Simulation;
  readonly #core: DiskCore;

  /** A disk of `sim`, empty; its random delays derive from the simulation's seed and its name. */
  constructor(sim: Simulation, options: SimDiskOptions = {}) {
    const state = stateOf(sim);
    const name = options.name ?? `disk-${state.names.size + 1}`;
    if (typeof name !== "string" || name === "" || state.names.has(name)) {
      throw new TypeError(`Cannot create disk "${name}": the name is empty or taken`);
    }
    const minMs = options.fsyncMsMin ?? 1;
    const maxMs = options.fsyncMsMax ?? Math.max(5, minMs);
    if (!(minMs >= 0) || !(maxMs >= minMs) || !Number.isFinite(maxMs)) {
      throw new RangeError(
        `Cannot create disk "${name}": fsync delay ${minMs}..${maxMs} ms, need 0 <= min <= max`,
      );
    }
    state.names.add(name);
    this.name = name;
    this.#sim = sim;
    this.#core = new DiskCore(sim, state, {
      random: new SeededRandom(deriveSeed(sim.seed, 0x6469736b, hashString(name))),
      fsyncUsMin: Math.round(minMs * 1000),
      fsyncUsSpread: Math.round(maxMs * 1000) - Math.round(minMs * 1000),
      tornTail: options.tornTail === true,
    });
  }

  /** Writes called and not yet durable (nor lost). */
  get pendingWrites(): number {
    return this.#core.pendingWrites();
  }

  /**
   * What is on the disk for good, in key order (copies): what every host would find if all
   * the hosts using the disk crashed now.
   */
  durableEntries(prefix = ""): StorageEntry[] {
    return listFromMap(this.#core.durable(), prefix);
  }

  /**
   * The {@link Storage} of `host`'s current incarnation on this disk. Once that incarnation
   * has crashed, its calls never settle (the code awaiting them is gone).
   */
  open(host: string | SimHost): Storage {
    const target = typeof host === "string" ? this.#sim.host(host) : host;
    const platform = target?.platform;
    if (platform === undefined || target.state === "down") {
      throw new Error(`Cannot open disk "${this.name}" on host "${target?.name}": it is down`);
    }
    return new SimStorage(this.#core, {
      host: target,
      incarnation: target.incarnation,
      platform,
      fsyncSeconds: new Histogram(LATENCY_BUCKETS_SECONDS),
    });
  }
}

interface DiskSettings {
  readonly random: SeededRandom;
  readonly fsyncUsMin: number;
  readonly fsyncUsSpread: number;
  readonly tornTail: boolean;
}

/** The state of one disk, shared by its handles. */
class DiskCore {
  readonly #sim: Simulation;
  readonly #state: SimState;
  readonly #settings: DiskSettings;
  readonly #durable = new Map<string, Uint8Array>();
  /** The durable state plus every pending write: what reads see. */
  #visible = new Map<string, Uint8Array>();
  /** Writes not yet durable, in call order, from `#head` on. */
  #queue: Write[] = [];
  #head = 0;
  /** How many pending writes each writer has: checked for crashed hosts before each use. */
  readonly #writers = new Map<Writer, number>();
  /** The time of the latest durability event scheduled. */
  #scheduledUs = -1;

  constructor(sim: Simulation, state: SimState, settings: DiskSettings) {
    this.#sim = sim;
    this.#state = state;
    this.#settings = settings;
  }

  pendingWrites(): number {
    this.#reconcile();
    return this.#queue.length - this.#head;
  }

  durable(): Map<string, Uint8Array> {
    this.#reconcile();
    return this.#durable;
  }

  visible(): Map<string, Uint8Array> {
    this.#reconcile();
    return this.#visible;
  }

  /** Marks that a storage Promise settled, for {@link runAsync}. */
  settled(): void {
    this.#state.settled = true;
  }

  /** Applies `ops` (values already copied) to what reads see; resolves once durable. */
  write<T>(writer: Writer, ops: readonly StorageOp[], result: T): Promise<T> {
    this.#reconcile();
    for (const op of ops) setKey(this.#visible, op);
    const nowUs = Math.round(this.#sim.now * 1000);
    const { random, fsyncUsMin, fsyncUsSpread } = this.#settings;
    const delayUs = fsyncUsMin + (fsyncUsSpread > 0 ? random.below(fsyncUsSpread + 1) : 0);
    const queue = this.#queue;
    const last = queue.length > this.#head ? queue[queue.length - 1] : undefined;
    const dueUs = Math.max(nowUs + delayUs, last?.dueUs ?? 0);
    // Resolved with `result` directly, not through a then(): writes made durable together
    // settle in the same turn, in call order.
    return new Promise((resolve) => {
      queue.push({ ops, dueUs, fsyncUs: delayUs, writer, resolve: () => resolve(result) });
      this.#writers.set(writer, (this.#writers.get(writer) ?? 0) + 1);
      // Dues only grow along the queue, so one event per distinct due serves every write.
      if (dueUs !== this.#scheduledUs) {
        this.#scheduledUs = dueUs;
        this.#sim.schedule((dueUs - nowUs) / 1000, () => this.#settle());
      }
    });
  }

  /** Makes every write that is due durable and resolves it. */
  #settle(): void {
    this.#reconcile();
    this.#flush(Math.round(this.#sim.now * 1000));
  }

  /** Makes durable, in order, the writes due by `nowUs` and the orphans among them. */
  #flush(nowUs: number): void {
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const write = queue[this.#head];
      if (write.writer !== undefined && write.dueUs > nowUs) break;
      this.#head++;
      for (const op of write.ops) setKey(this.#durable, op);
      const writer = write.writer;
      if (writer !== undefined) {
        this.#release(writer);
        writer.fsyncSeconds.observe(write.fsyncUs / 1e6);
        // Through the host: a paused host hears on resume, a crashed one never.
        writer.platform.clock.defer(() => {
          this.#state.settled = true;
          write.resolve();
        });
      }
    }
    if (this.#head === queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #release(writer: Writer): void {
    const count = this.#writers.get(writer)! - 1;
    if (count === 0) this.#writers.delete(writer);
    else this.#writers.set(writer, count);
  }

  /** Drops (or with `tornTail` orphans a prefix of) the pending writes of crashed hosts. */
  #reconcile(): void {
    let dead: Map<Writer, number> | undefined;
    for (const [writer, count] of this.#writers) {
      if (isLive(writer)) continue;
      // Drawn in the order writers first wrote, a fixed order: seeded like everything else.
      dead ??= new Map();
      dead.set(writer, this.#settings.tornTail ? this.#settings.random.int(0, count) : 0);
    }
    if (dead === undefined) return;
    const kept: Write[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const write = this.#queue[i];
      const writer = write.writer;
      const keep = writer === undefined ? undefined : dead.get(writer);
      if (keep === undefined) {
        kept.push(write);
        continue;
      }
      this.#release(writer!);
      if (keep > 0) {
        dead.set(writer!, keep - 1);
        write.writer = undefined;
        kept.push(write);
      }
    }
    this.#queue = kept;
    this.#head = 0;
    const visible = new Map(this.#durable);
    for (const write of kept) for (const op of write.ops) setKey(visible, op);
    this.#visible = visible;
    // Orphans at the head are on the disk already: nothing before them can still be lost.
    this.#flush(-1);
  }
}

function isLive(writer: Writer): boolean {
  return writer.host.incarnation === writer.incarnation && writer.host.state !== "down";
}

function setKey(map: Map<string, Uint8Array>, op: StorageOp): void {
  if (op.type === "put") map.set(op.key, op.value);
  else map.delete(op.key);
}

/** One incarnation's handle on a {@link SimDisk}. */
class SimStorage implements Storage {
  readonly #disk: DiskCore;
  readonly #writer: Writer;
  #closed = false;
  /** The latest write, which close waits for. */
  #last: Promise<void> = Promise.resolve();

  constructor(disk: DiskCore, writer: Writer) {
    this.#disk = disk;
    this.#writer = writer;
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return this.#read("get", () => getFromMap(this.#disk.visible(), key));
  }

  put(key: string, value: Uint8Array): Promise<void> {
    return this.#call("put", () => {
      checkStorageKey(key, "put");
      checkStorageValue(value, "put");
      // A copy, not slice(): a Node Buffer's slice() is a view of the caller's bytes.
      return this.#write([{ type: "put", key, value: new Uint8Array(value) }], undefined);
    });
  }

  delete(key: string): Promise<boolean> {
    return this.#call("delete", () => {
      checkStorageKey(key, "delete");
      const existed = this.#disk.visible().has(key);
      return this.#write([{ type: "delete", key }], existed);
    });
  }

  list(prefix: string): Promise<StorageEntry[]> {
    return this.#read("list", () => {
      return listFromMap(this.#disk.visible(), prefix);
    });
  }

  batch(ops: readonly StorageOp[]): Promise<void> {
    return this.#call("write", () => {
      checkStorageOps(ops);
      return this.#write(copyOps(ops), undefined);
    });
  }

  metrics(): MetricFamily[] {
    return [
      fsyncFamily(
        this.#writer.fsyncSeconds,
        "Virtual fsync delay of each write of this host incarnation that became durable.",
      ),
    ];
  }

  close(): Promise<void> {
    if (!isLive(this.#writer)) return never();
    this.#closed = true;
    return this.#last;
  }

  #write<T>(ops: readonly StorageOp[], result: T): Promise<T> {
    const written = this.#disk.write(this.#writer, ops, result);
    this.#last = written.then(() => {});
    return written;
  }

  #read<T>(action: string, run: () => T): Promise<T> {
    return this.#call(action, () => {
      const result = run();
      // The continuation runs in JavaScript's next microtask turn: let runAsync give it one.
      this.#disk.settled();
      return Promise.resolve(result);
    });
  }

  #call<T>(action: string, run: () => Promise<T>): Promise<T> {
    if (!isLive(this.#writer)) return never();
    try {
      if (this.#closed) throw new Error(`Cannot ${action}: the storage is closed`);
      return run();
    } catch (error) {
      this.#disk.settled();
      return Promise.reject(error);
    }
  }
}

/**
 * Runs `sim` for `forMs` virtual milliseconds like `sim.run`, but ends a slice at every instant
 * where a storage Promise settled and lets JavaScript run its continuations there, so code that
 * awaits storage goes on at the right virtual time. Resolves to whether `options.until` held
 * (false without it). Call it from test code, never from inside a simulation event.
 *
 * @example
 * ```ts
 * import { Simulation } from "./simulation.ts";
 * import { runAsync, SimDisk } from "./storage.ts";
 *
 * const sim = new Simulation({ seed: 2 });
 * const disk = new SimDisk(sim);
 * const writes: number[] = [];
 * sim.addHost("a", (platform, host) => {
 *   const storage = disk.open(host);
 *   (async () => {
 *     for (let i = 0; i < 3; i++) {
 *       await storage.put(`k${i}`, new Uint8Array([i]));
 *       writes.push(platform.clock.now()); // the virtual time the write became durable
 *     }
 *   })();
 * });
 * const done = await runAsync(sim, 1000, { until: () => writes.length === 3 });
 * console.assert(done && writes[2] <= 15 && sim.now === writes[2]);
 * ```
 */
export async function runAsync(
  sim: Simulation,
  forMs: number,
  options: RunAsyncOptions = {},
): Promise<boolean> {
  if (!(forMs >= 0) || !Number.isFinite(forMs)) {
    throw new RangeError(`Cannot run for ${forMs} ms: need a finite number >= 0`);
  }
  const hops = options.microtaskHops ?? 64;
  if (!Number.isSafeInteger(hops) || hops < 0) {
    throw new RangeError(`Cannot run: microtaskHops ${hops} is not an integer >= 0`);
  }
  const until = options.until ?? (() => false);
  const state = stateOf(sim);
  const endUs = Math.round(sim.now * 1000) + Math.round(forMs * 1000);
  for (;;) {
    if (state.settled) {
      state.settled = false;
      for (let i = 0; i < hops; i++) await Promise.resolve();
    }
    if (until()) return true;
    const remainingUs = Math.max(0, endUs - Math.round(sim.now * 1000));
    // Stops after the first instant where a Promise settled; false once the end is reached.
    if (!sim.runUntil(() => state.settled || until(), remainingUs / 1000)) break;
  }
  return until();
}
