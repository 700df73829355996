/**
 * Codecs turn a {@link MapMessage} into the payload of one frame and back.
 *
 * - {@link msgpackCodec} (the default) is this project's compact binary form.
 * - {@link jsonCodec} speaks the original Go AutoMPI's wire format byte for byte.
 *
 * `decode` reads bytes from the network, so it throws {@link MessageDecodeError} and nothing
 * else, whatever the bytes. `encode` reads our own messages, so a malformed one is a bug and
 * gets a `TypeError` or `RangeError`.
 *
 * Strings must be well-formed UTF-16: a lone surrogate has no UTF-8 form, and replacing it
 * with U+FFFD (as `TextEncoder` would) could silently merge two keys, so `encode` rejects it.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";
import type { MapMessage } from "./message.ts";

/**
 * The name of a codec, as used in configuration.
 *
 * @example
 * ```ts
 * import { codecByName, type CodecName } from "./codec.ts";
 *
 * const name: CodecName = "json"; // speak the Go original's format
 * const codec = codecByName(name);
 * ```
 */
export type CodecName = "msgpack" | "json";

/**
 * Encodes messages to frame payloads and decodes them back. `decode(encode(m))` equals `m`
 * (see `messagesEqual`) for every well-formed message.
 *
 * @example
 * ```ts
 * import { type Codec, msgpackCodec } from "./codec.ts";
 * import { createMessage, messagesEqual } from "./message.ts";
 *
 * const codec: Codec = msgpackCodec;
 * const msg = createMessage("Store0001", { command: "get", key: "a" });
 * if (!messagesEqual(codec.decode(codec.encode(msg)), msg)) throw new Error("no round trip");
 * ```
 */
export interface Codec {
  /** Which wire format this is. */
  readonly name: CodecName;
  /**
   * Encodes one message.
   * @throws {TypeError} If a field has the wrong type or a string holds a lone surrogate.
   * @throws {RangeError} If `data` is longer than the format can express (4 GiB).
   */
  encode(msg: MapMessage): Uint8Array;
  /**
   * The same bytes as `encode`, possibly in several pieces so that large data is not copied;
   * the pieces may share memory with `msg.data`. Codecs without it are used through `encode`.
   */
  encodeParts?(msg: MapMessage): Uint8Array[];
  /**
   * The same bytes as `encode`, in memory the codec reuses: valid only until the next call of
   * this codec. For callers that copy the bytes at once (a node batching frames); saves an
   * allocation per message.
   */
  encodeTransient?(msg: MapMessage): Uint8Array;
  /**
   * Decodes one message. The result owns its memory (its `data` is a copy, except that msgpack
   * data of 64 KiB or more is a view of `bytes`, which the caller hands over, and msgpack data up
   * to 4 KiB is a view into a shared pool, like Node's pooled Buffers) and its `message`
   * map has a null prototype.
   * @throws {MessageDecodeError} If the bytes are not exactly one valid message.
   */
  decode(bytes: Uint8Array): MapMessage;
}

/**
 * The bytes of a frame are not a valid message for the codec that read them.
 *
 * @example
 * ```ts
 * import { MessageDecodeError, msgpackCodec } from "./codec.ts";
 *
 * try {
 *   msgpackCodec.decode(new Uint8Array([0xc1]));
 * } catch (error) {
 *   if (!(error instanceof MessageDecodeError)) throw error;
 *   // error.codec === "msgpack"; close the link and log error.message
 * }
 * ```
 */
export class MessageDecodeError extends ProtocolError {
  /** Always `"MessageDecodeError"`. */
  override name: string = "MessageDecodeError";
  /** The codec that rejected the bytes. */
  readonly codec: CodecName;

  /**
   * Describes one rejected payload.
   *
   * @param codec The codec that rejected the bytes.
   * @param reason What is wrong, completing "Cannot decode … message: ".
   * @param options The underlying error, if any, as `cause`.
   */
  constructor(codec: CodecName, reason: string, options?: ErrorOptions) {
    super(`Cannot decode ${codec} message: ${reason}`, options);
    this.codec = codec;
  }
}

