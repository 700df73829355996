/**
 * Membership at scale, in the simulator: the ring-monitor membership of `src/_membership.ts`
 * beside the all-to-all heartbeats of today's mesh, at the same cluster sizes, in the same run.
 *
 * This measures the membership layer alone (failure detection and dissemination over simulated
 * UDP, in its compact binary form: `src/_membership_codec.ts`), not the full node: the node still runs the mesh (issue 13
 * goes on). Each cluster starts cold on one subnet: every host broadcasts one hello at a random
 * moment of the first second (the discovery a node does to join), then runs.
 *
 * Rows, per size N (default 100 and 1,000; `--membership-sizes 100,1000,10000` for more):
 * - `membership_N_converged`: simulated ms from cold start until every member knows all N.
 * - `membership_N_steady`: simulated seconds per wall second over 20 simulated seconds, beside
 *   (over 4 simulated seconds) the mesh's all-to-all heartbeats (each host broadcasts one per second, every other host
 *   decodes it and notes the sender), the detection layer the mesh uses today.
 * - `membership_N_messages_per_node_s`: datagrams each node receives per simulated second at
 *   steady state, beside the same for the mesh's heartbeats.
 * - `membership_N_heap_per_node`: heap per node after a forced GC, in KiB.
 * - `membership_N_crash_known_ms`: simulated ms from the crash of one host until every other
 *   host holds it dead, beside 3 intervals (the mesh's silence bound).
 *
 * Run: `deno run -A bench/membership_bench.ts [--json] [--membership-sizes 100,1000] [--monitors K]`, or
 * `bun run bench/membership_bench.ts` (also `deno task bench --only membership`).
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import { Membership, type MembershipMessage, type MemberUpdate } from "../src/_membership.ts";
import { decodeMembership, encodeMembership, MEMBERSHIP_MARKER } from "../src/_membership_codec.ts";
import { Simulation } from "../sim/simulation.ts";
import {
  benchArgs,
  type BenchRow,
  flagValue,
  heapUsedAfterGc,
  progress,
  report,
  runtimeName,
} from "./_harness.ts";

const PORT = 7946;
const INTERVAL_MS = 1000;
const STEADY_MS = 20_000;
/** The mesh runs below 1x real time at 1,000 hosts: a shorter window gives the same rate. */
const MESH_MS = 4_000;
const KIB = 1024;
// The bench's own join hello is msgpack (one per host); membership datagrams are compact. One
// encoder and decoder for the run (as a node keeps its codec): `encode()` would build one per call.
const encoder = new Encoder();
const decoder = new Decoder();
const encode = (value: unknown) => encoder.encode(value);
const decode = (bytes: Uint8Array) => decoder.decode(bytes);

type Wire = MembershipMessage | { readonly kind: "hello"; readonly self: MemberUpdate };

interface Built {
  readonly sim: Simulation;
  readonly members: (Membership | undefined)[];
  sent: number;
  received: number;
}

/** N hosts on one /16 subnet, each running a membership; nothing runs until the caller runs. */
export function buildMembership(n: number, seed: number, monitors = 2): Built {
  const sim = new Simulation({ seed, latencyMsMin: 1, latencyMsMax: 5, traceLimit: 0 });
  const built: Built = { sim, members: [], sent: 0, received: 0 };
  for (let i = 0; i < n; i++) {
    sim.addHost(`M${i}`, (platform, host) => {
      const address = `${host.address}:${PORT}`;
      const socket = platform.net.bindDatagram({ host: "0.0.0.0", port: PORT, broadcast: true }, {
        onMessage(data, from) {
          built.received++;
          const message =
            (data[0] === MEMBERSHIP_MARKER ? decodeMembership(data) : decode(data)) as Wire;
          if (message.kind === "hello") member.heard(message.self);
          else member.receive(message, `${from.host}:${from.port}`);
        },
      });
      const send = (to: string, message: Wire) => {
        const colon = to.lastIndexOf(":");
        built.sent++;
        socket.send(message.kind === "hello" ? encode(message) : encodeMembership(message), {
          host: to.slice(0, colon),
          port: Number(to.slice(colon + 1)),
        });
      };
      const member: Membership = new Membership({
        now: () => platform.clock.now(),
        randomInt: (bound) => platform.random.int(0, bound - 1),
        send,
        changed() {},
      }, {
        guid: host.name,
        address,
        version: platform.clock.wallNow(),
        intervalMs: INTERVAL_MS,
        monitors,
      });
      built.members[i] = member;
      platform.clock.schedule(platform.random.int(0, INTERVAL_MS - 1), () => {
        send("10.0.255.255:" + PORT, { kind: "hello", self: member.self });
      });
      const tick = () => {
        member.tick();
        platform.clock.schedule(Math.max(1, member.nextWakeMs() - platform.clock.now()), tick);
      };
      platform.clock.schedule(1, tick);
      return member;
    });
  }
  return built;
}

