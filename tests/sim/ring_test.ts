import { test } from "node:test";
import assert from "node:assert/strict";
import type { SimCluster } from "../../sim/cluster.ts";
import { fuzzCampaigns } from "../../sim/fuzz.ts";
import { echoRing } from "./_ring_cluster.ts";
import { Simulation } from "../../sim/simulation.ts";
import { AutoMpiNode } from "../../src/node.ts";
import type { MapMessage } from "../../src/message.ts";
import { shortBeats, shortRounds } from "../../src/_ring.ts";
import { EchoWorker } from "../../src/worker.ts";

const ring = echoRing;

/** Runs `fn` with a process-wide short path switched `on` or off, and on again after. */
function switched<T>(path: { on: boolean }, on: boolean, fn: () => T): T {
  path.on = on;
  try {
    return fn();
  } finally {
    path.on = true;
  }
}

function converge(cluster: SimCluster, maxMs = 10_000): number {
  assert.ok(cluster.runUntil(() => cluster.converged(), maxMs), "did not converge");
  return cluster.now;
}

for (const n of [2, 5, 20]) {
  test(`ring: ${n} nodes converge and every node reaches a worker on every other node`, () => {
    const cluster = ring(n, 11 + n);
    converge(cluster);
    const clients = Array.from({ length: n }, (_, i) => cluster.client(i, `app${i}`));
    let sent = 0;
    for (let from = 0; from < n; from++) {
      for (let to = 0; to < n; to++) {
        if (from === to) continue;
        assert.ok(clients[from].send(`echo${to}`, { command: `${from}>${to}` }));
        sent++;
      }
    }
    cluster.run(3000);
    const answered = clients.reduce((sum, c) => sum + c.received.length, 0);
    assert.equal(answered, sent, "every request was answered");
    for (const client of clients) {
      for (const reply of client.received) {
        assert.equal(reply.source, `echo${reply.message.echoOf.split(">")[1]}`);
      }
    }
    assert.deepEqual(cluster.violations(), []);
  });
}

test("ring: nodes on several subnets meet through seeds and reach each other's workers", () => {
  // Broadcasts stay within a subnet; the first node of each subnet seeds the others.
  const cluster = ring(60, 5, { subnets: 3 });
  const knownAt = converge(cluster, 20_000);
  assert.ok(knownAt < 10_000, `all known only at ${knownAt} ms`);
  const clients = Array.from({ length: 60 }, (_, i) => cluster.client(i, `app${i}`));
  for (let i = 0; i < 60; i++) clients[i].send(`echo${(i + 1) % 60}`, { command: "across" });
  cluster.run(3000);
  assert.equal(clients.reduce((sum, c) => sum + c.received.length, 0), 60);
  assert.deepEqual(cluster.violations(), []);
});

test("ring: a node with only a seed (no broadcast) joins within its first interval", () => {
  const cluster = ring(6, 3);
  converge(cluster);
  const sim = cluster.sim;
  const seed = cluster.host(0).address;
  let joined: AutoMpiNode | undefined;
  sim.addHost("late", (platform, host) => {
    joined = new AutoMpiNode(platform, {
      guid: "late-node",
      listen: { host: host.address, port: 8888 },
      membership: "ring",
      discovery: false,
      seeds: [`${seed}:8888`],
    });
    joined.start();
    return joined;
  });
  const startedAt = cluster.now;
  assert.ok(
    cluster.runUntil(() => joined?.membership().alive === 7, 5000),
    "the late node did not learn the cluster",
  );
  assert.ok(cluster.now - startedAt <= 1100, `joined after ${cluster.now - startedAt} ms`);
  for (const node of cluster.liveNodes()) {
    assert.ok(
      cluster.runUntil(() => node.membership().alive === 7, 1000),
      `${node.guid} never heard of the late node`,
    );
  }
});

test("ring: at 100 nodes each node keeps few links when it talks to few nodes", () => {
  const cluster = ring(100, 7, { history: false, checks: false });
  converge(cluster, 20_000);
  const clients = Array.from({ length: 100 }, (_, i) => cluster.client(i, `app${i}`));
  for (let i = 0; i < 100; i++) clients[i].send(`echo${(i + 1) % 100}`, { command: "next" });
  cluster.run(2000);
  assert.equal(clients.reduce((sum, c) => sum + c.received.length, 0), 100);
  for (const node of cluster.liveNodes()) {
    assert.ok(node.linkCount <= 4, `${node.guid} has ${node.linkCount} links`);
    assert.equal(node.membership().alive, 100);
  }
});

