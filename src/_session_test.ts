import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_UNCERTAIN, OutboundSession } from "./_session.ts";
import { createMessage } from "./message.ts";

const msg = (n: number) => createMessage("w", { n: String(n) });
const ns = (entries: ReadonlyArray<{ message: { message: Record<string, string> } }>) =>
  entries.map((e) => e.message.message.n);

function session(written: number, atMs = 0): OutboundSession {
  const s = new OutboundSession("peer-1", "s1");
  for (let n = 1; n <= written; n++) s.write(msg(n), atMs + n, 10);
  return s;
}

test("messages are numbered in order and leave the window when confirmed", () => {
  const s = session(5);
  assert.deepEqual(s.window.map((e) => e.seq), [1, 2, 3, 4, 5]);
  assert.equal(s.windowBytes, 50);
  s.confirm(3);
  assert.deepEqual(s.window.map((e) => e.seq), [4, 5]);
  assert.equal(s.windowBytes, 20);
  s.confirm(2); // an older count confirms nothing more
  assert.equal(s.window.length, 2);
  assert.throws(() => s.confirm(6), /Cannot confirm 6: expected 0..5/);
  assert.throws(() => s.confirm(-1), RangeError);
});

test("a resume confirms what the peer took and resends exactly the rest, in order", () => {
  const s = session(5);
  s.confirm(1);
  const r = s.resume("s1", 3);
  assert.equal(r.alignTo, 3);
  assert.deepEqual(ns(r.resend), ["4", "5"]);
  assert.deepEqual(r.delivered, []);
  assert.deepEqual(r.notDelivered, []);
});

test("a resume for another session id (one we no longer have) confirms nothing and resends all", () => {
  const s = session(3);
  const r = s.resume("old", 3);
  assert.equal(r.alignTo, 0);
  assert.deepEqual(ns(r.resend), ["1", "2", "3"]);
  assert.deepEqual(ns(s.resume("s1", 99).resend), ["1", "2", "3"], "a count past what was sent");
});

test("messages past the window become uncertain; a resume then tells each outcome", () => {
  const s = session(5, 0); // sent at 1..5 ms
  const expired = s.expire(4); // sent before 4 ms
  assert.deepEqual(ns(expired), ["1", "2", "3"]);
  assert.deepEqual([...s.uncertain.keys()], [1, 2, 3]);
  // The peer had taken 2: 1 and 2 were delivered after all, 3 never will be (not resent).
  const r = s.resume("s1", 2);
  assert.deepEqual(r.delivered.map((m) => m.message.n), ["1", "2"]);
  assert.deepEqual(r.notDelivered.map((m) => m.message.n), ["3"]);
  assert.equal(r.alignTo, 3, "the peer's count skips the message never resent");
  assert.deepEqual(ns(r.resend), ["4", "5"]);
  assert.equal(s.uncertain.size, 0);
});

test("an ack of an uncertain message reports it delivered", () => {
  const s = session(3, 0);
  s.expire(10);
  assert.deepEqual(s.confirm(2).map((m) => m.message.n), ["1", "2"]);
  assert.deepEqual([...s.uncertain.keys()], [3]);
});

test("uncertain messages kept for an outcome are bounded", () => {
  const s = new OutboundSession("p", "s");
  for (let n = 0; n < MAX_UNCERTAIN + 10; n++) s.write(msg(n), 0, 1);
  s.expire(1);
  assert.equal(s.uncertain.size, MAX_UNCERTAIN);
  assert.equal(s.uncertain.keys().next().value, 11, "the oldest were dropped");
});

test("ending a session hands back everything unconfirmed", () => {
  const s = session(4, 0);
  s.expire(3);
  const { window, uncertain } = s.end();
  assert.deepEqual(ns(window), ["3", "4"]);
  assert.deepEqual(uncertain.map((m) => m.message.n), ["1", "2"]);
  assert.equal(s.window.length + s.uncertain.size + s.windowBytes, 0);
});
