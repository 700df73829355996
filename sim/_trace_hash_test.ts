import { it } from "node:test";
import assert from "node:assert/strict";
import { digestBytes } from "./_trace_hash.ts";

it("a datagram digest changes with any of the first bytes and with the length, not with later bytes", () => {
  const bytes = Uint8Array.from({ length: 40 }, (_, i) => i * 7);
  const digest = digestBytes(bytes, 32);
  assert.equal(digestBytes(bytes.slice(), 32), digest);
  for (const at of [0, 3, 4, 30, 31]) {
    const changed = bytes.slice();
    changed[at] ^= 1;
    assert.notEqual(digestBytes(changed, 32), digest, `byte ${at}`);
  }
  const late = bytes.slice();
  late[35] ^= 1;
  assert.equal(digestBytes(late, 32), digest, "bytes past the limit are not read");
  assert.notEqual(digestBytes(bytes.subarray(0, 39), 32), digest, "the length is");
  // Integer-only: the same word on every engine (this one is checked on Deno and Bun alike), as
  // the stored trace hashes need.
  assert.equal(digestBytes(Uint8Array.of(1, 2, 3, 4, 5), 32), 247433562);
});
