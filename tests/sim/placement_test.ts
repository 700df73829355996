/**
 * Placement in simulated clusters: spawn from any node, strategies, balance across 100 nodes,
 * placing again after crashes, exactly one copy after partitions heal, state kept in shared
 * storage, hostile placement traffic.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createSimCluster, type SimCluster } from "../../sim/cluster.ts";
import { type AutoMpiNode, SERVICE_FIELD } from "../../src/node.ts";
import { EchoWorker, WorkerBase } from "../../src/worker.ts";
import type { MapMessage } from "../../src/message.ts";
import type { Storage } from "../../src/storage.ts";
import { runAsync, SimDisk, type SimHost, type Simulation } from "../../sim/mod.ts";
import {
  PLACEMENT_SERVICE,
  type PlacementStrategy,
  rendezvousScore,
  type WorkerFactory,
} from "../../src/placement.ts";

const HEARTBEAT_MS = 200;
const SILENCE = 3;
/** Links to a crashed host drop within this (silence intervals plus one tick and jitter). */
const DETECTION_MS = (SILENCE + 1) * HEARTBEAT_MS * 1.1;

const echoKind: Record<string, WorkerFactory> = { echo: (guid) => new EchoWorker(guid) };

function cluster(
  nodes: number,
  seed: number,
  kindsOf: (index: number) => Record<string, WorkerFactory> = () => echoKind,
  storageOf?: (host: SimHost, sim: Simulation) => Storage,
): SimCluster {
  let index = 0;
  const kindsByGuid = new Map<string, Record<string, WorkerFactory>>();
  for (; index < nodes; index++) {
    const guid = `N${String(index).padStart(4, "0")}`;
    kindsByGuid.set(guid, kindsOf(index));
  }
  const result = createSimCluster({
    nodes,
    seed,
    workers: false,
    latencyMsMin: 1,
    latencyMsMax: 3,
    node: { heartbeatIntervalMs: HEARTBEAT_MS, silenceIntervals: SILENCE },
    nodeOptions: ({ guid, host, sim }) => ({
      placement: { kinds: kindsByGuid.get(guid) ?? {} },
      ...(storageOf ? { storage: storageOf(host, sim) } : {}),
    }),
  });
  return result;
}

function meshed(c: SimCluster, maxMs = 10_000): void {
  assert.ok(c.sim.runUntil(() => c.converged(), maxMs), "the cluster forms a full mesh");
  // Hellos of the last links travel after link-up.
  c.sim.run(50);
}

/** Runs until `predicate` holds, checking every `stepMs` (the predicates here are not cheap). */
function runUntilEvery(
  c: SimCluster,
  predicate: () => boolean,
  maxMs: number,
  stepMs = 10,
): boolean {
  const end = c.sim.now + maxMs;
  while (c.sim.now < end) {
    c.sim.run(stepMs);
    if (predicate()) return true;
  }
  return false;
}

/** Where each placed worker actually runs, over all live nodes. */
function running(c: SimCluster): Map<string, string[]> {
  const where = new Map<string, string[]>();
  for (const node of c.liveNodes()) {
    for (const { guid } of node.state().workers) {
      if (!node.placement.runs(guid)) continue;
      const list = where.get(guid) ?? [];
      list.push(node.guid);
      where.set(guid, list);
    }
  }
  return where;
}

test("a worker spawned from a node without the kind runs on a node that has it, and every node knows where", () => {
  const c = cluster(3, 11, (index) => (index === 0 ? {} : echoKind));
  meshed(c);
  const [a, b, d] = c.liveNodes();
  const host = a.spawn("echo", "echo-1");
  assert.ok(host === b.guid || host === d.guid, `placed on ${host}, a node with the kind`);
  c.sim.run(50);
  for (const node of c.liveNodes()) assert.equal(node.placement.where("echo-1"), host);
  assert.equal(running(c).get("echo-1")?.join(), host);
  // It answers from wherever it runs: a's message finds it without a's knowing the host.
  const replies: MapMessage[] = [];
  a.onMessage((message) => replies.push(message));
  a.send({ destination: "echo-1", source: a.guid, message: { command: "hi" } });
  c.sim.run(50);
  assert.equal(replies.length, 1);
  assert.equal(replies[0].message.command, "echoReply");
  assert.equal(a.state().placement.workers[0].running, true);
});

