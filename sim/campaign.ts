/**
 * Fault campaigns: the project's own scenario (see `./scenario.ts`), run on the public testing
 * API: a cluster of real nodes with one recording worker each, a schedule of timed faults and
 * application traffic (messages between workers, workers attached and detached, placed workers
 * spawned and stopped), and the invariants the cluster must keep during and after it.
 *
 * A campaign is plain JSON (see {@link Campaign}), so a failing one is saved, shrunk by
 * fast-check, and replayed exactly (`deno task sim -- --replay FILE`), trace hash included.
 *
 * Invariants checked:
 * - the history's: nothing is delivered twice to a worker, per-sender order to a worker holds,
 *   and every message sent is delivered or reported `undeliverable` (messages whose sender or
 *   destination host crashed afterwards are exempt: a crash loses a process's memory);
 * - after a final heal and settle: every live node links every other live node, every live
 *   worker's location is known everywhere, and no link refers to a dead incarnation;
 * - no uncaught exception; worker queues and link buffers stay within their bounds;
 * - placement: after the settle every node holds the same placement table, every placed worker
 *   runs on exactly one node (the one the table names, a live one), a stopped one nowhere, and
 *   every spawn is in the table (unless its spawner crashed before anyone else heard of it).
 *
 * @module
 */
import type { AutoMpiNode, NodeOptions } from "../src/node.ts";
import type { MapMessage } from "../src/message.ts";
import { WorkerBase } from "../src/worker.ts";
import type { SimCluster } from "./cluster.ts";
import type { WatchedNode } from "./history.ts";
import {
  checkScenario,
  defineScenario,
  faultSchedule,
  runScenario,
  type Scenario,
  type ScenarioDefinition,
} from "./scenario.ts";
import fc from "fast-check";

export type { Fault } from "./scenario.ts";

/** One timed piece of application traffic. */
export type Traffic =
  | {
    readonly atMs: number;
    readonly kind: "send";
    readonly from: number;
    /** Index of the node whose worker `W<to>` is the destination. */
    readonly to: number;
    readonly count: number;
  }
  | { readonly atMs: number; readonly kind: "detach"; readonly node: number }
  | { readonly atMs: number; readonly kind: "attach"; readonly node: number }
  /** `count` workers of kind "probe" spawned from `from` (placed by the default strategy). */
  | { readonly atMs: number; readonly kind: "spawn"; readonly from: number; readonly count: number }
  /** Stops the spawned worker number `which` (modulo those spawned so far) from `from`. */
  | { readonly atMs: number; readonly kind: "stop"; readonly from: number; readonly which: number };

/** A whole campaign: everything a run depends on (a {@link Scenario} with campaign traffic). */
export type Campaign = Scenario<Traffic>;

/** What a run found. */
export interface CampaignResult {
  readonly violations: readonly string[];
  readonly traceHash: string;
  readonly events: number;
  readonly sent: number;
  readonly delivered: number;
  readonly reported: number;
  readonly exempt: number;
}

/** Node options every campaign uses: fast heartbeats keep runs short in virtual time too. */
export const CAMPAIGN_NODE_OPTIONS: Partial<NodeOptions> = {
  heartbeatIntervalMs: 200,
  connectTimeoutMs: 400,
  handshakeTimeoutMs: 400,
  reconnectMinMs: 50,
  reconnectMaxMs: 800,
  gossipIntervals: 2,
};

const WORKER_QUEUE_LIMIT = 1000;

/** What campaigns spawn: a worker that does nothing, so only placement is under test. */
class ProbeWorker extends WorkerBase {
  protected override onMessage(): void {}
}

/** Each node's own worker: takes messages (the history records them), bounded queue. */
class CampaignWorker extends WorkerBase {
  constructor(guid: string) {
    super(guid, { queueLimit: WORKER_QUEUE_LIMIT });
  }
  protected override onMessage(_message: MapMessage): void {}
}

const workerOf = (node: number) => `W${node}`;
const guidOf = (node: number) => `N${node}`;

/** Sabotage, to prove the checker can fail (see {@link runCampaign}). */
export type Plant = "duplicate" | "drop" | "twin";

