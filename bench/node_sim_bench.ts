/**
 * Whole-cluster simulation speed: 100 real nodes (one worker each, msgpack on every frame) for
 * 60 simulated seconds, against the target of 100x real time, beside the simulator's bare
 * delivery rate measured in the same run.
 *
 * Where the time goes: the same cluster with gossip off and with workers off, and a bare
 * simulator workload of the same traffic shape (every host broadcasts a heartbeat-sized
 * datagram at each jittered ~1 s tick and writes a keepalive-sized segment on each of its 99
 * streams idle for 1.2 s, as the nodes do, all to no-op handlers). The cluster's wall time
 * minus the bare workload's is the node logic's share.
 *
 * Run: `deno task bench` (every bench file), or `deno run -A bench/node_sim_bench.ts [--json]`,
 * `bun run bench/node_sim_bench.ts [--json]`.
 *
 * @module
 */
import { createSimCluster, type SimClusterOptions } from "../sim/cluster.ts";
import { runUntilConverged } from "../sim/cli.ts";
import { type SimStats, Simulation } from "../sim/simulation.ts";
import type { StreamConn, StreamHandlers } from "../src/platform.ts";
import { type BenchRow, report, runtimeName } from "./_harness.ts";
import { simDeliveriesPerSecond } from "./sim_bench.ts";

const NODES = 100;
const SIMULATED_MS = 60_000;
const SEED = 1;
const TARGET_X_REALTIME = 100;
/** Runs per workload; the fastest counts (the machine is shared and noisy). */
const REPEAT = 2;
/** Sizes of the node's msgpack heartbeat datagram and keepalive frame with these GUIDs. */
const HEARTBEAT_BYTES = 184;
const KEEPALIVE_BYTES = 54;
/** The node's defaults: a ~1 s tick with ±10 % jitter; a keepalive after 1.2 s without sending. */
const TICK_MS = 1000;
const TICK_JITTER = 0.1;
const KEEPALIVE_AFTER_MS = 1200;

interface Run {
  readonly wallMs: number;
  readonly events: number;
  readonly stats: SimStats;
  /** Virtual time of convergence (cluster runs only). */
  readonly convergedAtMs?: number;
  /** Wall time until convergence was seen (cluster runs only). */
  readonly convergeWallMs?: number;
}

/** The fastest of `REPEAT` runs; every run must do the same work (same seed, same events). */
function fastest(run: () => Run): Run {
  let best: Run | undefined;
  for (let i = 0; i < REPEAT; i++) {
    const next = run();
    if (best !== undefined && next.events !== best.events) {
      throw new Error(`Cannot compare runs: ${next.events} events, then ${best.events}`);
    }
    if (best === undefined || next.wallMs < best.wallMs) best = next;
  }
  return best!;
}

/** 100 nodes for 60 s: until converged (checked after each instant, as the sim CLI does), then on. */
function clusterRun(options: Partial<SimClusterOptions> = {}): Run {
  const startMs = performance.now();
  const cluster = createSimCluster({ nodes: NODES, seed: SEED, logLimit: 0, ...options });
  const { sim } = cluster;
  const convergedAtMs = runUntilConverged(cluster, SIMULATED_MS);
  if (convergedAtMs === null) {
    throw new Error(`Cannot measure: ${NODES} nodes did not converge in ${SIMULATED_MS} ms`);
  }
  const convergeWallMs = performance.now() - startMs;
  sim.run(SIMULATED_MS - sim.now);
  const wallMs = performance.now() - startMs;
  const links = cluster.linkedPairs();
  if (links !== (NODES * (NODES - 1)) / 2) {
    throw new Error(`Cannot measure: ${links} links at the end, expected all`);
  }
  return { wallMs, events: sim.events, stats: { ...sim.stats }, convergedAtMs, convergeWallMs };
}

interface BareHost {
  readonly streams: Array<{ conn: StreamConn; lastSentMs: number }>;
  readonly handlers: StreamHandlers;
  readonly connect: (host: string) => StreamConn;
}

/**
 * The cluster's traffic without the node: each host's tick broadcasts a heartbeat-sized
 * datagram and writes a keepalive-sized segment on every stream it has not written to for
 * 1.2 s; every pair has one stream, dialled by the lower host. Returns the simulation, not yet
 * run (every stream is dialled at time 0).
 */
