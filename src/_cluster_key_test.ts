import { test } from "node:test";
import assert from "node:assert/strict";
import { ClusterKey, HeartbeatSequences } from "./_cluster_key.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const FIELDS = ["AutoMPI_SKD_NodeLocation", "A", "10.0.0.1:8888", "1", "f00d", "7"];

test("a heartbeat tag covers every field and their boundaries, and only this key makes it", () => {
  const key = new ClusterKey("k");
  const tag = key.heartbeatTag(FIELDS);
  assert.match(tag, /^[0-9a-f]{64}$/);
  assert.equal(key.checkHeartbeatTag(FIELDS, tag), true);
  for (let i = 0; i < FIELDS.length; i++) {
    const changed = FIELDS.map((f, j) => j === i ? `${f}x` : f);
    assert.equal(key.checkHeartbeatTag(changed, tag), false, `field ${i} changed`);
  }
  // Moving a character across a field boundary changes the tag: fields are length-prefixed.
  const shifted = ["AutoMPI_SKD_NodeLocation", "A1", "0.0.0.1:8888", "1", "f00d", "7"];
  assert.notEqual(key.heartbeatTag(shifted), tag);
  assert.equal(key.checkHeartbeatTag(shifted, tag), false);
  assert.equal(new ClusterKey("K").checkHeartbeatTag(FIELDS, tag), false);
  assert.equal(new ClusterKey(bytes("k")).checkHeartbeatTag(FIELDS, tag), true, "text is UTF-8");
  for (const bad of [undefined, "", tag.toUpperCase(), tag.slice(1), `${tag}0`, 42]) {
    assert.equal(key.checkHeartbeatTag(FIELDS, bad), false, String(bad));
  }
});

test("a link proof is for one direction of one pair of hellos", () => {
  const key = new ClusterKey("k");
  const helloA = bytes("hello of A with nonce 1");
  const helloB = bytes("hello of B with nonce 2");
  const proofOfA = key.linkProof(helloA, helloB);
  // B checks A's proof: B's own hello is helloB, the peer's is helloA.
  assert.equal(key.checkLinkProof(helloB, helloA, proofOfA), true);
  // Reflected back to A as if B had sent it: refused.
  assert.equal(key.checkLinkProof(helloA, helloB, proofOfA), false);
  // Another connection (another nonce): refused.
  assert.equal(key.checkLinkProof(bytes("hello of B with nonce 3"), helloA, proofOfA), false);
  assert.equal(new ClusterKey("x").checkLinkProof(helloB, helloA, proofOfA), false);
  // A heartbeat tag and a link proof never stand in for each other: different labels.
  assert.notEqual(
    key.heartbeatTag(["a", "b"]),
    Array.from(key.linkProof(bytes("a"), bytes("b")), (b) => b.toString(16).padStart(2, "0")).join(
      "",
    ),
  );
});

test("an empty key or one of another type is a TypeError", () => {
  assert.throws(() => new ClusterKey(""), TypeError);
  assert.throws(() => new ClusterKey(new Uint8Array(0)), TypeError);
  assert.throws(() => new ClusterKey(7 as unknown as string), TypeError);
});

test("heartbeat sequences take each number once per incarnation and forget the least recently heard", () => {
  const seen = new HeartbeatSequences(2);
  assert.equal(seen.take("A", "1", 5), true);
  assert.equal(seen.take("A", "1", 5), false);
  assert.equal(seen.take("A", "1", 4), false);
  assert.equal(seen.take("A", "2", 1), true, "a new incarnation starts afresh");
  assert.equal(seen.take("A", "1", 6), true);
  // Full: B's first heartbeat pushes out the least recently heard, incarnation 2 of A.
  assert.equal(seen.take("B", "1", 1), true);
  assert.equal(seen.size, 2);
  assert.equal(seen.take("A", "1", 6), false, "still remembered");
  assert.equal(seen.take("A", "2", 1), true, "forgotten, so taken again");
});