test("spawn refuses a GUID already placed and a kind nobody hosts, with clear errors", () => {
  const c = cluster(2, 12);
  meshed(c);
  const [a, b] = c.liveNodes();
  a.spawn("echo", "e1");
  c.sim.run(20);
  assert.throws(() => b.spawn("echo", "e1"), /Cannot spawn "e1": it is already placed on node/);
  assert.throws(() => a.spawn("camera", "c1"), /no linked node hosts kind "camera"/);
  assert.throws(() => a.spawn("echo", ""), TypeError);
  assert.throws(() => a.spawn("echo", "e2", { strategy: "nope" }), /unknown strategy "nope"/);
  assert.throws(
    () => a.spawn("echo", "e3", { params: { n: 1 as unknown as string } }),
    /param "n" must be a string/,
  );
});

test("stopping a spawned worker removes it everywhere, and it can be spawned again", () => {
  const c = cluster(3, 13);
  meshed(c);
  const [a, b] = c.liveNodes();
  const host = a.spawn("echo", "e1");
  c.sim.run(20);
  assert.equal(b.stopWorker("e1"), true);
  c.sim.run(20);
  assert.equal(running(c).size, 0);
  for (const node of c.liveNodes()) {
    assert.equal(node.placement.where("e1"), undefined);
    assert.equal(node.placement.entry("e1")?.removed, true);
    assert.equal(node.locate("e1"), undefined);
  }
  assert.equal(b.stopWorker("e1"), false);
  // Detaching it on its host stops it too, rather than letting its entry start it again.
  const again = b.spawn("echo", "e1");
  c.sim.run(20);
  assert.equal(running(c).get("e1")?.join(), again);
  const hostNode = c.liveNodes().find((node) => node.guid === again)!;
  assert.equal(hostNode.detachWorker("e1"), true);
  c.sim.run(20);
  assert.equal(running(c).size, 0);
  assert.ok(host);
});

test("strategies: local keeps it on the spawner, hashed agrees from every node, a custom one is used and a bad answer falls back", () => {
  const c = cluster(4, 14);
  meshed(c);
  const nodes = c.liveNodes();
  assert.equal(nodes[2].spawn("echo", "l1", { strategy: "local" }), nodes[2].guid);
  const hashed =
    nodes.map((node) => node.guid).sort((x, y) =>
      rendezvousScore("h1", y) - rendezvousScore("h1", x)
    )[0];
  assert.equal(nodes[3].spawn("echo", "h1", { strategy: "hashed" }), hashed);
  const last: PlacementStrategy = (_request, candidates) => candidates.at(-1)!.node;
  assert.equal(nodes[0].spawn("echo", "c1", { strategy: last }), nodes[3].guid);
  const wrong: PlacementStrategy = () => "not-a-node";
  const chosen = nodes[0].spawn("echo", "c2", { strategy: wrong });
  assert.ok(nodes.some((node) => node.guid === chosen));
  c.sim.run(50);
  assert.equal(running(c).size, 4);
});

test("100 nodes, 1,000 workers spawned from random nodes: the most loaded node holds at most 1.2x the average", () => {
  const c = cluster(100, 15);
  meshed(c, 20_000);
  const nodes = c.liveNodes();
  let spawned = 0;
  // One spawn every 2 virtual ms from a node drawn by the seeded counter: many overlap in flight.
  const spawnNext = () => {
    const from = nodes[(spawned * 37 + 11) % nodes.length];
    from.spawn("echo", `w${String(spawned).padStart(4, "0")}`);
    spawned++;
    if (spawned < 1000) c.sim.schedule(2, spawnNext);
  };
  spawnNext();
  c.sim.run(3000);
  const where = running(c);
  assert.equal(where.size, 1000, "every worker runs");
  for (const [guid, hosts] of where) assert.equal(hosts.length, 1, `${guid} runs once`);
  const load = nodes[0].placement.load();
  assert.equal(load.size, 100);
  const max = Math.max(...load.values());
  assert.ok(max <= 1.2 * 10, `most loaded node holds ${max} (average 10)`);
  // Every node holds the same table.
  const table = (node: AutoMpiNode) =>
    node.placement.placed().map((r) => `${r.guid}@${r.host}#${r.version}`).sort().join();
  const first = table(nodes[0]);
  for (const node of nodes) assert.equal(table(node), first);
  // A burst from one node in one turn balances exactly: it counts its own choices.
  for (let i = 0; i < 200; i++) nodes[5].spawn("echo", `burst${i}`);
  c.sim.run(500);
  const after = nodes[7].placement.load();
  assert.ok(Math.max(...after.values()) <= 1.2 * 12, "a burst from one node stays balanced");
});

