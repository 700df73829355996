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
 * With `--processes`, each checkout's cluster (one each) lives in a process of its own instead:
 * for changes to what the heap holds or how it lies (in one process, A's objects and B's share
 * the heap, so neither shows its own layout). The two processes build their clusters at once,
 * then run each round's window at the same moment (each on its own core, under the same drift),
 * and the parent compares their wall times. `--heap-mb` (default 14,000) is each child's heap
 * limit on Deno.
 *
 * ```sh
 * git worktree add /tmp/base <commit>; ln -s "$PWD/node_modules" /tmp/base/node_modules
 * deno run -A --v8-flags=--max-old-space-size=8000 bench/ab_sim.ts /tmp/base . --nodes 1000
 * bun run bench/ab_sim.ts /tmp/base . --nodes 1000
 * deno run -A bench/ab_sim.ts /tmp/base . --nodes 5000 --windows 8 --processes
 * ```
 *
 * @module
 */
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { flagValue, runtimeName } from "./_harness.ts";

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

/** What a comparison found (see the module doc). */
interface Result {
  readonly nodes: number;
  readonly windows: number;
  readonly windowMs: number;
  readonly processes: boolean;
  readonly speedA: number;
  readonly speedB: number;
  readonly ratio: number;
  readonly ratioMedian: number;
  readonly ratioMin: number;
  readonly ratioMax: number;
  readonly sameTrace: boolean;
}

/** The result from each side's total wall time, per-round ratios (A's time over B's) and hashes. */
function result(
  options: { nodes: number; windows: number; windowMs: number; processes: boolean },
  simMsPerSide: number,
  totals: { A: number; B: number },
  ratios: number[],
  hashes: readonly string[],
): Result {
  ratios.sort((x, y) => x - y);
  return {
    ...options,
    speedA: +(simMsPerSide / totals.A).toFixed(1),
    speedB: +(simMsPerSide / totals.B).toFixed(1),
    ratio: +(totals.A / totals.B).toFixed(3),
    ratioMedian: +ratios[ratios.length >> 1].toFixed(3),
    ratioMin: +ratios[0].toFixed(3),
    ratioMax: +ratios[ratios.length - 1].toFixed(3),
    sameTrace: new Set(hashes).size === 1,
  };
}

/** Both sides in this process: four clusters, A, B, B, A, the order turning each round. */
async function inProcess(
  dirs: readonly string[],
  nodes: number,
  windows: number,
  windowMs: number,
) {
  const [a, b] = await Promise.all(dirs.map(load));
  const clusters: { side: "A" | "B"; cluster: Cluster; wallMs: number }[] = [];
  for (const [side, code] of [["A", a], ["B", b], ["B", b], ["A", a]] as const) {
    clusters.push({ side, cluster: build(code, nodes), wallMs: 0 });
  }
  const ratios: number[] = [];
  const totals = { A: 0, B: 0 };
  for (let round = 0; round < windows; round++) {
    const spent = { A: 0, B: 0 };
    for (let i = 0; i < clusters.length; i++) {
      const entry = clusters[(i + round) % clusters.length];
      const start = performance.now();
      entry.cluster.run(windowMs);
      const wall = performance.now() - start;
      spent[entry.side] += wall;
      totals[entry.side] += wall;
    }
    ratios.push(spent.A / spent.B);
  }
  return result(
    { nodes, windows, windowMs, processes: false },
    2 * windows * windowMs,
    totals,
    ratios,
    clusters.map((c) => c.cluster.sim.traceHash),
  );
}

/**
 * A child of `--processes`: builds one cluster of the checkout at `dir`, says `ready`, then runs
 * one window per `run` line on its input and answers with the wall time; `end` gets the trace
 * hash. One JSON line per answer.
 */
async function child(dir: string, nodes: number, windowMs: number): Promise<void> {
  const cluster = build(await load(dir), nodes);
  console.log(JSON.stringify({ ready: true }));
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "run") {
      const start = performance.now();
      cluster.run(windowMs);
      console.log(JSON.stringify({ wallMs: performance.now() - start }));
    } else if (line === "end") {
      console.log(JSON.stringify({ traceHash: cluster.sim.traceHash }));
      break;
    }
  }
  process.exit(0);
}

/** One child process and its answers, one JSON line at a time. */
class Child {
  readonly #lines: string[] = [];
  readonly #waiting: ((line: string) => void)[] = [];
  readonly #input: { write(text: string): unknown };
  #failure: Error | undefined;

