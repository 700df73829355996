/**
 * Every benchmark of `bench/`, reported together in one table (or JSON lines with `--json`),
 * each figure beside a baseline measured in the same run:
 *
 * - `codec`: `codec_bench.ts`, the msgpack and JSON codecs beside general-purpose libraries;
 * - `sim`: `sim_bench.ts`, `node_sim_bench.ts`, `sim_scale_bench.ts`, the simulator's bare
 *   rates, 100-node clusters, memory per node and a 1,000-node cluster;
 * - `real`: `real_bench.ts`, two nodes on loopback beside raw streams (one way, request/reply);
 * - `peer`: `peer_bench.ts` (with `_moleculer_peer.mjs`), Moleculer under Node doing the same,
 *   and our `real` figures beside it when both ran;
 * - `discovery`: `discovery_bench.ts`, mesh formation and dropping a killed or frozen node;
 * - `scenario`: `scenario_bench.ts`, fault campaigns (`runScenario`) per second on 5-, 20- and
 *   100-node clusters with user workers and traffic, beside the same scenarios kept quiet.
 *
 * - `membership`: `membership_bench.ts`, the scaling membership (ring monitors, flooding) on
 *   100 and 1,000 simulated hosts beside the mesh's all-to-all heartbeats at the same sizes
 *   (`--membership-sizes 100,1000,10000` for other sizes).
 * - `scale`: `scale_bench.ts`, whole clusters of real nodes with ring membership at 100 and
 *   1,000 nodes beside the mesh in the same run (`--scale-sizes`, `--scale-mesh-budget-s`).
 *
 * Run: `deno task bench [--json] [--only codec,sim,real,peer,discovery,scenario,membership,scale]`, or
 * `bun run bench/mod.ts …`. `--sim-1000-budget-s N` sets the wall-clock budget of the
 * 1,000-node run (default 20), `--sim-1000-full` runs it until fully meshed (minutes, 6+ GB).
 * Progress goes to stderr, so `--json` output stays one JSON object per line on stdout.
 *
 * @module
 */
import { benchArgs, type BenchRow, flagValue, forceGc, progress, report } from "./_harness.ts";
import { codecRows } from "./codec_bench.ts";
import { simRows } from "./sim_bench.ts";
import { nodeSimRows } from "./node_sim_bench.ts";
import { simScaleOptionsFromArgs, simScaleRows } from "./sim_scale_bench.ts";
import { realRows } from "./real_bench.ts";
import { peerComparisonRows, peerRows } from "./peer_bench.ts";
import { discoveryRows } from "./discovery_bench.ts";
import { scenarioRows } from "./scenario_bench.ts";
import { membershipRows, membershipSizesFromArgs, monitorsFromArgs } from "./membership_bench.ts";
import { meshBudgetFromArgs, scaleRows, scaleSizesFromArgs } from "./scale_bench.ts";

/** The groups of benchmarks, in the order they run. */
export const GROUPS = [
  "codec",
  "real",
  "peer",
  "discovery",
  "scenario",
  "membership",
  "scale",
  "sim",
] as const;

/** One group of benchmarks. */
export type Group = (typeof GROUPS)[number];

/**
 * The groups `--only a,b` selects (all without it).
 * @throws {RangeError} If a name is not a group.
 */
export function selectedGroups(args: readonly string[]): Set<Group> {
  const only = flagValue(args, "only");
  if (only === undefined) return new Set(GROUPS);
  const names = only.split(",").map((name) => name.trim()).filter(Boolean);
  for (const name of names) {
    if (!(GROUPS as readonly string[]).includes(name)) {
      throw new RangeError(`Cannot select "${name}": the groups are ${GROUPS.join(", ")}`);
    }
  }
  return new Set(names as Group[]);
}

/** Runs the selected groups' rows; each file's baselines come from this same run. */
export async function allRows(args: readonly string[] = benchArgs()): Promise<BenchRow[]> {
  const groups = selectedGroups(args);
  const rows: BenchRow[] = [];
  if (groups.has("codec")) {
    progress("codec");
    rows.push(...codecRows());
  }
  let real: BenchRow[] = [];
  forceGc(); // What the group before left on the heap is not this group's cost.
  if (groups.has("real")) {
    progress("real: one way");
    real = await realRows();
    rows.push(...real);
  }
  forceGc(); // What the group before left on the heap is not this group's cost.
  if (groups.has("peer")) {
    const peer = await peerRows();
    rows.push(...peer, ...peerComparisonRows(real, peer));
  }
  forceGc(); // What the group before left on the heap is not this group's cost.
  if (groups.has("discovery")) rows.push(...(await discoveryRows()));
  forceGc(); // What the group before left on the heap is not this group's cost.
  if (groups.has("scenario")) rows.push(...scenarioRows());
  forceGc(); // What the group before left on the heap is not this group's cost.
  if (groups.has("membership")) {
    rows.push(...membershipRows(membershipSizesFromArgs(args), monitorsFromArgs(args)));
  }
  forceGc(); // What the group before left on the heap is not this group's cost.
  if (groups.has("scale")) {
    rows.push(...scaleRows(scaleSizesFromArgs(args), meshBudgetFromArgs(args)));
  }
  // The `sim` group last: its 1,000-node cluster leaves a heap of gigabytes whose collection
  // would slow down whatever ran after it (the real-socket figures above all).
  forceGc(); // What the group before left on the heap is not this group's cost.
  if (groups.has("sim")) {
    progress("sim: bare queues and deliveries");
    const sim = simRows();
    const deliveries = sim.find((row) => row.name === "sim_datagram_deliveries")?.value;
    progress("sim: 100-node clusters");
    rows.push(...sim, ...nodeSimRows({ bareDeliveriesPerSecond: deliveries }));
    rows.push(
      ...(await simScaleRows({
        ...simScaleOptionsFromArgs(args),
        bareDeliveriesPerSecond: deliveries,
      })),
    );
  }
  return rows;
}

if (import.meta.main) report(await allRows());
