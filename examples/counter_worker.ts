/**
 * A worker of your own, tested on simulated clusters: a counter that acknowledges every message
 * it handles, and a copy with a planted bug (it silently drops every 7th message). A unit test
 * that sends three messages never sees that bug; a property over fault schedules finds it, shrinks
 * it to a short schedule and prints a replay file (see `counter_worker_test.ts`).
 *
 * The scenario definitions live here, not in the test, and give `module: import.meta.url`:
 * `deno task sim -- --replay FILE` imports the module a replay file names, and importing a test
 * file would run its tests.
 *
 * @example
 * ```ts
 * import { counters, counterWorkerScenario } from "./counter_worker.ts";
 * import { runScenario } from "../sim/mod.ts";
 *
 * const result = runScenario(counters, counterWorkerScenario({ nodes: 3, counts: [5] }));
 * if (result.violations.length !== 0) throw new Error(result.violations.join("\n"));
 * ```
 *
 * @module
 */
import { type MapMessage, WorkerBase } from "../mod.ts";
import {
  defineScenario,
  type Scenario,
  type ScenarioDefinition,
  type SimCluster,
  type TrafficItem,
} from "../sim/mod.ts";

/** What one traffic item asks: send `count` messages to the counter of node `to`. */
export interface CounterTraffic {
  /** Node whose counter gets the messages; folded onto the cluster size (`to % nodes`). */
  readonly to: number;
  /** How many messages, sent back to back. */
  readonly count: number;
}

/** GUID of the counter on node `index`. */
export const counterGuid = (index: number): string => `counter${index}`;
/** GUID of the client on node `index`: it sends the counts and receives the acks. */
export const clientGuid = (index: number): string => `client${index}`;

/**
 * Counts the messages it handles and answers each (`command=count`) with `command=ack`, the
 * message's `id` as `of`, and the count so far.
 *
 * @example
 * ```ts
 * import { CounterWorker } from "./counter_worker.ts";
 * import { SimCluster } from "../sim/mod.ts";
 *
 * const cluster = new SimCluster({
 *   nodes: 2,
 *   seed: 1,
 *   setup: ({ node, index }) => {
 *     if (index === 1) node.attachWorker(new CounterWorker("counter")); // a GUID lives on one node
 *   },
 * });
 * const app = cluster.client(0, "app");
 * cluster.settle();
 * const ack = app.request("counter", { command: "count", id: "1" });
 * if (ack?.message.of !== "1" || ack.message.count !== "1") throw new Error("no ack");
 * ```
 */
export class CounterWorker extends WorkerBase {
  #count = 0;

  /** Messages handled since this worker started (a restart starts again from 0). */
  get count(): number {
    return this.#count;
  }