/**
 * The default codec: a MessagePack array of exactly four elements,
 * `[destination: str, source: str, message: array, data: bin | nil]`, where `message` is a flat
 * array of alternating keys and values (`[k0, v0, k1, v1, …]`, all `str`).
 *
 * A flat array rather than a msgpack map keeps a key like `"__proto__"` an ordinary string for
 * every decoder (general msgpack decoders build objects and must refuse or mangle it), and costs
 * the same bytes. The decoder is strict: any other type or element count, a duplicate key,
 * invalid UTF-8 or trailing bytes are rejected. Non-minimal length headers (a short string in
 * `str 16`, say) are accepted, as any msgpack writer may produce them.
 *
 * @example
 * ```ts
 * import { msgpackCodec } from "./codec.ts";
 * import { createMessage } from "./message.ts";
 *
 * const bytes = msgpackCodec.encode(createMessage("w1", { k: "v" }));
 * // bytes: 94 a2 77 31 a0 92 a1 6b a1 76 c0
 * const back = msgpackCodec.decode(bytes);
 * if (back.message.k !== "v") throw new Error("unexpected");
 * ```
 */
export const msgpackCodec: Codec = Object.freeze({
  name: "msgpack" as const,
  encode: (msg: MapMessage) => encodeMsgpack(msg),
  encodeParts: encodeMsgpackParts,
  encodeTransient: (msg: MapMessage) => encodeMsgpack(msg, false, true),
  decode: decodeMsgpack,
});

/**
 * The original Go AutoMPI's format: the JSON that Go's `encoding/json` writes for its
 * `MapMessage` struct, byte for byte:
 * `{"DestinationGUID":"…","SourceGUID":"…","Message":{…},"Data":"<base64>"|null}`.
 *
 * Encoding follows Go ≥ 1.22: `Message` keys sorted by their UTF-8 bytes; `<`, `>`, `&`,
 * U+2028 and U+2029 written as `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`; `\b`, `\f`,
 * `\n`, `\r`, `\t` in short form (Go before 1.22 wrote `\u0008` and `\u000c`); other control
 * characters as `\u00xx`; `data` absent as `null`, present as padded standard base64 (empty
 * data as `""`).
 *
 * Decoding reads any valid JSON (whitespace, key order, escapes) but is strict about the shape
 * Go writes: exactly those four keys, spelt so (Go itself would match any case and ignore
 * unknown keys), strings for the GUIDs, `Message` an object of strings or `null` (read as
 * `{}`), `Data` `null` or canonical padded base64 (no line breaks, zero padding bits). A
 * duplicate key keeps its last value, as in Go.
 *
 * @example
 * ```ts
 * import { jsonCodec } from "./codec.ts";
 * import { createMessage } from "./message.ts";
 *
 * const bytes = jsonCodec.encode(createMessage("w1", { b: "2", a: "<1>" }));
 * const text = new TextDecoder().decode(bytes);
 * const want =
 *   '{"DestinationGUID":"w1","SourceGUID":"","Message":{"a":"\\u003c1\\u003e","b":"2"},"Data":null}';
 * if (text !== want) throw new Error(text);
 * ```
 */
export const jsonCodec: Codec = Object.freeze({
  name: "json" as const,
  encode: encodeJson,
  decode: decodeJson,
});

/**
 * Looks a codec up by name, for configuration.
 *
 * @param name `"msgpack"` or `"json"`, typically from configuration.
 * @returns The codec.
 * @throws {TypeError} If `name` is not a string.
 * @throws {RangeError} If no codec has that name.
 *
 * @example
 * ```ts
 * import { codecByName, jsonCodec } from "./codec.ts";
 *
 * if (codecByName("json") !== jsonCodec) throw new Error("unexpected");
 * ```
 */
