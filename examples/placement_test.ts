import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { checkScenarios, faultSchedule, runScenario } from "../sim/mod.ts";
import { placementScenario, sessions } from "./placement.ts";

test("sessions placed on both sides of a cut run once after the heal, where the table says", () => {
  let placedAgain = 0;
  const result = runScenario(sessions, placementScenario({ nodes: 5, spawns: [2, 3, 2, 1, 4] }), {
    inspect: (cluster) => {
      for (const node of cluster.liveNodes()) {
        placedAgain += node.placement.state().stats.placedAgain;
      }
    },
  });
  assert.deepEqual(result.violations, []);
  // The cut lasted long enough for the majority to place node 1's sessions a second time.
  assert.ok(placedAgain > 0, "no session was placed again: the scenario tests nothing");
});

test("each spawned session runs exactly once after partitions and crashes settle", () => {
  const schedules = faultSchedule({
    nodes: { min: 2, max: 10 },
    durationMs: 4000,
    // Mostly splits and crashes, where two sides can each place the same session.
    weights: { partition: 4, isolate: 3, crash: 4, restart: 2, skew: 0 },
    traffic: fc.integer({ min: 1, max: 5 }),
  });
  const report = checkScenarios(sessions, schedules, { numRuns: 20, seed: 3 });
  assert.equal(report.runs, 20);
});
