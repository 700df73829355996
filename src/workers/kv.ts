/**
 * A key-value store worker, the original's `WorkerExampleKeyValueStore` done properly: its data
 * is kept in the worker's storage, so a node restarted with the same storage recovers it.
 *
 * Wire format (fields of `message`; `data` is the payload), as the original where it had one:
 *
 * - `command=set`, `key`, the value in `data` (or, without data, as UTF-8 text in a `value`
 *   field), optional `ack=true`. With `ack=true` it answers `command=setReturn`, `key`,
 *   `ok=true` once the value is durable, or `ok=false` and `error` if the write failed.
 * - `command=get`, `key`. Answers `command=getReturn`, `key`, `found=true` and the value as
 *   `data` (plus a `value` field when it is UTF-8 text of at most 64 KiB); for an absent key
 *   `found=false` and no data.
 * - `command=delete`, `key`, optional `ack=true`. With `ack=true` it answers
 *   `command=deleteReturn`, `key`, `found`, `ok` (and `error`) once the delete is durable.
 * - Anything else, or no `key`: answered with `command=error`, `errorOf` (the request's
 *   command), `error` (what is wrong) and `key` if there was one.
 *
 * Every answer carries the request's `id` field when it had one. Messages without a `source`
 * get no answer; answers themselves (`…Return`, `…Reply`, `error`) are never answered.
 *
 * @module
 */
import type { MapMessage } from "../message.ts";
import type { Storage } from "../storage.ts";
import {
  errorText,
  isReplyCommand,
  LoadingWorker,
  type LoadingWorkerOptions,
  replyTo,
} from "./_common.ts";

/** Options of {@link KeyValueStoreWorker}. */
export interface KeyValueStoreOptions extends LoadingWorkerOptions {
  /** Largest value accepted, in bytes; larger `set`s are answered with an error. Default 16 MiB. */
  readonly maxValueBytes?: number;
  /** Longest key accepted, in UTF-16 code units. Default 512 (at most 900). */
  readonly maxKeyLength?: number;
}

/** What a {@link KeyValueStoreWorker} has done since it was created. */
export interface KeyValueStoreStats {
  /** `set`s applied. */
  sets: number;
  /** `get`s answered (found or not). */
  gets: number;
  /** `delete`s applied. */
  deletes: number;
  /** Writes (`set` and `delete`) that storage confirmed durable. */
  writesDurable: number;
  /** Writes storage refused; each is logged. */
  writeFailures: number;
  /** Messages refused as malformed or unknown; each is logged. */
  badMessages: number;
  /** Answers sent to it by mistake (`…Return`, `error`), ignored. */
  repliesIgnored: number;
}

/** Where values live in the worker's storage: `v/<key>`. */
const VALUE_PREFIX = "v/";
/** Values up to this size that are UTF-8 text also travel as the `value` field of `getReturn`. */
const MAX_TEXT_VALUE_BYTES = 64 * 1024;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The key-value store worker. `set`, `get` and `delete` by `key`, answered as the module
 * documentation says. Changes apply in memory at once, so a `get` after a `set` sees it, and
 * are written to the worker's storage in the order they came; a `set` with `ack=true` is
 * answered once the write is durable. When a write fails, the failure is logged (and answered
 * with `ok=false` if acknowledged) and the key is read back from storage, so that what the
 * worker serves is again what a restart would recover.
 *
 * On attach it loads every key from storage; messages that arrive meanwhile wait in order and
 * are handled once it is loaded (`ready`).
 *
 * @example
 * ```ts
 * import { KeyValueStoreWorker } from "./kv.ts";
 * import { MemoryStorage } from "../storage.ts";
 * import type { MapMessage } from "../message.ts";
 * import type { WorkerContext } from "../worker.ts";
 *
 * const sent: MapMessage[] = [];
 * const context: WorkerContext = {
 *   nodeGuid: "Node1",
 *   send: (message) => sent.push(message) > 0,
 *   clock: {
 *     now: () => 0,
 *     wallNow: () => 0,
 *     schedule: () => ({ cancel() {} }),
 *     defer: (fn) => queueMicrotask(fn),
 *   },
 *   random: { next: () => 0.5, int: (min) => min, fill: (bytes) => bytes },
 *   log: { log() {} },
 *   storage: new MemoryStorage(),
 * };
 * const store = new KeyValueStoreWorker("Store0001");
 * store.attach(context); // starts loading from storage; messages wait until it is done
 * const from = (fields: Record<string, string>) =>
 *   ({ destination: "Store0001", source: "Me", message: fields });
 * store.queueMessage(from({ command: "set", key: "color", value: "blue" }));
 * store.queueMessage(from({ command: "get", key: "color" }));
 * for (let i = 0; i < 10; i++) await Promise.resolve(); // the load settles
 * console.assert(sent[0].message.command === "getReturn" && sent[0].message.value === "blue");
 * ```
 */
