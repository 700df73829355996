/**
 * Every benchmark of `bench/`, reported together in one table (or JSON lines with `--json`):
 * the simulator's bare queues and delivery rate (`sim_bench.ts`), then whole simulated clusters
 * against that delivery rate (`node_sim_bench.ts`).
 *
 * Run: `deno task bench [--json]`, or `bun run bench/mod.ts [--json]`.
 *
 * @module
 */
import { report } from "./_harness.ts";
import { simRows } from "./sim_bench.ts";
import { nodeSimRows } from "./node_sim_bench.ts";

/** Runs every bench file's rows; each file's baselines come from this same run. */
export function allRows(): ReturnType<typeof simRows> {
  const sim = simRows();
  const deliveries = sim.find((row) => row.name === "sim_datagram_deliveries")?.value;
  return [...sim, ...nodeSimRows({ bareDeliveriesPerSecond: deliveries })];
}

if (import.meta.main) report(allRows());