test("crash 10 of 100 nodes: all their workers run again elsewhere within the failure-detection bound", () => {
  const c = cluster(100, 16);
  meshed(c, 20_000);
  const nodes = c.liveNodes();
  for (let i = 0; i < 1000; i++) nodes[i % 100].spawn("echo", `w${i}`);
  c.sim.run(1000);
  assert.equal(running(c).size, 1000);
  const victims = c.hosts.filter((_, index) => index % 10 === 3);
  const victimGuids = new Set(victims.map((host) => host.app!.guid));
  const orphans = nodes[0].placement.placed().filter((r) => victimGuids.has(r.host));
  assert.ok(orphans.length > 50, `the victims hosted ${orphans.length} workers`);
  const crashedAt = c.sim.now;
  for (const victim of victims) c.sim.crash(victim);
  const allBack = () => {
    const where = running(c);
    return orphans.every((r) => (where.get(r.guid)?.length ?? 0) === 1);
  };
  assert.ok(runUntilEvery(c, allBack, 10_000), "every orphan runs again");
  const tookMs = c.sim.now - crashedAt;
  assert.ok(
    tookMs <= DETECTION_MS + 100,
    `took ${Math.round(tookMs)} ms; bound ${DETECTION_MS} ms + 100 ms to place, start, check`,
  );
  c.sim.run(500);
  const where = running(c);
  assert.equal(where.size, 1000);
  for (const [guid, hosts] of where) {
    assert.equal(hosts.length, 1, `${guid} runs once`);
    assert.ok(!victimGuids.has(hosts[0]));
  }
  // Every live node agrees where each one is, and messages reach the moved ones.
  for (const node of c.liveNodes()) {
    for (const r of orphans) assert.equal(node.placement.where(r.guid), where.get(r.guid)![0]);
  }
  const replies: MapMessage[] = [];
  nodes[0].onMessage((message) => replies.push(message));
  for (const r of orphans) {
    nodes[0].send({ destination: r.guid, source: nodes[0].guid, message: { command: "ping" } });
  }
  c.sim.run(200);
  assert.equal(replies.length, orphans.length);
});

test("a partition places workers on both sides; after the heal each runs in exactly one place", () => {
  const c = cluster(20, 17);
  meshed(c);
  const nodes = c.liveNodes();
  for (let i = 0; i < 200; i++) nodes[i % 20].spawn("echo", `w${i}`);
  c.sim.run(500);
  const left = c.hosts.slice(0, 10);
  const right = c.hosts.slice(10);
  c.sim.partition(left, right);
  c.sim.run(DETECTION_MS * 3);
  // Each side runs every worker: its own, and the other side's placed again.
  const during = running(c);
  let twice = 0;
  for (const hosts of during.values()) if (hosts.length === 2) twice++;
  assert.equal(during.size, 200);
  assert.equal(twice, 200, "both sides run every worker while apart");
  c.sim.heal();
  assert.ok(c.sim.runUntil(() => c.converged(), 10_000), "mesh again");
  c.sim.run(2000);
  const after = running(c);
  assert.equal(after.size, 200);
  for (const [guid, hosts] of after) assert.equal(hosts.length, 1, `${guid} runs once`);
  for (const node of c.liveNodes()) {
    for (const [guid, hosts] of after) assert.equal(node.placement.where(guid), hosts[0]);
    for (const [guid, hosts] of after) {
      assert.equal(node.locate(guid), hosts[0], `${guid} from ${node.guid}`);
    }
  }
});

/** Counts in storage: the state a placed worker keeps and finds again elsewhere. */
class CounterWorker extends WorkerBase {
  #count = 0;
  #loaded = false;
  readonly #early: MapMessage[] = [];

