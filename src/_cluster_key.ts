/**
 * The cluster key: what a node with `clusterKey` signs and checks, and how it remembers which
 * heartbeats it has already taken.
 *
 * Three things are signed, with HMAC-SHA256 under the key and a label each, so a tag of one kind
 * never passes for another:
 *
 * - a heartbeat, over its kind, node GUID, link address, version, incarnation and sequence
 *   number (each length-prefixed, so no two field lists give the same bytes);
 * - a link handshake, over the sender's hello and then the receiver's, as sent on the wire.
 *   Each hello carries a fresh random nonce, so a proof is good for one connection only, and
 *   the order of the two hellos makes each side's proof differ from the other's;
 * - a ring membership or directory datagram, over its sender's session and number and its
 *   payload ({@link DatagramWindows} drops one seen before).
 *
 * @module
 */
import { HmacSha256, timingSafeEqual } from "./_sha256.ts";

const encoder = new TextEncoder();
const HEARTBEAT_LABEL = encoder.encode("AutoMPI heartbeat 1\u0000");
const LINK_LABEL = encoder.encode("AutoMPI link proof 1\u0000");
const DATAGRAM_LABEL = encoder.encode("AutoMPI ring datagram 1\u0000");
/** Bytes of a sealed datagram's tag: HMAC-SHA256 cut to 128 bits (as RFC 4868 does). */
export const DATAGRAM_TAG_BYTES = 16;
const TAG_HEX = /^[0-9a-f]{64}$/;

function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
  return out;
}

function fromHex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** `label`, then each part as a 4-byte big-endian length and its bytes. */
function framed(label: Uint8Array, parts: readonly Uint8Array[]): Uint8Array {
  let length = label.length;
  for (const part of parts) length += 4 + part.length;
  const out = new Uint8Array(length);
  out.set(label, 0);
  let offset = label.length;
  for (const part of parts) {
    out[offset] = part.length >>> 24;
    out[offset + 1] = part.length >>> 16;
    out[offset + 2] = part.length >>> 8;
    out[offset + 3] = part.length;
    out.set(part, offset + 4);
    offset += 4 + part.length;
  }
  return out;
}

/**
 * A cluster key, ready to sign and check heartbeats and link handshakes.
 *
 * @example
 * ```ts
 * import { ClusterKey } from "./_cluster_key.ts";
 * const key = new ClusterKey("correct horse battery staple");
 * const fields = ["AutoMPI_SKD_NodeLocation", "A", "10.0.0.1:8888", "1", "f00d", "1"];
 * const tag = key.heartbeatTag(fields);
 * console.assert(key.checkHeartbeatTag(fields, tag));
 * console.assert(!new ClusterKey("wrong").checkHeartbeatTag(fields, tag));
 * ```
 */
export class ClusterKey {
  readonly #mac: HmacSha256;

  /** Takes the key as text (its UTF-8 bytes are the key) or bytes; an empty key is a TypeError. */
  constructor(key: string | Uint8Array) {
    const bytes = typeof key === "string" ? encoder.encode(key) : key;
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError("Cannot use cluster key: it must be a string or a Uint8Array");
    }
    if (bytes.length === 0) throw new TypeError("Cannot use cluster key: it is empty");
    this.#mac = new HmacSha256(bytes);
  }

  /** The tag of a heartbeat's fields (in a fixed order), as 64 hex digits. */
  heartbeatTag(fields: readonly string[]): string {
    return toHex(this.#mac.sign(framed(HEARTBEAT_LABEL, fields.map((f) => encoder.encode(f)))));
  }

  /** Whether `tag` is the tag of these heartbeat fields under this key. */
  checkHeartbeatTag(fields: readonly string[], tag: unknown): boolean {
    if (typeof tag !== "string" || !TAG_HEX.test(tag)) return false;
    const expected = this.#mac.sign(framed(HEARTBEAT_LABEL, fields.map((f) => encoder.encode(f))));
    return timingSafeEqual(expected, fromHex(tag));
  }

  /** The proof the sender of hello `own` gives the sender of hello `peer` (payload bytes). */
  linkProof(own: Uint8Array, peer: Uint8Array): Uint8Array {
    return this.#mac.sign(framed(LINK_LABEL, [own, peer]));
  }

  /** The tag of a datagram: its sender's `head` (session and number) and its `payload`. */
  datagramTag(head: Uint8Array, payload: Uint8Array): Uint8Array {
    return this.#mac.sign(framed(DATAGRAM_LABEL, [head, payload])).subarray(0, DATAGRAM_TAG_BYTES);
  }

  /** Whether `tag` is the proof the sender of hello `peer` owes the sender of hello `own`. */
  checkLinkProof(own: Uint8Array, peer: Uint8Array, tag: Uint8Array): boolean {
    return timingSafeEqual(this.linkProof(peer, own), tag);
  }
}

