import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkScenario,
  checkScenarios,
  defineScenario,
  FAULT_KINDS,
  faultSchedule,
  replayFile,
  replayScenario,
  runScenario,
  type Scenario,
  ScenarioFailure,
  searchScenarios,
  type TrafficItem,
} from "./scenario.ts";
import { EchoWorker } from "../src/worker.ts";

const BASE: Scenario<TrafficItem<number>> = {
  version: 1,
  seed: 5,
  nodes: 4,
  durationMs: 3000,
  settleMs: 10_000,
  latencyMsMin: 1,
  latencyMsMax: 5,
  faults: [],
  traffic: [],
};

/** Echo workers everywhere; traffic items send from their node to echo<value mod size>. */
const echo = defineScenario({
  name: "echo",
  module: import.meta.url,
  cluster: { setup: ({ node, index }) => node.attachWorker(new EchoWorker(`echo${index}`)) },
  traffic: (cluster, item: TrafficItem<number>) => {
    cluster.send(item.from, {
      destination: `echo${item.value % cluster.size}`,
      source: `src${item.from}`,
      message: { at: String(item.atMs) },
    });
  },
});

test("a scenario runs the same twice: same trace hash, same figures", () => {
  const scenario: Scenario<TrafficItem<number>> = {
    ...BASE,
    faults: [
      { atMs: 200, kind: "partition", a: [0], b: [1, 2, 3] },
      { atMs: 900, kind: "crash", node: 2 },
      { atMs: 1500, kind: "heal" },
      { atMs: 1800, kind: "restart", node: 2 },
      { atMs: 2000, kind: "loss", probability: 0.3, forMs: 500 },
    ],
    traffic: [0, 300, 1000, 1900, 2500].map((atMs, i) => ({ atMs, from: i % 4, value: i })),
  };
  const first = runScenario(echo, scenario);
  const second = runScenario(echo, scenario);
  assert.deepEqual(first.violations, []);
  assert.equal(first.traceHash, second.traceHash);
  assert.equal(first.sent, second.sent);
  assert.ok(first.sent >= 5, `${first.sent} sent`);
  assert.ok(first.convergedAtMs !== undefined);
});

test("every fault kind applies to a running cluster without a violation", () => {
  const faults = FAULT_KINDS.map((kind, i) => {
    const atMs = 100 + i * 150;
    switch (kind) {
      case "partition":
        return { atMs, kind, a: [0, 1], b: [2] };
      case "oneWay":
        return { atMs, kind, from: [3], to: [0] };
      case "cut":
      case "hold":
        return { atMs, kind, a: 1, b: 2, forMs: 400 };
      case "isolate":
      case "pause":
        return { atMs, kind, node: 3, forMs: 400 };
      case "crash":
      case "restart":
        return { atMs, kind, node: 1 };
      case "loss":
      case "duplicate":
        return { atMs, kind, probability: 0.2, forMs: 300 };
      case "skew":
        return { atMs, kind, node: 0, offsetMs: 1500, rate: 1.05 };
      default:
        return { atMs, kind };
    }
  }) as Scenario["faults"];
  const result = runScenario(echo, {
    ...BASE,
    faults,
    traffic: [{ atMs: 500, from: 0, value: 2 }],
  });
  assert.deepEqual(result.violations, []);
});

test("a malformed scenario is refused with an error naming the field", () => {
  const cases: Array<[Partial<Scenario>, RegExp]> = [
    [{ nodes: 0 }, /nodes 0 not in 1..1000/],
    [{ version: 2 as 1 }, /not a version 1 scenario/],
    [{ seed: 1.5 }, /seed 1.5 is not an integer/],
    [{ latencyMsMin: 9, latencyMsMax: 3 }, /latencyMsMax 3 < latencyMsMin 9/],
    [{ faults: [{ atMs: 5, kind: "meteor" }] as never }, /faults\[0\] has unknown kind "meteor"/],
    [{ faults: [{ atMs: 99_999, kind: "heal" }] }, /heal \(faults\[0\]\) at 99999 ms is outside/],
    [
      { faults: [{ atMs: 5, kind: "loss", probability: 3, forMs: 10 }] },
      /has probability 3, not in \[0, 1\]/,
    ],
    [
      { faults: [{ atMs: 5, kind: "pause", node: 1, forMs: 0 }] },
      /pause \(faults\[0\]\) has forMs 0, not > 0/,
    ],
    [{ traffic: [{ atMs: 5, from: 7, value: 1 }] }, /traffic\[0\] names node 7, outside 0..3/],
  ];
  for (const [change, pattern] of cases) {
    assert.throws(() => checkScenario({ ...BASE, ...change }), pattern);
    assert.throws(() => runScenario(echo, { ...BASE, ...change } as typeof BASE), pattern);
  }
});