test("ring: a quiet node wakes once per interval and receives about two beats, with links open", () => {
  const cluster = ring(100, 9, { history: false, checks: false });
  converge(cluster, 20_000);
  const clients = Array.from({ length: 100 }, (_, i) => cluster.client(i, `app${i}`));
  for (let i = 0; i < 100; i++) clients[i].send(`echo${(i + 1) % 100}`, { command: "next" });
  cluster.run(5000);
  const before = { ...cluster.sim.stats };
  cluster.run(20_000);
  const after = cluster.sim.stats;
  const perNodeS = (count: number) => count / 100 / 20;
  // Two beats to the two monitors, an anti-entropy digest now and then, and nothing on the
  // idle links (no keepalives): the membership vouches for them.
  const datagrams = perNodeS(after.datagramsDelivered - before.datagramsDelivered);
  assert.ok(datagrams >= 2 && datagrams <= 2.5, `${datagrams} datagrams per node per s`);
  assert.equal(after.segmentsDelivered - before.segmentsDelivered, 0, "segments on idle links");
  // Events: those datagrams and one timer wake per node per interval.
  const events = perNodeS(after.events - before.events);
  assert.ok(events <= datagrams + 1.2, `${events} events per node per s`);
  for (const node of cluster.liveNodes()) assert.ok(node.linkCount >= 1, "links stay open");
});

test("ring: a crashed node is known dead by every live node within 3 heartbeat intervals", () => {
  const cluster = ring(20, 5);
  converge(cluster);
  cluster.run(4321);
  const victim = cluster.node(7)!.guid;
  const lostAt = new Map<string, number>();
  for (const node of cluster.liveNodes()) {
    node.on("peer-lost", ({ peer }) => {
      if (peer === victim && !lostAt.has(node.guid)) lostAt.set(node.guid, cluster.now);
    });
  }
  cluster.crash(7);
  const crashedAt = cluster.now;
  assert.ok(cluster.runUntil(() => lostAt.size === 19, 10_000), `${lostAt.size} of 19 knew`);
  const last = Math.max(...lostAt.values()) - crashedAt;
  assert.ok(last <= 3000, `known everywhere only after ${last} ms`);
  for (const node of cluster.liveNodes()) assert.equal(node.membership().dead, 1);
});

test("ring: a dead node's tombstone is dropped everywhere tombstoneMs after its death", () => {
  const cluster = ring(10, 23, {}, { tombstoneMs: 20_000 });
  converge(cluster);
  cluster.crash(4);
  assert.ok(
    cluster.runUntil(() => cluster.liveNodes().every((node) => node.membership().dead === 1), 5000),
    "every node holds the tombstone",
  );
  cluster.run(15_000);
  for (const node of cluster.liveNodes()) assert.equal(node.membership().dead, 1, "still kept");
  cluster.run(7000);
  for (const node of cluster.liveNodes()) {
    assert.deepEqual(node.membership().dead, 0, `${node.guid} dropped it`);
    assert.equal(node.membership().alive, 9);
  }
  // Anti-entropy did not bring it back, and the others still reach each other's workers.
  cluster.run(20_000);
  assert.ok(cluster.liveNodes().every((node) => node.membership().dead === 0));
  const app = cluster.client(0, "app");
  assert.equal(app.request("echo9", { command: "after" })?.message.echoOf, "after");
  assert.deepEqual(cluster.violations(), []);
});

test("ring: a message to a worker no one hosts is reported unknown, not lost", () => {
  const cluster = ring(5, 3);
  converge(cluster);
  const reports: string[] = [];
  cluster.node(2)!.on("undeliverable", ({ reason, message }) => {
    reports.push(`${reason} ${message.destination}`);
  });
  assert.ok(cluster.node(2)!.send({ destination: "nobody", source: "t", message: {} }));
  cluster.run(5000);
  assert.deepEqual(reports, ["unknown-destination nobody"]);
});

test("ring: a restarted node rejoins and its worker is reached again", () => {
  const cluster = ring(8, 9);
  converge(cluster);
  const app = cluster.client(0, "app");
  assert.equal(app.request("echo5", { command: "before" })?.message.echoOf, "before");
  cluster.crash(5);
  cluster.run(4000);
  assert.equal(cluster.node(0)!.membership().dead, 1);
  cluster.restart(5);
  converge(cluster, 30_000);
  assert.equal(
    app.request("echo5", { command: "after" }, { maxMs: 10_000 })?.message.echoOf,
    "after",
  );
});

