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