  protected override onMessage(message: MapMessage): void {
    // Answer only requests: acking an ack would make two counters bounce messages forever.
    if (message.message.command !== "count" || message.source === "") return;
    this.#count++;
    this.send({
      destination: message.source,
      source: this.guid,
      message: { command: "ack", of: message.message.id ?? "", count: String(this.#count) },
    });
  }
}

/**
 * The planted bug: like {@link CounterWorker}, but every 7th message is taken and never
 * acknowledged, as an off-by-one in a batching loop might do.
 *
 * @example
 * ```ts
 * import { LossyCounterWorker } from "./counter_worker.ts";
 * const lossy = new LossyCounterWorker("counter0");
 * if (lossy.count !== 0) throw new Error("unexpected");
 * ```
 */
export class LossyCounterWorker extends CounterWorker {
  #seen = 0;

  protected override onMessage(message: MapMessage): void {
    if (message.message.command === "count" && ++this.#seen % 7 === 0) return;
    super.onMessage(message);
  }
}

/**
 * Every `count` message a counter took into its queue was acknowledged: one line per message
 * that was not. A message is excused when the counter's node crashed after taking it (a crash
 * loses the worker's queue, acks not yet sent included).
 *
 * @example
 * ```ts
 * import { unacknowledged } from "./counter_worker.ts";
 * import { SimCluster } from "../sim/mod.ts";
 * if (unacknowledged(new SimCluster({ nodes: 1 })).length !== 0) throw new Error("unexpected");
 * ```
 */
export function unacknowledged(cluster: SimCluster): string[] {
  const { history } = cluster;
  const acked = new Set<string>();
  for (const record of history.records) {
    if (record.message.command === "ack") acked.add(`${record.source} ${record.message.of}`);
  }
  const problems: string[] = [];
  for (const record of history.records) {
    if (record.message.command !== "count") continue;
    for (const { worker, node, atMs } of record.deliveries) {
      if (acked.has(`${worker} ${record.message.id}`) || history.crashedSince(node, atMs)) {
        continue;
      }
      problems.push(`${worker} took count ${record.message.id} at ${atMs} ms and never acked it`);
    }
  }
  return problems;
}

/** A counters scenario with the worker `make` builds on every node. */
function countersWith(
  name: string,
  make: (guid: string) => WorkerBase,
): ScenarioDefinition<TrafficItem<CounterTraffic>> {
  return defineScenario({
    name,
    module: import.meta.url, // lets a replay file find this definition by its name
    // `setup` runs on every start, so a restarted node gets its counter back.
    cluster: { setup: ({ node, index }) => node.attachWorker(make(counterGuid(index))) },
    // One client per node: a client is attached again when its node restarts.
    prepare: (cluster) => {
      for (let index = 0; index < cluster.size; index++) cluster.client(index, clientGuid(index));
    },
    traffic: (cluster, item, scenario) => {
      // Ids from the item's place in the schedule: unique, and the same on every replay.
      const at = scenario.traffic.indexOf(item);
      for (let i = 0; i < item.value.count; i++) {
        cluster.send(item.from, {
          destination: counterGuid(item.value.to % cluster.size),
          source: clientGuid(item.from),
          message: { command: "count", id: `${at}.${i}` },
        });
      }
    },
    check: unacknowledged,
  });
}

/**
 * Counters on every node; each traffic item sends a burst of counts from its node's client to
 * one counter. After the settle: {@link unacknowledged} finds nothing.
 *
 * @example
 * ```ts
 * import { counters } from "./counter_worker.ts";
 * if (counters.name !== "every count is acknowledged") throw new Error("renamed");
 * ```
 */
export const counters: ScenarioDefinition<TrafficItem<CounterTraffic>> = countersWith(
  "every count is acknowledged",
  (guid) => new CounterWorker(guid),
);

/**
 * The same scenario with {@link LossyCounterWorker}s: any burst of 7 to one counter breaks it.
 *
 * @example
 * ```ts
 * import { counterWorkerScenario, lossyCounters } from "./counter_worker.ts";
 * import { runScenario } from "../sim/mod.ts";
 * const result = runScenario(lossyCounters, counterWorkerScenario({ nodes: 2, counts: [7] }));
 * if (!/never acked/.test(result.violations.join())) throw new Error("bug not found");
 * ```
 */
export const lossyCounters: ScenarioDefinition<TrafficItem<CounterTraffic>> = countersWith(
  "every count is acknowledged (lossy counter)",
  (guid) => new LossyCounterWorker(guid),
);

/**
 * A hand-written counters scenario without faults: one burst per entry of `counts`, 100 ms
 * apart, from node 0 to the counter of the last node.
 *
 * @example
 * ```ts
 * import { counterWorkerScenario } from "./counter_worker.ts";
 * const scenario = counterWorkerScenario({ nodes: 4, counts: [1, 2] });
 * if (scenario.traffic[1].atMs !== 100 || scenario.traffic[1].value.to !== 3) throw new Error();
 * ```
 */
export function counterWorkerScenario(
  options: { nodes: number; counts: readonly number[]; seed?: number },
): Scenario<TrafficItem<CounterTraffic>> {
  return {
    version: 1,
    seed: options.seed ?? 1,
    nodes: options.nodes,
    durationMs: 100 * options.counts.length,
    settleMs: 10_000,
    latencyMsMin: 1,
    latencyMsMax: 5,
    faults: [],
    traffic: options.counts.map((count, i) => ({
      atMs: 100 * i,
      from: 0,
      value: { to: options.nodes - 1, count },
    })),
  };
}
