/**
 * Simulated clusters at scale: memory per simulated node, and a 1,000-node cluster.
 *
 * - `sim_memory_per_node_100`: heap in use after a forced GC, over the heap before the cluster
 *   was made, per node, for a converged 100-node full mesh (one worker each, 99 links each)
 *   after 10 simulated seconds; beside the same figure for the simulator alone carrying the
 *   same streams and traffic with no-op handlers (`bench/node_sim_bench.ts`'s bare workload),
 *   so the difference is the nodes' own state.
 * - `sim_1000_nodes_*`: 1,000 nodes (one worker each) on one simulated subnet, every one
 *   hearing every other's heartbeats and linking to all of them: 499,500 links. That is about
 *   100 times the start-up work of 100 nodes (every pair's handshake, every worker's location
 *   to every node) and about 6 GB of heap once meshed, so by default the run stops at a
 *   wall-clock budget (`--sim-1000-budget-s`, default 20) and reports how far it got: simulated
 *   time per wall second, events per second beside the simulator's bare delivery rate, links
 *   formed, heap per node at that point. `--sim-1000-full` runs on until the mesh is complete
 *   and then 5 simulated seconds more (about five minutes and 6+ GB of heap here), adding
 *   `sim_1000_nodes_steady`: simulated time per wall second over those 5 s.
 *
 * Run: `deno run -A bench/sim_scale_bench.ts [--json]`, `bun run bench/sim_scale_bench.ts`
 * (also part of `deno task bench`).
 *
 * @module
 */
import { createSimCluster } from "../sim/cluster.ts";
import { runUntilConverged } from "../sim/cli.ts";
import {
  benchArgs,
  type BenchRow,
  flagValue,
  heapUsedAfterGc,
  progress,
  report,
  runtimeName,
} from "./_harness.ts";
import { createBareTraffic } from "./node_sim_bench.ts";
import { simDeliveriesPerSecond } from "./sim_bench.ts";

const SEED = 1;
const MEMORY_NODES = 100;
const MEMORY_SIMULATED_MS = 10_000;
const BIG_NODES = 1000;
const BIG_LINKS = (BIG_NODES * (BIG_NODES - 1)) / 2;
const BIG_STEADY_MS = 5000;
const KIB = 1024;

const thousands = (value: number) => Math.round(value).toLocaleString("en-US");

/** Lets the event loop turn, so no stack slot still points at what was just dropped. */
const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Heap growth per node while `make` holds what it built (a figure, nothing kept). */
async function heapPerNode(make: () => { events: number }): Promise<[number, boolean]> {
  await turn();
  const before = heapUsedAfterGc();
  const after = ((): [ReturnType<typeof heapUsedAfterGc>, number] => {
    const built = make();
    return [heapUsedAfterGc(), built.events];
  })();
  if (after[1] === 0) throw new Error("Cannot measure memory: nothing ran");
  const bytes = (after[0].heapUsedBytes - before.heapUsedBytes) / MEMORY_NODES;
  await turn();
  return [bytes, before.collected && after[0].collected];
}

/** Heap per node of a converged `MEMORY_NODES` cluster, and of the bare workload. */
async function memoryPerNode(): Promise<
  { nodeBytes: number; bareBytes: number; collected: boolean }
> {
  const [nodeBytes, nodeCollected] = await heapPerNode(() => {
    const cluster = createSimCluster({ nodes: MEMORY_NODES, seed: SEED, logLimit: 0 });
    if (runUntilConverged(cluster, MEMORY_SIMULATED_MS) === null) {
      throw new Error(`Cannot measure memory: ${MEMORY_NODES} nodes did not converge`);
    }
    cluster.sim.run(MEMORY_SIMULATED_MS - cluster.sim.now);
    if (cluster.linkedPairs() !== (MEMORY_NODES * (MEMORY_NODES - 1)) / 2) {
      throw new Error("Cannot measure memory: the mesh broke up");
    }
    return cluster.sim;
  });
  const [bareBytes, bareCollected] = await heapPerNode(() => {
    const bare = createBareTraffic(MEMORY_NODES);
    bare.run(MEMORY_SIMULATED_MS);
    return bare;
  });
  return { nodeBytes, bareBytes, collected: nodeCollected && bareCollected };
}

interface BigRun {
  readonly simulatedMs: number;
  readonly wallMs: number;
  readonly events: number;
  readonly links: number;
  readonly convergedAtMs: number | undefined;
  readonly heapPerNodeBytes: number;
  readonly budgetHit: boolean;
  /** Simulated ms per wall ms over the `BIG_STEADY_MS` after meshing (full runs only). */
  readonly steadyXRealtime: number | undefined;
}

/**
 * 1,000 nodes until the wall budget runs out, or (full) until converged and
 * `BIG_STEADY_MS` more; the wall clock is read after every simulated instant.
 */
