/**
 * Every benchmark of `bench/`, reported together in one table (or JSON lines with `--json`):
 * the simulator's bare queues and delivery rate (`sim_bench.ts`), whole simulated clusters
 * against that delivery rate (`node_sim_bench.ts`), and two real nodes on loopback beside a raw
 * stream on the same adapter (`real_bench.ts`).
 *
 * Run: `deno task bench [--json]`, or `bun run bench/mod.ts [--json]`.
 *
 * @module
 */
import { report } from "./_harness.ts";
import { simRows } from "./sim_bench.ts";
import { nodeSimRows } from "./node_sim_bench.ts";
import { realRows } from "./real_bench.ts";

/** Runs every bench file's rows; each file's baselines come from this same run. */
export async function allRows(): Promise<ReturnType<typeof simRows>> {
  const sim = simRows();
  const deliveries = sim.find((row) => row.name === "sim_datagram_deliveries")?.value;
  return [...sim, ...nodeSimRows({ bareDeliveriesPerSecond: deliveries }), ...(await realRows())];
}

if (import.meta.main) report(await allRows());