test("ring: after a partition heals every node knows every node alive again", () => {
  const cluster = ring(10, 21);
  converge(cluster);
  cluster.partition([0, 1, 2, 3, 4], [5, 6, 7, 8, 9]);
  cluster.run(6000);
  assert.equal(cluster.node(0)!.membership().alive, 5);
  cluster.heal();
  converge(cluster, 60_000);
  const app = cluster.client(1, "app");
  assert.equal(
    app.request("echo8", { command: "across" }, { maxMs: 10_000 })?.message.echoOf,
    "across",
  );
});

test("ring: the event-loop lag histogram counts every round, the on-time ones too, once", () => {
  const cluster = ring(3, 12);
  converge(cluster);
  const node = cluster.node(0)!;
  const observed = () => {
    const family = node.metrics().find((f) => f.name === "automp_event_loop_lag_seconds");
    assert.ok(family?.type === "histogram");
    const sample = family.samples[0];
    return { count: sample.counts.reduce((a, b) => a + b, 0) + sample.overflow, sample };
  };
  const before = observed();
  cluster.run(10_000);
  const after = observed();
  // Ten rounds in ten seconds, each observed once (most fire exactly on time: a lag of 0).
  assert.equal(after.count - before.count, 10);
  assert.deepEqual(observed(), after, "reading the metrics again adds nothing");
});

test("ring: every node registers its worker with its two owners again every 30 intervals", () => {
  const cluster = ring(30, 21, { history: false });
  converge(cluster);
  const puts = () =>
    cluster.liveNodes().map((node) => {
      const family = node.metrics().find((f) => f.name === "automp_directory_puts_sent");
      assert.ok(family?.type === "counter");
      return family.samples[0].value;
    });
  // Past start-up's registrations, sampled every interval for 70 intervals.
  cluster.run(40_000);
  let before = puts();
  const refreshedAt: number[][] = before.map(() => []);
  for (let interval = 0; interval < 70; interval++) {
    cluster.run(1000);
    const now = puts();
    now.forEach((value, i) => {
      if (value === before[i]) return;
      assert.equal(value - before[i], 2, "one worker, two owners");
      refreshedAt[i].push(interval);
    });
    before = now;
  }
  for (const times of refreshedAt) {
    assert.ok(times.length >= 2, `refreshed at intervals ${times}`);
    for (let k = 1; k < times.length; k++) assert.equal(times[k] - times[k - 1], 30, `${times}`);
  }
});

test("ring: idle links close after the idle bound and traffic opens them again", () => {
  const cluster = ring(4, 4);
  converge(cluster);
  const app = cluster.client(0, "app");
  assert.ok(app.request("echo3", { command: "one" }));
  assert.equal(cluster.node(0)!.linkCount >= 1, true);
  cluster.run(40_000);
  assert.equal(cluster.node(0)!.linkCount, 0, "closed when idle");
  assert.equal(cluster.node(3)!.linkCount, 0);
  assert.equal(app.request("echo3", { command: "two" })?.message.echoOf, "two");
  assert.deepEqual(cluster.violations(), []);
});

test("ring: a broadcast to every worker reaches each node's worker", () => {
  const cluster = ring(6, 8);
  converge(cluster);
  const got: string[] = [];
  for (const node of cluster.liveNodes()) {
    node.on("message-delivered", ({ worker, message }: { worker: string; message: MapMessage }) => {
      if (message.message.command === "all") got.push(worker);
    });
  }
  cluster.client(0, "app").send("ALLWorkers", { command: "all" });
  cluster.run(3000);
  assert.deepEqual(got.filter((w) => w.startsWith("echo")).sort(), [
    "echo0",
    "echo1",
    "echo2",
    "echo3",
    "echo4",
    "echo5",
  ]);
});

test("ring: most beats of a quiet cluster are repeats taken on the short path", () => {
  const cluster = ring(30, 17, { history: false, checks: false });
  converge(cluster, 20_000);
  cluster.run(5000);
  const datagrams = cluster.sim.stats.datagramsDelivered;
  const taken = shortBeats.taken;
  cluster.run(20_000);
  const share = (shortBeats.taken - taken) / (cluster.sim.stats.datagramsDelivered - datagrams);
  // Two beats of about 2.2 datagrams per node and second; the rest are digests and their
  // answers, which must not push a subject's beat out of the ring's two places.
  assert.ok(share >= 0.85 && share <= 1, `${share} of the datagrams`);
});