export function codecByName(name: string): Codec {
  if (typeof name !== "string") {
    throw new TypeError(`Cannot find codec: name is ${typeof name}, expected a string`);
  }
  if (name === "msgpack") return msgpackCodec;
  if (name === "json") return jsonCodec;
  throw new RangeError(
    `Cannot find codec: unknown name ${JSON.stringify(name)} (expected "msgpack" or "json")`,
  );
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

const utf8Encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in a string instead of silently dropping it.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const MAX_UINT32 = 0xffff_ffff;

/** Checks a message's fields before encoding; returns the keys of its map. */
function checkForEncode(msg: MapMessage, codec: CodecName): string[] {
  const what = `Cannot encode ${codec} message`;
  if (typeof msg !== "object" || msg === null) {
    throw new TypeError(
      `${what}: got ${msg === null ? "null" : typeof msg}, expected a MapMessage`,
    );
  }
  checkString(msg.destination, what, "destination");
  checkString(msg.source, what, "source");
  const map = msg.message;
  if (typeof map !== "object" || map === null) {
    throw new TypeError(
      `${what}: message is ${map === null ? "null" : typeof map}, expected an object`,
    );
  }
  const keys = Object.keys(map);
  for (const key of keys) {
    checkString(key, what, "a message key");
    checkString(map[key], what, `message key ${JSON.stringify(key)}`);
  }
  const data = msg.data;
  if (data !== undefined) {
    if (!(data instanceof Uint8Array)) {
      throw new TypeError(`${what}: data is ${typeof data}, expected a Uint8Array or undefined`);
    }
    if (data.length > MAX_UINT32) {
      throw new RangeError(
        `${what}: data is ${data.length} bytes, more than the limit of ${MAX_UINT32}`,
      );
    }
  }
  return keys;
}

function checkString(value: unknown, what: string, field: string): void {
  if (typeof value !== "string") {
    throw new TypeError(
      `${what}: ${field} is ${value === null ? "null" : typeof value}, expected a string`,
    );
  }
  if (!value.isWellFormed()) {
    throw new TypeError(`${what}: ${field} holds a lone surrogate, which has no UTF-8 form`);
  }
}

// ---------------------------------------------------------------------------------------------
// MessagePack

/** Size of the msgpack `str` header for a string of `lengthBytes` UTF-8 bytes. */
function strHeaderBytes(lengthBytes: number): number {
  return lengthBytes < 32 ? 1 : lengthBytes < 0x100 ? 2 : lengthBytes < 0x10000 ? 3 : 5;
}

/**
 * The msgpack encoding in two pieces, the second being `msg.data` itself when it is at least
 * 64 KiB: writing both sends the same bytes as `encode` without copying the data.
 */
function encodeMsgpackParts(msg: MapMessage): Uint8Array[] {
  const data = msg.data;
  if (data === undefined || data.length < LARGE_DATA_BYTES) return [encodeMsgpack(msg)];
  return [encodeMsgpack(msg, true), data];
}

/** Where transient encodings go: allocating a typed array per message costs ~1 µs in V8. */
let scratch = new Uint8Array(64 * 1024);

function encodeMsgpack(msg: MapMessage, headOnly = false, transient = false): Uint8Array {
  const keys = checkForEncode(msg, "msgpack");
  const map = msg.message;
  const data = msg.data;
  // Upper bound: a UTF-16 code unit takes at most 3 UTF-8 bytes; every header at most 5.
  let capacity = 1 + 5 + 5 + 3 * (msg.destination.length + msg.source.length) + 10 + 5;
  for (const key of keys) capacity += 10 + 3 * (key.length + map[key].length);
  if (data !== undefined && !headOnly) capacity += data.length;

  if (transient && capacity > scratch.length && capacity <= 1 << 20) {
    scratch = new Uint8Array(capacity);
  }
  const out = transient && capacity <= scratch.length ? scratch : new Uint8Array(capacity);
  out[0] = 0x94; // fixarray of 4
  let pos = writeStr(out, 1, msg.destination);
  pos = writeStr(out, pos, msg.source);
  pos = writeArrayHeader(out, pos, keys.length * 2);
  for (const key of keys) {
    pos = writeStr(out, pos, key);
    pos = writeStr(out, pos, map[key]);
  }
  if (data === undefined) {
    out[pos++] = 0xc0;
  } else {
    const n = data.length;
    if (n < 0x100) {
      out[pos++] = 0xc4;
      out[pos++] = n;
    } else if (n < 0x10000) {
      out[pos++] = 0xc5;
      pos = writeUint16(out, pos, n);
    } else {
      out[pos++] = 0xc6;
      pos = writeUint32(out, pos, n);
    }
    if (!headOnly) {
      out.set(data, pos);
      pos += n;
    }
  }
  if (out === scratch) return out.subarray(0, pos);
  // Hand back a view unless most of the buffer would be dead weight (long non-ASCII strings).
  const slackBytes = capacity - pos;
  return slackBytes > 1024 && slackBytes > pos ? out.slice(0, pos) : out.subarray(0, pos);
}

function writeArrayHeader(out: Uint8Array, pos: number, count: number): number {
  if (count < 16) {
    out[pos] = 0x90 | count;
    return pos + 1;
  }
  if (count < 0x10000) {
    out[pos] = 0xdc;
    return writeUint16(out, pos + 1, count);
  }
  out[pos] = 0xdd;
  return writeUint32(out, pos + 1, count);
}

function writeUint16(out: Uint8Array, pos: number, n: number): number {
  out[pos] = n >>> 8;
  out[pos + 1] = n;
  return pos + 2;
}

function writeUint32(out: Uint8Array, pos: number, n: number): number {
  out[pos] = n >>> 24;
  out[pos + 1] = n >>> 16;
  out[pos + 2] = n >>> 8;
  out[pos + 3] = n;
  return pos + 4;
}

/** Writes `s` as a msgpack str at `pos` (room is guaranteed); returns the new position. */
function writeStr(out: Uint8Array, pos: number, s: string): number {
  const n = s.length;
  if (n < 32) {
    // Short ASCII strings (keys, GUIDs) dominate; a plain loop beats a native call here.
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      out[pos + 1 + i] = c;
    }
    if (i === n) {
      out[pos] = 0xa0 | n;
      return pos + 1 + n;
    }
  }
  const reservedBytes = strHeaderBytes(3 * n);
  const start = pos + reservedBytes;
  const written = utf8Encoder.encodeInto(s, out.subarray(start)).written;
  const headerBytes = strHeaderBytes(written);
  if (headerBytes < reservedBytes) {
    out.copyWithin(pos + headerBytes, start, start + written);
  }
  if (headerBytes === 1) {
    out[pos] = 0xa0 | written;
  } else if (headerBytes === 2) {
    out[pos] = 0xd9;
    out[pos + 1] = written;
  } else if (headerBytes === 3) {
    out[pos] = 0xda;
    writeUint16(out, pos + 1, written);
  } else {
    out[pos] = 0xdb;
    writeUint32(out, pos + 1, written);
  }
  return pos + headerBytes + written;
}

