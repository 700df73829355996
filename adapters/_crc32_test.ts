import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32 } from "./_crc32.ts";

const encoder = new TextEncoder();

test("crc32: matches the published check values", () => {
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32(encoder.encode("123456789")), 0xcbf43926);
  assert.equal(crc32(encoder.encode("The quick brown fox jumps over the lazy dog")), 0x414fa339);
  assert.equal(crc32(new Uint8Array(32)), 0x190a55ad);
  assert.equal(crc32(new Uint8Array(32).fill(0xff)), 0xff6cab0b);
});

test("crc32: continuing over pieces equals the CRC of the whole", () => {
  const bytes = encoder.encode("a log record, checked in pieces of any size");
  const whole = crc32(bytes);
  for (let cut = 0; cut <= bytes.length; cut++) {
    assert.equal(crc32(bytes, crc32(bytes, 0, 0, cut), cut), whole, `cut at ${cut}`);
  }
});

test("crc32: any single flipped bit changes the CRC", () => {
  const bytes = encoder.encode("durable");
  const original = crc32(bytes);
  for (let i = 0; i < bytes.length * 8; i++) {
    const flipped = bytes.slice();
    flipped[i >> 3] ^= 1 << (i & 7);
    assert.notEqual(crc32(flipped), original, `bit ${i}`);
  }
});