/** What one campaign run keeps besides the cluster. */
interface RunState {
  /** Nodes whose worker was detached (and is not attached again on restart). */
  readonly detached: Set<number>;
  /** Spawned probes: GUID → spawner and when. */
  readonly spawned: Map<string, { from: number; atMs: number }>;
  /** "from>to" → next sequence number. */
  readonly seqOf: Map<string, number>;
  /** Crash times by node index. */
  readonly crashedAtMs: Map<number, number[]>;
  readonly violations: string[];
  nextId: number;
  planted: boolean;
}

/** The history sees `node` through this: with a plant, one delivery is doubled or hidden. */
function sabotaged(node: AutoMpiNode, state: RunState, plant: Plant | undefined): WatchedNode {
  if (plant !== "duplicate" && plant !== "drop") return node;
  return {
    guid: node.guid,
    locate: (worker) => node.locate(worker),
    on: ((type: "message-delivered", listener: (event: unknown) => void) => {
      if (type !== "message-delivered") return node.on(type, listener);
      return node.on(type, (event) => {
        if (!state.planted && event.message.message.id !== undefined) {
          state.planted = true;
          if (plant === "drop") return;
          listener(event);
        }
        listener(event);
      });
    }) as AutoMpiNode["on"],
  };
}

/**
 * The campaign as a scenario definition; `plant` sabotages it to prove the checks can fail:
 * `"duplicate"` shows the history one delivery twice, `"drop"` hides one, `"twin"` starts a
 * second copy of a placed worker after the settle.
 */
