import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LinkPool } from "./_link_pool.ts";

describe("link pool", () => {
  it("a link idle for idleMs is closed and an active one is kept", () => {
    const pool = new LinkPool({ idleMs: 1000 });
    pool.touch("A", 0);
    pool.touch("B", 0);
    pool.touch("B", 900);
    assert.deepEqual(pool.toClose(1000, () => false), ["A"]);
    assert.equal(pool.size, 1);
    assert.deepEqual(pool.toClose(1899, () => false), []);
    assert.deepEqual(pool.toClose(1900, () => false), ["B"]);
  });

  it("over maxLinks the least recently used idle links close first", () => {
    const pool = new LinkPool({ maxLinks: 3, idleMs: 60_000 });
    for (const [i, peer] of ["A", "B", "C", "D", "E"].entries()) pool.touch(peer, i);
    pool.touch("A", 10); // A is now the most recent
    assert.deepEqual(pool.toClose(11, () => false), ["B", "C"]);
    assert.equal(pool.size, 3);
  });

  it("busy and pinned links are never closed, even over the bound", () => {
    const pool = new LinkPool({ maxLinks: 1, idleMs: 100 });
    pool.touch("busy", 0);
    pool.touch("pinned", 0);
    pool.touch("idle", 0);
    pool.pin("pinned");
    assert.deepEqual(pool.toClose(500, (peer) => peer === "busy"), ["idle"]);
    assert.equal(pool.size, 2);
    pool.pin("pinned", false);
    assert.deepEqual(pool.toClose(500, () => false), ["busy", "pinned"]);
  });

  it("a closed link leaves the pool and its pin", () => {
    const pool = new LinkPool({ maxLinks: 1, idleMs: 100 });
    pool.touch("A", 0);
    pool.pin("A");
    pool.closed("A");
    assert.equal(pool.size, 0);
    pool.touch("A", 0);
    assert.deepEqual(pool.toClose(100, () => false), ["A"]);
  });

  it("looks that find nothing idle never make a later idle link stay open", () => {
    const pool = new LinkPool({ idleMs: 1000 });
    assert.deepEqual(pool.toClose(0, () => false), [], "empty");
    pool.touch("A", 10);
    assert.deepEqual(pool.toClose(500, () => false), []);
    pool.touch("B", 600);
    pool.touch("A", 700); // A used again: B is now the oldest
    assert.deepEqual(pool.toClose(1010, () => false), []);
    assert.deepEqual(pool.toClose(1600, () => false), ["B"]);
    assert.deepEqual(pool.toClose(1699, () => false), []);
    assert.deepEqual(pool.toClose(1700, () => false), ["A"]);
    pool.touch("C", 5000);
    assert.deepEqual(pool.toClose(6000, () => false), ["C"], "a link added after the pool emptied");
  });

  it("a link that stops being busy is closed at the next look if it is idle by then", () => {
    const pool = new LinkPool({ idleMs: 100 });
    let busy = true;
    pool.touch("A", 0);
    assert.deepEqual(pool.toClose(200, () => busy), []);
    busy = false;
    assert.deepEqual(pool.toClose(201, () => busy), ["A"]);
  });

  it("nextLookMs says when a look can first find something, so looks before it can be skipped", () => {
    const pool = new LinkPool({ idleMs: 1000, maxLinks: 2 });
    assert.equal(pool.nextLookMs, 0, "a new pool has not looked yet");
    assert.deepEqual(pool.toClose(0, () => false), []);
    assert.equal(pool.nextLookMs, Infinity, "empty: nothing until traffic comes");
    pool.touch("A", 10);
    assert.equal(pool.nextLookMs, 1010);
    assert.deepEqual(pool.toClose(1009, () => false), [], "a look before it finds nothing");
    assert.deepEqual(pool.toClose(1010, () => false), ["A"]);
    pool.touch("B", 2000);
    pool.touch("C", 2001);
    pool.touch("D", 2002);
    assert.equal(pool.nextLookMs, -Infinity, "over maxLinks: look now");
    assert.deepEqual(pool.toClose(2003, () => false), ["B"]);
    assert.equal(pool.nextLookMs, 3001);
    pool.pin("C");
    pool.pin("C", false);
    assert.equal(pool.nextLookMs, 0, "unpinned: it may be idle already");
    assert.deepEqual(pool.toClose(3001, (peer) => peer === "C"), []);
    assert.equal(pool.nextLookMs, 0, "a busy link was passed over: look every time");
  });

  it("bad bounds are refused with a Cannot error", () => {
    assert.throws(() => new LinkPool({ maxLinks: 0 }), /^RangeError: Cannot create link pool/);
    assert.throws(() => new LinkPool({ idleMs: -1 }), /Cannot create link pool: idleMs/);
  });
});
