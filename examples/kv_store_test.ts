import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { faultSchedule, type Scenario } from "../sim/mod.ts";
import { type MapMessage, WorkerBase } from "../mod.ts";
import { kvScenario, kvStores, kvStoreScenario, type KvWrite, runKvScenario } from "./kv_store.ts";

test("a store keeps every write it acknowledged across a crash and restart", async () => {
  const result = await runKvScenario(kvStores, kvScenario({ nodes: 4 }));
  assert.deepEqual(result.violations, []);
  assert.ok(result.acknowledged >= 3, `${result.acknowledged} acknowledged`);
});

test("every acknowledged write survives crashes of stores and peers, on 3 to 8 nodes", async () => {
  const schedules = faultSchedule<never, KvWrite>({
    nodes: { min: 3, max: 8 },
    durationMs: 3000,
    // Crashes and restarts above all, so stores and their clients' peers go down often.
    weights: { crash: 5, restart: 4, skew: 0 },
    traffic: (nodes, durationMs) =>
      fc.record({
        atMs: fc.integer({ min: 0, max: durationMs }),
        from: fc.nat({ max: nodes - 1 }),
        to: fc.nat({ max: nodes - 1 }),
        key: fc.nat({ max: 3 }), // few keys: writes overwrite each other
      }),
    maxTraffic: 20,
  });
  let acknowledged = 0;
  await fc.assert(
    fc.asyncProperty(schedules, async (scenario) => {
      const result = await runKvScenario(kvStores, scenario);
      assert.deepEqual(result.violations, [], `replay: ${JSON.stringify(scenario)}`);
      acknowledged += result.acknowledged;
    }),
    { numRuns: 20, seed: 1 },
  );
  // A check of acknowledged writes passes trivially when nothing is acknowledged.
  assert.ok(acknowledged > 50, `only ${acknowledged} writes acknowledged in 20 runs`);
});

/** The bug the check is for: acknowledging a write before it is durable. */
class EagerStoreWorker extends WorkerBase {
  protected override onMessage({ source, message }: MapMessage): void {
    if (message.command !== "set") return;
    void this.context.storage.put(message.key, new TextEncoder().encode(message.value));
    this.send({
      destination: source,
      source: this.guid,
      message: { ...message, command: "setAck" },
    });
  }
}

test("a store acking before its write is durable is caught losing it in a crash", async () => {
  // Node 2's client writes to node 2's store; the node crashes 1 ms later, within the fsync.
  const scenario: Scenario<KvWrite> = {
    ...kvScenario({ nodes: 3 }),
    faults: [{ atMs: 101, kind: "crash", node: 2 }],
    traffic: [{ atMs: 100, from: 2, to: 2, key: 0 }],
  };
  const eager = kvStoreScenario("eager stores", (guid) => new EagerStoreWorker(guid));
  const caught = await runKvScenario(eager, scenario);
  assert.deepEqual(caught.violations, [
    "check: store2 acknowledged k0=v0 (write 0) but holds nothing",
  ]);
  // The real store never acknowledged that write: nothing was promised, nothing is lost.
  const fine = await runKvScenario(kvStores, scenario);
  assert.deepEqual([fine.violations, fine.acknowledged], [[], 0]);
});