export function campaignDefinition(
  plant?: Plant,
  membership: "mesh" | "ring" = "mesh",
): ScenarioDefinition<Traffic> {
  const states = new WeakMap<SimCluster, RunState>();
  const stateOf = (cluster: SimCluster): RunState => {
    let state = states.get(cluster);
    if (state === undefined) {
      state = {
        detached: new Set(),
        spawned: new Map(),
        seqOf: new Map(),
        crashedAtMs: new Map(),
        violations: [],
        nextId: 0,
        planted: false,
      };
      states.set(cluster, state);
    }
    return state;
  };
  const live = (cluster: SimCluster, node: number) => cluster.host(node).state === "up";

  const checkBounds = (cluster: SimCluster) => {
    const state = stateOf(cluster);
    for (const node of cluster.liveNodes()) {
      for (const link of node.state().links) {
        if (link.bufferedBytes > (8 << 20) + (64 << 10)) {
          state.violations.push(
            `${node.guid}: link to ${link.peer} buffers ${link.bufferedBytes} bytes`,
          );
        }
      }
      const index = cluster.indexOf(node.guid);
      const worker = node.worker(workerOf(index)) as CampaignWorker | undefined;
      if (worker && worker.queuedMessages > WORKER_QUEUE_LIMIT) {
        state.violations.push(`${node.guid}: worker queue holds ${worker.queuedMessages}`);
      }
    }
  };

  return defineScenario<Traffic>({
    name: (plant === undefined ? "automp-campaign" : `automp-campaign-plant-${plant}`) +
      (membership === "ring" ? "-ring" : ""),
    module: import.meta.url,
    warmupMs: 0,
    // Messages sent at the very end are still in flight when the cluster converges.
    quietMs: 2000,
    cluster: {
      node: {
        ...CAMPAIGN_NODE_OPTIONS,
        ...(membership === "ring" ? { membership } : {}),
        placement: { kinds: { probe: (guid) => new ProbeWorker(guid) } },
      },
      guidOf,
      history: false,
      setup: ({ node, index, cluster }) => {
        const state = stateOf(cluster);
        cluster.history.watch(sabotaged(node, state, plant));
        if (!state.detached.has(index)) node.attachWorker(new CampaignWorker(workerOf(index)));
      },
    },
    prepare: (cluster, scenario) => {
      // Bounds are checked during the run too, every virtual second.
      for (let t = 1000; t < scenario.durationMs; t += 1000) {
        cluster.sim.schedule(t, () => checkBounds(cluster));
      }
      // Crash times, for the placement check's "spawner crashed" exemption.
      for (const fault of scenario.faults) {
        if (fault.kind !== "crash") continue;
        cluster.sim.schedule(fault.atMs, () => {
          const state = stateOf(cluster);
          state.crashedAtMs.set(fault.node, [
            ...(state.crashedAtMs.get(fault.node) ?? []),
            cluster.now,
          ]);
        });
      }
    },
    traffic: (cluster, item) => {
      const state = stateOf(cluster);
      if (item.kind === "send") {
        if (!live(cluster, item.from)) return;
        for (let i = 0; i < item.count; i++) {
          const key = `${item.from}>${item.to}`;
          const seq = state.seqOf.get(key) ?? 0;
          state.seqOf.set(key, seq + 1);
          cluster.send(item.from, {
            destination: workerOf(item.to),
            source: guidOf(item.from),
            message: { id: String(state.nextId++), seq: String(seq) },
          });
        }
      } else if (item.kind === "spawn") {
        if (!live(cluster, item.from)) return;
        for (let i = 0; i < item.count; i++) {
          const guid = `P${state.spawned.size}`;
          state.spawned.set(guid, { from: item.from, atMs: cluster.now });
          cluster.node(item.from)!.spawn("probe", guid);
        }
      } else if (item.kind === "stop") {
        if (!live(cluster, item.from) || state.spawned.size === 0) return;
        cluster.node(item.from)!.stopWorker(`P${item.which % state.spawned.size}`);
      } else if (item.kind === "detach") {
        cluster.node(item.node)?.detachWorker(workerOf(item.node));
        state.detached.add(item.node);
      } else {
        state.detached.delete(item.node);
        const node = cluster.node(item.node);
        if (node && !node.worker(workerOf(item.node))) {
          node.attachWorker(new CampaignWorker(workerOf(item.node)));
        }
      }
    },
    check: (cluster) => {
      const state = stateOf(cluster);
      checkBounds(cluster);
      const violations = [...state.violations];
      const nodes = cluster.liveNodes();
      const incarnation = new Map(nodes.map((node) => [node.guid, node.incarnation]));
      for (const node of nodes) {
        for (const link of node.state().links) {
          if (incarnation.get(link.peer) !== link.incarnation) {
            violations.push(`after settle: ${node.guid} links ${link.peer} of a dead incarnation`);
          }
        }
      }
      // Placement: one table everywhere, each placed worker running exactly where it says.
      const tableOf = (node: AutoMpiNode) =>
        node.placement.placed().map((r) => `${r.guid}@${r.host}`).sort().join(",");
      const table = tableOf(nodes[0]);
      for (const node of nodes) {
        if (tableOf(node) !== table) {
          violations.push(
            `after settle: ${node.guid}'s placement table differs from ${nodes[0].guid}'s`,
          );
        }
      }
      if (plant === "twin") {
        const victim = nodes[0].placement.placed()[0];
        const elsewhere = nodes.find((node) => node.guid !== victim?.host);
        if (victim && elsewhere) elsewhere.attachWorker(new ProbeWorker(victim.guid));
      }
      // Every attached worker counts, placed through placement or not: a copy is a copy.
      const runningOn = new Map<string, string[]>();
      for (const node of nodes) {
        for (const guid of node.workerGuids()) {
          if (!state.spawned.has(guid)) continue;
          runningOn.set(guid, [...(runningOn.get(guid) ?? []), node.guid]);
        }
      }
      for (const [guid, { from, atMs }] of state.spawned) {
        const entry = nodes[0].placement.entry(guid);
        const on = runningOn.get(guid) ?? [];
        if (entry === undefined) {
          const spawnerCrashed = (state.crashedAtMs.get(from) ?? []).some((t) => t >= atMs);
          if (!spawnerCrashed) violations.push(`after settle: spawned ${guid} is in no table`);
        } else if (entry.removed) {
          if (on.length > 0) {
            violations.push(`after settle: stopped ${guid} runs on ${on.join(" ")}`);
          }
        } else if (on.length !== 1 || on[0] !== entry.host) {
          violations.push(
            `after settle: ${guid} is placed on ${entry.host} but runs on [${on.join(" ")}]`,
          );
        }
      }
      return violations;
    },
  });
}

/** The campaign's definition without sabotage: what replay files of campaigns name. */
export const CAMPAIGN: ScenarioDefinition<Traffic> = campaignDefinition();

/** The same campaign on nodes with ring membership (`NodeOptions.membership: "ring"`). */
export const RING_CAMPAIGN: ScenarioDefinition<Traffic> = campaignDefinition(undefined, "ring");

