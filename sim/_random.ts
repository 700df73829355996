/**
 * Seed derivation and the simulator's {@link Random}, on pure-rand's xoroshiro128+.
 *
 * One root seed derives every stream: the network's draws and each host incarnation's own
 * randomness, so adding a host or restarting one never shifts another stream.
 *
 * @module
 */
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";
import type { Random } from "../src/platform.ts";

/** Mixes 32-bit words into one well-spread 32-bit seed (murmur3's finaliser per word). */
export function deriveSeed(...words: number[]): number {
  let hash = 0x9e3779b9;
  for (const word of words) {
    // Numbers above 2^32 contribute both halves, so seeds up to 2^53 stay distinct.
    const low = word >>> 0;
    const high = Math.floor(word / 4294967296) >>> 0;
    hash = mix32(hash ^ low);
    hash = mix32(hash ^ high);
  }
  return hash | 0;
}

function mix32(value: number): number {
  let h = value | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** Hashes a string into a 32-bit word, to use names as seed words. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  }
  return hash | 0;
}

/**
 * A seeded {@link Random}. Identical seeds give identical sequences on every runtime: it uses
 * integer arithmetic only.
 *
 * @example
 * ```ts
 * import { SeededRandom } from "./_random.ts";
 * const a = new SeededRandom(7), b = new SeededRandom(7);
 * console.assert(a.int(1, 6) === b.int(1, 6));
 * ```
 */
export class SeededRandom implements Random {
  readonly #rng: RandomGenerator;

  constructor(seed: number) {
    this.#rng = xoroshiro128plus(seed | 0);
  }

  /** The underlying generator, for pure-rand distributions. */
  get generator(): RandomGenerator {
    return this.#rng;
  }

  next(): number {
    // 53 random bits from two draws, divided by 2^53: exact in IEEE doubles everywhere.
    const high = (this.#rng.next() >>> 0) >>> 6; // 26 bits
    const low = (this.#rng.next() >>> 0) >>> 5; // 27 bits
    return (high * 134217728 + low) / 9007199254740992;
  }

  int(min: number, max: number): number {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min > max) {
      throw new RangeError(`Cannot draw an integer in [${min}, ${max}]: not a valid range`);
    }
    if (min === max) return min;
    const range = max - min + 1;
    if (range <= 4294967296) return min + this.below(range);
    return uniformInt(this.#rng, min, max);
  }

  /** A uniform integer in [0, range) for 1 <= range <= 2^32, unchecked: the hot-path draw. */
  below(range: number): number {
    // Rejection sampling on one 32-bit draw: exactly uniform.
    const limit = 4294967296 - (4294967296 % range);
    for (;;) {
      const draw = this.#rng.next() >>> 0;
      if (draw < limit) return draw % range;
    }
  }

  /** A uniform 32-bit unsigned integer; the cheapest draw. */
  uint32(): number {
    return this.#rng.next() >>> 0;
  }

  fill(bytes: Uint8Array): Uint8Array {
    let i = 0;
    for (; i + 4 <= bytes.length; i += 4) {
      const word = this.#rng.next();
      bytes[i] = word;
      bytes[i + 1] = word >>> 8;
      bytes[i + 2] = word >>> 16;
      bytes[i + 3] = word >>> 24;
    }
    if (i < bytes.length) {
      let word = this.#rng.next();
      for (; i < bytes.length; i++, word >>>= 8) bytes[i] = word;
    }
    return bytes;
  }
}
