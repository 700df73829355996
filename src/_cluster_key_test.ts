import { test } from "node:test";
import assert from "node:assert/strict";
import { ClusterKey, DatagramWindows, HeartbeatSequences } from "./_cluster_key.ts";

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

test("datagram windows take a number once, late ones within 32 of the highest, and nothing older", () => {
  const seen = new DatagramWindows();
  assert.equal(seen.take("s", 10), true);
  assert.equal(seen.take("s", 10), false, "the same again");
  assert.equal(seen.take("s", 9), true, "late but new");
  assert.equal(seen.take("s", 9), false);
  assert.equal(seen.take("s", 42), true); // 10 is now 32 below the highest: the window's edge
  assert.equal(seen.take("s", 10), false, "still remembered at the edge");
  assert.equal(seen.take("s", 9), false, "older than the window");
  assert.equal(seen.take("s", 11), true);
  assert.equal(seen.take("s", 11), false);
  assert.equal(seen.take("s", 100), true); // a jump past the window forgets all below
  assert.equal(seen.take("s", 68), true);
  assert.equal(seen.take("s", 67), false);
  assert.equal(seen.take("other", 1), true, "sessions are apart");
  // Against a plain set: any order of numbers up to 80 is judged the same.
  let state = 7;
  for (let run = 0; run < 50; run++) {
    const windows = new DatagramWindows();
    const taken = new Set<number>();
    let highest = -Infinity;
    for (let i = 0; i < 200; i++) {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      const n = 1 + (state % 80);
      const expected = !taken.has(n) && n > highest - 33;
      assert.equal(windows.take("s", n), expected, `run ${run}, number ${n}`);
      if (expected) taken.add(n);
      highest = Math.max(highest, n);
    }
  }
});

test("datagram windows keep at most their capacity of sessions, the least recently heard dropped", () => {
  const seen = new DatagramWindows(2);
  seen.take("a", 1);
  seen.take("b", 1);
  seen.take("a", 2); // a heard last
  seen.take("c", 1); // b goes
  assert.equal(seen.size, 2);
  assert.equal(seen.take("a", 2), false, "a is remembered");
  assert.equal(seen.take("b", 1), true, "b was forgotten");
});
