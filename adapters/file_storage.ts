/**
 * A crash-safe {@link Storage} in a directory: the durable backend for real runtimes. It uses
 * only `node:fs`, `node:path` and `node:process`, so the same file runs on Deno (needs
 * `--allow-read --allow-write`, and `--allow-run` to tell a stale lock from a live one), Bun and
 * Node.
 *
 * How it keeps its promise (a resolved write survives `kill -9` and power loss, as far as the
 * disk honours fsync; writes apply in call order; a batch is all or nothing):
 * - Every write is one record appended to `data.log`: length, CRC-32 of length and payload,
 *   payload (the batch's operations). Its Promise resolves after the record is fsynced.
 *   Writes called while an fsync is in flight are appended together and fsynced once (group
 *   commit), then resolved together, in call order.
 * - Opening reads the log and applies every whole record; it stops at the first torn or corrupt
 *   one (a crash mid-append leaves at most the unacknowledged tail torn) and truncates it off.
 * - Once the log is larger than `compactMinBytes` and than `compactRatio` times the live data, a
 *   snapshot of the durable state is written to `data.log.tmp`, fsynced, renamed over the log,
 *   and the directory fsynced: a crash at any point leaves either the old log or the new one.
 * - A `LOCK` file holding the process id keeps a second process (or a second open in this one)
 *   out; a lock whose process is gone is taken over.
 *
 * Reads see every write already called, even one not yet durable (as a page cache does). A
 * failing disk rejects the writes of that commit with "Cannot write to storage DIR: reason";
 * they are undone in memory, the bytes they may have left are cut off before the next append,
 * and the store goes on. As with any write whose Promise has not resolved, a rejected write may
 * still be found after a crash that comes before the next successful one.
 *
 * @example
 * ```ts
 * import { openFileStorage } from "./file_storage.ts";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 *
 * const dir = await mkdtemp(join(tmpdir(), "automp-storage-"));
 * const storage = await openFileStorage(dir);
 * await storage.put("color", new TextEncoder().encode("blue"));
 * await storage.close();
 * const again = await openFileStorage(dir);
 * console.assert(new TextDecoder().decode(await again.get("color")) === "blue");
 * await again.close();
 * await rm(dir, { recursive: true });
 * ```
 *
 * @module
 */
