/**
 * Storage: where workers keep state that must outlive their node.
 *
 * A {@link Storage} is a small ordered key-value store with five operations (get, put, delete,
 * list by prefix, atomic batch). Every operation returns a Promise; **when a write's Promise
 * resolves, the write is durable**: it survives a crash of the process (file backend) or of the
 * simulated host (the simulator's backend). Writes take effect in the order they were called,
 * so if a later write is durable every earlier one is too, and a batch is all or nothing.
 *
 * Backends: {@link MemoryStorage} here (lost when the process ends), a crash-safe file backend
 * for real runtimes (`adapters/file_storage.ts`), and the simulator's disk whose crash loses
 * unsynced writes (`sim/storage.ts`). {@link scopedStorage} gives each worker its own key space.
 *
 * @module
 */
import type { Histogram, MetricFamily } from "./metrics.ts";

/** One operation of an atomic {@link Storage.batch}. */
export type StorageOp =
  | { readonly type: "put"; readonly key: string; readonly value: Uint8Array }
  | { readonly type: "delete"; readonly key: string };

/** An entry returned by {@link Storage.list}. */
export interface StorageEntry {
  readonly key: string;
  readonly value: Uint8Array;
}

/**
 * An ordered, durable key-value store.
 *
 * Keys are non-empty strings of at most {@link MAX_STORAGE_KEY_LENGTH} UTF-16 code units;
 * values are bytes (the store keeps its own copy). Bad arguments reject with a `TypeError` or
 * `RangeError`; a failing medium (disk full, permission) rejects with an `Error` whose message
 * says "Cannot …", and the store stays usable for the operations that follow.
 */
export interface Storage {
  /** The value stored under `key`, or `undefined`. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Stores `value` under `key`; durable once resolved. */
  put(key: string, value: Uint8Array): Promise<void>;
  /** Removes `key`; resolves `true` if it was there. Durable once resolved. */
  delete(key: string): Promise<boolean>;
  /** Every entry whose key starts with `prefix` (`""` for all), in ascending key order. */
  list(prefix: string): Promise<StorageEntry[]>;
  /** Applies every operation, in order, all or nothing; durable once resolved. */
  batch(ops: readonly StorageOp[]): Promise<void>;
  /** Releases what the store holds open; later calls reject. */
  close(): Promise<void>;
  /**
   * The store's own metric families, such as `automp_storage_fsync_duration_seconds`: a node
   * given this store adds them to its `metrics()`. Optional; a store without a disk has none.
   */
  metrics?(): MetricFamily[];
}

/**
 * The name of the histogram of fsync durations a durable {@link Storage} reports in its
 * `metrics()`.
 *
 * @example
 * ```ts
 * import { MemoryStorage, STORAGE_FSYNC_METRIC } from "./storage.ts";
 * import type { Storage } from "./storage.ts";
 * // A store without a disk reports no fsyncs.
 * const storage: Storage = new MemoryStorage();
 * const fsyncs = storage.metrics?.().find((family) => family.name === STORAGE_FSYNC_METRIC);
 * if (fsyncs !== undefined) throw new Error("unexpected");
 * ```
 */
export const STORAGE_FSYNC_METRIC = "automp_storage_fsync_duration_seconds";

/**
 * The metric family of a store's fsync durations (see {@link Storage.metrics}), from its
 * histogram of seconds.
 *
 * @example
 * ```ts
 * import { Histogram, LATENCY_BUCKETS_SECONDS } from "./metrics.ts";
 * import { fsyncFamily } from "./storage.ts";
 * const fsyncSeconds = new Histogram(LATENCY_BUCKETS_SECONDS);
 * fsyncSeconds.observe(0.002);
 * const family = fsyncFamily(fsyncSeconds, "Duration of each fsync.");
 * if (family.name !== "automp_storage_fsync_duration_seconds") throw new Error(family.name);
 * ```
 */
export function fsyncFamily(histogram: Histogram, help: string): MetricFamily {
  return {
    name: STORAGE_FSYNC_METRIC,
    help,
    type: "histogram",
    buckets: histogram.buckets,
    samples: [histogram.sample()],
  };
}

/** The longest key accepted, in UTF-16 code units. */
export const MAX_STORAGE_KEY_LENGTH = 1024;