/** A cursor over one msgpack payload; every read checks bounds first. */
class MsgpackReader {
  readonly bytes: Uint8Array;
  pos = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }

  fail(reason: string): never {
    throw new MessageDecodeError("msgpack", reason);
  }

  /** Reads a length of `size` bytes (1, 2 or 4), big-endian. */
  uint(size: number, what: string): number {
    const b = this.bytes;
    const p = this.pos;
    if (p + size > b.length) this.fail(`${what} header is cut off at byte ${p}`);
    this.pos = p + size;
    if (size === 1) return b[p];
    if (size === 2) return (b[p] << 8) | b[p + 1];
    return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
  }

  tag(what: string): number {
    if (this.pos >= this.bytes.length) {
      this.fail(`payload ends at byte ${this.pos}, where ${what} was expected`);
    }
    return this.bytes[this.pos++];
  }

  arrayLength(what: string): number {
    const at = this.pos;
    const tag = this.tag(what);
    if ((tag & 0xf0) === 0x90) return tag & 0x0f;
    if (tag === 0xdc) return this.uint(2, what);
    if (tag === 0xdd) return this.uint(4, what);
    return this.fail(`expected ${what} (an array) at byte ${at}, found type byte 0x${hex(tag)}`);
  }

  str(what: string): string {
    const at = this.pos;
    const tag = this.tag(what);
    const n = (tag & 0xe0) === 0xa0
      ? tag & 0x1f
      : tag === 0xd9
      ? this.uint(1, what)
      : tag === 0xda
      ? this.uint(2, what)
      : tag === 0xdb
      ? this.uint(4, what)
      : this.fail(`expected ${what} (a string) at byte ${at}, found type byte 0x${hex(tag)}`);
    const start = this.pos;
    const end = start + n;
    const b = this.bytes;
    if (end > b.length) {
      this.fail(`${what} at byte ${at} claims ${n} bytes but only ${b.length - start} remain`);
    }
    this.pos = end;
    if (n < 32) {
      // Short ASCII strings dominate; decoding them in JS avoids a native call per string.
      let s = "";
      let i = start;
      for (; i < end; i++) {
        const c = b[i];
        if (c >= 0x80) break;
        s += String.fromCharCode(c);
      }
      if (i === end) return s;
    }
    try {
      return utf8Decoder.decode(b.subarray(start, end));
    } catch (error) {
      return this.fail(`${what} at byte ${at} is not valid UTF-8 (${errorText(error)})`);
    }
  }

  /** Reads `bin` (copied, so the message does not pin the frame's buffer) or `nil`. */
  binOrNil(what: string): Uint8Array | undefined {
    const at = this.pos;
    const tag = this.tag(what);
    if (tag === 0xc0) return undefined;
    const n = tag === 0xc4
      ? this.uint(1, what)
      : tag === 0xc5
      ? this.uint(2, what)
      : tag === 0xc6
      ? this.uint(4, what)
      : this.fail(`expected ${what} (bin or nil) at byte ${at}, found type byte 0x${hex(tag)}`);
    const start = this.pos;
    if (start + n > this.bytes.length) {
      this.fail(
        `${what} at byte ${at} claims ${n} bytes but only ${this.bytes.length - start} remain`,
      );
    }
    this.pos = start + n;
    // Small data is copied so a kept message does not pin a whole receive buffer; large data
    // (most of its buffer anyway) is a view, which saves copying megabytes.
    if (n >= LARGE_DATA_BYTES) return this.bytes.subarray(start, start + n);
    return n <= POOLED_DATA_BYTES
      ? pooledCopy(this.bytes, start, n)
      : this.bytes.slice(start, start + n);
  }
}