  protected override onAttach(): void {
    this.context.storage.get("count").then((bytes) => {
      this.#count = bytes === undefined ? 0 : new DataView(bytes.buffer).getUint32(0);
      this.#loaded = true;
      for (const message of this.#early.splice(0)) this.onMessage(message);
    });
  }

  protected override onMessage(message: MapMessage): void {
    if (!this.#loaded) {
      this.#early.push(message);
      return;
    }
    if (message.message.command === "add") {
      this.#count++;
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, this.#count);
      void this.context.storage.put("count", bytes);
    } else if (message.message.command === "get") {
      this.send({
        destination: message.source,
        source: this.guid,
        message: { count: String(this.#count) },
      });
    }
  }
}

test("a worker placed again on a node sharing the storage finds the state it kept", async () => {
  let shared: SimDisk | undefined; // A network disk every host mounts.
  const c = cluster(
    4,
    18,
    () => ({ counter: (guid) => new CounterWorker(guid) }),
    (host, sim) => (shared ??= new SimDisk(sim, { name: "shared" })).open(host),
  );
  meshed(c);
  const nodes = c.liveNodes();
  const host = nodes[0].spawn("counter", "count-1", { strategy: "hashed" });
  await runAsync(c.sim, 50);
  for (let i = 0; i < 5; i++) {
    nodes[0].send({ destination: "count-1", source: nodes[0].guid, message: { command: "add" } });
  }
  await runAsync(c.sim, 50);
  const victim = c.hosts.find((h) => h.app?.guid === host)!;
  c.sim.crash(victim);
  const survivor = c.liveNodes()[0];
  assert.ok(
    await runAsync(c.sim, 5000, {
      until: () => {
        const now = survivor.placement.where("count-1");
        return now !== undefined && now !== host && survivor.locate("count-1") === now;
      },
    }),
  );
  const replies: MapMessage[] = [];
  survivor.onMessage((message) => replies.push(message));
  survivor.send({ destination: "count-1", source: survivor.guid, message: { command: "get" } });
  await runAsync(c.sim, 50);
  assert.equal(replies[0]?.message.count, "5");
});

test("a crashed host restarted with the same GUID gets its table back and runs nothing twice", () => {
  const c = cluster(5, 19);
  meshed(c);
  const nodes = c.liveNodes();
  for (let i = 0; i < 50; i++) nodes[i % 5].spawn("echo", `w${i}`);
  c.sim.run(200);
  c.sim.crash(c.hosts[2]);
  c.sim.run(DETECTION_MS + 300);
  c.sim.restart(c.hosts[2]);
  assert.ok(c.sim.runUntil(() => c.converged(), 10_000));
  c.sim.run(500);
  const where = running(c);
  assert.equal(where.size, 50);
  for (const hosts of where.values()) assert.equal(hosts.length, 1);
  assert.equal(c.hosts[2].app!.placement.placed().length, 50, "the restarted node has the table");
});

test("malformed placement traffic is counted and logged, and placement keeps working", () => {
  const c = cluster(3, 20);
  meshed(c);
  const [a, b] = c.liveNodes();
  const bad = (data?: Uint8Array, op = "update") =>
    a.send({
      destination: b.guid,
      source: a.guid,
      message: { [SERVICE_FIELD]: PLACEMENT_SERVICE, op },
      ...(data ? { data } : {}),
    });
  const text = (value: string) => new TextEncoder().encode(value);
  bad();
  bad(text("{not json"));
  bad(text("[]"));
  bad(text(JSON.stringify({ op: "update", records: [["g", "k", "h", -1, 0, "hashed", {}]] })));
  bad(text(JSON.stringify({ op: "update", records: [["g", "k", "", 1, 0, "hashed", {}]] })));
  bad(text(JSON.stringify({ op: "update", records: "nope" })));
  bad(text(JSON.stringify({ op: "teleport" })));
  bad(text(JSON.stringify({ op: "kinds", kinds: [42] })));
  bad(new Uint8Array([0xff, 0xfe, 0x00]));
  c.sim.run(50);
  assert.equal(b.state().placement.stats.badUpdates, 9);
  // A message for a service nobody runs is counted, not handed to user handlers.
  const seen: MapMessage[] = [];
  b.onMessage((message) => seen.push(message));
  a.send({ destination: b.guid, source: a.guid, message: { [SERVICE_FIELD]: "nobody" } });
  c.sim.run(50);
  assert.equal(seen.length, 0);
  assert.equal(b.state().stats.unknownService, 1);
  const host = b.spawn("echo", "still-works");
  c.sim.run(50);
  assert.equal(running(c).get("still-works")?.join(), host);
});

test("a factory that throws is reported with spawn-failed and a log line, never thrown out of the node", () => {
  const c = cluster(2, 21, () => ({
    broken: () => {
      throw new Error("no camera attached");
    },
  }));
  meshed(c);
  const failures: string[] = [];
  for (const node of c.liveNodes()) node.on("spawn-failed", (event) => failures.push(event.error));
  c.liveNodes()[0].spawn("broken", "b1");
  c.sim.run(50);
  assert.equal(failures.length, 1);
  assert.match(failures[0], /Cannot start placed worker "b1" of kind "broken": no camera attached/);
  assert.equal(running(c).size, 0);
  const state = c.liveNodes()[0].state().placement;
  assert.equal(state.workers[0].running, false);
});
