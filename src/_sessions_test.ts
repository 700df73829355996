import { test } from "node:test";
import assert from "node:assert/strict";
import {
  HELD_MESSAGES_MAX,
  type SessionLink,
  Sessions,
  type SessionsOptions,
} from "./_sessions.ts";
import { type Frame, messageFrame } from "./_link.ts";
import { msgpackCodec } from "./codec.ts";
import { createMessage, type MapMessage } from "./message.ts";
import { SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";

type Link = SessionLink & { out: MapMessage[] };

function link(peerGuid = "B", peerIncarnation = "b1"): Link {
  const out: MapMessage[] = [];
  return {
    peerGuid,
    peerIncarnation,
    state: "active",
    lastSentMs: 0,
    lastReceivedMs: 0,
    session: undefined,
    inbound: undefined,
    held: [],
    aligned: false,
    expectSeq: 0,
    ackScheduled: false,
    out,
    write(frame: Frame) {
      out.push(msgpackCodec.decode(frame.parts[0]));
    },
  };
}

function world(options: Partial<SessionsOptions> = {}) {
  let nowMs = 0;
  const deferred: Array<() => void> = [];
  const reports: string[] = [];
  const linked = new Set<string>(["B"]);
  /** Called with each report, as a node's event handlers are (they may close links). */
  const hooks = { onReport: (_report: string) => {} };
  let hex = 0;
  const stats = { duplicatesDropped: 0 };
  const sessions = new Sessions<Link>({
    clock: { now: () => nowMs, defer: (fn: () => void) => deferred.push(fn) } as never,
    random: { int: () => hex++ % 16 } as never,
    stats,
    frame: (message, transient) => messageFrame(msgpackCodec, message, transient),
    isCurrent: () => true,
    isLinked: (guid) => linked.has(guid),
    undeliverable: (message, reason) => {
      reports.push(`${reason} ${message.message.n}`);
      hooks.onReport(`${reason} ${message.message.n}`);
      return false;
    },
    tooLarge: () => false,
    outcome: (message, outcome) => reports.push(`${outcome} ${message.message.n}`),
    malformed: (_link, error) => reports.push(`malformed: ${error.message}`),
    closeGoodbye: (l) => (l as { state: string }).state = "closed",
  }, {
    enabled: true,
    resendWindowMs: 1000,
    resendWindowBytes: 1 << 20,
    maxFrameBytes: 1 << 20,
    ...options,
  });
  const send = (l: Link, n: number) => {
    const message = createMessage("w", { n: String(n) });
    return sessions.write(l, message, messageFrame(msgpackCodec, message));
  };
  const endTurn = () => {
    while (deferred.length > 0) deferred.shift()!();
  };
  return {
    sessions,
    reports,
    linked,
    hooks,
    stats,
    send,
    endTurn,
    at: (ms: number) => nowMs = ms,
  };
}

const kinds = (l: Link) => l.out.map((m) => m.message[SYSTEM_KEY] ?? `data ${m.message.n}`);
const system = (kind: string, fields: Record<string, string>) => ({
  [SYSTEM_KEY]: kind,
  ...fields,
});

test("a new link says Resume and holds new messages until the peer's Resume", () => {
  const w = world();
  const b = link();
  w.sessions.start(b);
  w.send(b, 1);
  w.send(b, 2);
  assert.deepEqual(kinds(b), [SystemKind.Resume]);
  assert.equal(b.held.length, 2);
  w.sessions.onResume(
    b,
    system(SystemKind.Resume, { [SystemField.Session]: "", [SystemField.Count]: "0" }),
  );
  assert.deepEqual(kinds(b), [SystemKind.Resume, SystemKind.Align, "data 1", "data 2"]);
  assert.equal(b.session!.window.length, 2);
});

test("after a flap only what the peer did not take is written again, before anything new", () => {
  const w = world();
  const first = link();
  w.sessions.start(first);
  w.sessions.onResume(first, system(SystemKind.Resume, { [SystemField.Count]: "0" }));
  for (let n = 1; n <= 3; n++) w.send(first, n);
  w.sessions.linkClosed(first, "reset");
  const second = link();
  w.sessions.start(second);
  w.send(second, 4);
  const id = second.session!.id;
  w.sessions.onResume(
    second,
    system(SystemKind.Resume, { [SystemField.Session]: id, [SystemField.Count]: "2" }),
  );
  assert.deepEqual(kinds(second), [SystemKind.Resume, SystemKind.Align, "data 3", "data 4"]);
  assert.equal(second.out[1].message[SystemField.Count], "2");
});

test("data is taken once in order, acknowledged once per turn; resends are dropped", () => {
  const w = world();
  const b = link();
  w.sessions.start(b);
  assert.equal(w.sessions.take(b), false, "data before Align breaks the session");
  assert.match(w.reports[0], /before the session is aligned/);
  w.sessions.onAlign(
    b,
    system(SystemKind.Align, { [SystemField.Session]: "s", [SystemField.Count]: "0" }),
  );
  assert.equal(w.sessions.take(b), true);
  assert.equal(w.sessions.take(b), true);
  w.endTurn();
  assert.deepEqual(kinds(b).slice(1), [SystemKind.Ack]);
  assert.equal(b.out[1].message[SystemField.Count], "2");
  // The peer resends from 1 after a flap: the two taken are dropped, the third is new.
  w.sessions.onAlign(
    b,
    system(SystemKind.Align, { [SystemField.Session]: "s", [SystemField.Count]: "0" }),
  );
  assert.deepEqual([w.sessions.take(b), w.sessions.take(b), w.sessions.take(b)], [
    false,
    false,
    true,
  ]);
  assert.equal(w.stats.duplicatesDropped, 2);
});

test("acks confirm messages; unconfirmed ones become uncertain past the window, then settle", () => {
  const w = world();
  const b = link();
  w.sessions.start(b);
  w.sessions.onResume(b, system(SystemKind.Resume, { [SystemField.Count]: "0" }));
  w.send(b, 1);
  w.send(b, 2);
  w.sessions.onAck(b, "1");
  w.sessions.linkClosed(b, "reset");
  w.at(2000);
  w.sessions.expire(2000);
  assert.deepEqual(w.reports, ["uncertain 2"]);
  const again = link();
  w.sessions.start(again);
  w.sessions.onResume(
    again,
    system(SystemKind.Resume, { [SystemField.Session]: b.session!.id, [SystemField.Count]: "2" }),
  );
  assert.deepEqual(w.reports, ["uncertain 2", "delivered 2"]);
});

test("each acknowledged message's round trip is timed from its write to the ack's arrival", () => {
  const w = world();
  const b = link();
  w.sessions.start(b);
  w.sessions.onResume(b, system(SystemKind.Resume, { [SystemField.Count]: "0" }));
  const at = (ms: number) => {
    w.at(ms);
    (b as { lastSentMs: number }).lastSentMs = ms; // as a real link's write sets it
  };
  at(100);
  w.send(b, 1);
  at(130);
  w.send(b, 2);
  w.at(150);
  (b as { lastReceivedMs: number }).lastReceivedMs = 150;
  w.sessions.onAck(b, "2");
  const sample = w.sessions.roundTripSeconds.sample();
  assert.equal(sample.counts.reduce((a, c) => a + c, 0), 2);
  assert.ok(Math.abs(sample.sum - (0.05 + 0.02)) < 1e-9, `sum ${sample.sum}`);
  w.sessions.onAck(b, "2");
  assert.equal(
    w.sessions.roundTripSeconds.sample().counts.reduce((a, c) => a + c, 0),
    2,
    "an ack repeated confirms nothing more",
  );
});

test("a goodbye ends the session: what the peer did not take is reported lost at once", () => {
  const w = world();
  const b = link();
  w.sessions.start(b);
  w.sessions.onResume(b, system(SystemKind.Resume, { [SystemField.Count]: "0" }));
  for (let n = 1; n <= 3; n++) w.send(b, n);
  w.sessions.onGoodbye(
    b,
    system(SystemKind.Goodbye, { [SystemField.Session]: b.session!.id, [SystemField.Count]: "1" }),
  );
  assert.equal(b.state, "closed");
  assert.deepEqual(w.reports, ["link-lost 2", "link-lost 3"]);
  assert.equal([...w.sessions.outbound()].length, 0);
});

test("a restarted peer ends the old session: its messages are uncertain", () => {
  const w = world();
  const b = link();
  w.sessions.start(b);
  w.sessions.onResume(b, system(SystemKind.Resume, { [SystemField.Count]: "0" }));
  w.send(b, 1);
  w.sessions.linkClosed(b, "reset");
  w.sessions.start(link("B", "b2"));
  assert.deepEqual(w.reports, ["uncertain 1"]);
});

test("held messages are reported when the link goes down before the peer's Resume", () => {
  const w = world();
  const b = link();
  w.sessions.start(b);
  w.send(b, 1);
  w.sessions.linkClosed(b, "reset");
  assert.deepEqual(w.reports, ["link-lost 1"]);
  const full = link();
  w.sessions.start(full);
  full.held.length = HELD_MESSAGES_MAX;
  assert.equal(w.send(full, 2), false);
  assert.deepEqual(w.reports.slice(1), ["link-buffer-full 2"]);
});

test("without sessions a message is just written and always taken", () => {
  const w = world({ enabled: false });
  const b = link();
  assert.equal(w.send(b, 1), true);
  assert.deepEqual(kinds(b), ["data 1"]);
  assert.equal(w.sessions.take(b), true);
});

test("sessions long idle without a link are dropped", () => {
  const w = world();
  const b = link();
  w.sessions.start(b);
  w.sessions.linkClosed(b, "reset");
  w.linked.delete("B");
  w.at(1001);
  w.sessions.expire(1001);
  assert.equal([...w.sessions.outbound()].length, 0);
});

test("rounds that find nothing due do not delay what falls due later: expiry and drops come on time", () => {
  const w = world();
  const b = link();
  const rounds = (from: number, to: number) => {
    for (let t = from; t <= to; t += 100) {
      w.at(t);
      w.sessions.expire(t);
    }
  };
  w.sessions.start(b);
  w.sessions.onResume(b, system(SystemKind.Resume, { [SystemField.Count]: "0" }));
  rounds(0, 500);
  (b as { lastSentMs: number }).lastSentMs = 500;
  w.send(b, 1);
  rounds(600, 700);
  w.sessions.linkClosed(b, "reset");
  w.linked.delete("B");
  rounds(800, 1500);
  assert.deepEqual(w.reports, [], "written at 500: not past the window of 1000 ms at 1500");
  rounds(1600, 1600);
  assert.deepEqual(w.reports, ["uncertain 1"]);
  // With an uncertain message the session is kept ten windows after its link closed (at 700).
  rounds(1700, 10_700);
  assert.equal([...w.sessions.outbound()].length, 1);
  rounds(10_800, 10_800);
  assert.equal([...w.sessions.outbound()].length, 0);
});

test("a link closed by what a report calls is looked at on the next round, not windows later", () => {
  const w = world();
  const c = link("C", "c1");
  const b = link();
  w.linked.add("C");
  for (const l of [c, b]) {
    w.sessions.start(l);
    w.sessions.onResume(l, system(SystemKind.Resume, { [SystemField.Count]: "0" }));
  }
  w.send(c, 2);
  w.send(b, 1);
  w.sessions.linkClosed(b, "reset");
  w.linked.delete("B");
  // Reporting B's message closes C's link: C was already passed over (its link was up).
  w.hooks.onReport = (report) => {
    if (report !== "uncertain 1") return;
    w.sessions.linkClosed(c, "reset");
    w.linked.delete("C");
  };
  w.at(1001);
  w.sessions.expire(1001);
  assert.deepEqual(w.reports, ["uncertain 1"]);
  w.at(1100);
  w.sessions.expire(1100);
  assert.deepEqual(w.reports, ["uncertain 1", "uncertain 2"]);
});