/** Data at least this long is decoded as a view of the received bytes, not a copy. */
const LARGE_DATA_BYTES = 64 * 1024;

/** Data up to this long is copied into a shared pool rather than a buffer of its own. */
const POOLED_DATA_BYTES = 4096;
let pool = new Uint8Array(64 * 1024);
let poolUsed = 0;

/**
 * Copies small data into a slice of a shared 64 KiB pool, as Node's Buffer pool does: one
 * allocation per pool instead of one per message. The result is a view: use it, not its
 * `.buffer`, which holds other messages' data too.
 */
function pooledCopy(bytes: Uint8Array, start: number, n: number): Uint8Array {
  if (poolUsed + n > pool.length) {
    pool = new Uint8Array(pool.length);
    poolUsed = 0;
  }
  const at = poolUsed;
  for (let i = 0; i < n; i++) pool[at + i] = bytes[start + i];
  // Keep views 8-byte aligned, so a caller may lay a Float64Array over one.
  poolUsed = (at + n + 7) & ~7;
  return pool.subarray(at, at + n);
}

function decodeMsgpack(bytes: Uint8Array): MapMessage {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot decode msgpack message: got ${typeof bytes}, expected a Uint8Array`,
    );
  }
  try {
    const r = new MsgpackReader(bytes);
    const count = r.arrayLength("the message");
    if (count !== 4) r.fail(`the message is an array of ${count} elements, expected 4`);
    const destination = r.str("the destination");
    const source = r.str("the source");
    const at = r.pos;
    const itemCount = r.arrayLength("the message map");
    if (itemCount % 2 !== 0) {
      r.fail(`the message map at byte ${at} has ${itemCount} items, expected key/value pairs`);
    }
    const map: Record<string, string> = Object.create(null);
    for (let i = 0; i < itemCount; i += 2) {
      const keyAt = r.pos;
      const key = r.str("a message key");
      if (key in map) r.fail(`message key ${JSON.stringify(key)} at byte ${keyAt} is a duplicate`);
      map[key] = r.str("a message value");
    }
    const data = r.binOrNil("the data");
    if (r.pos !== bytes.length) {
      r.fail(`${bytes.length - r.pos} bytes follow the message at byte ${r.pos}`);
    }
    const msg: MapMessage = { destination, source, message: map };
    if (data !== undefined) msg.data = data;
    return msg;
  } catch (error) {
    throw asDecodeError("msgpack", error);
  }
}

// ---------------------------------------------------------------------------------------------
// JSON, as Go's encoding/json writes it

const JSON_KEYS = ["DestinationGUID", "SourceGUID", "Message", "Data"];

const HTML_UNSAFE = /[<>&\u2028\u2029]/g;
const HTML_ESCAPES: Readonly<Record<string, string>> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/**
 * Quotes a string exactly as Go ≥ 1.22 `json.Marshal` does. `JSON.stringify` already matches Go
 * for `"`, `\`, control characters (short forms for \b \f \n \r \t, lowercase `\u00xx` for the
 * rest) and leaves DEL and `/` alone, as Go does; Go additionally escapes the HTML-sensitive
 * characters and the JavaScript line terminators. Lone surrogates never get here.
 */
