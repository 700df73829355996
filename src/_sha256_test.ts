import { test } from "node:test";
import assert from "node:assert/strict";
import { HmacSha256, hmacSha256, sha256, timingSafeEqual } from "./_sha256.ts";

const text = (s: string) => new TextEncoder().encode(s);
const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fill = (length: number, value: number) => new Uint8Array(length).fill(value);

/** Deterministic test bytes (xorshift32), so a failure names an input that can be rebuilt. */
function bytesOf(length: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let x = seed | 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

test("sha256 gives the FIPS 180-4 example digests", () => {
  const cases: Array<[Uint8Array, string]> = [
    [text(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    [text("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
    [
      text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ],
    [
      text(
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
      ),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
    ],
    [fill(1_000_000, 0x61), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"],
  ];
  for (const [data, digest] of cases) assert.equal(hex(sha256(data)), digest);
});

test("hmacSha256 gives the RFC 4231 test case tags", () => {
  const cases: Array<[Uint8Array, Uint8Array, string]> = [
    [
      fill(20, 0x0b),
      text("Hi There"),
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ],
    [
      text("Jefe"),
      text("what do ya want for nothing?"),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ],
    [
      fill(20, 0xaa),
      fill(50, 0xdd),
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ],
    [
      Uint8Array.from({ length: 25 }, (_, i) => i + 1),
      fill(50, 0xcd),
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ],
    [
      fill(131, 0xaa),
      text("Test Using Larger Than Block-Size Key - Hash Key First"),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ],
    [
      fill(131, 0xaa),
      text(
        "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
      ),
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ],
  ];
  for (const [key, data, tag] of cases) {
    assert.equal(hex(hmacSha256(key, data)), tag);
    assert.equal(hex(new HmacSha256(key).sign(data)), tag, "the same with a kept key");
  }
  // Test case 5 is truncated to 128 bits.
  assert.equal(
    hex(hmacSha256(fill(20, 0x0c), text("Test With Truncation")).subarray(0, 16)),
    "a3b6167473100ee06e0c796c2955552b",
  );
});

test("sha256 and HMAC-SHA256 agree with crypto.subtle at every length around the block edges", async () => {
  const lengths = [0, 1, 31, 32, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 200, 1000, 4097];
  const keyLengths = [1, 16, 32, 63, 64, 65, 100, 200];
  for (const length of lengths) {
    const data = bytesOf(length, length + 7);
    const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    assert.equal(hex(sha256(data)), hex(expected), `sha256 of ${length} bytes`);
    for (const keyLength of keyLengths) {
      const key = bytesOf(keyLength, 1000 + keyLength);
      const cryptoKey = await crypto.subtle.importKey(
        "raw",
        key,
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const tag = new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, data));
      assert.equal(
        hex(new HmacSha256(key).sign(data)),
        hex(tag),
        `HMAC of ${length} bytes under a ${keyLength}-byte key`,
      );
    }
  }
});

test("a kept HMAC key gives the same tag every time, and different data a different tag", () => {
  const mac = new HmacSha256(text("cluster secret"));
  const a = mac.sign(text("heartbeat 1"));
  assert.deepEqual(mac.sign(text("heartbeat 1")), a);
  assert.notDeepEqual(mac.sign(text("heartbeat 2")), a);
  assert.notDeepEqual(new HmacSha256(text("cluster secreT")).sign(text("heartbeat 1")), a);
});

test("timingSafeEqual compares whole arrays, lengths included", () => {
  assert.equal(timingSafeEqual(new Uint8Array(0), new Uint8Array(0)), true);
  assert.equal(timingSafeEqual(bytesOf(32, 1), bytesOf(32, 1)), true);
  const other = bytesOf(32, 1);
  other[31] ^= 1;
  assert.equal(timingSafeEqual(bytesOf(32, 1), other), false);
  assert.equal(timingSafeEqual(bytesOf(32, 1), bytesOf(31, 1)), false);
});

test("non-byte input is a TypeError", () => {
  assert.throws(() => sha256("abc" as unknown as Uint8Array), TypeError);
  assert.throws(() => new HmacSha256([1, 2] as unknown as Uint8Array), TypeError);
});