export function createBareTraffic(nodes: number = NODES): Simulation {
  const sim = new Simulation({ seed: SEED, logLimit: 0 });
  const heartbeat = new Uint8Array(HEARTBEAT_BYTES);
  const keepalive = new Uint8Array(KEEPALIVE_BYTES);
  const broadcast = { host: "10.0.255.255", port: 9999 };
  const hosts = Array.from(
    { length: nodes },
    (_, index) =>
      sim.addHost<BareHost>(`h${index}`, (platform, host) => {
        const streams: BareHost["streams"] = [];
        const handlers: StreamHandlers = { onData() {}, onClose() {} };
        platform.net.listen({ host: host.address, port: 8888 }, {
          onConnection(conn) {
            streams.push({ conn, lastSentMs: platform.clock.now() });
            return handlers;
          },
        });
        const socket = platform.net.bindDatagram(
          { host: "0.0.0.0", port: 9999, reuseAddress: true, broadcast: true },
          { onMessage() {} },
        );
        const tick = () => {
          socket.send(heartbeat, broadcast);
          const now = platform.clock.now();
          for (const stream of streams) {
            if (now - stream.lastSentMs >= KEEPALIVE_AFTER_MS) {
              stream.conn.write(keepalive);
              stream.lastSentMs = now;
            }
          }
          const spread = TICK_MS * TICK_JITTER;
          platform.clock.schedule(TICK_MS - spread + 2 * spread * platform.random.next(), tick);
        };
        platform.clock.schedule(platform.random.next() * TICK_MS, tick);
        const connect = (to: string) => {
          const conn = platform.net.connect({ host: to, port: 8888 }, handlers);
          streams.push({ conn, lastSentMs: platform.clock.now() });
          return conn;
        };
        return { streams, handlers, connect };
      }),
  );
  for (let a = 0; a < nodes; a++) {
    for (let b = a + 1; b < nodes; b++) hosts[a].app!.connect(hosts[b].address);
  }
  return sim;
}

/** {@link createBareTraffic} of `NODES` hosts for `SIMULATED_MS`. */
function bareTrafficRun(): Run {
  const startMs = performance.now();
  const sim = createBareTraffic();
  sim.run(SIMULATED_MS);
  const wallMs = performance.now() - startMs;
  return { wallMs, events: sim.events, stats: { ...sim.stats } };
}

const xRealtime = (run: Run) => SIMULATED_MS / run.wallMs;
const thousands = (value: number) => Math.round(value).toLocaleString("en-US");

/** Options of {@link nodeSimRows}. */
export interface NodeSimRowsOptions {
  /**
   * The simulator's bare delivery rate if already measured in this run (`bench/mod.ts` passes
   * the figure of `sim_bench.ts`); otherwise it is measured here and reported as a row too.
   */
  readonly bareDeliveriesPerSecond?: number;
}

/** The rows of this file. */
export function nodeSimRows(options: NodeSimRowsOptions = {}): BenchRow[] {
  const runtime = runtimeName();
  const rows: BenchRow[] = [];
  let deliveries = options.bareDeliveriesPerSecond;
  if (deliveries === undefined) {
    deliveries = simDeliveriesPerSecond();
    rows.push({
      name: "sim_datagram_deliveries",
      runtime,
      value: deliveries,
      unit: "deliveries/s",
      note: "the simulator's bare delivery rate (bench/sim_bench.ts)",
    });
  }
  const full = fastest(() => clusterRun());
  const noGossip = fastest(() => clusterRun({ node: { gossipIntervals: 0 } }));
  const noWorkers = fastest(() => clusterRun({ workers: false }));
  const bare = fastest(bareTrafficRun);
  const fullX = xRealtime(full);
  const nodeShare = Math.max(0, (full.wallMs - bare.wallMs) / full.wallMs) * 100;
  rows.push(
    {
      name: "sim_100_nodes_60s",
      runtime,
      value: fullX,
      unit: "x realtime",
      baseline: TARGET_X_REALTIME,
      baselineName: "target",
      note: `${NODES} nodes + workers, msgpack, 60 s simulated in ${thousands(full.wallMs)} ms`,
    },
    {
      name: "sim_100_nodes_events",
      runtime,
      value: full.events / (full.wallMs / 1000),
      unit: "events/s",
      baseline: deliveries,
      baselineName: "sim_datagram_deliveries",
      note: `${thousands(full.events)} events: ${thousands(full.stats.datagramsDelivered)} ` +
        `datagrams, ${thousands(full.stats.segmentsDelivered)} segments`,
    },
    {
      name: "sim_100_nodes_converged_at",
      runtime,
      value: full.convergedAtMs!,
      unit: "virtual ms",
      note: `all ${(NODES * (NODES - 1)) / 2} links and every worker known; ` +
        `${thousands(full.convergeWallMs!)} ms wall`,
    },
    {
      name: "sim_100_nodes_60s_no_gossip",
      runtime,
      value: xRealtime(noGossip),
      unit: "x realtime",
      baseline: fullX,
      baselineName: "sim_100_nodes_60s",
      note: "gossipIntervals: 0 (no peer lists)",
    },
    {
      name: "sim_100_nodes_60s_no_workers",
      runtime,
      value: xRealtime(noWorkers),
      unit: "x realtime",
      baseline: fullX,
      baselineName: "sim_100_nodes_60s",
      note: "no workers (no worker ticks or locations)",
    },
    {
      name: "bare_traffic_100_hosts_60s",
      runtime,
      value: xRealtime(bare),
      unit: "x realtime",
      baseline: fullX,
      baselineName: "sim_100_nodes_60s",
      note: `same traffic, no-op handlers: ${thousands(bare.stats.datagramsDelivered)} ` +
        `datagrams, ${thousands(bare.stats.segmentsDelivered)} segments`,
    },
    {
      name: "node_logic_share",
      runtime,
      value: nodeShare,
      unit: "% of wall",
      note: `of sim_100_nodes_60s; the simulator's own work is the other ${
        (100 - nodeShare).toFixed(0)
      }%`,
    },
  );
  return rows;
}

if (import.meta.main) report(nodeSimRows());
