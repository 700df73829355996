/**
 * The MapMessage: the one kind of message nodes and workers exchange, both command and data.
 *
 * The `message` map of every MapMessage built here (by {@link createMessage},
 * {@link cloneMessage} or a codec's `decode`) has a `null` prototype. Keys come from the
 * network, so a key such as `"__proto__"`, `"constructor"` or `"toString"` must be an ordinary
 * entry: on a null-prototype object it is, and `msg.message.constructor` is `undefined` unless
 * the peer sent that key. Such maps print as `[Object: null prototype]` and are not
 * `deepStrictEqual` to plain objects; compare messages with {@link messagesEqual}.
 *
 * @module
 */

/**
 * A message between workers and nodes, as in the original AutoMPI (`DestinationGUID`,
 * `SourceGUID`, `Message`, `Data`).
 *
 * Only `destination` must be non-empty for a message to be sent; `source` may be `""`.
 * System broadcasts carry an empty destination. `data` absent and `data` empty are different
 * values (Go's `nil` and empty slice) and both survive every codec.
 *
 * @example
 * ```ts
 * import type { MapMessage } from "./message.ts";
 *
 * const msg: MapMessage = {
 *   destination: "Store0001",
 *   source: "Camera01",
 *   message: { command: "set", key: "image-1" },
 *   data: new Uint8Array([0xff, 0xd8]),
 * };
 * ```
 */
export interface MapMessage {
  /** GUID of the receiving worker or node, or {@link ALL_NODES} / {@link ALL_WORKERS}. */
  destination: string;
  /** GUID of the sender; may be empty. */
  source: string;
  /** The command: string keys to string values. */
  message: Record<string, string>;
  /** Payload bytes, if any. */
  data?: Uint8Array;
}

/**
 * The destination that reaches every node (handed to each node's external handlers).
 *
 * @example
 * ```ts
 * import { ALL_NODES, createMessage } from "./message.ts";
 *
 * const hello = createMessage(ALL_NODES, { greeting: "hello" });
 * ```
 */
export const ALL_NODES = "ALLNodes";

/**
 * The destination that reaches every worker on every node.
 *
 * @example
 * ```ts
 * import { ALL_WORKERS, createMessage } from "./message.ts";
 *
 * const stop = createMessage(ALL_WORKERS, { command: "stop" });
 * ```
 */
export const ALL_WORKERS = "ALLWorkers";

/**
 * Optional parts of a message made by {@link createMessage}.
 *
 * @example
 * ```ts
 * import { createMessage, type CreateMessageOptions } from "./message.ts";
 *
 * const options: CreateMessageOptions = { source: "Camera01", data: new Uint8Array([0xff]) };
 * const msg = createMessage("Store0001", { command: "set", key: "image-1" }, options);
 * ```
 */
export interface CreateMessageOptions {
  /** GUID of the sender; defaults to `""`. */
  source?: string;
  /** Payload bytes; kept as given, not copied. */
  data?: Uint8Array;
}

/**
 * Builds a {@link MapMessage}, checking every part's type. The entries of `message` are copied
 * into a new null-prototype map; `data` is kept as given (not copied), so a large payload costs
 * nothing here.
 *
 * An empty destination is allowed (system broadcasts use it); whether a message can be sent
 * is the node's decision.
 *
 * @param destination GUID of the receiver.
 * @param message A plain object of string values (prototype `Object.prototype` or `null`).
 * @param options Source and payload.
 * @returns The new message.
 * @throws {TypeError} If a part has the wrong type.
 *
 * @example
 * ```ts
 * import { createMessage } from "./message.ts";
 *
 * const get = createMessage("Store0001", { command: "get", key: "a" }, { source: "Client7" });
 * if (get.message.command !== "get") throw new Error("unexpected");
 * ```
 */
export function createMessage(
  destination: string,
  message?: Readonly<Record<string, string>>,
  options?: CreateMessageOptions,
): MapMessage {
  const what = "Cannot create message";
  if (options !== undefined && (typeof options !== "object" || options === null)) {
    throw new TypeError(`${what}: options is ${describe(options)}, expected an object`);
  }
  return buildMessage(
    what,
    destination,
    options?.source === undefined ? "" : options.source,
    message === undefined ? EMPTY_MAP : message,
    options?.data,
    false,
  );
}