  constructor(side: string, dir: string, nodes: number, windowMs: number, heapMb: number) {
    const script = fileURLToPath(import.meta.url);
    const flags = ["--child", dir, "--nodes", `${nodes}`, "--window-ms", `${windowMs}`];
    const command = runtimeName() === "deno"
      ? ["run", "-A", `--v8-flags=--max-old-space-size=${heapMb}`, script, ...flags]
      : [script, ...flags];
    const proc = spawn(process.execPath, command, { stdio: ["pipe", "pipe", "inherit"] });
    this.#input = proc.stdin!;
    const fail = (error: Error) => {
      this.#failure ??= error;
      for (const waiter of this.#waiting.splice(0)) waiter("");
    };
    proc.on("error", (error) => fail(new Error(`Cannot start side ${side}: ${error.message}`)));
    proc.on("exit", (code) => fail(new Error(`Cannot compare: side ${side} exited (${code})`)));
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      if (!line.startsWith("{")) return; // a checkout's own output
      const waiter = this.#waiting.shift();
      if (waiter !== undefined) waiter(line);
      else this.#lines.push(line);
    });
  }

  /** Sends `command` (if any) and waits for the next answer. */
  async ask(command?: string): Promise<Record<string, unknown>> {
    if (command !== undefined) this.#input.write(`${command}\n`);
    const line = this.#lines.shift() ??
      await new Promise<string>((resolve) => {
        if (this.#failure !== undefined) resolve("");
        else this.#waiting.push(resolve);
      });
    if (line === "") throw this.#failure!;
    return JSON.parse(line);
  }
}

/** Each side in a process of its own, both running each round's window at the same moment. */
async function inProcesses(
  dirs: readonly string[],
  nodes: number,
  windows: number,
  windowMs: number,
  heapMb: number,
): Promise<Result> {
  const sides = [
    new Child("A", dirs[0], nodes, windowMs, heapMb),
    new Child("B", dirs[1], nodes, windowMs, heapMb),
  ];
  await Promise.all(sides.map((side) => side.ask()));
  const ratios: number[] = [];
  const totals = { A: 0, B: 0 };
  for (let round = 0; round < windows; round++) {
    const [a, b] = (await Promise.all(sides.map((side) => side.ask("run"))))
      .map((answer) => answer.wallMs as number);
    totals.A += a;
    totals.B += b;
    ratios.push(a / b);
  }
  const hashes = await Promise.all(sides.map(async (side) => (await side.ask("end")).traceHash));
  return result(
    { nodes, windows, windowMs, processes: true },
    windows * windowMs,
    totals,
    ratios,
    hashes as string[],
  );
}

const args = process.argv.slice(2);
const VALUE_FLAGS = new Set(["--nodes", "--windows", "--window-ms", "--heap-mb", "--child"]);
const nodes = positive(args, "nodes", 1000);
const windows = positive(args, "windows", 20);
const windowMs = positive(args, "window-ms", 10_000);
const childDir = flagValue(args, "child");
if (childDir !== undefined) {
  await child(childDir, nodes, windowMs);
} else {
  const dirs = args.filter((arg, i) => !arg.startsWith("--") && !VALUE_FLAGS.has(args[i - 1]));
  if (dirs.length !== 2) {
    throw new Error("Cannot compare: give two checkout directories, A (the base) and B");
  }
  const found = args.includes("--processes")
    ? await inProcesses(dirs, nodes, windows, windowMs, positive(args, "heap-mb", 14_000))
    : await inProcess(dirs, nodes, windows, windowMs);
  if (args.includes("--json")) {
    console.log(JSON.stringify(found));
  } else {
    console.log(`A: ${resolve(dirs[0])}\nB: ${resolve(dirs[1])}`);
    console.log(
      `${nodes} nodes, ${windows} rounds of ${windowMs / 1000} simulated s on ` +
        (found.processes ? "one cluster each, in two processes" : "each of 4 clusters"),
    );
    console.log(`speed A ${found.speedA}x, B ${found.speedB}x real time`);
    console.log(
      `B against A: ${found.ratio}x (per round: median ${found.ratioMedian}x, ` +
        `${found.ratioMin}x to ${found.ratioMax}x); same trace: ${found.sameTrace}`,
    );
  }
}