function quoteGo(s: string): string {
  return JSON.stringify(s).replace(HTML_UNSAFE, (c) => HTML_ESCAPES[c]);
}

/**
 * Orders strings as Go's `sort` orders map keys: by UTF-8 bytes, which is code point order.
 * UTF-16 code unit order differs only where a surrogate meets a unit in U+E000..U+FFFF.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        // Move surrogates (D800..DFFF) above the rest of the BMP (E000..FFFF).
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

function encodeJson(msg: MapMessage): Uint8Array {
  const keys = checkForEncode(msg, "json").sort(compareCodePoints);
  const map = msg.message;
  let head = `{"DestinationGUID":${quoteGo(msg.destination)},"SourceGUID":${
    quoteGo(msg.source)
  },"Message":{`;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    head += `${i === 0 ? "" : ","}${quoteGo(key)}:${quoteGo(map[key])}`;
  }
  head += `},"Data":`;
  const data = msg.data;
  const headBytes = utf8Encoder.encode(head);
  if (data === undefined) {
    const out = new Uint8Array(headBytes.length + 5);
    out.set(headBytes);
    out.set(NULL_CLOSE, headBytes.length);
    return out;
  }
  // Write the base64 straight into the frame: a 1 MiB payload never becomes a JS string.
  const out = new Uint8Array(headBytes.length + base64Length(data.length) + 3);
  out.set(headBytes);
  let pos = headBytes.length;
  out[pos++] = 0x22; // "
  pos = writeBase64(data, out, pos);
  out[pos++] = 0x22;
  out[pos] = 0x7d; // }
  return out;
}

const NULL_CLOSE = utf8Encoder.encode("null}");

function decodeJson(bytes: Uint8Array): MapMessage {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`Cannot decode json message: got ${typeof bytes}, expected a Uint8Array`);
  }
  try {
    return decodeGoShapedJson(bytes) ?? decodeAnyJson(bytes);
  } catch (error) {
    throw asDecodeError("json", error);
  }
}

function failJson(reason: string): never {
  throw new MessageDecodeError("json", reason);
}

/** `,"Data":"` as bytes. */
const DATA_FIELD = utf8Encoder.encode(',"Data":"');

/**
 * The fast path for what Go writes, `{…,"Data":"<base64>"}`: the base64 is decoded straight
 * from the bytes and only the part before it goes through TextDecoder and JSON.parse, so a
 * 1 MiB payload never becomes a JS string.
 *
 * It gives the same verdict and value as parsing the whole document. The bytes are
 * `H + ,"Data":"B"}` with B pure base64 (so without `"` or `\`), and the parser reaches the
 * end of H in the same state whether `"B"` or `null` follows: either both documents are
 * invalid JSON, or both hold the same values except Data (a later duplicate Data key wins in
 * both). Returns undefined when the bytes do not have this shape, for the general path to
 * decide (and to word any error).
 */