/** Today's detection layer: every host broadcasts a heartbeat each interval; all decode it. */
function buildMesh(n: number, seed: number): { sim: Simulation; delivered: () => number } {
  const sim = new Simulation({ seed, latencyMsMin: 1, latencyMsMax: 5, traceLimit: 0 });
  let delivered = 0;
  for (let i = 0; i < n; i++) {
    sim.addHost(`H${i}`, (platform, host) => {
      const heard = new Map<string, number>();
      const socket = platform.net.bindDatagram({ host: "0.0.0.0", port: PORT, broadcast: true }, {
        onMessage(data) {
          delivered++;
          const beat = decode(data) as { guid: string; address: string };
          heard.set(beat.guid, platform.clock.now());
        },
      });
      const beat = encode({ guid: host.name, address: `${host.address}:${PORT}`, incarnation: 1 });
      const send = () => {
        socket.send(beat, { host: "10.0.255.255", port: PORT });
        platform.clock.schedule(INTERVAL_MS, send);
      };
      platform.clock.schedule(platform.random.int(0, INTERVAL_MS - 1), send);
    });
  }
  return { sim, delivered: () => delivered };
}

function allKnowAll(built: Built, n: number): boolean {
  for (const member of built.members) if (!member || member.liveCount !== n) return false;
  return true;
}

/** Wall ms of `fn`. */
function timed(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

/** The rows for one cluster size. */
export function membershipRowsFor(n: number, seed = 1, monitors = 2): BenchRow[] {
  const runtime = runtimeName();
  const rows: BenchRow[] = [];
  const before = heapUsedAfterGc();
  const built = buildMembership(n, seed, monitors);
  const { sim } = built;
  // Cold start: until every member knows every member.
  const convergeWallMs = timed(() => {
    if (!sim.runUntil(() => allKnowAll(built, n), 120_000)) {
      throw new Error(`Cannot converge ${n} members in 120 simulated s`);
    }
  });
  const convergedMs = sim.now;
  rows.push({
    name: `membership_${n}_converged`,
    runtime,
    value: convergedMs,
    unit: "sim ms",
    note: `cold start to every member knowing all ${n} (wall ${
      (convergeWallMs / 1000).toFixed(1)
    } s)`,
  });
  sim.run(5_000); // settle
  const heap = heapUsedAfterGc();
  // Steady state.
  const receivedBefore = built.received;
  const steadyWallMs = timed(() => sim.run(STEADY_MS));
  const perNodeS = (built.received - receivedBefore) / n / (STEADY_MS / 1000);
  // The mesh's heartbeats, same size, same seconds.
  const mesh = buildMesh(n, seed);
  mesh.sim.run(2_000);
  const meshBefore = mesh.delivered();
  const meshWallMs = timed(() => mesh.sim.run(MESH_MS));
  const meshPerNodeS = (mesh.delivered() - meshBefore) / n / (MESH_MS / 1000);
  rows.push({
    name: `membership_${n}_steady`,
    runtime,
    value: STEADY_MS / steadyWallMs,
    unit: "x real time",
    baseline: MESH_MS / meshWallMs,
    baselineName: `mesh_heartbeats_${n}`,
  });
  rows.push({
    name: `membership_${n}_messages_per_node_s`,
    runtime,
    value: perNodeS,
    unit: "datagrams received/node/s",
    baseline: meshPerNodeS,
    baselineName: `mesh_heartbeats_per_node_s`,
  });
  rows.push({
    name: `membership_${n}_heap_per_node`,
    runtime,
    value: (heap.heapUsedBytes - before.heapUsedBytes) / n / KIB,
    unit: "KiB",
    note: heap.collected ? "after a forced GC" : "no forced GC available: an upper bound",
  });
  // Crash one member at an odd moment; wait until every other member holds it dead.
  sim.run(317);
  const victim = sim.hosts[Math.floor(n / 3)];
  sim.crash(victim);
  const crashedAt = sim.now;
  const others = built.members.filter((_, i) => i !== victim.index);
  const known = sim.runUntil(
    () => others.every((member) => member!.get(victim.name)?.status === "dead"),
    30_000,
  );
  rows.push({
    name: `membership_${n}_crash_known_ms`,
    runtime,
    value: known ? sim.now - crashedAt : Number.NaN,
    unit: "sim ms",
    baseline: 3 * INTERVAL_MS,
    baselineName: "3 intervals",
    note: known ? undefined : "not known everywhere within 30 s",
  });
  return rows;
}

/** Every size's rows. */
export function membershipRows(
  sizes: readonly number[] = [100, 1000],
  monitors = 2,
): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const n of sizes) {
    progress(`membership: ${n} members`);
    rows.push(...membershipRowsFor(n, 1, monitors));
  }
  return rows;
}

/** K from `--monitors K` (default 2, the membership's own default). */
export function monitorsFromArgs(args: readonly string[]): number {
  const text = flagValue(args, "monitors");
  if (text === undefined) return 2;
  const k = Number(text);
  if (!(Number.isInteger(k) && k >= 1)) {
    throw new RangeError("Cannot read --monitors: give a whole number >= 1, e.g. 2");
  }
  return k;
}

/** Sizes from `--membership-sizes a,b,c`. */
export function membershipSizesFromArgs(args: readonly string[]): number[] {
  const text = flagValue(args, "membership-sizes");
  if (text === undefined) return [100, 1000];
  const sizes = text.split(",").map(Number);
  if (sizes.some((n) => !(Number.isInteger(n) && n >= 2))) {
    throw new RangeError("Cannot read --membership-sizes: give whole numbers >= 2, e.g. 100,1000");
  }
  return sizes;
}

if (import.meta.main) {
  const args = benchArgs();
  report(membershipRows(membershipSizesFromArgs(args), monitorsFromArgs(args)), args);
}