/** Runs a campaign and checks its invariants. Throws only if the campaign itself is malformed. */
export function runCampaign(
  campaign: Campaign,
  options: {
    /** Called after the run with the cluster, to look closer at a failure. */
    inspect?: (cluster: SimCluster) => void;
    /** Keep this many readable trace lines (see `Simulation.trace`). */
    traceLimit?: number;
    /** Sabotage, to prove the checker can fail (see {@link campaignDefinition}). */
    plant?: Plant;
    /** The nodes' membership (default the mesh). */
    membership?: "mesh" | "ring";
  } = {},
): CampaignResult {
  checkCampaign(campaign);
  const ring = options.membership === "ring";
  const definition = options.plant === undefined
    ? (ring ? RING_CAMPAIGN : CAMPAIGN)
    : campaignDefinition(options.plant, options.membership);
  const result = runScenario(definition, campaign, {
    inspect: options.inspect,
    traceLimit: options.traceLimit,
  });
  return {
    violations: result.violations.slice(0, 50),
    traceHash: result.traceHash,
    events: result.events,
    sent: result.sent,
    delivered: result.delivered,
    reported: result.reported,
    exempt: result.exempt,
  };
}

/** Throws a `TypeError` naming what is wrong with a campaign (e.g. a hand-edited replay file). */
export function checkCampaign(campaign: Campaign): void {
  const fail = (what: string) => {
    throw new TypeError(`Cannot run campaign: ${what}`);
  };
  if (campaign === null || typeof campaign !== "object" || campaign.version !== 1) {
    fail("not a version 1 campaign");
  }
  if (!Number.isInteger(campaign.nodes) || campaign.nodes < 1 || campaign.nodes > 200) {
    fail(`nodes ${campaign.nodes} not in 1..200`);
  }
  const trafficKinds = new Set(["send", "detach", "attach", "spawn", "stop"]);
  for (const item of campaign.traffic ?? []) {
    if (!trafficKinds.has(item?.kind)) fail(`unknown traffic kind ${JSON.stringify(item?.kind)}`);
    const count = (item as { count?: unknown }).count;
    if (
      count !== undefined &&
      !(Number.isInteger(count) && (count as number) >= 1 && (count as number) <= 10_000)
    ) {
      fail(`${item.kind} count ${count} not in 1..10000`);
    }
    const which = (item as { which?: unknown }).which;
    if (which !== undefined && !(Number.isSafeInteger(which) && (which as number) >= 0)) {
      fail(`stop which ${which} is not a non-negative integer`);
    }
  }
  try {
    checkScenario(campaign);
  } catch (error) {
    fail((error as Error).message.replace(/^Cannot run scenario: /, ""));
  }
}

/** Options of {@link campaignArbitrary}. */
export interface CampaignArbitraryOptions {
  readonly nodesMin?: number;
  readonly nodesMax?: number;
  readonly durationMs?: number;
}

/** The campaign's traffic: messages between workers, workers (de)attached, probes (un)placed. */
function campaignTraffic(nodes: number, durationMs: number): fc.Arbitrary<Traffic> {
  const node = fc.integer({ min: 0, max: nodes - 1 });
  const atMs = fc.integer({ min: 0, max: durationMs });
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        atMs,
        kind: fc.constant("send" as const),
        from: node,
        to: node,
        count: fc.integer({ min: 1, max: 20 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ atMs, kind: fc.constant("detach" as const), node }) },
    { weight: 1, arbitrary: fc.record({ atMs, kind: fc.constant("attach" as const), node }) },
    {
      weight: 2,
      arbitrary: fc.record({
        atMs,
        kind: fc.constant("spawn" as const),
        from: node,
        count: fc.integer({ min: 1, max: 10 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        atMs,
        kind: fc.constant("stop" as const),
        from: node,
        which: fc.nat({ max: 1000 }),
      }),
    },
  );
}

/**
 * Generates campaigns with the public {@link faultSchedule}: a cluster size, a seed, and a
 * schedule of faults and campaign traffic. Shrinking removes faults and traffic and shortens
 * them, so a failure ends as a short schedule.
 */
export function campaignArbitrary(options: CampaignArbitraryOptions = {}): fc.Arbitrary<Campaign> {
  return faultSchedule<never, Traffic>({
    nodes: { min: options.nodesMin ?? 2, max: options.nodesMax ?? 20 },
    durationMs: options.durationMs ?? 6000,
    settleMs: 8000,
    maxFaults: 8,
    traffic: campaignTraffic,
    maxTraffic: 12,
  });
}
