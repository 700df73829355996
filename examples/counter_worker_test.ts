import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  checkScenarios,
  faultSchedule,
  type ReplayFile,
  replayScenario,
  runScenario,
  type Scenario,
  ScenarioFailure,
  type TrafficItem,
} from "../sim/mod.ts";
import { runSimCliAsync } from "../sim/cli.ts";
import { counters, type CounterTraffic, lossyCounters } from "./counter_worker.ts";

// 20 nodes; every fault kind; up to 12 bursts of 1 to 10 counts, each from a random node's
// client to a random node's counter.
const schedules = faultSchedule({
  nodes: 20,
  durationMs: 3000,
  traffic: fc.record({ to: fc.nat(), count: fc.integer({ min: 1, max: 10 }) }),
});

test("every message delivered to a counter is acknowledged, under 20-node fault schedules", () => {
  const report = checkScenarios(counters, schedules, { numRuns: 15, seed: 7 });
  assert.equal(report.runs, 15);
  assert.ok(report.delivered > 100, `only ${report.delivered} messages delivered`);
});

/** The lossy counters' failure, found once and shared by the tests below. */
let lossyFailure: ScenarioFailure | undefined;
function findLossyFailure(): ScenarioFailure {
  if (lossyFailure !== undefined) return lossyFailure;
  try {
    checkScenarios(lossyCounters, schedules, { numRuns: 15, seed: 7 });
  } catch (error) {
    if (error instanceof ScenarioFailure) return lossyFailure = error;
    throw error;
  }
  assert.fail("checkScenarios passed the lossy counters");
}

test("a counter dropping every 7th message fails, shrunk to <= 3 faults, with a replay", () => {
  const failure = findLossyFailure().report.failure!;
  assert.ok(failure.scenario.faults.length <= 3, JSON.stringify(failure.scenario.faults));
  assert.match(failure.violations.join("\n"), /never acked/);
  const message = findLossyFailure().message;
  assert.match(message, /deno task sim -- --replay FILE\.json/);
  // The replay file is one line of the message, ready to save.
  const line = message.split("\n").find((l) => l.trim().startsWith('{"automp":"scenario-replay"'));
  assert.deepEqual(JSON.parse(line!), failure.replay);
  assert.equal(failure.replay.name, lossyCounters.name);
  assert.equal(failure.replay.module, lossyCounters.module);
});

test("the printed replay file reproduces the failure from the CLI, same trace hash", async () => {
  const failure = findLossyFailure().report.failure!;
  const dir = mkdtempSync(join(tmpdir(), "automp-counter-"));
  try {
    const file = join(dir, "failure.json");
    writeFileSync(file, JSON.stringify(failure.replay));
    const cli = await runSimCliAsync(["--replay", file]);
    assert.equal(cli.code, 1, cli.stderr);
    const printed = JSON.parse(cli.stdout);
    assert.equal(printed.scenario, lossyCounters.name);
    assert.deepEqual(printed.violations, failure.violations);
    const replay = failure.replay as ReplayFile<TrafficItem<CounterTraffic>>;
    const first = replayScenario(lossyCounters, replay);
    const second = replayScenario(lossyCounters, replay);
    assert.deepEqual(first.violations, failure.violations);
    assert.equal(printed.trace_hash, first.traceHash);
    assert.equal(second.traceHash, first.traceHash);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** 20 nodes, a partition, a crash and a restart, five bursts to four counters. */
const FIXED: Scenario<TrafficItem<CounterTraffic>> = {
  version: 1,
  seed: 2024,
  nodes: 20,
  durationMs: 3000,
  settleMs: 10_000,
  latencyMsMin: 1,
  latencyMsMax: 10,
  faults: [
    { atMs: 300, kind: "partition", a: [0, 1, 2, 3, 4], b: [10, 11, 12] },
    { atMs: 700, kind: "crash", node: 7 },
    { atMs: 1500, kind: "heal" },
    { atMs: 2000, kind: "restart", node: 7 },
  ],
  traffic: [
    { atMs: 100, from: 0, value: { to: 7, count: 5 } },
    { atMs: 400, from: 2, value: { to: 11, count: 3 } },
    { atMs: 800, from: 7, value: { to: 0, count: 2 } },
    { atMs: 1600, from: 12, value: { to: 3, count: 6 } },
    { atMs: 2500, from: 19, value: { to: 7, count: 4 } },
  ],
};

/** FIXED's trace hash, the same on Deno, Bun and Node: a change means the run changed. */
const STORED = { hash: "051e36f3e6333863" };

test("a fixed 20-node counters scenario has the stored trace hash on this runtime", () => {
  const result = runScenario(counters, FIXED);
  assert.deepEqual(result.violations, []);
  assert.equal(result.traceHash, STORED.hash);
});
