/**
 * Two checkouts' simulated ring clusters side by side in one process, for comparing the speed of
 * two commits on a noisy machine (single runs of `scale_bench.ts` here differ by up to 3x
 * minutes apart; side by side, both suffer the same drift).
 *
 * It loads `sim/cluster.ts` and `src/worker.ts` of each checkout, builds four clusters of
 * `--nodes` nodes (default 1,000) with ring membership and one `EchoWorker` per node (A, B, then
 * B, A: whichever is built second runs a few percent slower, so each checkout gets one of each),
 * brings each to its steady state (converged, then 40 simulated s), and then runs `--windows`
 * rounds (default 20) of `--window-ms` simulated ms (default 10,000) on every cluster, the order
 * turning each round. It prints a table, or one JSON line with `--json`:
 * - `ratio`: B's speed against A's, total wall time against total wall time (above 1: B faster);
 * - `ratioMedian`, `ratioMin`, `ratioMax`: the same per round;
 * - `sameTrace`: whether the clusters of A and B ended with the same trace hash (a change that
 *   should not alter behaviour must keep it true).
 *
 * ```sh
 * git worktree add /tmp/base <commit>; ln -s "$PWD/node_modules" /tmp/base/node_modules
 * deno run -A --v8-flags=--max-old-space-size=8000 bench/ab_sim.ts /tmp/base . --nodes 1000
 * bun run bench/ab_sim.ts /tmp/base . --nodes 1000
 * ```
 *
 * @module
 */
import { resolve } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { flagValue } from "./_harness.ts";

// A checkout's own modules: typed loosely, since another commit may differ in details.
interface Cluster {
  readonly now: number;
  readonly sim: { readonly traceHash: string };
  converged(): boolean;
  runUntil(holds: () => boolean, maxMs: number): boolean;
  run(ms: number): void;
}
type ClusterClass = new (options: Record<string, unknown>) => Cluster;
type WorkerClass = new (guid: string) => unknown;

const SETTLE_MS = 40_000;

function positive(args: readonly string[], name: string, fallback: number): number {
  const text = flagValue(args, name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new RangeError(`Cannot read --${name}: give a whole number above 0, not "${text}"`);
  }
  return value;
}

async function load(dir: string): Promise<{ Cluster: ClusterClass; Worker: WorkerClass }> {
  const root = resolve(dir);
  const at = (path: string) => pathToFileURL(resolve(root, path)).href;
  try {
    const { SimCluster } = await import(at("sim/cluster.ts"));
    const { EchoWorker } = await import(at("src/worker.ts"));
    return { Cluster: SimCluster, Worker: EchoWorker };
  } catch (error) {
    throw new Error(`Cannot load the checkout at ${root}: ${(error as Error).message}`);
  }
}

function build(side: { Cluster: ClusterClass; Worker: WorkerClass }, nodes: number): Cluster {
  const cluster = new side.Cluster({
    nodes,
    subnets: Math.max(1, Math.ceil(nodes / 1000)),
    seed: 1,
    logLimit: 0,
    traceLimit: 0,
    history: false,
    checks: false,
    node: { membership: "ring" },
    setup: ({ node, index }: { node: { attachWorker(w: unknown): void }; index: number }) =>
      node.attachWorker(new side.Worker(`echo${index}`)),
  });
  if (!cluster.runUntil(() => cluster.converged(), 120_000)) {
    throw new Error(`Cannot converge ${nodes} ring nodes in 120 simulated s`);
  }
  cluster.run(SETTLE_MS);
  return cluster;
}

const args = process.argv.slice(2);
const VALUE_FLAGS = new Set(["--nodes", "--windows", "--window-ms"]);
const dirs = args.filter((arg, i) => !arg.startsWith("--") && !VALUE_FLAGS.has(args[i - 1]));
if (dirs.length !== 2) {
  throw new Error("Cannot compare: give two checkout directories, A (the base) and B");
}
const nodes = positive(args, "nodes", 1000);
const windows = positive(args, "windows", 20);
const windowMs = positive(args, "window-ms", 10_000);
const [a, b] = await Promise.all(dirs.map(load));
const clusters: { side: "A" | "B"; cluster: Cluster; wallMs: number }[] = [];
for (const [side, code] of [["A", a], ["B", b], ["B", b], ["A", a]] as const) {
  clusters.push({ side, cluster: build(code, nodes), wallMs: 0 });
}
const ratios: number[] = [];
for (let round = 0; round < windows; round++) {
  const spent = { A: 0, B: 0 };
  for (let i = 0; i < clusters.length; i++) {
    const entry = clusters[(i + round) % clusters.length];
    const start = performance.now();
    entry.cluster.run(windowMs);
    const wall = performance.now() - start;
    entry.wallMs += wall;
    spent[entry.side] += wall;
  }
  ratios.push(spent.A / spent.B);
}
const total = (side: "A" | "B") =>
  clusters.filter((c) => c.side === side).reduce((sum, c) => sum + c.wallMs, 0);
const simMs = 2 * windows * windowMs;
ratios.sort((x, y) => x - y);
const hashes = new Set(clusters.map((c) => c.cluster.sim.traceHash));
const result = {
  nodes,
  windows,
  windowMs,
  speedA: +(simMs / total("A")).toFixed(1),
  speedB: +(simMs / total("B")).toFixed(1),
  ratio: +(total("A") / total("B")).toFixed(3),
  ratioMedian: +ratios[ratios.length >> 1].toFixed(3),
  ratioMin: +ratios[0].toFixed(3),
  ratioMax: +ratios[ratios.length - 1].toFixed(3),
  sameTrace: hashes.size === 1,
};
if (args.includes("--json")) {
  console.log(JSON.stringify(result));
} else {
  console.log(`A: ${resolve(dirs[0])}\nB: ${resolve(dirs[1])}`);
  console.log(
    `${nodes} nodes, ${windows} rounds of ${windowMs / 1000} simulated s on each of 4 clusters`,
  );
  console.log(`speed A ${result.speedA}x, B ${result.speedB}x real time`);
  console.log(
    `B against A: ${result.ratio}x (per round: median ${result.ratioMedian}x, ` +
      `${result.ratioMin}x to ${result.ratioMax}x); same trace: ${result.sameTrace}`,
  );
}