test("a setup that throws on a restart is a violation of that run, not a hang", () => {
  const fragile = defineScenario({
    name: "fragile",
    cluster: {
      setup: ({ start }) => {
        if (start > 1) throw new Error("cannot reopen the store");
      },
    },
  });
  const result = runScenario(fragile, {
    ...BASE,
    faults: [{ atMs: 100, kind: "crash", node: 1 }, { atMs: 200, kind: "restart", node: 1 }],
  });
  assert.match(
    result.violations.join("\n"),
    /Cannot set up node 1 \(N0001\): the setup callback threw: cannot reopen the store/,
  );
});

test("faultSchedule draws only the kinds weighted above zero, within the bounds given", () => {
  const arbitrary = faultSchedule({
    nodes: { min: 3, max: 6 },
    durationMs: 2000,
    weights: { crash: 0, restart: 0, partition: 5 },
    lossMax: 0.1,
    maxFaults: 5,
    traffic: fc.nat({ max: 9 }),
  });
  const samples = fc.sample(arbitrary, { seed: 3, numRuns: 40 });
  for (const s of samples) {
    checkScenario(s);
    assert.ok(s.nodes >= 3 && s.nodes <= 6);
    assert.ok(s.faults.length <= 5);
    for (const f of s.faults) {
      assert.ok(f.kind !== "crash" && f.kind !== "restart", f.kind);
      if (f.kind === "loss") assert.ok(f.probability <= 0.1);
    }
    for (const item of s.traffic) assert.ok(item.value <= 9 && item.from < s.nodes);
  }
  assert.ok(samples.some((s) => s.faults.some((f) => f.kind === "partition")));
});

test("faultSchedule refuses bad options, naming them", () => {
  assert.throws(() => faultSchedule({ nodes: 0 }), /nodes \(min\) 0 is not an integer/);
  assert.throws(() => faultSchedule({ nodes: { min: 5, max: 2 } }), /nodes \(max\) 2/);
  assert.throws(() => faultSchedule({ lossMax: 2 }), /lossMax 2 is not in 0..1/);
  assert.throws(
    () => faultSchedule({ weights: { meteor: 1 } as never }),
    /weights names unknown fault "meteor"/,
  );
  assert.throws(() => faultSchedule({ traffic: 5 as never }), /traffic must be a fast-check/);
});

test("a failing property shrinks to a short schedule and its error carries the replay", () => {
  // A planted bug: a check that fails once any node was ever crashed.
  const crashAverse = defineScenario({
    name: "crash averse",
    module: import.meta.url,
    check: (cluster) => cluster.hosts.some((h) => h.incarnation > 1) ? "a node restarted" : [],
  });
  let failure: ScenarioFailure | undefined;
  try {
    checkScenarios(
      crashAverse,
      faultSchedule({ nodes: { min: 2, max: 5 }, durationMs: 2000 }),
      { numRuns: 40, seed: 12 },
    );
  } catch (error) {
    if (!(error instanceof ScenarioFailure)) throw error;
    failure = error;
  }
  assert.ok(failure, "the planted bug is found");
  const found = failure.report.failure!;
  assert.deepEqual(found.scenario.faults.map((f) => f.kind), ["crash"], "shrunk to one crash");
  assert.equal(found.scenario.nodes, 2, "and to the smallest cluster");
  assert.match(failure.message, /check: a node restarted/);
  assert.match(failure.message, /deno task sim -- --replay FILE\.json/);
  const file = JSON.parse(failure.message.split("\n").find((l) => l.includes('"automp"'))!);
  assert.deepEqual(file, JSON.parse(JSON.stringify(found.replay)));
  const replayed = replayScenario(crashAverse, file);
  assert.deepEqual(replayed.violations, ["check: a node restarted"]);
  assert.equal(replayScenario(crashAverse, file).traceHash, replayed.traceHash);
});

test("a clean search reports its runs and messages", () => {
  const report = searchScenarios(
    echo,
    faultSchedule({ nodes: 3, durationMs: 1500, traffic: fc.nat(), maxFaults: 3 }),
    { numRuns: 5, seed: 4, checkDeterminism: true },
  );
  assert.equal(report.failure, undefined);
  assert.equal(report.runs, 5);
  assert.ok(report.sent > 0);
});

test("replay refuses a file made for another scenario", () => {
  const other = defineScenario({ name: "other" });
  assert.throws(
    () => replayScenario(other, replayFile(echo, BASE)),
    /the file is for scenario "echo", not "other"/,
  );
  assert.throws(() => replayScenario(echo, null as never), /Cannot replay: expected/);
});

test("defineScenario refuses what cannot work", () => {
  assert.throws(() => defineScenario({ name: "" }), /name must be a non-empty string/);
  assert.throws(
    () => defineScenario({ name: "x", traffic: 5 as never }),
    /traffic must be a function/,
  );
  assert.throws(() => defineScenario({ name: "x", warmupMs: -1 }), /warmupMs -1 must be >= 0/);
});
