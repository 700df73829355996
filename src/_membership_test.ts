import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  beatRound,
  hash32,
  hearRepeat,
  type MemberEvent,
  Membership,
  type MembershipMessage,
  type MembershipOptions,
  ROUND_NOT_TAKEN,
  ROUND_TAKEN,
  ROUND_TAKEN_SYNC,
  supersedes,
} from "./_membership.ts";

/** A tiny deterministic network of memberships: 1 ms per datagram, seeded draws, no simulator. */
class Net {
  readonly nodes = new Map<string, Membership>();
  readonly byAddress = new Map<string, string>();
  readonly events: (MemberEvent & { at: string; atMs: number })[] = [];
  readonly crashed = new Set<string>();
  /** Drops a datagram when it returns true. */
  drop: (from: string, to: string, message: MembershipMessage) => boolean = () => false;
  sent = 0;
  nowMs = 0;
  #queue: { atMs: number; to: string; fromAddress: string; message: MembershipMessage }[] = [];
  #state: number;

  constructor(seed: number, readonly options: Partial<MembershipOptions> = {}) {
    this.#state = seed >>> 0 || 1;
  }

  random(): number {
    // xorshift32: enough for choosing members.
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state / 2 ** 32;
  }

  add(guid: string, version = 1): Membership {
    const address = `${guid}:1`;
    const node = new Membership({
      now: () => this.nowMs,
      randomInt: (bound) => Math.floor(this.random() * bound),
      send: (to, message) => {
        this.sent++;
        if (this.drop(guid, this.byAddress.get(to) ?? to, message)) return;
        this.#queue.push({ atMs: this.nowMs + 1, to, fromAddress: address, message });
      },
      changed: (event) => {
        this.events.push({ ...event, at: guid, atMs: this.nowMs });
      },
    }, { guid, address, version, intervalMs: 1000, ...this.options });
    this.nodes.set(guid, node);
    this.byAddress.set(address, guid);
    this.crashed.delete(guid);
    return node;
  }

  /** Every member hears every other's discovery broadcast. */
  meshHeard(): void {
    for (const [guid, node] of this.nodes) {
      for (const other of this.nodes.values()) {
        if (other.self.guid !== guid) node.heard(other.self);
      }
    }
  }

  /** Runs for `ms`, ticking every member at each whole interval (in a fixed order). */
  run(ms: number): void {
    const end = this.nowMs + ms;
    while (this.nowMs < end) {
      this.nowMs++;
      const due = this.#queue.filter((d) => d.atMs <= this.nowMs);
      this.#queue = this.#queue.filter((d) => d.atMs > this.nowMs);
      for (const d of due) {
        const guid = this.byAddress.get(d.to);
        if (guid === undefined || this.crashed.has(guid)) continue;
        this.nodes.get(guid)!.receive(d.message, d.fromAddress);
      }
      for (const [guid, node] of this.nodes) {
        if (!this.crashed.has(guid) && node.nextWakeMs() <= this.nowMs) node.tick();
      }
    }
  }

  alive(): Membership[] {
    return [...this.nodes].filter(([guid]) => !this.crashed.has(guid)).map(([, node]) => node);
  }
}

function cluster(n: number, seed = 7, options: Partial<MembershipOptions> = {}): Net {
  const net = new Net(seed, options);
  for (let i = 0; i < n; i++) net.add(`N${String(i).padStart(4, "0")}`);
  net.meshHeard();
  return net;
}

/**
 * One member "A" (1 s intervals, draws always 0) that heard `others` (`b:1`, `c:1`, …); what it
 * sends is recorded, and the test sets `clock.now`.
 */
function lone(others: string[], options: Partial<MembershipOptions> = {}) {
  const sent: [string, MembershipMessage][] = [];
  const clock = { now: 0 };
  const a = new Membership({
    now: () => clock.now,
    randomInt: () => 0,
    send: (to, message) => void sent.push([to, message]),
    changed: () => {},
  }, { guid: "A", address: "a:1", version: 1, intervalMs: 1000, ...options });
  for (const guid of others) {
    a.heard({ guid, address: `${guid.toLowerCase()}:1`, version: 1, status: "alive" });
  }
  return { a, sent, clock };
}

