/**
 * Placement under faults: every node hosts the worker kind `session`; traffic spawns sessions
 * from random nodes while partitions and crashes split the cluster, so both sides of a split
 * may place the same session. After the settle each spawned session must run exactly once, on
 * the node the placement table names, every node must hold the same table, and a message to the
 * session must reach it there.
 *
 * @example
 * ```ts
 * import { placementScenario, sessions } from "./placement.ts";
 * import { runScenario } from "../sim/mod.ts";
 *
 * const result = runScenario(sessions, placementScenario({ nodes: 4, spawns: [3, 2] }));
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
  type SimClient,
  type SimCluster,
  type TrafficItem,
} from "../sim/mod.ts";

/**
 * A placed worker that answers `command=where` with the GUID of the node it runs on: the check
 * asks it, so a session that runs where the table says but cannot be reached is caught too.
 *
 * @example
 * ```ts
 * import { SessionWorker } from "./placement.ts";
 * import { SimCluster } from "../sim/mod.ts";
 *
 * const cluster = new SimCluster({
 *   nodes: 3,
 *   seed: 4,
 *   node: { placement: { kinds: { session: (guid) => new SessionWorker(guid) } } },
 * });
 * const app = cluster.client(0, "app");
 * cluster.settle();
 * const host = cluster.node(0)!.spawn("session", "s1");
 * cluster.run(100);
 * if (app.request("s1", { command: "where" })?.message.node !== host) throw new Error();
 * ```
 */
export class SessionWorker extends WorkerBase {
  protected override onMessage(message: MapMessage): void {
    if (message.message.command !== "where" || message.source === "") return;
    this.send({
      destination: message.source,
      source: this.guid,
      message: { command: "here", node: this.context.nodeGuid },
    });
  }
}

/** A spawn the traffic made: which node asked, and when. */
interface Spawn {
  readonly from: number;
  readonly atMs: number;
}

/** What a run keeps besides the cluster: the spawns, and the client the check asks with. */
const runs = new WeakMap<SimCluster, { spawns: Map<string, Spawn>; client?: SimClient }>();
const runOf = (cluster: SimCluster) => {
  let run = runs.get(cluster);
  if (run === undefined) runs.set(cluster, run = { spawns: new Map() });
  return run;
};

/**
 * What is wrong with placement after the settle: tables that differ, sessions running on no
 * node, on two, or elsewhere than the table says, sessions missing from the table (excused
 * only if their spawner crashed before it could tell anyone) and sessions that do not answer.
 */
function placementProblems(cluster: SimCluster): string[] {
  const { spawns, client } = runOf(cluster);
  const nodes = cluster.liveNodes();
  const problems: string[] = [];
  const tableOf = (guid: string) =>
    cluster.node(guid)!.placement.placed().map((e) => `${e.guid}@${e.host}`).sort().join(" ");
  const table = tableOf(nodes[0].guid);
  for (const node of nodes) {
    if (tableOf(node.guid) !== table) problems.push(`${node.guid}'s table differs`);
  }
  for (const [guid, spawn] of spawns) {
    const entry = nodes[0].placement.entry(guid);
    const runsOn = nodes.filter((node) => node.worker(guid) !== undefined).map((n) => n.guid);
    if (entry === undefined) {
      // A spawn only the spawner knew of dies with it: the spawn was never acknowledged.
      const spawner = cluster.guidOf(spawn.from);
      if (!cluster.history.crashedSince(spawner, spawn.atMs)) {
        problems.push(`${guid}, spawned on ${spawner} at ${spawn.atMs} ms, is in no table`);
      }
      if (runsOn.length > 0) problems.push(`${guid} is in no table but runs on ${runsOn}`);
      continue;
    }
    if (runsOn.length !== 1 || runsOn[0] !== entry.host) {
      problems.push(`${guid} is placed on ${entry.host} but runs on [${runsOn.join(" ")}]`);
      continue;
    }
    const answer = client?.request(guid, { command: "where" }, { maxMs: 1000 });
    if (answer?.message.node !== entry.host) {
      problems.push(`${guid} on ${entry.host}: "where" got ${answer?.message.node ?? "no answer"}`);
    }
  }
  return problems;
}

/**
 * Sessions spawned from random nodes: a traffic item asks node `from` to spawn `value`
 * sessions (default strategy: least loaded). Checks {@link placementProblems} after the
 * settle, as well as the message history.
 *
 * @example
 * ```ts
 * import { sessions } from "./placement.ts";
 * if (sessions.module === undefined) throw new Error("replay files need the module");
 * ```
 */
export const sessions: ScenarioDefinition<TrafficItem<number>> = defineScenario({
  name: "each spawned session runs exactly once",
  module: import.meta.url,
  cluster: {
    // Every node can host sessions; a spawn from any node may land on any node.
    node: { placement: { kinds: { session: (guid) => new SessionWorker(guid) } } },
  },
  prepare: (cluster) => void (runOf(cluster).client = cluster.client(0, "asker")),
  traffic: (cluster, item, scenario) => {
    // A down or frozen node cannot be asked to spawn (cluster.node() gives a paused one).
    if (cluster.host(item.from).state !== "up") return;
    const at = scenario.traffic.indexOf(item);
    for (let i = 0; i < item.value; i++) {
      const guid = `session${at}.${i}`;
      runOf(cluster).spawns.set(guid, { from: item.from, atMs: cluster.now });
      cluster.node(item.from)!.spawn("session", guid);
    }
  },
  check: placementProblems,
});

/**
 * A hand-written sessions scenario: one spawn item per entry of `spawns` (that many sessions),
 * 200 ms apart, from node 0, 1, 2…; then node 1 is cut off for 5 s, long enough for the others
 * to give up on it and place its sessions again while it still runs them.
 *
 * @example
 * ```ts
 * import { placementScenario } from "./placement.ts";
 * const scenario = placementScenario({ nodes: 3, spawns: [1, 1, 1] });
 * if (scenario.traffic[2].from !== 2) throw new Error("unexpected");
 * ```
 */
export function placementScenario(
  options: { nodes: number; spawns: readonly number[]; seed?: number },
): Scenario<TrafficItem<number>> {
  const isolateAtMs = 200 * options.spawns.length;
  return {
    version: 1,
    seed: options.seed ?? 1,
    nodes: options.nodes,
    durationMs: isolateAtMs + 5500,
    settleMs: 10_000,
    latencyMsMin: 1,
    latencyMsMax: 5,
    faults: options.nodes < 2 ? [] : [{ atMs: isolateAtMs, kind: "isolate", node: 1, forMs: 5000 }],
    traffic: options.spawns.map((count, i) => ({
      atMs: 200 * i,
      from: i % options.nodes,
      value: count,
    })),
  };
}