function bigRun(wallBudgetMs: number, full: boolean): BigRun {
  const before = heapUsedAfterGc();
  const startMs = performance.now();
  const cluster = createSimCluster({ nodes: BIG_NODES, seed: SEED, logLimit: 0 });
  const { sim } = cluster;
  const deadline = startMs + wallBudgetMs;
  const overBudget = () => performance.now() > deadline;
  let convergedAtMs: number | undefined;
  let steadyXRealtime: number | undefined;
  if (full) {
    // Converged() is cheap when it fails (link counts first); check it every 50 simulated ms.
    while (convergedAtMs === undefined && !overBudget() && sim.now < 60_000) {
      sim.runUntil(overBudget, 50);
      if (cluster.converged()) convergedAtMs = sim.now;
    }
    if (convergedAtMs !== undefined) {
      const steadyStartMs = performance.now();
      const simStartMs = sim.now;
      sim.runUntil(overBudget, BIG_STEADY_MS);
      steadyXRealtime = (sim.now - simStartMs) / (performance.now() - steadyStartMs);
    }
  } else {
    sim.runUntil(overBudget, 60_000);
  }
  const wallMs = performance.now() - startMs;
  const links = cluster.liveNodes().reduce((sum, node) => sum + node.linkCount, 0) / 2;
  const after = heapUsedAfterGc();
  return {
    simulatedMs: sim.now,
    wallMs,
    events: sim.events,
    links,
    convergedAtMs,
    heapPerNodeBytes: (after.heapUsedBytes - before.heapUsedBytes) / BIG_NODES,
    budgetHit: overBudget(),
    steadyXRealtime,
  };
}

/** Options of {@link simScaleRows}. */
export interface SimScaleOptions {
  /** The simulator's bare delivery rate if already measured in this run. */
  readonly bareDeliveriesPerSecond?: number;
  /** Wall-clock budget of the 1,000-node run in seconds. Default 20. */
  readonly bigBudgetSeconds?: number;
  /** Run the 1,000-node cluster until it is fully meshed (minutes, 6+ GB). Default false. */
  readonly bigFull?: boolean;
}

/** Options from the command line: `--sim-1000-budget-s N`, `--sim-1000-full`. */
export function simScaleOptionsFromArgs(args: readonly string[]): SimScaleOptions {
  const budget = flagValue(args, "sim-1000-budget-s");
  const full = args.includes("--sim-1000-full");
  const seconds = budget === undefined ? (full ? 900 : 20) : Number(budget);
  if (!(seconds > 0)) throw new RangeError(`Cannot use --sim-1000-budget-s "${budget}"`);
  return { bigBudgetSeconds: seconds, bigFull: full };
}

/** The rows of this file. */
export async function simScaleRows(options: SimScaleOptions = {}): Promise<BenchRow[]> {
  const runtime = runtimeName();
  const rows: BenchRow[] = [];
  progress(`sim: memory of ${MEMORY_NODES} converged nodes`);
  const memory = await memoryPerNode();
  const gcNote = memory.collected ? "after forced GC" : "GC could not be forced";
  rows.push({
    name: "sim_memory_per_node_100",
    runtime,
    value: memory.nodeBytes / KIB,
    unit: "KiB/node",
    baseline: memory.bareBytes / KIB,
    baselineName: "bare_hosts_100 (simulator only)",
    note: `heap used ${gcNote}, 100 nodes + workers converged, 99 links each, ` +
      `${MEMORY_SIMULATED_MS / 1000} s simulated; ${
        thousands(memory.nodeBytes / 99)
      } B per link end`,
  });
  const deliveries = options.bareDeliveriesPerSecond ?? simDeliveriesPerSecond();
  const full = options.bigFull ?? false;
  const budgetSeconds = options.bigBudgetSeconds ?? (full ? 900 : 20);
  progress(
    `sim: ${BIG_NODES} nodes, full mesh, ${
      full ? "until meshed + 5 s" : `for ${budgetSeconds} s of wall time`
    }`,
  );
  await turn();
  const big = bigRun(budgetSeconds * 1000, full);
  const reached = big.convergedAtMs === undefined
    ? `not meshed: ${thousands(big.links)} of ${thousands(BIG_LINKS)} links`
    : `meshed by ${thousands(big.convergedAtMs)} virtual ms (checked every 50 ms)`;
  const span = `${thousands(big.simulatedMs)} simulated ms in ${thousands(big.wallMs)} ms wall` +
    (big.budgetHit ? ` (wall budget ${budgetSeconds} s hit)` : "");
  rows.push(
    {
      name: "sim_1000_nodes",
      runtime,
      value: big.simulatedMs / big.wallMs,
      unit: "x realtime",
      note: `start-up from cold, all at t=0: ${span}; ${reached}`,
    },
    ...(big.steadyXRealtime === undefined ? [] : [{
      name: "sim_1000_nodes_steady",
      runtime,
      value: big.steadyXRealtime,
      unit: "x realtime",
      note: `the ${BIG_STEADY_MS / 1000} simulated s after the mesh was complete`,
    }]),
    {
      name: "sim_1000_nodes_events",
      runtime,
      value: big.events / (big.wallMs / 1000),
      unit: "events/s",
      baseline: deliveries,
      baselineName: "sim_datagram_deliveries",
      note: `${thousands(big.events)} events`,
    },
    {
      name: "sim_memory_per_node_1000",
      runtime,
      value: big.heapPerNodeBytes / KIB,
      unit: "KiB/node",
      baseline: memory.nodeBytes / KIB,
      baselineName: "sim_memory_per_node_100",
      note: `heap used ${gcNote} at the end of sim_1000_nodes (${reached}` +
        (big.convergedAtMs === undefined
          ? "; mid start-up, so it includes the queued datagrams and segments)"
          : ")") +
        (big.links === 0
          ? ""
          : `; ${thousands((big.heapPerNodeBytes * BIG_NODES) / (2 * big.links))} B per link end`),
    },
  );
  return rows;
}

if (import.meta.main) report(await simScaleRows(simScaleOptionsFromArgs(benchArgs())));
