/**
 * Whole simulated clusters at scale (issue 13): real nodes with ring membership
 * (`NodeOptions.membership: "ring"`) beside today's mesh, in the same run.
 *
 * Every node runs the full node logic with one `EchoWorker`; the cluster starts cold on one
 * simulated subnet (broadcast heartbeats to join), 1 s heartbeat interval.
 *
 * Rows, per size N (default 100 and 1,000; `--scale-sizes 100,1000,10000` for others):
 * - `scale_ring_N_converged`: simulated ms from cold start until every node knows every node
 *   alive, and then until a request from every node to the worker of the next node is answered
 *   (every node can reach a worker it never talked to).
 * - `scale_ring_N_steady`: simulated seconds per wall second once start-up's last traffic is
 *   over (40 simulated seconds later: the probe requests' links close after 30 s idle), the
 *   median of 5 windows of 12 simulated seconds each (the slowest and fastest are in the note:
 *   this machine is shared, and one short window can land on a neighbour's burst), beside the
 *   mesh at the same size over 20 simulated seconds from cold start (the mesh at 1,000 and more
 *   cannot finish start-up: it gets a wall budget of `--scale-mesh-budget-s`, default 20, and its
 *   rate over that budget is shown).
 * - `scale_ring_N_messages_per_node_s`: datagrams and stream segments each node receives per
 *   simulated second at steady state, beside the mesh's.
 * - `scale_ring_N_heap_per_node`: heap per node after a forced GC at the end of the steady window,
 *   in KiB.
 * - `scale_ring_N_crash_known_ms`: simulated ms from the crash of one node until every other
 *   node has reported it lost (`peer-lost`), beside 3 heartbeat intervals.
 * - `scale_100_nodes_60s`: the 100-node cluster over 60 simulated seconds, ring beside mesh
 *   (the issue's "100 nodes, 60 sim-s, full node logic" figure).
 *
 * Run: `deno run -A bench/scale_bench.ts [--json] [--scale-sizes 100,1000]`, or
 * `bun run bench/scale_bench.ts` (also `deno task bench --only scale`).
 *
 * @module
 */
import { SimCluster } from "../sim/cluster.ts";
import type { AutoMpiNode } from "../src/node.ts";
import { EchoWorker } from "../src/worker.ts";
import {
  benchArgs,
  type BenchRow,
  flagValue,
  heapUsedAfterGc,
  progress,
  report,
  runtimeName,
} from "./_harness.ts";

const SEED = 1;
const INTERVAL_MS = 1000;
/** The mesh's window, from cold start. */
const STEADY_MS = 20_000;
/** From every node reached to the steady windows: past the probe links' 30 s idle close. */
const SETTLE_MS = 40_000;
/** The ring's steady state: this many windows of this many simulated ms; the median is shown. */
const STEADY_WINDOWS = 5;
const WINDOW_MS = 12_000;
const KIB = 1024;

type Mode = "mesh" | "ring";

/** Nodes per simulated subnet: larger clusters are spread over subnets joined by seeds. */
const NODES_PER_SUBNET = 1000;
/** From this size on the mesh is not run (it cannot finish start-up at 1,000 already). */
const MESH_MAX_NODES = 2000;

/** Subnets for a cluster of `n`: one per 1,000 nodes (their first nodes seed the others). */
export const subnetsFor = (n: number) => Math.max(1, Math.ceil(n / NODES_PER_SUBNET));

function build(n: number, mode: Mode): SimCluster {
  return new SimCluster({
    nodes: n,
    subnets: subnetsFor(n),
    seed: SEED,
    logLimit: 0,
    traceLimit: 0,
    history: false,
    checks: false,
    node: { membership: mode },
    setup: ({ node, index }) => node.attachWorker(new EchoWorker(`echo${index}`)),
  });
}

const received = (cluster: SimCluster) =>
  cluster.sim.stats.datagramsDelivered + cluster.sim.stats.segmentsDelivered;

