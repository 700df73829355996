import { test } from "node:test";
import assert from "node:assert/strict";
import { SimCheckError, SimCluster } from "./cluster.ts";
import { EchoWorker, WorkerBase } from "../src/worker.ts";
import type { MapMessage } from "../src/message.ts";
import type { Storage } from "../src/storage.ts";
import { formatMetrics } from "../src/metrics.ts";
import parsePrometheus from "parse-prometheus-text-format";

const echoSetup = (
  { node, index }: { node: { attachWorker(w: EchoWorker): void }; index: number },
) => node.attachWorker(new EchoWorker(`echo${index}`));

test("a setup callback runs on every start; a restarted node gets its workers back and keeps its disk", () => {
  const starts: string[] = [];
  const cluster = new SimCluster({
    nodes: 3,
    seed: 2,
    setup: (context) => {
      starts.push(`${context.index}:${context.start}`);
      echoSetup(context);
    },
  });
  cluster.settle();
  const disk = cluster.disks[1];
  cluster.crash(1);
  assert.equal(cluster.node(1), undefined, "a crashed node is down");
  cluster.restart(1);
  assert.equal(cluster.disks[1], disk, "the same disk after a restart");
  cluster.settle();
  assert.deepEqual(starts, ["0:1", "1:1", "2:1", "1:2"]);
  assert.equal(cluster.node(0)!.locate("echo1"), cluster.guidOf(1));
});

test("nodes are named by index or GUID; an unknown one is a RangeError naming it", () => {
  const cluster = new SimCluster({ nodes: 3, seed: 1, guidOf: (i) => `node-${i}` });
  assert.equal(cluster.indexOf("node-2"), 2);
  assert.equal(cluster.guidOf(1), "node-1");
  assert.throws(() => cluster.crash(3), /Cannot find node 3: node indexes are integers in 0..2/);
  assert.throws(
    () => cluster.pause("nobody"),
    /Cannot find node "nobody": no node of this cluster/,
  );
  assert.throws(() => cluster.partition(-1, 0), RangeError);
  assert.throws(() => cluster.partition(1.5, 0), RangeError);
  assert.throws(() => cluster.partition([], [0]), /Cannot partition: no node given/);
  assert.throws(() => cluster.partition([0, 1, 2]), /Cannot partition: the other side is empty/);
  assert.throws(() => cluster.loss(2), /Cannot set loss: probability 2 is not in \[0, 1\]/);
  assert.throws(() => cluster.duplicate(0.1, -5), /Cannot set duplicate: forMs -5/);
  // Nothing half-done: every node still up.
  assert.deepEqual(cluster.hosts.map((h) => h.state), ["up", "up", "up"]);
});

test("bad cluster options get Cannot errors naming the option", () => {
  assert.throws(() => new SimCluster({ nodes: 0 }), /Cannot create cluster of 0 nodes/);
  assert.throws(() => new SimCluster({ nodes: 2.5 }), /nodes must be an integer/);
  assert.throws(() => new SimCluster({ nodes: 2, subnets: 3 }), /subnets 3 must be an integer/);
  assert.throws(
    () => new SimCluster({ nodes: 2, guidOf: () => "same" }),
    /guidOf\(1\) gives "same", empty or taken/,
  );
  assert.throws(
    () => new SimCluster({ nodes: 2, setup: "x" as never }),
    /Cannot create cluster: setup must be a function/,
  );
});

test("a setup callback that throws is reported as Cannot set up node, naming it", () => {
  assert.throws(
    () =>
      new SimCluster({
        nodes: 3,
        setup: ({ index }) => {
          if (index === 2) throw new Error("no storage");
        },
      }),
    /Cannot set up node 2 \(N0002\): the setup callback threw: no storage/,
  );
});

test("settle ends every fault: heals cuts, resumes paused and restarts crashed nodes, then converges", () => {
  const cluster = new SimCluster({ nodes: 5, seed: 7, setup: echoSetup });
  cluster.settle();
  cluster.partition([0, 1], [2, 3, 4]);
  cluster.pause(2);
  cluster.crash("N0004");
  cluster.loss(0.5);
  cluster.run(5000);
  assert.equal(cluster.converged(), false);
  const report = cluster.settle();
  assert.equal(report.converged, true);
  assert.deepEqual(report.violations, []);
  assert.deepEqual(cluster.hosts.map((h) => h.state), ["up", "up", "up", "up", "up"]);
  assert.equal(cluster.linkedPairs(), 10);
  assert.equal(cluster.sim.network.lossProbability, 0);
});