describe("membership", () => {
  it("members that heard each other watch K predecessors and raise no suspicion in 20 intervals", () => {
    const net = cluster(12);
    net.run(20_000);
    for (const node of net.nodes.values()) {
      assert.equal(node.liveCount, 12);
      assert.equal(node.watching().length, 2);
      assert.equal(node.stats.pingsSent, 0, "healthy members are never probed");
      assert.equal(node.stats.suspicions, 0);
    }
    assert.deepEqual(net.events.filter((e) => e.type !== "member-up"), []);
  });

  it("each member is watched by exactly K others", () => {
    const net = cluster(40);
    const watchers = new Map<string, number>();
    for (const node of net.nodes.values()) {
      for (const guid of node.watching()) watchers.set(guid, (watchers.get(guid) ?? 0) + 1);
    }
    assert.equal(watchers.size, 40);
    for (const count of watchers.values()) assert.equal(count, 2);
  });

  it("a crashed member is known dead by every member within 3 intervals of its last ack", () => {
    const net = cluster(60, 11);
    net.run(5_000);
    net.crashed.add("N0017");
    const crashMs = net.nowMs;
    net.run(6_000);
    for (const node of net.alive()) {
      assert.equal(node.get("N0017")?.status, "dead", `${node.self.guid} still thinks it lives`);
    }
    const downs = net.events.filter((e) => e.type === "member-down" && e.member.guid === "N0017");
    assert.equal(new Set(downs.map((e) => e.at)).size, 59);
    const lastKnownMs = Math.max(...downs.map((e) => e.atMs));
    // The last ack came at most one interval before the crash.
    assert.ok(
      lastKnownMs - crashMs <= 3_000 + 50,
      `known everywhere only ${lastKnownMs - crashMs} ms after`,
    );
    // No one else was suspected.
    assert.deepEqual(
      net.events.filter((e) => e.type !== "member-up" && e.member.guid !== "N0017"),
      [],
    );
  });

  it("a late subject is probed when the next datagram arrives, with no timer of its own", () => {
    const { a, sent, clock } = lone(["B", "C"]);
    a.tick(); // the first round at 0; A watches B and C
    assert.deepEqual(a.watching().sort(), ["B", "C"]);
    clock.now = 200;
    a.receive({ kind: "beat", from: "B", updates: [] }, "b:1");
    a.receive({ kind: "beat", from: "C", updates: [] }, "c:1");
    // Only the next round wakes A: lateness has no timer.
    assert.equal(a.nextWakeMs(), 1000);
    clock.now = 1000;
    a.tick();
    clock.now = 1200;
    a.receive({ kind: "beat", from: "C", updates: [] }, "c:1"); // B's beat did not come
    sent.length = 0;
    clock.now = 1460; // B last heard 1,260 ms ago: late; C's beat arrives and A looks
    a.receive({ kind: "beat", from: "C", updates: [] }, "c:1");
    assert.ok(sent.some(([to, m]) => to === "b:1" && m.kind === "ping"), "B pinged at once");
    // Now a probe runs: its timeout wakes A before the next round.
    assert.equal(a.nextWakeMs(), 1460 + 400);
    // C's beats before the timeout leave B alone; the first one after it finds B unanswered.
    clock.now = 1800;
    a.receive({ kind: "beat", from: "C", updates: [] }, "c:1");
    assert.equal(a.get("B")?.status, "alive");
    clock.now = 1860;
    a.receive({ kind: "beat", from: "C", updates: [] }, "c:1");
    assert.equal(a.get("B")?.status, "suspect");
    // B answers at last: heard again, it is probed anew only once it is late again.
    clock.now = 1900;
    a.receive({ kind: "beat", from: "B", updates: [] }, "b:1");
    sent.length = 0;
    clock.now = 2990;
    a.receive({ kind: "beat", from: "C", updates: [] }, "c:1");
    assert.ok(!sent.some(([to, m]) => to === "b:1" && m.kind === "ping"), "not late yet");
    clock.now = 3000;
    a.receive({ kind: "beat", from: "C", updates: [] }, "c:1");
    assert.ok(sent.some(([to, m]) => to === "b:1" && m.kind === "ping"), "late again: pinged");
  });

  it("a repeat of a watched member's plain beat is taken by hearRepeat as receive would take it", () => {
    const { a, sent, clock } = lone(["B", "C"]);
    a.tick();
    const fromB: MembershipMessage = { kind: "beat", from: "B", updates: [] };
    const fromC: MembershipMessage = { kind: "beat", from: "C", updates: [] };
    clock.now = 200;
    a.receive(fromB, "b:1");
    a.receive(fromC, "c:1");
    const slotB = a.beatSlot(fromB);
    const slotC = a.beatSlot(fromC);
    const epoch = a.beatEpoch;
    assert.deepEqual([slotB, slotC].sort(), [0, 1]);
    // Ten intervals of repeats alone, never through receive: no one is probed.
    sent.length = 0;
    for (let round = 1; round <= 10; round++) {
      clock.now = round * 1000;
      a.tick();
      clock.now = round * 1000 + 200;
      assert.equal(hearRepeat(a.beatsSlab, a.beatsAt, slotB, epoch, clock.now), true);
      assert.equal(hearRepeat(a.beatsSlab, a.beatsAt, slotC, epoch, clock.now), true);
    }
    const probes = sent.filter(([, m]) => m.kind === "ping" || m.kind === "ping-req");
    assert.deepEqual(probes, [], "no probes");
    assert.equal(a.stats.suspicions, 0);
    // B falls silent. Once it is late, C's repeat is refused (B must be probed) and changes
    // nothing; receive then probes B.
    clock.now = 11_000;
    a.tick();
    sent.length = 0;
    clock.now = 11_200;
    assert.equal(
      hearRepeat(a.beatsSlab, a.beatsAt, slotC, epoch, clock.now),
      true,
      "B not late yet",
    );
    clock.now = 11_300;
    assert.equal(
      hearRepeat(a.beatsSlab, a.beatsAt, slotC, epoch, clock.now),
      false,
      "B late: refused",
    );
    assert.ok(!sent.some(([to]) => to === "b:1"), "a refused repeat sends nothing");
    a.receive(fromC, "c:1");
    assert.ok(sent.some(([to, m]) => to === "b:1" && m.kind === "ping"), "B pinged");
    // The probe changed the epoch: no repeat is taken under the old one, and none gets a slot
    // while the probe is out.
    assert.notEqual(a.beatEpoch, epoch);
    assert.equal(hearRepeat(a.beatsSlab, a.beatsAt, slotC, epoch, 11_400), false);
    assert.equal(a.beatSlot(fromC), -1);
    // B answers: the probe ends and repeats get slots again.
    clock.now = 11_350;
    a.receive(fromB, "b:1");
    assert.equal(a.beatSlot(fromB), slotB);
    assert.equal(hearRepeat(a.beatsSlab, a.beatsAt, slotB, a.beatEpoch, 11_400), true);
  });

  it("a quiet round is taken by beatRound as tick would take it, and refused when tick has more to do", () => {
    // Two twins fed the same datagrams: one ticks, the other takes beatRound where it may.
    const ticked = lone(["B", "C", "D"]);
    const short = lone(["B", "C", "D"]);
    const both = (fn: (m: Membership, clock: { now: number }) => void) => {
      fn(ticked.a, ticked.clock);
      fn(short.a, short.clock);
    };
    both((a) => a.tick());
    // One message per member, as a member's plain beats are (a watch knows its last one).
    const plain = new Map(
      ["B", "C", "D"].map((
        from,
      ) => [from, { kind: "beat", from, updates: [] } as MembershipMessage]),
    );
    const beat = (from: string): MembershipMessage => plain.get(from)!;
    const hearAll = (at: number) =>
      both((a, clock) => {
        clock.now = at;
        for (const from of ["B", "C", "D"]) a.receive(beat(from), `${from.toLowerCase()}:1`);
      });
    hearAll(100);
    // The monitors as the caller noted them after a tick (the ring does so).
    let epoch = short.a.monitorEpoch;
    let monitors = short.a.monitorAddresses();
    assert.equal(monitors.length, 2);
    // What beatRound answered: 0 not taken (tick's), 1 taken, 2 taken with its sync due.
    const round = (at: number): number => {
      ticked.clock.now = at;
      short.clock.now = at;
      ticked.a.tick();
      const taken = beatRound(short.a.beatsSlab, short.a.beatsAt, at, monitors.length, epoch);
      if (taken !== ROUND_NOT_TAKEN) {
        for (const to of monitors) short.sent.push([to, { kind: "beat", from: "A", updates: [] }]);
        if (taken === ROUND_TAKEN_SYNC) short.a.syncRound();
        return taken;
      }
      short.a.tick();
      epoch = short.a.monitorEpoch;
      monitors = short.a.monitorAddresses();
      return taken;
    };
    const taken: number[] = [];
    for (let k = 1; k <= 10; k++) {
      taken.push(round(k * 1000));
      hearAll(k * 1000 + 100);
    }
    // Every fifth round is an anti-entropy sync (the first was before these): its digest too.
    assert.deepEqual(taken, [1, 1, 1, 2, 1, 1, 1, 1, 2, 1]);
    assert.equal(short.sent.filter(([, m]) => m.kind === "sync").length, 2);
    assert.deepEqual(short.sent, ticked.sent, "the same datagrams");
    assert.equal(short.a.stats.syncsSent, ticked.a.stats.syncsSent);
    assert.equal(short.a.rounds, ticked.a.rounds);
    assert.equal(short.a.stats.beatsSent, ticked.a.stats.beatsSent);
    assert.equal(short.a.nextWakeMs(), ticked.a.nextWakeMs());
    // Not due yet, or with an old epoch of monitors: refused, nothing changed.
    assert.equal(beatRound(short.a.beatsSlab, short.a.beatsAt, 10_500, 2, epoch), ROUND_NOT_TAKEN);
    assert.equal(
      beatRound(short.a.beatsSlab, short.a.beatsAt, 11_000, 2, epoch - 1),
      ROUND_NOT_TAKEN,
    );
    // A watched member falls silent: the round that finds it late is tick's (it probes).
    const watched = ["B", "C", "D"].filter((guid) => short.a.beatSlot(beat(guid)) >= 0);
    assert.equal(watched.length, 2);
    const [silent, talking] = watched;
    assert.equal(round(11_000), ROUND_TAKEN, `${silent} heard at 10,100: not late yet`);
    both((a, clock) => {
      clock.now = 11_100;
      a.receive(beat(talking), `${talking.toLowerCase()}:1`);
    });
    assert.equal(round(12_000), ROUND_NOT_TAKEN, `${silent} late (1.1 intervals): tick probes it`);
    const pinged = short.sent.filter(([, m]) => m.kind === "ping").map(([to]) => to);
    assert.deepEqual(pinged, [`${silent.toLowerCase()}:1`]);
    assert.deepEqual(short.sent, ticked.sent);
    // While the probe is out: tick's. Then the member answers; round 15 is a sync.
    assert.equal(round(13_000), ROUND_NOT_TAKEN, "the probe is out");
    hearAll(13_100);
    assert.equal(round(14_000), ROUND_NOT_TAKEN, "the round after the probe: still tick's");
    hearAll(14_100);
    // News (B restarted: a newer version) rides on the next two rounds of beats, which are
    // tick's (the second finds the queue empty after it). Then rounds are short again.
    both((a, clock) => {
      clock.now = 14_200;
      a.heard({ guid: "B", address: "b:1", version: 2, status: "alive" });
    });
    const after: number[] = [];
    for (let k = 15; k <= 18; k++) {
      after.push(round(k * 1000));
      hearAll(k * 1000 + 100);
    }
    assert.deepEqual(after, [ROUND_NOT_TAKEN, ROUND_NOT_TAKEN, ROUND_TAKEN, ROUND_TAKEN]);
    assert.deepEqual(short.sent, ticked.sent);
    assert.equal(short.a.stats.beatsSent, ticked.a.stats.beatsSent);
  });

  it("a beat with news, one from an unwatched member, and any beat while a member is probed get no slot", () => {
    const { a, clock } = lone(["B", "C", "D"]);
    a.tick();
    const watched = a.watching();
    const unwatched = ["B", "C", "D"].find((guid) => !watched.includes(guid))!;
    const plain = (from: string): MembershipMessage => ({ kind: "beat", from, updates: [] });
    clock.now = 100;
    const beat = plain(watched[0]);
    a.receive(beat, "x:1");
    assert.ok(a.beatSlot(beat) >= 0);
    const news: MembershipMessage = {
      kind: "beat",
      from: watched[1],
      updates: [{ guid: "E", address: "e:1", version: 1, status: "alive" }],
    };
    a.receive(news, "x:1");
    assert.equal(a.beatSlot(news), -1, "news goes through receive");
    const stranger = plain(unwatched);
    a.receive(stranger, "x:1");
    assert.equal(a.beatSlot(stranger), -1, "an unwatched member's beat");
    const ping: MembershipMessage = { kind: "ping", from: watched[0], seq: 1, updates: [] };
    a.receive(ping, "x:1");
    assert.equal(a.beatSlot(ping), -1, "only beats");
    // A member probed out of turn: every beat goes through receive until it answers.
    const epoch = a.beatEpoch;
    a.probe(unwatched);
    assert.notEqual(a.beatEpoch, epoch);
    assert.equal(a.beatSlot(beat), -1);
    a.close();
    assert.equal(a.beatSlot(plain(watched[1])), -1, "closed");
  });

  it("a death or a suspicion learned only through anti-entropy (never flooded) still runs its course", () => {
    const sync = (guid: string, status: "suspect" | "dead"): MembershipMessage => ({
      kind: "sync",
      from: "B",
      digest: 0,
      page: 0,
      pages: 1,
      reply: false,
      updates: [{ guid, address: `${guid.toLowerCase()}:1`, version: 1, status }],
    });
    // What A holds about `guid` at each of six quiet rounds (every watched member beats) after
    // it heard `status` about it in a sync at 100 ms.
    const course = (guid: string, status: "suspect" | "dead") => {
      const { a, clock } = lone(["B", "C", "D", "E"], { tombstoneMs: 5000 });
      a.tick();
      clock.now = 100;
      a.receive(sync(guid, status), "b:1");
      const seen: string[] = [];
      for (let ms = 1000; ms <= 6000; ms += 1000) {
        clock.now = ms;
        a.tick();
        for (const watched of a.watching()) {
          a.receive({ kind: "beat", from: watched, updates: [] }, `${watched.toLowerCase()}:1`);
        }
        seen.push(a.get(guid)?.status ?? "-");
      }
      return seen;
    };
    // D's tombstone goes tombstoneMs after it was learned.
    assert.deepEqual(course("D", "dead"), ["dead", "dead", "dead", "dead", "dead", "-"]);
    // E's suspicion runs out at the first round (suspicionMs 800), and its tombstone follows.
    assert.deepEqual(course("E", "suspect"), ["dead", "dead", "dead", "dead", "dead", "-"]);
  });

  it("a ping from an address is answered at that address written out, brackets for IPv6", () => {
    const { a, sent } = lone(["B"]);
    a.receive({ kind: "ping", from: "B", seq: 4, updates: [] }, { host: "::1", port: 7 });
    a.receive({ kind: "ping", from: "B", seq: 5, updates: [] }, { host: "10.0.0.2", port: 8 });
    a.receive({ kind: "ping", from: "B", seq: 6, updates: [] }, "b:1");
    assert.deepEqual(
      sent.filter(([, m]) => m.kind === "ack").map(([to, m]) => [to, m.kind === "ack" && m.seq]),
      [["[::1]:7", 4], ["10.0.0.2:8", 5], ["b:1", 6]],
    );
  });

  it("past floodsPerInterval news is not flooded at once but rides along, and the budget renews each round", () => {
    const { a, sent, clock } = lone(["B", "C", "D", "E"], { floodsPerInterval: 1 });
    a.tick();
    sent.length = 0;
    // Two joiners' own claims arrive in one interval: only the first is flooded.
    a.receive({
      kind: "gossip",
      from: "B",
      updates: [{ guid: "F", address: "f:1", version: 1, status: "alive" }],
    }, "b:1");
    const afterFirst = sent.filter(([, m]) => m.kind === "gossip").length;
    assert.ok(afterFirst >= 2, "the first claim is flooded");
    a.receive({
      kind: "gossip",
      from: "B",
      updates: [{ guid: "G", address: "g:1", version: 1, status: "alive" }],
    }, "b:1");
    assert.equal(
      sent.filter(([, m]) => m.kind === "gossip").length,
      afterFirst,
      "no flood past the budget",
    );
    clock.now = 1000;
    a.tick(); // the beats of the next round carry G
    const beats = sent.filter(([, m]) => m.kind === "beat");
    assert.ok(beats.some(([, m]) => m.updates.some((u) => u.guid === "G")), "G rides on the beats");
    a.receive({
      kind: "gossip",
      from: "B",
      updates: [{ guid: "H", address: "h:1", version: 1, status: "alive" }],
    }, "b:1");
    assert.ok(
      sent.filter(([, m]) => m.kind === "gossip").length > afterFirst,
      "a new round, a new flood",
    );
  });

  it("a member probed out of turn is suspected when nothing comes back, and left alone when it answers", () => {
    const { a, sent, clock } = lone(["B", "C", "D", "E", "F", "G"]);
    a.tick();
    const unwatched = ["B", "C", "D", "E", "F", "G"].filter((g) => !a.watching().includes(g));
    const [quiet, answering] = unwatched;
    sent.length = 0;
    clock.now = 100;
    a.probe(quiet);
    a.probe(answering);
    a.probe(quiet); // once per ping timeout
    const pings = sent.filter(([, m]) => m.kind === "ping");
    assert.equal(pings.length, 2);
    assert.equal(a.nextWakeMs(), 500, "the ping timeout wakes the node");
    clock.now = 150;
    a.receive({ kind: "ack", from: answering, subject: answering, seq: 1, updates: [] }, "x:1");
    clock.now = 500;
    a.tick();
    assert.equal(a.get(quiet)?.status, "suspect");
    assert.equal(a.get(answering)?.status, "alive");
  });

  it("tables sent to several joiners in one round are the same messages; a new round builds them again", () => {
    const { a, sent, clock } = lone(["B", "C", "D"], { syncPageSize: 2 });
    a.tick();
    sent.length = 0;
    a.join("x:1");
    a.join("y:1");
    const toX = sent.filter(([to]) => to === "x:1").map(([, m]) => m);
    const toY = sent.filter(([to]) => to === "y:1").map(([, m]) => m);
    assert.equal(toX.length, 2, "four records in pages of two");
    assert.ok(toX.every((m, i) => m === toY[i]), "the same page objects");
    clock.now = 1000;
    a.tick();
    sent.length = 0;
    a.join("z:1");
    assert.ok(sent.every(([, m]) => !toX.includes(m)), "built again in a new round");
    a.heard({ guid: "E", address: "e:1", version: 1, status: "alive" });
    sent.length = 0;
    a.join("w:1");
    assert.equal(sent.length, 3, "a changed table is built again");
  });

  it("a broken path between a monitor and its subject is bridged by indirect probes", () => {
    const net = cluster(10, 3);
    const node = net.nodes.get("N0004")!;
    const subject = node.watching()[0];
    net.drop = (from, to) =>
      (from === "N0004" && to === subject) || (from === subject && to === "N0004");
    net.run(20_000);
    for (const member of net.nodes.values()) assert.equal(member.get(subject)?.status, "alive");
    assert.equal(node.stats.suspicions, 0);
    assert.ok(node.stats.pingReqsSent > 0);
  });

  it("a member suspected wrongly refutes with a higher version and everyone keeps it alive", () => {
    const net = cluster(20, 5);
    net.run(3_000);
    const victim = net.nodes.get("N0009")!;
    const before = victim.self.version;
    // A claim from nowhere: N0009 is suspect at its current version.
    net.nodes.get("N0001")!.receive(
      { kind: "gossip", from: "N0002", updates: [{ ...victim.self, status: "suspect" }] },
      "N0002:1",
    );
    net.run(5_000);
    assert.equal(victim.self.version, before + 1);
    assert.equal(victim.stats.refutations, 1);
    for (const node of net.nodes.values()) {
      assert.equal(node.get("N0009")?.status, "alive", node.self.guid);
      assert.equal(node.get("N0009")?.version, before + 1);
    }
  });

  it("a member that joins through a seed becomes known to every member within a few ms", () => {
    const net = cluster(30, 9);
    net.run(2_000);
    const joiner = net.add("J0001", 5);
    joiner.join("N0003:1");
    net.run(20);
    for (const node of net.nodes.values()) {
      assert.equal(node.get("J0001")?.status, "alive", node.self.guid);
    }
    assert.equal(joiner.liveCount, 31);
  });

  it("anti-entropy makes every table equal after floods were lost", () => {
    const net = cluster(25, 21);
    net.run(2_000);
    // Gossip is lost while three members join through different seeds.
    net.drop = (_from, _to, message) => message.kind === "gossip";
    net.add("J1", 1).join("N0001:1");
    net.add("J2", 1).join("N0010:1");
    net.add("J3", 1).join("N0020:1");
    net.run(1_000);
    const digests = () => new Set([...net.nodes.values()].map((node) => node.digest));
    assert.ok(digests().size > 1, "the floods were not lost");
    net.drop = () => false;
    net.run(60_000);
    assert.equal(digests().size, 1);
    for (const node of net.nodes.values()) assert.equal(node.liveCount, 28);
  });

  it("a restarted member with a newer version replaces its tombstone", () => {
    const net = cluster(8, 4);
    net.run(2_000);
    net.crashed.add("N0005");
    net.run(6_000);
    assert.equal(net.nodes.get("N0000")!.get("N0005")?.status, "dead");
    const restarted = net.add("N0005", 50_000);
    restarted.join("N0000:1");
    net.run(3_000);
    for (const node of net.alive()) {
      assert.equal(node.get("N0005")?.status, "alive", node.self.guid);
      assert.equal(node.liveCount, 8);
    }
  });

  it("a restarted member whose version is lower than its tombstone refutes the tombstone", () => {
    const net = cluster(6, 12);
    net.run(2_000);
    net.crashed.add("N0002");
    net.run(6_000);
    const restarted = net.add("N0002", 0); // its clock went backwards
    restarted.join("N0000:1");
    net.run(3_000);
    assert.ok(restarted.self.version > 1);
    for (const node of net.alive()) assert.equal(node.get("N0002")?.status, "alive");
  });

  it("messages per member per interval do not grow with the cluster size", () => {
    const perMemberPerInterval = (n: number) => {
      const net = cluster(n, 33);
      net.run(10_000); // start-up
      const before = net.sent;
      net.run(50_000);
      return (net.sent - before) / n / 50;
    };
    const small = perMemberPerInterval(20);
    const large = perMemberPerInterval(300);
    // K beats + a digest every 5 intervals (and its answer when tables differ).
    assert.ok(small >= 2 && small <= 2.5, `${small}`);
    assert.ok(Math.abs(large - small) < 0.5, `${small} vs ${large}`);
  });

  it("a page of many new members is reported only once the ring holds them all", () => {
    const seen: { guid: string; live: number; owner: string }[] = [];
    const a: Membership = new Membership({
      now: () => 0,
      randomInt: () => 0,
      send: () => {},
      changed: (event) =>
        seen.push({
          guid: event.member.guid,
          live: a.live().length,
          owner: a.successorsOf("worker-7")[0].guid,
        }),
    }, { guid: "A", address: "a:1", version: 1, intervalMs: 1000 });
    const updates = Array.from({ length: 50 }, (_, i) => ({
      guid: `N${i}`,
      address: `n${i}:1`,
      version: 1,
      status: "alive" as const,
    }));
    a.receive(
      { kind: "sync", from: "N0", digest: 1, reply: false, page: 0, pages: 1, updates },
      "n0:1",
    );
    assert.equal(seen.length, 50);
    const owner = a.successorsOf("worker-7")[0].guid;
    for (const event of seen) {
      assert.equal(event.live, 51, `${event.guid} was reported before the ring held the page`);
      assert.equal(event.owner, owner);
    }
    assert.equal(a.watching().length, 2, "whom it watches was worked out from the whole page");
  });

  it("news rides on at most two rounds of beats, newest first, and old news past the queue is left to anti-entropy", () => {
    const { a, sent, clock } = lone(["B", "C", "D"], { maxPiggyback: 8 });
    // 40 claims A did not know, flooded to it one by one: more than the queue keeps. (Deaths of
    // members it heard of but not flooded, so once they are dead its ring, its monitors and its
    // subjects are as they were.)
    for (let i = 0; i < 40; i++) {
      a.heard({ guid: `X${i}`, address: `x${i}:1`, version: 1, status: "alive" });
    }
    for (let i = 0; i < 40; i++) {
      const update = { guid: `X${i}`, address: `x${i}:1`, version: 1, status: "dead" as const };
      a.receive({ kind: "gossip", from: "B", updates: [update] }, "b:1");
    }
    const beatsOfRound = () => {
      clock.now += 1000;
      // Its subjects are heard from, so no probe (which would carry news too) goes out.
      for (const guid of ["B", "C", "D"]) {
        a.receive({ kind: "beat", from: guid, updates: [] }, `${guid.toLowerCase()}:1`);
      }
      sent.length = 0;
      a.tick();
      return sent.filter(([, m]) => m.kind === "beat").map(([, m]) => m.updates.map((u) => u.guid));
    };
    const first = beatsOfRound();
    assert.equal(first.length, 2, "one beat to each of K monitors");
    assert.deepEqual(first[0], first[1], "the same news to each monitor");
    assert.deepEqual(first[0], ["X39", "X38", "X37", "X36", "X35", "X34", "X33", "X32"]);
    assert.deepEqual(beatsOfRound()[0], first[0], "twice, in case one beat is lost");
    const third = beatsOfRound()[0];
    assert.deepEqual(third, ["X31", "X30", "X29", "X28", "X27", "X26", "X25", "X24"]);
    beatsOfRound();
    for (let round = 0; round < 4; round++) beatsOfRound();
    assert.deepEqual(beatsOfRound(), [[], []], "X0..X7 fell off the queue; nothing rides for ever");
  });

  it("a tombstone is dropped tombstoneMs after the death was learned, and a stranger's death is not kept", () => {
    const { a, clock } = lone(["B", "C", "D", "E"], { tombstoneMs: 10_000 });
    a.tick();
    const dead = (guid: string, version = 1) => ({
      kind: "gossip" as const,
      from: "B",
      updates: [{ guid, address: `${guid.toLowerCase()}:1`, version, status: "dead" as const }],
    });
    clock.now = 1000;
    a.receive(dead("D"), "b:1");
    clock.now = 5000;
    a.receive(dead("E"), "b:1");
    a.receive(dead("Stranger"), "b:1");
    assert.equal(a.get("Stranger"), undefined, "never known: not kept");
    assert.equal(a.get("D")?.status, "dead");
    assert.equal(a.knownCount, 5);
    for (let t = 2000; t <= 10_000; t += 1000) {
      clock.now = t;
      a.tick();
    }
    assert.equal(a.get("D")?.status, "dead", "kept until 10 s after it was learned");
    clock.now = 11_000;
    a.tick();
    assert.equal(a.get("D"), undefined, "dropped on the round 10 s after");
    assert.equal(a.get("E")?.status, "dead");
    assert.equal(a.stats.tombstonesExpired, 1);
    clock.now = 16_000;
    a.tick();
    assert.equal(a.get("E"), undefined);
    assert.equal(a.knownCount, 3);
    // D restarted (a newer version): simply a new member again.
    a.receive({
      kind: "gossip",
      from: "B",
      updates: [{ guid: "D", address: "d:1", version: 2, status: "alive" }],
    }, "b:1");
    assert.equal(a.get("D")?.status, "alive");
  });

  it("tables that differ only in tombstones have equal digests; a live difference shows", () => {
    const { a } = lone(["B", "C"]);
    const { a: other } = lone(["B", "C", "D"]);
    assert.notEqual(a.digest, other.digest, "D alive in one table only");
    other.receive({
      kind: "gossip",
      from: "B",
      updates: [{ guid: "D", address: "d:1", version: 1, status: "dead" }],
    }, "b:1");
    assert.equal(other.get("D")?.status, "dead");
    assert.equal(a.digest, other.digest);
  });

  it("deadlines set grow with a probe and a suspicion, never with a beat", () => {
    const { a, clock } = lone(["B", "C"]);
    clock.now = 1000;
    a.tick();
    const before = a.deadlinesSet;
    a.receive({ kind: "beat", from: "B", updates: [] }, "b:1");
    a.receive({ kind: "beat", from: "C", updates: [] }, "c:1");
    assert.equal(a.deadlinesSet, before, "beats set no deadline");
    const wake = a.nextWakeMs();
    clock.now = 3000; // B and C are late: each is probed
    a.receive({ kind: "beat", from: "B", updates: [] }, "b:1");
    assert.equal(a.deadlinesSet, before + 1, "C's probe");
    assert.ok(a.nextWakeMs() < wake + 1000, "its timeout is the next wake");
    clock.now = 3400; // no ack from C: suspected
    a.tick();
    assert.equal(a.get("C")?.status, "suspect");
    assert.equal(a.deadlinesSet, before + 2, "the suspicion's end");
  });

  it("every member agrees on the owners of a key", () => {
    const net = cluster(50, 2);
    const owners = new Set(
      [...net.nodes.values()].map((node) =>
        node.successorsOf("worker-42", 2).map((m) => m.guid).join(",")
      ),
    );
    assert.equal(owners.size, 1);
    // Keys spread over members.
    const node = net.nodes.get("N0000")!;
    const first = new Set<string>();
    for (let i = 0; i < 500; i++) first.add(node.successorsOf(`w${i}`)[0].guid);
    assert.ok(first.size > 35, `${first.size}`);
  });

  it("malformed updates from the network are ignored and the member goes on", () => {
    const net = cluster(4, 1);
    const node = net.nodes.get("N0000")!;
    const bad = [
      null,
      {},
      { guid: "", address: "x", version: 1, status: "alive" },
      { guid: "X", address: "x", version: Number.NaN, status: "alive" },
      { guid: "X", address: "x", version: 1, status: "zombie" },
      { guid: "X", address: 7, version: 1, status: "alive" },
    ] as unknown as MembershipMessage["updates"];
    node.receive({ kind: "gossip", from: "N0001", updates: bad }, "N0001:1");
    assert.equal(node.get("X"), undefined);
    assert.equal(node.liveCount, 4);
    net.run(5_000);
    assert.equal(node.stats.suspicions, 0);
  });

  it("bad options are refused with a Cannot error", () => {
    const host = { now: () => 0, randomInt: () => 0, send() {}, changed() {} };
    assert.throws(
      () => new Membership(host, { guid: "", address: "a", version: 1, intervalMs: 1000 }),
      /^TypeError: Cannot create membership: guid/,
    );
    assert.throws(
      () => new Membership(host, { guid: "A", address: "a", version: 1, intervalMs: 0 }),
      /Cannot create membership: intervalMs/,
    );
    assert.throws(
      () =>
        new Membership(host, { guid: "A", address: "a", version: 1, intervalMs: 1, fanout: -1 }),
      /Cannot create membership: fanout/,
    );
  });

  it("claims are ordered by version, then dead over suspect over alive", () => {
    const claim = (version: number, status: "alive" | "suspect" | "dead") => ({
      guid: "A",
      address: "a",
      version,
      status,
    });
    assert.ok(supersedes(claim(2, "alive"), claim(1, "dead")));
    assert.ok(supersedes(claim(1, "dead"), claim(1, "suspect")));
    assert.ok(supersedes(claim(1, "suspect"), claim(1, "alive")));
    assert.ok(!supersedes(claim(1, "alive"), claim(1, "suspect")));
    assert.ok(!supersedes(claim(1, "alive"), claim(1, "alive")));
    assert.notEqual(hash32("a"), hash32("b"));
  });
});