import {
  type FileHandle,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  unlink,
  writeFile,
} from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { Histogram, LATENCY_BUCKETS_SECONDS, type MetricFamily } from "../src/metrics.ts";
import {
  attempt,
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
import { crc32 } from "./_crc32.ts";

/** A disk operation of the file storage, as its {@link FileStorageOptions.faultHook} sees it. */
export interface FileStorageOperation {
  /**
   * `"write"` appends records to the log or writes a snapshot; `"sync"` fsyncs the log or the
   * snapshot; `"truncate"` cuts off what a failed append left; `"rename"` puts a snapshot in
   * place of the log; `"syncDir"` fsyncs the directory after that.
   */
  readonly kind: "write" | "sync" | "truncate" | "rename" | "syncDir";
  /** The file (or directory) operated on. */
  readonly path: string;
}

/** Options of {@link openFileStorage}; every one has a default. */
export interface FileStorageOptions {
  /** The log is never compacted below this size. Default 8 MiB. */
  readonly compactMinBytes?: number;
  /** Compact once the log is more than this many times the live data. Default 2. */
  readonly compactRatio?: number;
  /**
   * Called before each disk operation of a write or compaction; returning an `Error` makes that
   * operation fail with it, as if the disk had reported it. For testing failure handling.
   */
  readonly faultHook?: (operation: FileStorageOperation) => Error | undefined | void;
}

/** What opening found in the log. */
export interface FileStorageRecovery {
  /** Whole records read and applied. */
  readonly records: number;
  /** Bytes of a torn or corrupt tail that were cut off (0 after a clean shutdown). */
  readonly truncatedBytes: number;
}

/** A {@link Storage} kept in a directory by {@link openFileStorage}. */
export interface FileStorage extends Storage {
  /** The directory, as an absolute path. */
  readonly dir: string;
  /** The size of the log file: what a compaction would shrink. */
  readonly logBytes: number;
  /** What opening found. */
  readonly recovery: FileStorageRecovery;
  /** Compacts the log now (after the writes already called); rejects if the disk fails. */
  compact(): Promise<void>;
  /**
   * `automp_storage_fsync_duration_seconds`: how long each fsync took (the log after a group
   * of writes, a snapshot and the directory when compacting). A node given this store serves it
   * with its own metrics.
   */
  metrics(): MetricFamily[];
}

const LOG_FILE = "data.log";
const TEMP_FILE = "data.log.tmp";
const LOCK_FILE = "LOCK";
// The log starts with this; a version change changes it, so an old reader refuses a new log.
const MAGIC = new TextEncoder().encode("AMPSLOG1");
const RECORD_HEADER_BYTES = 8;
const MAX_RECORD_BYTES = 0x40000000;
// Snapshot records are cut at about this size, so recovery never needs one huge buffer per record.
const SNAPSHOT_RECORD_BYTES = 1 << 20;
const OP_PUT = 1;
const OP_DELETE = 2;
// Enough for a takeover by another open to finish, a few ms each.
const LOCK_ATTEMPTS = 200;

let openCount = 0;

/**
 * Opens (creating it if needed) the storage kept in directory `dir`, recovering what the last
 * process left: every write whose Promise resolved is there, and of the rest a prefix.
 *
 * Rejects with "Cannot open storage DIR: in use by process PID" while another process (or
 * another open in this one) holds the directory.
 *
 * @example
 * ```ts
 * import { openFileStorage } from "./file_storage.ts";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 *
 * const dir = await mkdtemp(join(tmpdir(), "automp-storage-"));
 * const storage = await openFileStorage(dir, { compactMinBytes: 1 << 20 });
 * await storage.batch([
 *   { type: "put", key: "jobs/1", value: new Uint8Array([1]) },
 *   { type: "put", key: "jobs/2", value: new Uint8Array([2]) },
 * ]);
 * console.assert((await storage.list("jobs/")).length === 2);
 * let refused = false;
 * try {
 *   await openFileStorage(dir);
 * } catch (error) {
 *   refused = String(error).includes("in use by process");
 * }
 * console.assert(refused);
 * await storage.close();
 * await rm(dir, { recursive: true });
 * ```
 */
export async function openFileStorage(
  dir: string,
  options: FileStorageOptions = {},
): Promise<FileStorage> {
  if (typeof dir !== "string" || dir === "") {
    throw new TypeError("Cannot open storage: the directory must be a non-empty string");
  }
  const settings = settingsOf(options);
  const path = resolve(dir);
  const action = `open storage ${path}`;
  try {
    await mkdir(path, { recursive: true });
  } catch (error) {
    throw cannot(action, error);
  }
  const lock = await acquireLock(path, action);
  try {
    const store = new FileStore(path, settings, lock);
    await store.recover();
    return store;
  } catch (error) {
    await releaseLock(lock);
    throw error instanceof Error && error.message.startsWith("Cannot ")
      ? error
      : cannot(action, error);
  }
}

interface Settings {
  readonly compactMinBytes: number;
  readonly compactRatio: number;
  readonly faultHook: FileStorageOptions["faultHook"];
}

function settingsOf(options: FileStorageOptions): Settings {
  if (options === null || typeof options !== "object") {
    throw new TypeError("Cannot open storage: options must be an object");
  }
  const compactMinBytes = options.compactMinBytes ?? 8 * 1024 * 1024;
  const compactRatio = options.compactRatio ?? 2;
  if (!(compactMinBytes >= 0) || !Number.isFinite(compactMinBytes)) {
    throw new RangeError(`Cannot open storage: compactMinBytes ${compactMinBytes} is not >= 0`);
  }
  if (!(compactRatio >= 1) || !Number.isFinite(compactRatio)) {
    throw new RangeError(`Cannot open storage: compactRatio ${compactRatio} is not >= 1`);
  }
  if (options.faultHook !== undefined && typeof options.faultHook !== "function") {
    throw new TypeError("Cannot open storage: faultHook must be a function");
  }
  return { compactMinBytes, compactRatio, faultHook: options.faultHook };
}

/** A write called and applied to the view, not yet durable. */
interface Pending {
  /** The framed record; empty for a batch without operations. */
  readonly record: Uint8Array;
  /** The operations, with the store's own copies of the values. */
  readonly ops: readonly StorageOp[];
  /** What each key held before, in operation order, to undo the write if the disk fails. */
  undo: Array<readonly [string, Uint8Array | undefined]>;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

class FileStore implements FileStorage {
  readonly dir: string;
  recovery: FileStorageRecovery = { records: 0, truncatedBytes: 0 };
  readonly #settings: Settings;
  readonly #lock: Lock;
  readonly #logPath: string;
  readonly #tempPath: string;
  /** Every key with its latest value, durable or not: what reads see. */
  readonly #view = new Map<string, Uint8Array>();
  /** Bytes a snapshot of the view would take. */
  #liveBytes = 0;
  #file: FileHandle | undefined;
  /** Where the next record goes: the end of what is known durable. */
  #logBytes = 0;
  /** Writes applied to the view and waiting for the next commit, in call order. */
  #queue: Pending[] = [];
  #flushRunning = false;
  #flushDone: Promise<void> = Promise.resolve();
  /** A failed append may have left bytes past `#logBytes`: cut them before the next one. */
  #dirty = false;
  /** A compaction renamed the log but the directory fsync failed: retry before appending. */
  #dirSyncNeeded = false;
  /** After a failed automatic compaction, wait until the log reaches this size. */
  #compactNotBeforeBytes = 0;
  #compactWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  #closed = false;
  #closing: Promise<void> | undefined;
  /** How long each fsync of a commit, a snapshot or the directory took. */
  readonly #fsyncSeconds = new Histogram(LATENCY_BUCKETS_SECONDS);

  constructor(dir: string, settings: Settings, lock: Lock) {
    this.dir = dir;
    this.#settings = settings;
    this.#lock = lock;
    this.#logPath = join(dir, LOG_FILE);
    this.#tempPath = join(dir, TEMP_FILE);
  }

  get logBytes(): number {
    return this.#logBytes;
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return attempt(() => {
      this.#open("get");
      return getFromMap(this.#view, key);
    });
  }

  put(key: string, value: Uint8Array): Promise<void> {
    return attempt(() => {
      this.#open("put");
      checkStorageKey(key, "put");
      checkStorageValue(value, "put");
      return this.#write(copyOps([{ type: "put", key, value }]), undefined);
    });
  }

  delete(key: string): Promise<boolean> {
    return attempt(() => {
      this.#open("delete");
      checkStorageKey(key, "delete");
      return this.#write([{ type: "delete", key }], this.#view.has(key));
    });
  }

  list(prefix: string): Promise<StorageEntry[]> {
    return attempt(() => {
      this.#open("list");
      return listFromMap(this.#view, prefix);
    });
  }

  batch(ops: readonly StorageOp[]): Promise<void> {
    return attempt(() => {
      this.#open("write");
      checkStorageOps(ops);
      return this.#write(copyOps(ops), undefined);
    });
  }

  metrics(): MetricFamily[] {
    return [
      fsyncFamily(
        this.#fsyncSeconds,
        "Duration of each fsync of the storage (a group commit of writes, a snapshot, the directory).",
      ),
    ];
  }

  /** Runs one fsync and records how long it took. */
  async #timed(sync: Promise<void>): Promise<void> {
    const start = performance.now();
    await sync;
    this.#fsyncSeconds.observe((performance.now() - start) / 1000);
  }

  compact(): Promise<void> {
    return attempt(() => {
      this.#open("compact");
      return new Promise<void>((resolve, reject) => {
        this.#compactWaiters.push({ resolve, reject });
        this.#kick();
      });
    });
  }

  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closed = true;
    this.#closing = (async () => {
      await this.#flushDone;
      try {
        await this.#file?.close();
      } catch (error) {
        throw cannot(`close storage ${this.dir}`, error);
      } finally {
        this.#file = undefined;
        await releaseLock(this.#lock);
      }
    })();
    return this.#closing;
  }

  /** Reads the log (or creates it) and cuts off a torn tail; called once, by the opener. */
  async recover(): Promise<void> {
    await removeIfThere(this.#tempPath); // a compaction the last process did not finish
    let bytes: Uint8Array;
    try {
      // As a plain Uint8Array: values are cut from it with slice(), which must copy.
      const buffer = await readFile(this.#logPath);
      bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (error) {
      if (codeOf(error) !== "ENOENT") throw error;
      this.#file = await this.#createLog([MAGIC], `create ${LOG_FILE} in ${this.dir}`);
      this.#logBytes = MAGIC.length;
      await syncDirectory(this.dir);
      await syncDirectory(dirname(this.dir)).catch(() => {}); // the directory may be new too
      return;
    }
    if (bytes.length < MAGIC.length || MAGIC.some((byte, i) => bytes[i] !== byte)) {
      throw new Error(`Cannot open storage ${this.dir}: ${LOG_FILE} is not a storage log`);
    }
    let offset = MAGIC.length;
    let records = 0;
    for (;;) {
      const end = this.#applyRecord(bytes, offset);
      if (end < 0) break;
      offset = end;
      records++;
    }
    const file = await open(this.#logPath, "r+");
    try {
      if (offset < bytes.length) {
        await file.truncate(offset);
        await datasync(file);
      }
    } catch (error) {
      await file.close().catch(() => {});
      throw error;
    }
    this.#file = file;
    this.#logBytes = offset;
    this.recovery = { records, truncatedBytes: bytes.length - offset };
  }

  #open(action: string): void {
    if (this.#closed) throw new Error(`Cannot ${action}: the storage is closed`);
  }

  /** Applies `ops` to the view now and queues their record; resolves once it is durable. */
  #write<T>(ops: readonly StorageOp[], result: T): Promise<T> {
    const record = encodeRecord(ops);
    // Resolved with `result` directly, not through a then(): every write of a commit then
    // settles in the same turn, in call order.
    return new Promise((resolve, reject) => {
      const undo = ops.map((op) => [op.key, this.#set(op.key, putValue(op))] as const);
      this.#queue.push({ record, ops, undo, resolve: () => resolve(result), reject });
      this.#kick();
    });
  }

  /** Sets (or with `undefined` removes) a key in the view; returns what it held. */
  #set(key: string, value: Uint8Array | undefined): Uint8Array | undefined {
    const previous = this.#view.get(key);
    if (previous !== undefined) this.#liveBytes -= entryBytes(key, previous);
    if (value === undefined) {
      this.#view.delete(key);
    } else {
      this.#view.set(key, value);
      this.#liveBytes += entryBytes(key, value);
    }
    return previous;
  }

  /** Applies the record at `offset` to the view; returns its end, or -1 if it is not whole. */
  #applyRecord(bytes: Uint8Array, offset: number): number {
    if (offset + RECORD_HEADER_BYTES > bytes.length) return -1;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const length = view.getUint32(offset, true);
    const end = offset + RECORD_HEADER_BYTES + length;
    if (length < 4 || end > bytes.length) return -1;
    const crc = crc32(bytes, crc32(bytes, 0, offset, offset + 4), offset + 8, end);
    if (crc !== view.getUint32(offset + 4, true)) return -1;
    const ops = decodeOps(bytes, view, offset + RECORD_HEADER_BYTES, end);
    if (ops === undefined) return -1;
    for (const op of ops) this.#set(op.key, putValue(op));
    return end;
  }

  #kick(): void {
    if (this.#flushRunning) return;
    this.#flushRunning = true;
    this.#flushDone = this.#flush();
  }

  /** Commits queued writes group by group, compacting between groups when due; one at a time. */
  async #flush(): Promise<void> {
    try {
      for (;;) {
        if (this.#queue.length > 0) {
          const group = this.#queue;
          this.#queue = [];
          await this.#commit(group);
        }
        const waiters = this.#compactWaiters;
        if (waiters.length > 0) {
          this.#compactWaiters = [];
          try {
            await this.#compact();
            for (const waiter of waiters) waiter.resolve();
          } catch (error) {
            for (const waiter of waiters) waiter.reject(error as Error);
          }
        } else if (this.#compactionDue()) {
          try {
            await this.#compact();
          } catch {
            // Try again once the log has grown by another compactMinBytes; writes go on.
            this.#compactNotBeforeBytes = this.#logBytes + this.#settings.compactMinBytes;
          }
        }
        if (this.#queue.length === 0 && this.#compactWaiters.length === 0) return;
      }
    } finally {
      this.#flushRunning = false;
    }
  }

  async #commit(group: Pending[]): Promise<void> {
    let size = 0;
    for (const pending of group) size += pending.record.length;
    if (size > 0) {
      const bytes = new Uint8Array(size);
      let at = 0;
      for (const pending of group) {
        bytes.set(pending.record, at);
        at += pending.record.length;
      }
      try {
        const file = this.#file!;
        if (this.#dirSyncNeeded) {
          await this.#syncDir();
          this.#dirSyncNeeded = false;
        }
        if (this.#dirty) {
          this.#fault("truncate", this.#logPath);
          await file.truncate(this.#logBytes);
          this.#dirty = false;
        }
        this.#dirty = true;
        this.#fault("write", this.#logPath);
        await writeAll(file, bytes, this.#logBytes);
        this.#fault("sync", this.#logPath);
        await this.#timed(datasync(file));
        this.#dirty = false;
        this.#logBytes += size;
      } catch (error) {
        this.#undo(group);
        const failure = cannot(`write to storage ${this.dir}`, error);
        for (const pending of group) pending.reject(failure);
        return;
      }
    }
    for (const pending of group) pending.resolve();
  }

  /** Takes the failed `group` out of the view, keeping the writes called after it. */
  #undo(group: Pending[]): void {
    const later = this.#queue;
    for (const list of [later, group]) {
      for (let i = list.length - 1; i >= 0; i--) {
        const undo = list[i].undo;
        for (let j = undo.length - 1; j >= 0; j--) this.#set(undo[j][0], undo[j][1]);
      }
    }
    for (const pending of later) {
      pending.undo = pending.ops.map((op) => [op.key, this.#set(op.key, putValue(op))] as const);
    }
  }

  #compactionDue(): boolean {
    const bytes = this.#logBytes;
    return bytes > this.#settings.compactMinBytes && bytes >= this.#compactNotBeforeBytes &&
      bytes > (this.#liveBytes + MAGIC.length) * this.#settings.compactRatio;
  }

  /** Replaces the log by a snapshot of the durable state (the view without the queued writes). */
  async #compact(): Promise<void> {
    const chunks = this.#snapshot();
    const file = await this.#createLog(chunks, `compact storage ${this.dir}`);
    const old = this.#file;
    this.#file = file;
    this.#logBytes = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    this.#dirty = false;
    this.#compactNotBeforeBytes = 0;
    await old?.close().catch(() => {});
    try {
      await this.#syncDir();
    } catch (error) {
      // The rename may not be durable yet: no append may rely on it until it is.
      this.#dirSyncNeeded = true;
      throw cannot(`compact storage ${this.dir}`, error);
    }
  }

  /** The durable state as records, each at most about SNAPSHOT_RECORD_BYTES. */
  #snapshot(): Uint8Array[] {
    // What the queued (not yet durable) writes changed, as it was before the oldest of them.
    const before = new Map<string, Uint8Array | undefined>();
    for (const pending of this.#queue) {
      for (const [key, value] of pending.undo) if (!before.has(key)) before.set(key, value);
    }
    const chunks: Uint8Array[] = [MAGIC];
    let ops: StorageOp[] = [];
    let bytes = 0;
    const add = (key: string, value: Uint8Array) => {
      ops.push({ type: "put", key, value });
      bytes += entryBytes(key, value);
      if (bytes >= SNAPSHOT_RECORD_BYTES) {
        chunks.push(encodeRecord(ops));
        ops = [];
        bytes = 0;
      }
    };
    for (const [key, value] of this.#view) if (!before.has(key)) add(key, value);
    for (const [key, value] of before) if (value !== undefined) add(key, value);
    if (ops.length > 0) chunks.push(encodeRecord(ops));
    return chunks;
  }

  /**
   * Writes `chunks` to the temporary file, fsyncs it and renames it over the log; returns the
   * open file, which is the log from then on. On failure the old log is untouched.
   */
  async #createLog(chunks: Uint8Array[], action: string): Promise<FileHandle> {
    let file: FileHandle | undefined;
    try {
      file = await open(this.#tempPath, "w+");
      this.#fault("write", this.#tempPath);
      let at = 0;
      for (const chunk of chunks) {
        await writeAll(file, chunk, at);
        at += chunk.length;
      }
      this.#fault("sync", this.#tempPath);
      await this.#timed(file.sync());
      this.#fault("rename", this.#logPath);
      await rename(this.#tempPath, this.#logPath);
    } catch (error) {
      await file?.close().catch(() => {});
      await removeIfThere(this.#tempPath).catch(() => {});
      throw cannot(action, error);
    }
    return file;
  }

  async #syncDir(): Promise<void> {
    this.#fault("syncDir", this.dir);
    await this.#timed(syncDirectory(this.dir));
  }

  #fault(kind: FileStorageOperation["kind"], path: string): void {
    const hook = this.#settings.faultHook;
    if (hook === undefined) return;
    const error = hook({ kind, path });
    if (error instanceof Error) throw error;
  }
}

function putValue(op: StorageOp): Uint8Array | undefined {
  return op.type === "put" ? op.value : undefined;
}

/** Bytes of one put in a snapshot record. */
function entryBytes(key: string, value: Uint8Array): number {
  return 7 + key.length * 2 + value.length;
}

/**
 * One record: u32 payload length, u32 CRC-32 of the length bytes then the payload, payload.
 * Payload: u32 op count, then per op u8 type, u16 key length in UTF-16 code units, the key's
 * code units (u16 each, so any string round-trips exactly), and for a put u32 value length and
 * the value. Little-endian throughout. A batch without operations has no record.
 */
function encodeRecord(ops: readonly StorageOp[]): Uint8Array {
  if (ops.length === 0) return new Uint8Array(0);
  let length = 4;
  for (const op of ops) {
    length += 3 + op.key.length * 2 + (op.type === "put" ? 4 + op.value.length : 0);
  }
  if (length > MAX_RECORD_BYTES) {
    throw new RangeError(
      `Cannot apply batch: ${length} bytes exceeds the ${MAX_RECORD_BYTES} bytes of a record`,
    );
  }
  const bytes = new Uint8Array(RECORD_HEADER_BYTES + length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, length, true);
  let at = RECORD_HEADER_BYTES;
  view.setUint32(at, ops.length, true);
  at += 4;
  for (const op of ops) {
    const key = op.key;
    view.setUint8(at, op.type === "put" ? OP_PUT : OP_DELETE);
    view.setUint16(at + 1, key.length, true);
    at += 3;
    for (let i = 0; i < key.length; i++, at += 2) view.setUint16(at, key.charCodeAt(i), true);
    if (op.type === "put") {
      view.setUint32(at, op.value.length, true);
      bytes.set(op.value, at + 4);
      at += 4 + op.value.length;
    }
  }
  view.setUint32(4, crc32(bytes, crc32(bytes, 0, 0, 4), RECORD_HEADER_BYTES), true);
  return bytes;
}

/** The operations of the payload `bytes[start, end)`, or undefined if it is malformed. */
function decodeOps(
  bytes: Uint8Array,
  view: DataView,
  start: number,
  end: number,
): StorageOp[] | undefined {
  const count = view.getUint32(start, true);
  let at = start + 4;
  const ops: StorageOp[] = [];
  for (let n = 0; n < count; n++) {
    if (at + 3 > end) return undefined;
    const type = view.getUint8(at);
    const keyLength = view.getUint16(at + 1, true);
    at += 3;
    if (keyLength === 0 || at + keyLength * 2 > end) return undefined;
    const units = new Array<number>(keyLength);
    for (let i = 0; i < keyLength; i++, at += 2) units[i] = view.getUint16(at, true);
    const key = String.fromCharCode(...units);
    if (type === OP_DELETE) {
      ops.push({ type: "delete", key });
    } else if (type === OP_PUT) {
      if (at + 4 > end) return undefined;
      const valueLength = view.getUint32(at, true);
      at += 4;
      if (at + valueLength > end) return undefined;
      ops.push({ type: "put", key, value: bytes.slice(at, at + valueLength) });
      at += valueLength;
    } else {
      return undefined;
    }
  }
  return at === end ? ops : undefined;
}

async function writeAll(file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await file.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten <= 0) throw new Error("the disk took no bytes");
    done += bytesWritten;
  }
}

function datasync(file: FileHandle): Promise<void> {
  // fdatasync also flushes the file size, which an append changes: all a read needs.
  return typeof file.datasync === "function" ? file.datasync() : file.sync();
}

async function syncDirectory(path: string): Promise<void> {
  // Windows cannot open a directory as a file; NTFS journals renames itself.
  if (process.platform === "win32") return;
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function removeIfThere(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (codeOf(error) !== "ENOENT") throw error;
  }
}

function codeOf(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}

function cannot(action: string, error: unknown): Error {
  const reason = error instanceof Error ? error.message : String(error);
  return new Error(`Cannot ${action}: ${reason}`, { cause: error });
}

// ---- the lock file ---------------------------------------------------------------------------

interface Lock {
  readonly path: string;
  /** What this open wrote into it: the process id, then a token no other open writes. */
  readonly content: string;
}

/**
 * Takes `dir/LOCK`. The lock is written complete under a private name and hard-linked into
 * place, which fails if a lock is there, so a lock is never seen half written. A lock naming a
 * process that is gone is removed only by the holder of `LOCK.takeover` (taken the same way),
 * after checking that `LOCK` still holds those very bytes: the only way a lock can go is that
 * its owner releases it (it is gone) or one taker removes it, so two opens never both hold it
 * (short of a race with the removal of a takeover claim whose taker itself died mid-way).
 * Whoever links next wins. On a file system without hard links the lock is created exclusively
 * and then written, and an open that reads it in between takes it for stale.
 */
async function acquireLock(dir: string, action: string): Promise<Lock> {
  const path = join(dir, LOCK_FILE);
  const takeover = join(dir, `${LOCK_FILE}.takeover`);
  const unique = `${process.pid}.${++openCount}.${Math.random().toString(36).slice(2, 10)}`;
  const content = `${process.pid}\n${unique}\n`;
  const mine = join(dir, `${LOCK_FILE}.${unique}.tmp`);
  try {
    await writeFile(mine, content);
    for (let attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
      if (await placeLock(mine, path, content)) {
        await removeLeftovers(dir);
        return { path, content };
      }
      const found = await readIfThere(path);
      if (found === undefined) continue; // released meanwhile
      const owner = parsePid(found);
      if (owner !== undefined && isAlive(owner)) {
        throw new Error(`Cannot ${action}: in use by process ${owner}`);
      }
      if (!(await placeLock(mine, takeover, content))) {
        // Another open is taking the stale lock over (or died doing so: then remove its claim).
        const claim = await readIfThere(takeover);
        const claimant = claim === undefined ? undefined : parsePid(claim);
        if (claimant !== undefined && isAlive(claimant)) {
          await new Promise((resolve) => setTimeout(resolve, 2));
        } else if (claim !== undefined && (await readIfThere(takeover)) === claim) {
          await removeIfThere(takeover);
        }
        continue;
      }
      try {
        if ((await readIfThere(path)) === found) await removeIfThere(path);
      } finally {
        await removeIfThere(takeover);
      }
    }
    throw new Error(`Cannot ${action}: the lock file ${path} keeps changing`);
  } catch (error) {
    throw error instanceof Error && error.message.startsWith("Cannot ")
      ? error
      : cannot(action, error);
  } finally {
    await removeIfThere(mine).catch(() => {});
  }
}

/** Removes the private lock files of opens whose process died while taking the lock. */
async function removeLeftovers(dir: string): Promise<void> {
  try {
    for (const name of await readdir(dir)) {
      const match = /^LOCK\.(\d+)\.\d+\.\w+\.tmp$/.exec(name);
      if (match && !isAlive(Number(match[1]))) await removeIfThere(join(dir, name));
    }
  } catch {
    // Only tidying.
  }
}

async function readIfThere(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if (codeOf(error) === "ENOENT") return undefined;
    throw error;
  }
}

/** Links the complete lock `from` into place; false if a lock is there. */
async function placeLock(from: string, path: string, content: string): Promise<boolean> {
  try {
    await link(from, path);
    return true;
  } catch (error) {
    const code = codeOf(error);
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") {
      throw error;
    }
  }
  // A file system without hard links: exclusive create, then write (a crash between the two
  // leaves an empty lock, which the next opener takes over as stale).
  try {
    await writeFile(path, content, { flag: "wx" });
    return true;
  } catch (error) {
    if (codeOf(error) === "EEXIST") return false;
    throw error;
  }
}

async function releaseLock(lock: Lock): Promise<void> {
  try {
    if ((await readFile(lock.path, "utf8")) === lock.content) await unlink(lock.path);
  } catch {
    // Gone already, or unreadable: the next opener decides whether it is stale.
  }
}

function parsePid(text: string): number | undefined {
  const match = /^(\d{1,10})\n/.exec(text);
  const pid = match ? Number(match[1]) : 0;
  return pid > 0 && pid <= 0x7fffffff ? pid : undefined;
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive but another user's. Anything else (no permission to ask): assume alive.
    return codeOf(error) !== "ESRCH";
  }
}