/**
 * Tells whether `destination` is one of the broadcast destinations, {@link ALL_NODES} or
 * {@link ALL_WORKERS}.
 *
 * @param destination A message destination.
 * @returns `true` for a broadcast destination.
 *
 * @example
 * ```ts
 * import { ALL_WORKERS, isBroadcastDestination } from "./message.ts";
 *
 * isBroadcastDestination(ALL_WORKERS); // true
 * isBroadcastDestination("Store0001"); // false
 * ```
 */
export function isBroadcastDestination(destination: string): boolean {
  return destination === ALL_NODES || destination === ALL_WORKERS;
}

/**
 * Compares two messages by value: same destination and source, the same keys with the same
 * values in `message` (in any order, whatever the maps' prototypes), and the same `data`
 * bytes. An absent `data` equals only an absent `data`, never an empty one.
 *
 * @param a A message.
 * @param b Another message.
 * @returns `true` if they are equal.
 *
 * @example
 * ```ts
 * import { createMessage, messagesEqual } from "./message.ts";
 *
 * const a = createMessage("w1", { x: "1", y: "2" });
 * const b = createMessage("w1", { y: "2", x: "1" });
 * if (!messagesEqual(a, b)) throw new Error("expected equal messages");
 * ```
 */
export function messagesEqual(a: MapMessage, b: MapMessage): boolean {
  if (a === b) return true;
  if (a.destination !== b.destination || a.source !== b.source) return false;
  const keysA = Object.keys(a.message);
  if (keysA.length !== Object.keys(b.message).length) return false;
  for (const key of keysA) {
    if (!Object.hasOwn(b.message, key) || a.message[key] !== b.message[key]) return false;
  }
  return bytesEqual(a.data, b.data);
}

/**
 * Copies a message deeply: a new null-prototype `message` map and a copy of `data`, so that
 * changing the copy never changes the original.
 *
 * @param msg The message to copy.
 * @returns The copy.
 * @throws {TypeError} If `msg` is not a well-typed MapMessage.
 *
 * @example
 * ```ts
 * import { cloneMessage, createMessage } from "./message.ts";
 *
 * const original = createMessage("w1", { n: "1" }, { data: new Uint8Array([1]) });
 * const copy = cloneMessage(original);
 * copy.data![0] = 9;
 * if (original.data![0] !== 1) throw new Error("the copy shares bytes");
 * ```
 */
export function cloneMessage(msg: MapMessage): MapMessage {
  const what = "Cannot clone message";
  if (typeof msg !== "object" || msg === null) {
    throw new TypeError(`${what}: got ${describe(msg)}, expected a MapMessage`);
  }
  return buildMessage(what, msg.destination, msg.source, msg.message, msg.data, true);
}

const EMPTY_MAP: Readonly<Record<string, string>> = Object.freeze(Object.create(null));

/** Validates the parts of a message and assembles it with a fresh null-prototype map. */
function buildMessage(
  what: string,
  destination: unknown,
  source: unknown,
  message: unknown,
  data: unknown,
  copyData: boolean,
): MapMessage {
  if (typeof destination !== "string") {
    throw new TypeError(`${what}: destination is ${describe(destination)}, expected a string`);
  }
  if (typeof source !== "string") {
    throw new TypeError(`${what}: source is ${describe(source)}, expected a string`);
  }
  if (!isPlainObject(message)) {
    throw new TypeError(
      `${what}: message is ${describe(message)}, expected a plain object of strings`,
    );
  }
  const map: Record<string, string> = Object.create(null);
  for (const key of Object.keys(message)) {
    const value = (message as Record<string, unknown>)[key];
    if (typeof value !== "string") {
      throw new TypeError(
        `${what}: message key ${JSON.stringify(key)} holds ${describe(value)}, expected a string`,
      );
    }
    map[key] = value;
  }
  const msg: MapMessage = { destination, source, message: map };
  if (data !== undefined) {
    if (!(data instanceof Uint8Array)) {
      throw new TypeError(`${what}: data is ${describe(data)}, expected a Uint8Array`);
    }
    msg.data = copyData ? data.slice() : data;
  }
  return msg;
}

function isPlainObject(value: unknown): value is object {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function bytesEqual(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

/** Names a value's type for error messages, without echoing (possibly huge) contents. */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") {
    const name = Object.getPrototypeOf(value)?.constructor?.name;
    return typeof name === "string" && name !== "Object" ? `a ${name}` : "an object";
  }
  return typeof value === "undefined" ? "undefined" : `a ${typeof value}`;
}