/**
 * Throws a `TypeError` or `RangeError` unless `key` is a valid storage key.
 *
 * @example
 * ```ts
 * import { checkStorageKey } from "./storage.ts";
 * checkStorageKey("workers/kv1/color");
 * let threw = false;
 * try { checkStorageKey(""); } catch { threw = true; }
 * console.assert(threw);
 * ```
 */
export function checkStorageKey(key: unknown, action = "use key"): asserts key is string {
  if (typeof key !== "string" || key === "") {
    throw new TypeError(`Cannot ${action}: a storage key must be a non-empty string`);
  }
  if (key.length > MAX_STORAGE_KEY_LENGTH) {
    throw new RangeError(
      `Cannot ${action}: key of ${key.length} characters exceeds ${MAX_STORAGE_KEY_LENGTH}`,
    );
  }
}

/** Throws a `TypeError` unless `value` is a `Uint8Array`. */
export function checkStorageValue(
  value: unknown,
  action = "store value",
): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Cannot ${action}: a storage value must be a Uint8Array`);
  }
}

/** Throws unless `ops` is an array of valid {@link StorageOp}s. */
export function checkStorageOps(ops: unknown): asserts ops is readonly StorageOp[] {
  if (!Array.isArray(ops)) throw new TypeError("Cannot apply batch: ops must be an array");
  for (const op of ops) {
    if (op === null || typeof op !== "object") {
      throw new TypeError("Cannot apply batch: each op must be an object");
    }
    const { type, key, value } = op as { type?: unknown; key?: unknown; value?: unknown };
    if (type === "put") {
      checkStorageKey(key, "apply batch");
      checkStorageValue(value, "apply batch");
    } else if (type === "delete") {
      checkStorageKey(key, "apply batch");
    } else {
      throw new TypeError(`Cannot apply batch: unknown op type ${JSON.stringify(type)}`);
    }
  }
}

/**
 * Runs `run` and returns its result as a Promise, a synchronous throw as a rejected one: every
 * {@link Storage} method reports bad arguments and a closed store by rejecting, never throwing.
 *
 * @example
 * ```ts
 * import { attempt } from "./storage.ts";
 * const failed = await attempt(() => { throw new TypeError("bad key"); }).catch((e) => e);
 * console.assert(failed instanceof TypeError);
 * ```
 */
export function attempt<T>(run: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (error) {
    return Promise.reject(error);
  }
}

/** A copy of the value under `key` in `map`, if any: the `get` of a backend keeping a Map. */
export function getFromMap(
  map: ReadonlyMap<string, Uint8Array>,
  key: string,
): Uint8Array | undefined {
  checkStorageKey(key, "get");
  const value = map.get(key);
  // A copy, not slice(): a Node Buffer's slice() is a view of the same bytes.
  return value === undefined ? undefined : new Uint8Array(value);
}

/**
 * Copies of the entries of `map` whose key starts with `prefix`, in ascending key order: the
 * `list` of every backend that keeps its current view in a Map. A prefix that is not a string
 * is a `TypeError`.
 *
 * @example
 * ```ts
 * import { listFromMap } from "./storage.ts";
 * const map = new Map([["b", new Uint8Array([2])], ["a", new Uint8Array([1])], ["c/x", new Uint8Array()]]);
 * console.assert(listFromMap(map, "").map((e) => e.key).join() === "a,b,c/x");
 * ```
 */
export function listFromMap(
  map: ReadonlyMap<string, Uint8Array>,
  prefix: string,
): StorageEntry[] {
  if (typeof prefix !== "string") throw new TypeError("Cannot list: prefix must be a string");
  const entries: StorageEntry[] = [];
  for (const [key, value] of map) {
    // A copy, not slice(): a Node Buffer's slice() is a view of the same bytes.
    if (key.startsWith(prefix)) entries.push({ key, value: new Uint8Array(value) });
  }
  return entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** `ops` with every value copied, so a backend keeps bytes the caller can no longer change. */
export function copyOps(ops: readonly StorageOp[]): StorageOp[] {
  return ops.map((op): StorageOp =>
    op.type === "put"
      ? { type: "put", key: op.key, value: new Uint8Array(op.value) }
      : { type: "delete", key: op.key }
  );
}

/**
 * A {@link Storage} held in memory: fast, ordered, and gone when the process ends. The default
 * when a node is given no storage. Values are copied in and out, so callers cannot alter what
 * is stored by mutating a buffer.
 *
 * @example
 * ```ts
 * import { MemoryStorage } from "./storage.ts";
 * const storage = new MemoryStorage();
 * await storage.put("a/1", new Uint8Array([1]));
 * await storage.batch([{ type: "put", key: "a/2", value: new Uint8Array([2]) }, { type: "delete", key: "a/1" }]);
 * const keys = (await storage.list("a/")).map((entry) => entry.key);
 * console.assert(keys.join() === "a/2");
 * ```
 */
export class MemoryStorage implements Storage {
  readonly #entries = new Map<string, Uint8Array>();
  #closed = false;

  /** How many keys are stored. */
  get size(): number {
    return this.#entries.size;
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return attempt(() => {
      this.#open("get");
      return getFromMap(this.#entries, key);
    });
  }

  put(key: string, value: Uint8Array): Promise<void> {
    return this.batch([{ type: "put", key, value }]);
  }

  delete(key: string): Promise<boolean> {
    return attempt(() => {
      this.#open("delete");
      checkStorageKey(key, "delete");
      return this.#entries.delete(key);
    });
  }

  list(prefix: string): Promise<StorageEntry[]> {
    return attempt(() => {
      this.#open("list");
      return listFromMap(this.#entries, prefix);
    });
  }

  batch(ops: readonly StorageOp[]): Promise<void> {
    return attempt(() => {
      this.#open("write");
      checkStorageOps(ops);
      for (const op of copyOps(ops)) {
        if (op.type === "put") this.#entries.set(op.key, op.value);
        else this.#entries.delete(op.key);
      }
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #open(action: string): void {
    if (this.#closed) throw new Error(`Cannot ${action}: the storage is closed`);
  }
}

/**
 * A view of `storage` in which every key is prefixed with `prefix`: what a node gives each
 * worker (`workers/<guid>/`), so workers cannot see each other's state and a worker placed
 * again on another node sharing the storage finds its own. Closing the view does not close
 * the underlying storage.
 *
 * @example
 * ```ts
 * import { MemoryStorage, scopedStorage } from "./storage.ts";
 * const shared = new MemoryStorage();
 * const mine = scopedStorage(shared, "workers/kv1/");
 * await mine.put("color", new TextEncoder().encode("blue"));
 * console.assert((await shared.list("workers/kv1/"))[0].key === "workers/kv1/color");
 * console.assert((await mine.list(""))[0].key === "color");
 * ```
 */
export function scopedStorage(storage: Storage, prefix: string): Storage {
  if (typeof prefix !== "string" || prefix === "") {
    throw new TypeError("Cannot scope storage: prefix must be a non-empty string");
  }
  let closed = false;
  const guard = <T>(action: string, run: () => Promise<T>): Promise<T> =>
    attempt(() => {
      if (closed) throw new Error(`Cannot ${action}: the storage view is closed`);
      return run();
    });
  return {
    get: (key) =>
      guard("get", () => {
        checkStorageKey(key, "get");
        return storage.get(prefix + key);
      }),
    put: (key, value) =>
      guard("put", () => {
        checkStorageKey(key, "put");
        return storage.put(prefix + key, value);
      }),
    delete: (key) =>
      guard("delete", () => {
        checkStorageKey(key, "delete");
        return storage.delete(prefix + key);
      }),
    list: (sub) =>
      guard("list", async () => {
        if (typeof sub !== "string") throw new TypeError("Cannot list: prefix must be a string");
        const entries = await storage.list(prefix + sub);
        return entries.map((entry) => ({
          key: entry.key.slice(prefix.length),
          value: entry.value,
        }));
      }),
    batch: (ops) =>
      guard("write", () => {
        checkStorageOps(ops);
        return storage.batch(
          ops.map((op) =>
            op.type === "put"
              ? { type: "put", key: prefix + op.key, value: op.value }
              : { type: "delete", key: prefix + op.key }
          ),
        );
      }),
    close: () => {
      closed = true;
      return Promise.resolve();
    },
  };
}
