import { test } from "node:test";
import assert from "node:assert/strict";
import { CryptoRandom } from "./_random.ts";

test("random: int(0, 9) is uniform over 100000 draws (chi-square)", () => {
  const random = new CryptoRandom();
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) counts[random.int(0, 9)]++;
  const expected = 10_000;
  const chi = counts.reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
  // 9 degrees of freedom: above 50 happens about once in ten million runs.
  assert.ok(chi < 50, `chi-square ${chi} for ${counts}`);
});

test("random: ranges past 2^32 and 2^53 stay in bounds and reach both halves", () => {
  const random = new CryptoRandom();
  for (
    const [min, max] of [[0, 2 ** 40], [-(2 ** 52), 2 ** 52], [
      Number.MIN_SAFE_INTEGER,
      Number.MAX_SAFE_INTEGER,
    ]]
  ) {
    let low = 0;
    for (let i = 0; i < 2000; i++) {
      const value = random.int(min, max);
      assert.ok(Number.isSafeInteger(value) && value >= min && value <= max, `${value}`);
      if (value < min / 2 + max / 2) low++;
    }
    assert.ok(low > 800 && low < 1200, `${low} of 2000 in the lower half of [${min}, ${max}]`);
  }
  assert.equal(random.int(-7, -7), -7);
});

test("random: next() has 53 bits: no two of 10000 draws collide", () => {
  const random = new CryptoRandom();
  const seen = new Set<number>();
  for (let i = 0; i < 10_000; i++) seen.add(random.next());
  assert.equal(seen.size, 10_000);
});

test("random: fill covers arrays past getRandomValues' 65536-byte limit", () => {
  const random = new CryptoRandom();
  const bytes = random.fill(new Uint8Array(200_000));
  const tail = bytes.subarray(190_000);
  assert.ok(tail.some((x) => x !== 0), "the end of the array is filled");
  assert.equal(random.fill(new Uint8Array(0)).length, 0);
  assert.throws(() => random.fill([1, 2] as unknown as Uint8Array), TypeError);
});

test("random: invalid ranges throw a RangeError", () => {
  const random = new CryptoRandom();
  assert.throws(() => random.int(2, 1), RangeError);
  assert.throws(() => random.int(0, 1.5), RangeError);
  assert.throws(() => random.int(0, 2 ** 53), RangeError);
  assert.throws(() => random.int(Number.NaN, 1), RangeError);
});