test("isolate cuts a node off both ways until heal", () => {
  const cluster = new SimCluster({ nodes: 4, seed: 3, setup: echoSetup });
  cluster.settle();
  cluster.isolate(3);
  cluster.run(5000);
  assert.deepEqual(cluster.node(3)!.linkedPeers(), []);
  assert.equal(cluster.node(0)!.linkCount, 2);
  cluster.heal(3);
  assert.ok(cluster.runUntil(() => cluster.converged(), 10_000));
});

test("a loss burst with forMs ends by itself", () => {
  const cluster = new SimCluster({ nodes: 2, seed: 3 });
  cluster.loss(0.3, 1000);
  assert.equal(cluster.sim.network.lossProbability, 0.3);
  cluster.run(1001);
  assert.equal(cluster.sim.network.lossProbability, 0);
});

test("settle throws a SimCheckError listing a failing invariant; throwOnViolation false returns it", () => {
  const cluster = new SimCluster({
    nodes: 2,
    seed: 5,
    invariants: { "always fine": () => true },
  });
  cluster.invariant("two workers", (c) => c.liveNodes().length === 2 ? "found no workers" : []);
  let error: unknown;
  try {
    cluster.settle();
  } catch (thrown) {
    error = thrown;
  }
  assert.ok(error instanceof SimCheckError);
  assert.deepEqual(error.violations, ["two workers: found no workers"]);
  assert.equal(error.seed, 5);
  assert.match(
    error.message,
    /Cluster check failed at [\d.]+ ms \(seed 5\): 1 violation\(s\)\n {2}- two workers/,
  );
  const report = cluster.settle({ throwOnViolation: false });
  assert.deepEqual(report.violations, ["two workers: found no workers"]);
  assert.throws(() => cluster.invariant("", () => true), /Cannot add invariant: name/);
});

test("an invariant that throws is a violation, not a crash of the check", () => {
  const cluster = new SimCluster({ nodes: 1, seed: 1 });
  cluster.invariant("model", () => {
    throw new Error("key k lost");
  });
  assert.deepEqual(cluster.violations(), ["model: threw key k lost"]);
});