/** Wall ms of `fn`. */
function timed(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

/** The mesh at `n` nodes over `simMs` simulated ms, or as far as `budgetMs` of wall time gets. */
function meshRate(n: number, simMs: number, budgetMs: number): {
  x: number;
  perNodeS: number;
  note: string;
} {
  const cluster = build(n, "mesh");
  const start = performance.now();
  const from = cluster.now;
  const before = received(cluster);
  // In slices of 1 simulated ms, so a mesh too slow to finish stops at the budget (at 1,000
  // nodes its start-up runs a few simulated ms per wall minute).
  while (cluster.now - from < simMs && performance.now() - start < budgetMs) {
    cluster.run(Math.min(1, simMs - (cluster.now - from)));
  }
  const wallMs = performance.now() - start;
  const simulated = cluster.now - from;
  return {
    x: simulated / wallMs,
    perNodeS: (received(cluster) - before) / n / (simulated / 1000),
    note: simulated < simMs
      ? `mesh: only ${simulated.toFixed(0)} simulated ms in the ${
        budgetMs / 1000
      } s budget (start-up)`
      : `mesh from cold start over ${simMs / 1000} simulated s`,
  };
}

/** Every node asks the worker of the next node once; returns when all answered (or throws). */
function everyoneReaches(cluster: SimCluster, n: number): void {
  let answered = 0;
  const clients = Array.from({ length: n }, (_, i) => cluster.client(i, `probe${i}`));
  for (let i = 0; i < n; i++) clients[i].send(`echo${(i + 1) % n}`, { command: "reach" });
  const allAnswered = () => {
    answered = 0;
    for (const client of clients) answered += client.received.length;
    return answered === n;
  };
  let reached: boolean;
  if (n <= NODES_PER_SUBNET) {
    reached = cluster.runUntil(allAnswered, 30_000);
  } else {
    // Larger: looked at every 10 simulated ms (a look costs O(N)).
    const until = cluster.now + 30_000;
    while (!(reached = allAnswered()) && cluster.now < until) cluster.run(10);
  }
  if (!reached) {
    throw new Error(`Cannot measure: only ${answered} of ${n} nodes reached their worker`);
  }
}

interface RingFigures {
  readonly converged: BenchRow;
  readonly steadyX: number;
  readonly steadyNote: string;
  readonly perNodeS: number;
  readonly heapKiB: number;
  readonly heapCollected: boolean;
  readonly crash: { ms: number; note?: string };
}

/** The ring cluster's figures (the cluster is dropped when this returns). */
function ringFigures(n: number): RingFigures {
  const runtime = runtimeName();
  const before = heapUsedAfterGc();
  const cluster = build(n, "ring");
  const convergeWallMs = timed(() => {
    if (n <= NODES_PER_SUBNET) {
      if (!cluster.runUntil(() => cluster.converged(), 120_000)) {
        throw new Error(`Cannot converge ${n} ring nodes in 120 simulated s`);
      }
      return;
    }
    // Larger: looked at every 50 simulated ms (a look costs O(N)).
    while (!cluster.converged()) {
      if (cluster.now >= 120_000) {
        throw new Error(`Cannot converge ${n} ring nodes in 120 simulated s`);
      }
      cluster.run(50);
    }
  });
  const knownMs = cluster.now;
  const reachWallMs = timed(() => everyoneReaches(cluster, n));
  const subnets = subnetsFor(n);
  const converged: BenchRow = {
    name: `scale_ring_${n}_converged`,
    runtime,
    value: cluster.now,
    unit: "sim ms",
    note: `every node knows all ${n} at ${knownMs.toFixed(0)} ms` +
      (subnets > 1 ? ` (${subnets} subnets joined by seeds, looked at every 50 ms)` : "") +
      `, then every node reached a new worker (wall ${
        ((convergeWallMs + reachWallMs) / 1000).toFixed(1)
      } s)`,
  };
  // The probe requests' links close 30 s after their last message (idle, with goodbyes): start-up's
  // last traffic. The steady state is what follows.
  cluster.run(SETTLE_MS);
  const receivedBefore = received(cluster);
  const rates: number[] = [];
  for (let i = 0; i < STEADY_WINDOWS; i++) {
    rates.push(WINDOW_MS / timed(() => cluster.run(WINDOW_MS)));
  }
  const steadyMs = STEADY_WINDOWS * WINDOW_MS;
  const perNodeS = (received(cluster) - receivedBefore) / n / (steadyMs / 1000);
  rates.sort((a, b) => a - b);
  // After the window: a forced collection just before it slowed the window's first seconds.
  const heap = heapUsedAfterGc();
  const crash = crashKnownMs(cluster, n);
  return {
    converged,
    steadyX: rates[Math.floor(rates.length / 2)],
    steadyNote: `median of ${STEADY_WINDOWS} windows of ${WINDOW_MS / 1000} sim s: ${
      rates[0].toFixed(1)
    }x to ${rates[rates.length - 1].toFixed(1)}x`,
    perNodeS,
    heapKiB: (heap.heapUsedBytes - before.heapUsedBytes) / n / KIB,
    heapCollected: heap.collected,
    crash,
  };
}

/** The rows for one cluster size. */
export function scaleRowsFor(n: number, meshBudgetMs: number): BenchRow[] {
  const runtime = runtimeName();
  const ring = ringFigures(n);
  const { crash } = ring;
  progress(`scale: the mesh at ${n} nodes`);
  const mesh = n <= MESH_MAX_NODES ? meshRate(n, STEADY_MS, meshBudgetMs) : {
    x: Number.NaN,
    perNodeS: Number.NaN,
    note: `mesh not run at ${n} nodes: it cannot finish start-up at 1,000`,
  };
  const rows: BenchRow[] = [ring.converged];
  rows.push({
    name: `scale_ring_${n}_steady`,
    runtime,
    value: ring.steadyX,
    unit: "x real time",
    baseline: mesh.x,
    baselineName: `mesh_${n}`,
    note: `${ring.steadyNote}; ${mesh.note}`,
  });
  rows.push({
    name: `scale_ring_${n}_messages_per_node_s`,
    runtime,
    value: ring.perNodeS,
    unit: "received/node/s",
    baseline: mesh.perNodeS,
    baselineName: `mesh_${n}_messages_per_node_s`,
  });
  rows.push({
    name: `scale_ring_${n}_heap_per_node`,
    runtime,
    value: ring.heapKiB,
    unit: "KiB",
    note: ring.heapCollected ? "after a forced GC" : "no forced GC available: an upper bound",
  });
  rows.push({
    name: `scale_ring_${n}_crash_known_ms`,
    runtime,
    value: crash.ms,
    unit: "sim ms",
    baseline: 3 * INTERVAL_MS,
    baselineName: "3 intervals",
    note: crash.note,
  });
  return rows;
}

/** Crashes one node at an odd moment; simulated ms until every other node reported it lost. */
function crashKnownMs(cluster: SimCluster, n: number): { ms: number; note?: string } {
  cluster.run(317);
  const victim = Math.floor(n / 3);
  const guid = cluster.guidOf(victim);
  const lost = new Set<string>();
  for (const node of cluster.liveNodes()) {
    if (node.guid === guid) continue;
    (node as AutoMpiNode).on("peer-lost", ({ peer }) => {
      if (peer === guid) lost.add(node.guid);
    });
  }
  cluster.crash(victim);
  const crashedAt = cluster.now;
  const known = cluster.runUntil(() => lost.size === n - 1, 30_000);
  return known
    ? { ms: cluster.now - crashedAt }
    : { ms: Number.NaN, note: `only ${lost.size} of ${n - 1} knew within 30 s` };
}

/** The 100-node figure: 60 simulated seconds from cold start, ring beside mesh. */
export function scale100Row(): BenchRow {
  const simMs = 60_000;
  const ring = build(100, "ring");
  const wallMs = timed(() => ring.run(simMs));
  if (!ring.converged()) throw new Error("Cannot measure: 100 ring nodes did not converge");
  const mesh = meshRate(100, simMs, 600_000);
  return {
    name: "scale_100_nodes_60s",
    runtime: runtimeName(),
    value: simMs / wallMs,
    unit: "x real time",
    baseline: mesh.x,
    baselineName: "mesh_100_nodes_60s",
    note: "ring membership, full node, one worker each, from cold start; target 100",
  };
}

/** Every row. */
export function scaleRows(sizes: readonly number[] = [100, 1000], meshBudgetMs = 20_000) {
  const rows: BenchRow[] = [];
  for (const n of sizes) {
    progress(`scale: ${n} nodes`);
    rows.push(...scaleRowsFor(n, meshBudgetMs));
  }
  // Last: its clusters would still be on the heap when the sizes above measure theirs.
  progress("scale: 100 nodes for 60 s, ring and mesh");
  rows.push(scale100Row());
  return rows;
}

/** Sizes from `--scale-sizes a,b,c`. */
export function scaleSizesFromArgs(args: readonly string[]): number[] {
  const text = flagValue(args, "scale-sizes");
  if (text === undefined) return [100, 1000];
  const sizes = text.split(",").map(Number);
  if (sizes.some((n) => !(Number.isInteger(n) && n >= 2 && n <= 20_000))) {
    throw new RangeError(
      "Cannot read --scale-sizes: give whole numbers in 2..20000, e.g. 100,1000",
    );
  }
  return sizes;
}

/** The mesh's wall budget from `--scale-mesh-budget-s S`, in ms. */
export function meshBudgetFromArgs(args: readonly string[]): number {
  const text = flagValue(args, "scale-mesh-budget-s");
  if (text === undefined) return 20_000;
  const seconds = Number(text);
  if (!(seconds > 0 && Number.isFinite(seconds))) {
    throw new RangeError("Cannot read --scale-mesh-budget-s: give a positive number of seconds");
  }
  return seconds * 1000;
}

if (import.meta.main) {
  const args = benchArgs();
  report(scaleRows(scaleSizesFromArgs(args), meshBudgetFromArgs(args)), args);
}