export class KeyValueStoreWorker extends LoadingWorker {
  readonly #maxValueBytes: number;
  readonly #maxKeyLength: number;
  readonly #values = new Map<string, Uint8Array>();
  /** Per key, its latest write in flight: a failed write reads back only if none came after. */
  readonly #latestWrite = new Map<string, number>();
  #writeNumber = 0;
  readonly #stats: KeyValueStoreStats = {
    sets: 0,
    gets: 0,
    deletes: 0,
    writesDurable: 0,
    writeFailures: 0,
    badMessages: 0,
    repliesIgnored: 0,
  };

  constructor(guid: string, options: KeyValueStoreOptions = {}) {
    super(guid, options);
    const maxValueBytes = options.maxValueBytes ?? 16 << 20;
    if (!Number.isInteger(maxValueBytes) || maxValueBytes < 0) {
      throw new RangeError(
        `Cannot create store: maxValueBytes ${maxValueBytes} is not a non-negative integer`,
      );
    }
    const maxKeyLength = options.maxKeyLength ?? 512;
    // The worker's storage prefixes keys with `workers/<guid>/v/`; 900 leaves room for it
    // within the storage's 1024.
    if (!Number.isInteger(maxKeyLength) || maxKeyLength < 1 || maxKeyLength > 900) {
      throw new RangeError(`Cannot create store: maxKeyLength ${maxKeyLength} is not in 1..900`);
    }
    this.#maxValueBytes = maxValueBytes;
    this.#maxKeyLength = maxKeyLength;
  }

  /** How many keys it holds. */
  get size(): number {
    return this.#values.size;
  }

  /** Whether it holds `key`. */
  has(key: string): boolean {
    return this.#values.has(key);
  }

  /** A copy of the value under `key`, or `undefined`. */
  value(key: string): Uint8Array | undefined {
    const value = this.#values.get(key);
    return value === undefined ? undefined : new Uint8Array(value);
  }

  /** The keys it holds, in ascending order. */
  keys(): string[] {
    return [...this.#values.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Counters since creation (a copy). */
  get stats(): KeyValueStoreStats {
    return { ...this.#stats };
  }

  protected override async load(storage: Storage): Promise<void> {
    const entries = await storage.list(VALUE_PREFIX);
    this.#values.clear();
    for (const entry of entries) {
      this.#values.set(entry.key.slice(VALUE_PREFIX.length), entry.value);
    }
  }

  protected override onReady(): void {
    this.context.log.log("info", "kv.loaded", { worker: this.guid, keys: this.#values.size });
  }

  protected override onMessage(message: MapMessage): void {
    try {
      this.#handle(message);
    } catch (error) {
      // A bug, not bad input: log it and go on with the next message.
      this.context.log.log("error", "worker.error", { worker: this.guid, error: errorText(error) });
    }
  }

  #handle(message: MapMessage): void {
    const command = message.message.command;
    if (isReplyCommand(command)) {
      this.#stats.repliesIgnored++;
      this.context.log.log("debug", "kv.reply-ignored", {
        worker: this.guid,
        from: message.source,
        command,
      });
      return;
    }
    if (command !== "set" && command !== "get" && command !== "delete") {
      return this.#refuse(
        message,
        command === undefined ? "no command" : `unknown command "${command}"`,
      );
    }
    const key = message.message.key;
    if (key === undefined || key === "") return this.#refuse(message, "no key");
    if (key.length > this.#maxKeyLength) {
      return this.#refuse(message, `key of ${key.length} characters exceeds ${this.#maxKeyLength}`);
    }
    if (command === "get") return this.#get(message, key);
    if (command === "set") return this.#set(message, key);
    return this.#delete(message, key);
  }

  #get(message: MapMessage, key: string): void {
    this.#stats.gets++;
    const value = this.#values.get(key);
    if (value === undefined) {
      replyTo(this.context, this.guid, message, { command: "getReturn", key, found: "false" });
      return;
    }
    const fields: Record<string, string> = { command: "getReturn", key, found: "true" };
    const text = asText(value);
    if (text !== undefined) fields.value = text;
    // A copy: the node hands local receivers the very object, and the stored bytes stay ours.
    // (`new Uint8Array(x)`, not `x.slice()`: a Node Buffer's slice() is a view.)
    replyTo(this.context, this.guid, message, fields, new Uint8Array(value));
  }

  #set(message: MapMessage, key: string): void {
    const value = message.data !== undefined
      ? new Uint8Array(message.data)
      : utf8.encode(message.message.value ?? "");
    if (value.length > this.#maxValueBytes) {
      return this.#refuse(message, `value of ${value.length} bytes exceeds ${this.#maxValueBytes}`);
    }
    this.#stats.sets++;
    this.#values.set(key, value);
    this.#write(message, key, "setReturn", {}, (storage) => storage.put(VALUE_PREFIX + key, value));
  }

  #delete(message: MapMessage, key: string): void {
    const found = this.#values.delete(key);
    this.#stats.deletes++;
    this.#write(
      message,
      key,
      "deleteReturn",
      { found: String(found) },
      (storage) => storage.delete(VALUE_PREFIX + key),
    );
  }

  /** Writes a change; answers `ack=true` requests once it is durable or has failed. */
  #write(
    message: MapMessage,
    key: string,
    answer: string,
    fields: Record<string, string>,
    write: (storage: Storage) => Promise<unknown>,
  ): void {
    const number = ++this.#writeNumber;
    this.#latestWrite.set(key, number);
    const ack = message.message.ack === "true";
    let writing: Promise<unknown>;
    try {
      writing = write(this.context.storage);
    } catch (error) {
      writing = Promise.reject(error);
    }
    writing.then(
      () => {
        if (this.#latestWrite.get(key) === number) this.#latestWrite.delete(key);
        if (!this.attached) return;
        this.#stats.writesDurable++;
        if (ack) {
          replyTo(this.context, this.guid, message, {
            command: answer,
            key,
            ...fields,
            ok: "true",
          });
        }
      },
      (error) => {
        if (!this.attached) return;
        this.#stats.writeFailures++;
        const text = errorText(error);
        this.context.log.log("error", "kv.write-failed", { worker: this.guid, key, error: text });
        if (ack) {
          replyTo(this.context, this.guid, message, {
            command: answer,
            key,
            ...fields,
            ok: "false",
            error: text,
          });
        }
        if (this.#latestWrite.get(key) === number) this.#readBack(key, number);
      },
    );
  }

  /** After a failed write, serves again what storage holds for `key`. */
  #readBack(key: string, number: number): void {
    this.context.storage.get(VALUE_PREFIX + key).then(
      (stored) => {
        // A later write to the key decides its value now; this read is stale.
        if (!this.attached || this.#latestWrite.get(key) !== number) return;
        this.#latestWrite.delete(key);
        if (stored === undefined) this.#values.delete(key);
        else this.#values.set(key, stored);
      },
      (error) => {
        if (!this.attached) return;
        this.context.log.log("error", "kv.read-back-failed", {
          worker: this.guid,
          key,
          error: errorText(error),
        });
      },
    );
  }

  /** Logs a bad request and answers it with an error when it has a sender. */
  #refuse(message: MapMessage, reason: string): void {
    this.#stats.badMessages++;
    const command = message.message.command ?? "";
    this.context.log.log("warn", "kv.bad-message", {
      worker: this.guid,
      from: message.source,
      command,
      error: reason,
    });
    const fields: Record<string, string> = {
      command: "error",
      errorOf: command,
      error: `Cannot ${command || "handle message"}: ${reason}`,
    };
    const key = message.message.key;
    if (key !== undefined) fields.key = key.slice(0, this.#maxKeyLength);
    replyTo(this.context, this.guid, message, fields);
  }
}

/** The value as text when it is UTF-8 and small enough to travel twice; else `undefined`. */
function asText(value: Uint8Array): string | undefined {
  if (value.length > MAX_TEXT_VALUE_BYTES) return undefined;
  try {
    return strictUtf8.decode(value);
  } catch {
    return undefined;
  }
}
