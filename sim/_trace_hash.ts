/**
 * A running 64-bit hash of a simulation's events, as two independent 32-bit lanes.
 *
 * Integer-only arithmetic, so the same trace hashes the same on every JavaScript engine.
 *
 * @module
 */

/**
 * Accumulates words and strings into a 64-bit digest shown as 16 hex digits.
 *
 * @example
 * ```ts
 * import { TraceHash } from "./_trace_hash.ts";
 * const a = new TraceHash(), b = new TraceHash();
 * a.word(1); b.word(1);
 * console.assert(a.hex() === b.hex());
 * ```
 */
export class TraceHash {
  #a = 0x243f6a88 | 0;
  #b = 0x85a308d3 | 0;
  #count = 0;

  /** Adds one 32-bit word (higher bits of larger numbers are folded in). */
  word(value: number): void {
    let low = value | 0;
    if (value > 2147483647 || value < -2147483648) {
      low ^= Math.floor(value / 4294967296) | 0;
    }
    // Two cheap lanes per word; the avalanche happens once, in hex().
    const a = Math.imul(this.#a ^ low, 0x2c1b3c6d);
    this.#a = (a << 13) | (a >>> 19);
    this.#b = Math.imul(this.#b + low, 0x297a2d39) ^ (this.#a >>> 7);
    this.#count++;
  }

  /** Adds up to `limit` leading bytes of `bytes`, and its length. */
  bytes(bytes: Uint8Array, limit: number): void {
    const end = Math.min(bytes.length, limit);
    this.word(bytes.length);
    let i = 0;
    for (; i + 4 <= end; i += 4) {
      this.word(bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    }
    for (; i < end; i++) this.word(bytes[i]);
  }

  /** Adds a string, code unit by code unit. */
  string(text: string): void {
    this.word(text.length);
    for (let i = 0; i < text.length; i++) this.word(text.charCodeAt(i));
  }

  /** The digest as 16 lowercase hex digits. */
  hex(): string {
    return (fmix(this.#a ^ this.#count) >>> 0).toString(16).padStart(8, "0") +
      (fmix(this.#b ^ this.#a) >>> 0).toString(16).padStart(8, "0");
  }
}

function fmix(value: number): number {
  let h = value | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * A 32-bit digest of `bytes`' length and up to `limit` leading bytes, integer-only like
 * {@link TraceHash}: worked out once for a datagram, however many hosts it reaches (a broadcast
 * reaches every host of its subnet), and added to the trace as one word at each.
 */
export function digestBytes(bytes: Uint8Array, limit: number): number {
  const end = Math.min(bytes.length, limit);
  let h = Math.imul(bytes.length ^ 0x9e3779b9, 0x85ebca6b);
  let i = 0;
  for (; i + 4 <= end; i += 4) {
    const word = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    h = Math.imul(h ^ word, 0x2c1b3c6d);
    h = (h << 13) | (h >>> 19);
  }
  for (; i < end; i++) h = Math.imul(h ^ bytes[i], 0x297a2d39);
  h ^= h >>> 16;
  return Math.imul(h, 0xc2b2ae35) ^ (h >>> 13);
}
