/**
 * A peer for comparison: Moleculer (the npm devDependency, run by Node) with its TCP
 * transporter, two brokers in one Node process on loopback, doing what `bench/real_bench.ts`
 * does with two AutoMPI nodes: request/reply one at a time (p50/p99, calls/s), request/reply
 * with 64 in flight, and one-way small messages. The work is in `bench/_moleculer_peer.mjs`,
 * started here as a child process that prints its figures as JSON; this file turns them into
 * rows (runtime `node`), and {@link peerComparisonRows} sets our figures from the same run
 * beside them.
 *
 * One way, Moleculer: `broker.emit` of an event with one listening service, so the balancer
 * sends each event to exactly one receiver and nobody answers: the closest to `node.send` to
 * one worker. Its payload is `{ command, data }` with `data` a 100-character string (Moleculer's
 * default JSON serializer would write bytes as an array of numbers). Request/reply: `call` of
 * an action that returns its params.
 *
 * Without Moleculer installed (`npm ci` not run) or without `node` on PATH the rows say so in
 * `note`, with no value, instead of failing the run.
 *
 * Run: `deno run -A bench/peer_bench.ts [--json]`, `bun run bench/peer_bench.ts [--json]`
 * (also part of `deno task bench`).
 *
 * @module
 */
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type BenchRow, progress, report, runtimeName } from "./_harness.ts";
import { whichSync } from "../tests/_processes.ts";

const PEER_SCRIPT = fileURLToPath(new URL("./_moleculer_peer.mjs", import.meta.url));
/** The whole peer run stops at this, whatever happens (the script stops itself before). */
const PEER_LIMIT_MS = 180_000;

interface PeerResults {
  readonly reqrepP50Ms: number;
  readonly reqrepP99Ms: number;
  readonly reqrepSerialPerSecond: number;
  readonly reqrepSamples: number;
  readonly reqrepParallelPerSecond: number;
  readonly reqrepParallelCalls: number;
  readonly onewayPerSecond: number;
  readonly onewayLost: number;
  readonly truncated: boolean;
}

type PeerOutput =
  | { ok: true; moleculerVersion: string; node: string; serializer: string; results: PeerResults }
  | { ok: false; error: string };

/** Runs the peer script under Node, killed at `PEER_LIMIT_MS`; its last JSON line. */
function runPeer(node: string): Promise<PeerOutput> {
  return new Promise((resolve) => {
    const child = spawn(node, [PEER_SCRIPT, "--limit-ms", String(PEER_LIMIT_MS - 10_000)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8");
    child.stderr!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => (stdout += chunk));
    child.stderr!.on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), PEER_LIMIT_MS);
    // If this process ends first (an error elsewhere in the run), the peer goes with it.
    const kill = () => child.kill("SIGKILL");
    globalThis.addEventListener("unload", kill);
    process.once("exit", kill);
    let settled = false;
    const done = (status: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      globalThis.removeEventListener("unload", kill);
      process.off("exit", kill);
      const last = stdout.trim().split("\n").filter((line) => line.startsWith("{")).pop();
      if (last === undefined) {
        const why = stderr.trim().split("\n").slice(-3).join(" / ");
        return resolve({ ok: false, error: `the peer printed no result (${status}) ${why}` });
      }
      try {
        resolve(JSON.parse(last) as PeerOutput);
      } catch {
        resolve({ ok: false, error: `the peer printed no JSON (${status})` });
      }
    };
    child.on("close", (code, signal) => done(`exit ${signal ?? code}`));
    child.on("error", (error) => done(error.message));
  });
}

/** The peer's row names, in order; every one is in the output, with NaN when not measured. */
const PEER_ROWS = [
  "moleculer_oneway_small",
  "moleculer_reqrep_p50",
  "moleculer_reqrep_p99",
  "moleculer_reqrep_serial",
  "moleculer_reqrep_64_in_flight",
] as const;

/** The rows of the peer (runtime `node`). */
export async function peerRows(): Promise<BenchRow[]> {
  const node = whichSync("node");
  progress("peer: Moleculer under Node");
  const output: PeerOutput = node === undefined
    ? { ok: false, error: "no node on PATH" }
    : await runPeer(node);
  if (!output.ok) {
    const units = ["msg/s", "ms", "ms", "calls/s", "calls/s"];
    return PEER_ROWS.map((name, i) => ({
      name,
      runtime: "node",
      value: NaN,
      unit: units[i],
      note: `not measured: ${output.error}`,
    }));
  }
  const r = output.results;
  const about = `moleculer ${output.moleculerVersion}, node ${output.node}, TCP transporter, ` +
    `${output.serializer} serializer`;
  const cut = r.truncated ? "; a phase hit its time limit" : "";
  return [
    {
      name: "moleculer_oneway_small",
      runtime: "node",
      value: r.onewayPerSecond,
      unit: "msg/s",
      note: `broker.emit to one listening service, 100-char string data, bursts of 1000, ` +
        `<= 20000 unconfirmed; ${r.onewayLost} lost; ${about}`,
    },
    {
      name: "moleculer_reqrep_p50",
      runtime: "node",
      value: r.reqrepP50Ms,
      unit: "ms",
      note: `broker.call of an echo action, one in flight, ${r.reqrepSamples} samples${cut}`,
    },
    {
      name: "moleculer_reqrep_p99",
      runtime: "node",
      value: r.reqrepP99Ms,
      unit: "ms",
    },
    {
      name: "moleculer_reqrep_serial",
      runtime: "node",
      value: r.reqrepSerialPerSecond,
      unit: "calls/s",
      note: "one call in flight (the latency loop)",
    },
    {
      name: "moleculer_reqrep_64_in_flight",
      runtime: "node",
      value: r.reqrepParallelPerSecond,
      unit: "calls/s",
      note: `64 calls outstanding, ${r.reqrepParallelCalls} calls`,
    },
  ];
}

/**
 * Our figures from the same run beside the peer's: one row per comparable figure, ours as the
 * value and Moleculer's as the baseline. Empty when either side is missing.
 */
export function peerComparisonRows(ours: readonly BenchRow[], peer: readonly BenchRow[]) {
  const pairs: Array<[string, string, string]> = [
    ["oneway_small", "moleculer_oneway_small", "aim >= 5x Moleculer's one-way rate"],
    ["reqrep_p50", "moleculer_reqrep_p50", "lower is better (ratio < 1)"],
    ["reqrep_p99", "moleculer_reqrep_p99", "aim: lower than Moleculer (ratio < 1)"],
    ["reqrep_serial", "moleculer_reqrep_serial", "higher is better"],
    ["reqrep_64_in_flight", "moleculer_reqrep_64_in_flight", "higher is better"],
  ];
  const rows: BenchRow[] = [];
  for (const [mine, theirs, aim] of pairs) {
    const a = ours.find((row) => row.name === mine);
    const b = peer.find((row) => row.name === theirs);
    if (a === undefined || b === undefined) continue;
    rows.push({
      name: `${mine}_vs_moleculer`,
      runtime: a.runtime,
      value: a.value,
      unit: a.unit,
      baseline: b.value,
      baselineName: theirs,
      note: Number.isFinite(b.value) ? aim : `${aim}; Moleculer ${b.note ?? "not measured"}`,
    });
  }
  return rows;
}

if (import.meta.main) {
  const rows = await peerRows();
  report(rows);
  if (runtimeName() === "node") progress("(run under Node itself: these are the peer's rows)");
}