function decodeGoShapedJson(bytes: Uint8Array): MapMessage | undefined {
  const n = bytes.length;
  if (n < 2 + DATA_FIELD.length || bytes[n - 1] !== 0x7d || bytes[n - 2] !== 0x22) {
    return undefined;
  }
  // The last quote before the closing one opens the Data string.
  const quote = bytes.lastIndexOf(0x22, n - 3);
  const field = quote + 1 - DATA_FIELD.length;
  if (field < 1) return undefined;
  for (let i = 0; i < DATA_FIELD.length; i++) {
    if (bytes[field + i] !== DATA_FIELD[i]) return undefined;
  }
  const data = decodeBase64(bytes, quote + 1, n - 2);
  if (typeof data === "string") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(`${utf8Decoder.decode(bytes.subarray(0, field))},"Data":null}`);
  } catch {
    return undefined;
  }
  const msg = messageFromJson(value);
  msg.data = data;
  return msg;
}

function decodeAnyJson(bytes: Uint8Array): MapMessage {
  let text: string;
  try {
    text = utf8Decoder.decode(bytes);
  } catch (error) {
    return failJson(`the payload is not valid UTF-8 (${errorText(error)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return failJson(`the payload is not JSON (${errorText(error)})`);
  }
  const msg = messageFromJson(value);
  const rawData = (value as Record<string, unknown>).Data;
  if (rawData !== null) {
    if (typeof rawData !== "string") {
      failJson(`Data is ${jsonType(rawData)}, expected a string or null`);
    }
    // Non-ASCII characters become bytes >= 0x80, which are not base64 either.
    const data = decodeBase64(utf8Encoder.encode(rawData as string));
    if (typeof data === "string") failJson(`Data is not valid base64: ${data}`);
    msg.data = data as Uint8Array;
  }
  return msg;
}

/** Checks a parsed document and builds the message from all of it except Data. */
function messageFromJson(value: unknown): MapMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return failJson(`expected a JSON object, found ${jsonType(value)}`);
  }
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!JSON_KEYS.includes(key)) failJson(`unknown key ${JSON.stringify(key)}`);
  }
  for (const key of JSON_KEYS) {
    if (!Object.hasOwn(obj, key)) failJson(`key ${JSON.stringify(key)} is missing`);
  }
  const { DestinationGUID: destination, SourceGUID: source, Message: rawMap } = obj;
  if (typeof destination !== "string") {
    failJson(`DestinationGUID is ${jsonType(destination)}, expected a string`);
  }
  if (typeof source !== "string") {
    failJson(`SourceGUID is ${jsonType(source)}, expected a string`);
  }
  const map: Record<string, string> = Object.create(null);
  if (rawMap !== null) {
    if (typeof rawMap !== "object" || Array.isArray(rawMap)) {
      failJson(`Message is ${jsonType(rawMap)}, expected an object or null`);
    }
    const entries = rawMap as Record<string, unknown>;
    for (const key of Object.keys(entries)) {
      const v = entries[key];
      if (typeof v !== "string") {
        failJson(`Message key ${JSON.stringify(key)} holds ${jsonType(v)}, expected a string`);
      }
      map[key] = v as string;
    }
  }
  return { destination: destination as string, source: source as string, message: map };
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

// ---------------------------------------------------------------------------------------------
// Base64: standard alphabet with padding, as Go's base64.StdEncoding.

const B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_ENCODE = utf8Encoder.encode(B64_ALPHABET);
/** Two base64 characters (low byte first) for each 12-bit value: half the lookups. */
const B64_ENCODE_PAIRS = new Uint16Array(4096);
for (let i = 0; i < 4096; i++) {
  B64_ENCODE_PAIRS[i] = B64_ENCODE[i >>> 6] | (B64_ENCODE[i & 63] << 8);
}
/** Sextet of each byte; 0xff marks a byte outside the alphabet. */
const B64_DECODE = new Uint8Array(256).fill(0xff);
for (let i = 0; i < 64; i++) B64_DECODE[B64_ENCODE[i]] = i;
const PAD = 0x3d; // =

function base64Length(lengthBytes: number): number {
  return Math.ceil(lengthBytes / 3) * 4;
}

/** Writes `data` as base64 ASCII into `out` at `pos`; returns the new position. */
function writeBase64(data: Uint8Array, out: Uint8Array, pos: number): number {
  const n = data.length;
  const whole = n - (n % 3);
  const pairs = B64_ENCODE_PAIRS;
  let i = 0;
  for (; i < whole; i += 3) {
    const t = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    const hi = pairs[t >>> 12];
    const lo = pairs[t & 0xfff];
    out[pos] = hi;
    out[pos + 1] = hi >>> 8;
    out[pos + 2] = lo;
    out[pos + 3] = lo >>> 8;
    pos += 4;
  }
  const enc = B64_ENCODE;
  if (n - whole === 1) {
    const t = data[i];
    out[pos] = enc[t >>> 2];
    out[pos + 1] = enc[(t & 3) << 4];
    out[pos + 2] = PAD;
    out[pos + 3] = PAD;
    pos += 4;
  } else if (n - whole === 2) {
    const t = (data[i] << 8) | data[i + 1];
    out[pos] = enc[t >>> 10];
    out[pos + 1] = enc[(t >>> 4) & 63];
    out[pos + 2] = enc[(t & 15) << 2];
    out[pos + 3] = PAD;
    pos += 4;
  }
  return pos;
}

/**
 * Decodes canonical padded base64 from `src[start, end)`: length a multiple of 4, only
 * alphabet characters, `=` only as the last one or two, and zero bits after the last byte (so
 * each byte string has exactly one encoding, and re-encoding reproduces the input).
 *
 * @returns The bytes, or a string saying what is wrong (the callers differ in how to react).
 */
function decodeBase64(src: Uint8Array, start = 0, end = src.length): Uint8Array | string {
  const n = end - start;
  if (n % 4 !== 0) return `length ${n} is not a multiple of 4`;
  if (n === 0) return new Uint8Array(0);
  const pad = src[end - 1] !== PAD ? 0 : src[end - 2] !== PAD ? 1 : 2;
  const out = new Uint8Array((n / 4) * 3 - pad);
  const dec = B64_DECODE;
  const whole = pad === 0 ? end : end - 4;
  let o = 0;
  for (let i = start; i < whole; i += 4) {
    const a = dec[src[i]];
    const b = dec[src[i + 1]];
    const c = dec[src[i + 2]];
    const d = dec[src[i + 3]];
    if ((a | b | c | d) > 63) return `invalid character in the group at offset ${i - start}`;
    const t = (a << 18) | (b << 12) | (c << 6) | d;
    out[o] = t >>> 16;
    out[o + 1] = t >>> 8;
    out[o + 2] = t;
    o += 3;
  }
  if (pad !== 0) {
    const i = end - 4;
    const a = dec[src[i]];
    const b = dec[src[i + 1]];
    const c = pad === 2 ? 0 : dec[src[i + 2]];
    if ((a | b | c) > 63) return `invalid character in the group at offset ${i - start}`;
    if (pad === 2) {
      if ((b & 15) !== 0) return `nonzero padding bits in the group at offset ${i - start}`;
      out[o] = (a << 2) | (b >>> 4);
    } else {
      if ((c & 3) !== 0) return `nonzero padding bits in the group at offset ${i - start}`;
      const t = (a << 10) | (b << 4) | (c >>> 2);
      out[o] = t >>> 8;
      out[o + 1] = t;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Whatever went wrong while decoding (even an engine RangeError) leaves as a MessageDecodeError. */
function asDecodeError(codec: CodecName, error: unknown): MessageDecodeError {
  if (error instanceof MessageDecodeError) return error;
  return new MessageDecodeError(codec, `unexpected failure (${errorText(error)})`, {
    cause: error,
  });
}