test("a cluster that cannot converge says so and why", () => {
  const cluster = new SimCluster({ nodes: 3, seed: 1, node: { discovery: false } });
  const report = cluster.settle({ maxMs: 2000, throwOnViolation: false });
  assert.equal(report.converged, false);
  assert.match(report.violations[0], /converged: not within 2000 ms \(3 node\(s\) short of links/);
});

test("a client's request gets the worker's answer, and the client is back after its node restarts", () => {
  const cluster = new SimCluster({ nodes: 3, seed: 11, setup: echoSetup });
  const client = cluster.client(0, "me");
  cluster.settle();
  const reply = client.request("echo2", { command: "ping" });
  assert.equal(reply?.source, "echo2");
  assert.equal(reply?.message.command, "echoReply");
  cluster.crash(0);
  cluster.restart(0);
  cluster.settle();
  assert.equal(client.request("echo1", { command: "again" })?.message.echoOf, "again");
  assert.equal(client.received.length, 2, "what it had received is kept");
  assert.throws(() => cluster.client(1, "me"), /Cannot create client "me": a client has that GUID/);
  assert.equal(client.request("nobody"), undefined, "unknown destination: no answer");
});

test("nodes on three subnets find each other through seeds and converge", () => {
  const cluster = new SimCluster({ nodes: 9, subnets: 3, seed: 4, setup: echoSetup });
  assert.deepEqual(
    [...new Set(cluster.hosts.map((h) => h.subnet))],
    ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16"],
  );
  cluster.settle();
  assert.equal(cluster.linkedPairs(), 36);
});

test("the same seed gives the same trace hash", () => {
  const run = () => {
    const cluster = new SimCluster({ nodes: 6, seed: 99, setup: echoSetup });
    cluster.settle();
    cluster.partition(0);
    cluster.client(1).send("echo0", { n: "1" });
    cluster.run(4000);
    cluster.settle();
    return cluster.sim.traceHash;
  };
  assert.equal(run(), run());
});

test("a worker attached with each() is counted in convergence like any other", () => {
  class Quiet extends WorkerBase {
    protected override onMessage(_message: MapMessage): void {}
  }
  const cluster = new SimCluster({ nodes: 3, seed: 8 });
  cluster.settle();
  cluster.each(({ node, index }) => node.attachWorker(new Quiet(`q${index}`)));
  cluster.settle();
  assert.equal(cluster.node(2)!.locate("q0"), "N0000");
});

test("a simulated node's metrics are the real node's, readable in a test", () => {
  const cluster = new SimCluster({ nodes: 3, seed: 12, setup: echoSetup });
  cluster.settle();
  cluster.partition(2);
  cluster.run(5000);
  const metrics = new Map(cluster.node(0)!.metrics().map((family) => [family.name, family]));
  const value = (name: string) => {
    const family = metrics.get(name);
    return family !== undefined && family.type !== "histogram" ? family.samples : [];
  };
  assert.equal(value("automp_links")[0].value, 1);
  assert.deepEqual(value("automp_links_closed"), [{ labels: { reason: "silence" }, value: 1 }]);
});

test("a simulated node's latency histograms fill the same on every run: round trips, no event-loop lag, its disk's fsyncs", () => {
  const run = () => {
    const storages: Storage[] = [];
    const cluster = new SimCluster({
      nodes: 3,
      seed: 21,
      setup: echoSetup,
      nodeOptions: ({ index, host, disk }) => ({ storage: storages[index] = disk.open(host) }),
    });
    const app = cluster.client(0, "app");
    cluster.settle();
    assert.ok(app.request("echo2", { command: "ping" }));
    void storages[0].put("k", new Uint8Array([1]));
    cluster.run(1000);
    return cluster.node(0)!.metrics();
  };
  const families = run();
  const histogram = (name: string) => {
    const family = families.find((f) => f.name === name);
    assert.equal(family?.type, "histogram", name);
    const sample = family.samples[0];
    return { count: sample.counts.reduce((a, b) => a + b, 0) + sample.overflow, sum: sample.sum };
  };
  const roundTrips = histogram("automp_message_round_trip_seconds");
  assert.ok(roundTrips.count >= 1 && roundTrips.sum > 0, "acknowledged messages were timed");
  const lag = histogram("automp_event_loop_lag_seconds");
  assert.ok(lag.count >= 1, "timers were observed");
  // Simulated timers fire on time, to the simulator's microsecond resolution.
  assert.ok(lag.sum < lag.count * 1e-6, `lag ${lag.sum} s over ${lag.count} timers`);
  const fsyncs = histogram("automp_storage_fsync_duration_seconds");
  assert.equal(fsyncs.count, 1);
  assert.ok(fsyncs.sum >= 0.001 && fsyncs.sum <= 0.005, "the disk's default 1..5 ms");
  const text = formatMetrics(families);
  const parsed = new Set((parsePrometheus(text) as Array<{ name: string }>).map((f) => f.name));
  assert.ok(parsed.has("automp_storage_fsync_duration_seconds"));
  assert.equal(formatMetrics(run()), text, "the same seed, the same figures");
});

test("a setup callback sees the whole cluster on the first start, and may create a client there", () => {
  const sizes: number[] = [];
  const cluster = new SimCluster({
    nodes: 3,
    seed: 14,
    setup: ({ cluster, index, start }) => {
      sizes.push(cluster.size);
      if (index === 0 && start === 1) cluster.client(index, "app");
    },
  });
  assert.deepEqual(sizes, [3, 3, 3]);
  cluster.settle();
  assert.equal(cluster.node(0)!.worker("app")?.guid, "app");
});

test("a worker GUID attached on two nodes is named when the cluster cannot converge", () => {
  const cluster = new SimCluster({
    nodes: 2,
    seed: 15,
    setup: ({ node }) => node.attachWorker(new EchoWorker("echo")),
  });
  const report = cluster.settle({ maxMs: 3000, throwOnViolation: false });
  assert.match(report.violations[0], /worker "echo" is attached on both N0000 and N0001/);
});