/**
 * At most `capacity` entries, dropping the least recently heard: a map whose order is kept as
 * least recently heard first (an entry heard again is deleted and set again).
 */
class RecentlyHeard<V> {
  readonly #entries = new Map<string, V>();
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): V | undefined {
    return this.#entries.get(key);
  }

  /** Stores `value` under `key` as the most recently heard, dropping the least if full. */
  heard(key: string, value: V): void {
    const entries = this.#entries;
    if (!entries.delete(key) && entries.size >= this.#capacity) {
      entries.delete(entries.keys().next().value!);
    }
    entries.set(key, value);
  }
}

/**
 * The highest heartbeat sequence number taken per node GUID and incarnation, so a heartbeat
 * seen before (a replay, or a duplicate the network made) or older than one taken (reordered)
 * is dropped. Holds at most `capacity` incarnations, dropping the least recently heard.
 *
 * @example
 * ```ts
 * import { HeartbeatSequences } from "./_cluster_key.ts";
 * const seen = new HeartbeatSequences();
 * console.assert(seen.take("A", "f00d", 1));
 * console.assert(!seen.take("A", "f00d", 1)); // the same heartbeat again
 * console.assert(seen.take("A", "f00d", 2));
 * ```
 */
export class HeartbeatSequences {
  readonly #last: RecentlyHeard<number>;

  constructor(capacity = 4096) {
    this.#last = new RecentlyHeard(capacity);
  }

  /** Whether `sequence` is new for this GUID and incarnation; if so, it is remembered. */
  take(guid: string, incarnation: string, sequence: number): boolean {
    const key = `${guid}\u0000${incarnation}`;
    const last = this.#last.get(key);
    if (last !== undefined && sequence <= last) return false;
    this.#last.heard(key, sequence);
    return true;
  }

  /** How many incarnations are remembered. */
  get size(): number {
    return this.#last.size;
  }
}

/**
 * The datagram numbers taken per sender session, so a datagram seen before (a replay, or a
 * duplicate the network made) is dropped while one reordered within the last 32 is still
 * taken: the highest number and a bitmap of the 32 below it, as IPsec's anti-replay window.
 * Holds at most `capacity` sessions, dropping the least recently heard.
 *
 * @example
 * ```ts
 * import { DatagramWindows } from "./_cluster_key.ts";
 * const seen = new DatagramWindows();
 * console.assert(seen.take("s1", 5));
 * console.assert(seen.take("s1", 3)); // late, but not seen before
 * console.assert(!seen.take("s1", 3)); // the same again
 * console.assert(!seen.take("s1", 5));
 * ```
 */
export class DatagramWindows {
  readonly #windows: RecentlyHeard<{ highest: number; below: number }>;

  constructor(capacity = 4096) {
    this.#windows = new RecentlyHeard(capacity);
  }

  /** Whether datagram `number` of `session` is new; if so, it is remembered. */
  take(session: string, number: number): boolean {
    const window = this.#windows.get(session);
    if (window === undefined) {
      this.#windows.heard(session, { highest: number, below: 0 });
      return true;
    }
    this.#windows.heard(session, window);
    if (number > window.highest) {
      const shift = number - window.highest;
      // Bit i stands for number highest - 1 - i; the old highest becomes bit shift - 1. (A
      // shift of 32 or more keeps nothing below but that bit, if it is still in the window.)
      const kept = shift >= 32 ? 0 : window.below << shift;
      window.below = (kept | (shift <= 32 ? 1 << (shift - 1) : 0)) >>> 0;
      window.highest = number;
      return true;
    }
    const age = window.highest - number;
    if (age === 0 || age > 32) return false;
    const bit = (1 << (age - 1)) >>> 0;
    if ((window.below & bit) !== 0) return false;
    window.below = (window.below | bit) >>> 0;
    return true;
  }

  /** How many sessions are remembered. */
  get size(): number {
    return this.#windows.size;
  }
}
