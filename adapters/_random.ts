/**
 * The real {@link Random} of every adapter: the operating system's randomness through the Web
 * Crypto API, which Deno, Bun and Node all provide as `crypto`.
 *
 * @module
 */
import type { Random } from "../src/platform.ts";

const TWO_32 = 4294967296;
const TWO_53 = 9007199254740992;
// getRandomValues refuses more than 65536 bytes per call.
const MAX_FILL_BYTES = 65536;
const POOL_WORDS = 256;

/**
 * A {@link Random} drawing from `crypto.getRandomValues`, 1 KiB at a time.
 *
 * `next()` has 53 random bits; `int()` is exactly uniform (rejection sampling), for any range
 * of safe integers.
 *
 * @example
 * ```ts
 * import { CryptoRandom } from "./_random.ts";
 * const random = new CryptoRandom();
 * const die = random.int(1, 6);
 * console.assert(die >= 1 && die <= 6 && Number.isInteger(die));
 * ```
 */
export class CryptoRandom implements Random {
  readonly #pool = new Uint32Array(POOL_WORDS);
  #index = POOL_WORDS;

  next(): number {
    const high = this.#uint32() >>> 6; // 26 bits
    const low = this.#uint32() >>> 5; // 27 bits
    return (high * 134217728 + low) / TWO_53;
  }

  int(min: number, max: number): number {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min > max) {
      throw new RangeError(`Cannot draw an integer in [${min}, ${max}]: not a valid range`);
    }
    if (min === max) return min;
    // The span is exact below 2^53, and rounding keeps larger spans at or above 2^53.
    const span = max - min;
    const range = span + 1;
    if (span < TWO_32) {
      const limit = TWO_32 - (TWO_32 % range);
      for (;;) {
        const draw = this.#uint32();
        if (draw < limit) return min + (draw % range);
      }
    }
    if (span < TWO_53) {
      const limit = TWO_53 - (TWO_53 % range);
      for (;;) {
        const draw = this.#uint53();
        if (draw < limit) return min + (draw % range);
      }
    }
    // More than 2^53 values (min < 0 < max): the offset needs 54 bits, drawn as 2·high + bit,
    // and compared without ever forming an inexact intermediate.
    for (;;) {
      const high = this.#uint53();
      const bit = this.#uint32() & 1;
      const base = min + high;
      if (base <= max - high - bit) return base + high + bit;
    }
  }

  fill(bytes: Uint8Array): Uint8Array {
    if (!(bytes instanceof Uint8Array)) {
      throw new TypeError("Cannot fill: not a Uint8Array");
    }
    for (let offset = 0; offset < bytes.length; offset += MAX_FILL_BYTES) {
      crypto.getRandomValues(bytes.subarray(offset, offset + MAX_FILL_BYTES));
    }
    return bytes;
  }

  #uint32(): number {
    if (this.#index === POOL_WORDS) {
      crypto.getRandomValues(this.#pool);
      this.#index = 0;
    }
    return this.#pool[this.#index++];
  }

  #uint53(): number {
    return (this.#uint32() >>> 11) * TWO_32 + this.#uint32();
  }
}