test("ring: the short path of repeated beats changes nothing: crashes, loss, a partition and a restart leave the same trace without it", () => {
  const run = (on: boolean) =>
    switched(shortBeats, on, () => {
      const cluster = ring(20, 44);
      converge(cluster);
      const app = cluster.client(2, "app");
      cluster.run(3000);
      cluster.crash([5, 6]); // a member and, maybe, its monitor
      cluster.run(4000);
      cluster.loss(0.2, 3000);
      for (let i = 0; i < 20; i++) app.send(`echo${i}`, { command: "x" });
      cluster.run(4000);
      cluster.partition([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
      cluster.run(5000);
      cluster.heal();
      cluster.restart(5);
      converge(cluster, 60_000);
      cluster.run(3000);
      const alive = cluster.liveNodes().map((node) => node.membership().alive);
      return { trace: cluster.sim.traceHash, alive, answered: app.received.length };
    });
  const taken = shortBeats.taken;
  const short = run(true);
  assert.ok(shortBeats.taken > taken, "the short path was taken");
  const long = run(false);
  assert.deepEqual(long, short);
  assert.ok(short.alive.every((alive) => alive === 19), `members alive: ${short.alive}`);
});

test("ring: a quiet node's rounds are short once its links have closed", () => {
  const cluster = ring(30, 23, { history: false, checks: false });
  converge(cluster, 20_000);
  const app = cluster.client(3, "app");
  for (let i = 0; i < 30; i++) app.send(`echo${i}`, { command: "x" });
  cluster.run(2000);
  assert.equal(app.received.length, 30);
  // The links close 30 s after their last message, and their sessions 90 s after that.
  cluster.run(125_000);
  const taken = shortRounds.taken;
  cluster.run(30_000);
  // All but the rounds that register the node's worker again (one in 30).
  const share = (shortRounds.taken - taken) / 30 / 30;
  assert.ok(share >= 0.95 && share <= 1, `${share} of the rounds were short`);
});

test("ring: short rounds change nothing: messages, seeds, crashes, loss, a partition, restarts and placement leave the same trace without them", () => {
  const run = (on: boolean) =>
    switched(shortRounds, on, () => {
      const cluster = ring(24, 45, { subnets: 2 }); // two subnets joined by seeds
      converge(cluster, 30_000);
      const app = cluster.client(2, "app");
      const other = cluster.client(13, "other");
      for (let i = 0; i < 24; i++) app.send(`echo${i}`, { command: "x" });
      cluster.run(45_000); // the links idle out: rounds are short
      other.send("echo20", { command: "y" }); // a message in the middle of short rounds
      cluster.run(35_000);
      cluster.crash([6, 7]); // a member and, maybe, its monitor
      cluster.run(4000);
      for (let i = 0; i < 24; i += 3) other.send(`echo${i}`, { command: "z" });
      cluster.loss(0.2, 3000);
      cluster.run(40_000);
      cluster.partition([0, 1, 2, 3, 4, 5, 12, 13, 14, 15], [8, 9, 10, 11, 16, 17, 18, 19, 20]);
      cluster.run(5000);
      cluster.heal();
      cluster.restart(6);
      cluster.run(40_000);
      cluster.restart(7);
      converge(cluster, 60_000);
      cluster.run(40_000);
      // Placement begins while rounds are short: its digests need rounds again.
      cluster.node(5)!.registerKind("echo", (guid) => new EchoWorker(guid));
      cluster.run(3000);
      const spawned = cluster.node(17)!.spawn("echo", "p1");
      cluster.run(3000);
      app.send("p1", { command: "to p1" });
      cluster.run(10_000);
      const alive = cluster.liveNodes().map((node) => node.membership().alive);
      const lag = cluster.node(0)!.metrics().find((f) =>
        f.name === "automp_event_loop_lag_seconds"
      );
      return {
        trace: cluster.sim.traceHash,
        alive,
        spawned,
        answered: app.received.length + other.received.length,
        lag,
        violations: cluster.violations(),
      };
    });
  const taken = shortRounds.taken;
  const short = run(true);
  assert.ok(shortRounds.taken - taken > 2000, `${shortRounds.taken - taken} short rounds taken`);
  const long = run(false);
  assert.deepEqual(long, short);
  assert.ok(short.alive.every((alive) => alive === 24), `members alive: ${short.alive}`);
  assert.equal(short.answered, 24 + 1 + 7 + 1, "all but the one to echo6 (crashed then)");
  assert.deepEqual(short.violations, []);
});

test("ring: a connection that never greets is dropped at the handshake timeout while rounds are short", () => {
  const cluster = ring(6, 52);
  converge(cluster);
  cluster.run(3000);
  const taken = shortRounds.taken;
  cluster.run(3000);
  assert.ok(shortRounds.taken > taken, "rounds are short");
  const node = cluster.node(0)!;
  const errors: string[] = [];
  node.on("protocol-error", ({ stage, error }) => errors.push(`${stage}: ${error}`));
  cluster.sim.addHost("mute", (platform) => {
    platform.net.connect({ host: cluster.host(0).address, port: 8888 }, {
      onData() {},
      onClose() {},
    });
  });
  cluster.run(5000);
  assert.equal(errors.length, 1, `${errors}`);
  assert.match(errors[0], /^handshake: .*timed out/);
});

test("ring: a node left alone by a crash broadcasts as it would without short rounds", () => {
  const run = (on: boolean) =>
    switched(shortRounds, on, () => {
      const cluster = ring(2, 53);
      converge(cluster);
      cluster.run(5000);
      const taken = shortRounds.taken;
      const sent = () => cluster.node(0)!.state().stats.heartbeatsSent;
      const before = sent();
      cluster.run(5000);
      assert.equal(sent(), before, "no heartbeat while it has a member");
      cluster.crash(1);
      cluster.run(40_000);
      const alone = sent() - before;
      cluster.restart(1);
      converge(cluster);
      return { alone, short: shortRounds.taken > taken, trace: cluster.sim.traceHash };
    });
  const short = run(true);
  assert.ok(short.short, "rounds were short");
  // Alone: a heartbeat every 16 rounds, so a node started on its subnet finds it.
  assert.ok(short.alone >= 2, `${short.alone} heartbeats`);
  const long = run(false);
  assert.equal(long.short, false);
  assert.deepEqual({ ...long, short: true }, short);
});

test("ring: one seed gives one trace hash", () => {
  const hash = () => {
    const cluster = ring(12, 31);
    converge(cluster);
    const app = cluster.client(3, "app");
    for (let i = 0; i < 12; i++) app.send(`echo${i}`, { command: "x" });
    cluster.run(5000);
    cluster.crash(4);
    cluster.run(5000);
    return cluster.sim.traceHash;
  };
  assert.equal(hash(), hash());
});

test("ring: options that cannot work are refused with a Cannot error", () => {
  const sim = new Simulation({ seed: 1 });
  const errors: string[] = [];
  sim.addHost("h", (platform) => {
    for (
      const options of [
        { membership: "ring", codec: "json" },
        { membership: "star" },
        { membership: "ring", tombstoneMs: 0 },
      ] as const
    ) {
      try {
        new AutoMpiNode(platform, options as never);
      } catch (error) {
        errors.push((error as Error).message);
      }
    }
  });
  assert.equal(errors.length, 3);
  assert.match(errors[0], /^Cannot create node: ring membership needs the native protocol/);
  assert.match(errors[1], /^Cannot create node: membership must be "mesh" or "ring"/);
  assert.match(errors[2], /^Cannot create node: tombstoneMs 0 is not a positive number/);
});

test("ring: fault campaigns keep every invariant at 2..20 nodes (fixed budget, determinism)", () => {
  const report = fuzzCampaigns({
    runs: 40,
    seed: 20261204,
    nodesMin: 2,
    nodesMax: 20,
    checkDeterminism: true,
    membership: "ring",
  });
  assert.equal(report.failure, undefined, JSON.stringify(report.failure, null, 2));
  assert.equal(report.runs, 40);
  assert.ok(report.sent > 500, `only ${report.sent} messages sent`);
  assert.ok(
    report.reported > 0,
    "the faults made some messages undeliverable, and they were reported",
  );
});

test("ring: fault campaigns keep every invariant at 100 nodes", () => {
  const report = fuzzCampaigns({
    runs: 2,
    seed: 4100,
    nodesMin: 100,
    nodesMax: 100,
    membership: "ring",
  });
  assert.equal(report.failure, undefined, JSON.stringify(report.failure, null, 2));
  assert.ok(report.sent > 50, `only ${report.sent} messages sent`);
});
