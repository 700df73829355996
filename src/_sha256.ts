/**
 * SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), synchronous and in plain TypeScript.
 *
 * The Web Crypto API has both, but only behind Promises, and the node core reacts to events
 * synchronously (in the simulator a whole cluster is one ordered loop): so the core signs and
 * checks heartbeats and link handshakes with this module instead. It is a pure function of its
 * input, so the simulator stays deterministic, and the tests check it against the standards'
 * vectors and against `crypto.subtle` on every runtime.
 *
 * @module
 */

// deno-fmt-ignore
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** The initial hash value H(0). */
const IV = new Int32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

const BLOCK_BYTES = 64;

/** The message schedule, reused by every compression: this module never re-enters itself. */
const W = new Int32Array(64);
/** The last one or two blocks of a message, with its padding and length. */
const TAIL = new Uint8Array(2 * BLOCK_BYTES);

/** Folds one 64-byte block of `bytes` at `offset` into the state `h`. */
function compress(h: Int32Array, bytes: Uint8Array, offset: number): void {
  for (let i = 0; i < 16; i++) {
    const j = offset + 4 * i;
    W[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15];
    const w2 = W[i - 2];
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
  }
  let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (k + s1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    k = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  h[0] = (h[0] + a) | 0;
  h[1] = (h[1] + b) | 0;
  h[2] = (h[2] + c) | 0;
  h[3] = (h[3] + d) | 0;
  h[4] = (h[4] + e) | 0;
  h[5] = (h[5] + f) | 0;
  h[6] = (h[6] + g) | 0;
  h[7] = (h[7] + k) | 0;
}

/**
 * Hashes `data` on from a state that has already absorbed `prefixBytes` (a multiple of 64),
 * so HMAC can start from its precomputed padded-key states.
 */
function finish(start: Int32Array, prefixBytes: number, data: Uint8Array): Uint8Array {
  const h = start.slice();
  const whole = data.length - (data.length % BLOCK_BYTES);
  for (let offset = 0; offset < whole; offset += BLOCK_BYTES) compress(h, data, offset);
  const rest = data.length - whole;
  const tailBytes = rest < 56 ? BLOCK_BYTES : 2 * BLOCK_BYTES;
  TAIL.fill(0);
  TAIL.set(data.subarray(whole), 0);
  TAIL[rest] = 0x80;
  // The length in bits, as a 64-bit big-endian number: exact for any array a runtime can hold.
  const totalBytes = prefixBytes + data.length;
  const high = Math.floor(totalBytes / 0x20000000);
  const low = (totalBytes << 3) >>> 0;
  TAIL[tailBytes - 8] = high >>> 24;
  TAIL[tailBytes - 7] = high >>> 16;
  TAIL[tailBytes - 6] = high >>> 8;
  TAIL[tailBytes - 5] = high;
  TAIL[tailBytes - 4] = low >>> 24;
  TAIL[tailBytes - 3] = low >>> 16;
  TAIL[tailBytes - 2] = low >>> 8;
  TAIL[tailBytes - 1] = low;
  compress(h, TAIL, 0);
  if (tailBytes > BLOCK_BYTES) compress(h, TAIL, BLOCK_BYTES);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    out[4 * i] = h[i] >>> 24;
    out[4 * i + 1] = h[i] >>> 16;
    out[4 * i + 2] = h[i] >>> 8;
    out[4 * i + 3] = h[i];
  }
  return out;
}

function checkBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`Cannot hash: ${what} is not a Uint8Array`);
  }
}

/**
 * The SHA-256 digest of `data`: 32 bytes.
 *
 * @example
 * ```ts
 * import { sha256 } from "./_sha256.ts";
 * const digest = sha256(new TextEncoder().encode("abc"));
 * console.assert(digest[0] === 0xba && digest[31] === 0xad);
 * ```
 */
export function sha256(data: Uint8Array): Uint8Array {
  checkBytes(data, "data");
  return finish(IV, 0, data);
}

/**
 * HMAC-SHA256 with one key, for many messages: the padded-key blocks are hashed once, when
 * the key is set, so each message costs two compressions plus one per 64 bytes of it.
 *
 * @example
 * ```ts
 * import { HmacSha256 } from "./_sha256.ts";
 * const mac = new HmacSha256(new TextEncoder().encode("Jefe"));
 * const tag = mac.sign(new TextEncoder().encode("what do ya want for nothing?"));
 * console.assert(tag.length === 32 && tag[0] === 0x5b);
 * ```
 */
export class HmacSha256 {
  readonly #inner: Int32Array;
  readonly #outer: Int32Array;

  /** Prepares `key` (any length: one longer than a block is hashed first, as RFC 2104 says). */
  constructor(key: Uint8Array) {
    checkBytes(key, "the key");
    const block = new Uint8Array(BLOCK_BYTES);
    block.set(key.length > BLOCK_BYTES ? sha256(key) : key);
    const pad = new Uint8Array(BLOCK_BYTES);
    for (let i = 0; i < BLOCK_BYTES; i++) pad[i] = block[i] ^ 0x36;
    this.#inner = IV.slice();
    compress(this.#inner, pad, 0);
    for (let i = 0; i < BLOCK_BYTES; i++) pad[i] = block[i] ^ 0x5c;
    this.#outer = IV.slice();
    compress(this.#outer, pad, 0);
  }

  /** The 32-byte tag of `data`. */
  sign(data: Uint8Array): Uint8Array {
    checkBytes(data, "data");
    return finish(this.#outer, BLOCK_BYTES, finish(this.#inner, BLOCK_BYTES, data));
  }
}

/**
 * HMAC-SHA256 of `data` under `key`: 32 bytes. For many messages under one key, keep a
 * {@link HmacSha256}.
 *
 * @example
 * ```ts
 * import { hmacSha256 } from "./_sha256.ts";
 * const key = new Uint8Array(20).fill(0x0b);
 * const tag = hmacSha256(key, new TextEncoder().encode("Hi There"));
 * console.assert(tag[0] === 0xb0 && tag[31] === 0xf7);
 * ```
 */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return new HmacSha256(key).sign(data);
}

/**
 * Whether two byte arrays are equal, in a time that depends on their lengths only (not on
 * where they first differ), so that checking a tag does not tell an attacker how much of a
 * guess was right.
 *
 * @example
 * ```ts
 * import { timingSafeEqual } from "./_sha256.ts";
 * console.assert(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])));
 * console.assert(!timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])));
 * ```
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}
