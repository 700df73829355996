/**
 * Discovery and failure detection on real loopback sockets, beside the configured heartbeat
 * interval.
 *
 * - `discovery_mesh_20`: 20 nodes in this process, each with an `EchoWorker`, started together
 *   on a shared UDP discovery port with heartbeats broadcast to 127.255.255.255 (as the program
 *   does on loopback), until every node links to the 19 others and knows where their workers
 *   are. Measured from the first `start()` to the event that completed the mesh; median of
 *   `MESH_RUNS`, each on a fresh discovery port.
 * - `drop_after_kill9`: a node program (`mod.ts`, on this runtime) as a child process linked to
 *   a node in this process; time from `kill -9` of the child to `link-down` on the surviving
 *   node, median of `KILL_RUNS`. On one machine the kernel closes a killed process's sockets,
 *   so the survivor sees the stream end at once; heartbeats are the fallback.
 * - `drop_after_sigstop`: the same with SIGSTOP: the process freezes with its sockets open, so
 *   only the heartbeat silence (3 intervals, checked on each ~1 s tick) can drop it. Beside the
 *   silence bound.
 *
 * Loopback only; discovery ports are picked in 30000..32767 (below the ephemeral range, away
 * from the 20000..29999 the tests use) and probed free; every GUID carries this run's token and
 * a node seen from outside the run is reported; every child process is killed at the end.
 *
 * Run: `deno run -A bench/discovery_bench.ts [--json]`, `bun run bench/discovery_bench.ts`
 * (also part of `deno task bench`).
 *
 * @module
 */
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { AutoMpiNode } from "../src/node.ts";
import { EchoWorker } from "../src/worker.ts";
import type { Platform } from "../src/platform.ts";
import { createRuntimePlatform } from "../adapters/runtime.ts";
import {
  currentRuntime,
  findRuntime,
  killAll,
  type NodeProcess,
  reapLeftoverProcesses,
  runToken,
  startNode,
  waitForStarted,
} from "../tests/_processes.ts";
import { type BenchRow, progress, report, runtimeName } from "./_harness.ts";

const BROADCAST = "127.255.255.255";
const MESH_NODES = 20;
const MESH_RUNS = 3;
const KILL_RUNS = 3;
/** The node's default heartbeat interval and silence; what a user gets without flags. */
const HEARTBEAT_MS = 1000;
const SILENCE_INTERVALS = 3;
const MESH_LIMIT_MS = 30_000;
const START_LIMIT_MS = 30_000;
const LINK_LIMIT_MS = 15_000;
/** Silence bound plus a tick, jitter and slack for a loaded machine. */
const DROP_LIMIT_MS = (SILENCE_INTERVALS + 2) * HEARTBEAT_MS * 2;

function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const ms = (value: number) => `${Math.round(value).toLocaleString("en-US")} ms`;

/** Whether nobody holds UDP `port` (a bind without address reuse succeeds). */
function udpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket({ type: "udp4", reuseAddr: false });
    socket.once("error", () => {
      socket.close();
      resolve(false);
    });
    socket.bind({ port, address: "0.0.0.0", exclusive: true }, () => {
      socket.close(() => resolve(true));
    });
  });
}

/** Whether nobody listens on TCP 127.0.0.1:`port`. */
function tcpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

const taken = new Set<number>();

/** A port in 30000..32767 that is free now (UDP or TCP) and not handed out before in this run. */
async function freePort(kind: "udp" | "tcp"): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 30_000 + Math.floor(Math.random() * 2768);
    if (taken.has(port)) continue;
    if (await (kind === "udp" ? udpPortFree(port) : tcpPortFree(port))) {
      taken.add(port);
      return port;
    }
  }
  throw new Error(`Cannot find a free ${kind} port in 30000..32767`);
}

/** What `promise` gives within `limitMs`, or `undefined` if it takes longer. */
function within<T>(
  platform: Platform,
  promise: Promise<T>,
  limitMs: number,
): Promise<T | undefined> {
  const timeout = new Promise<undefined>((resolve) => {
    const timer = platform.clock.schedule(limitMs, () => resolve(undefined));
    void promise.then(() => timer.cancel());
  });
  return Promise.race([promise, timeout]);
}

interface MeshRun {
  readonly linksMs: number;
  readonly meshMs: number;
  readonly foreign: number;
}

/** `MESH_NODES` nodes in this process from start to full mesh and every worker located. */
async function meshRun(platform: Platform, token: string): Promise<MeshRun> {
  const port = await freePort("udp");
  const guids = Array.from({ length: MESH_NODES }, (_, i) => `M${token}n${i}`);
  const ours = new Set(guids);
  const nodes = guids.map((guid) =>
    new AutoMpiNode(platform, {
      guid,
      listen: { host: "127.0.0.1", port: 0 },
      discovery: { port, broadcastAddress: BROADCAST, bindHost: BROADCAST },
      heartbeatIntervalMs: HEARTBEAT_MS,
      silenceIntervals: SILENCE_INTERVALS,
    })
  );
  let foreign = 0;
  let linksAt: number | undefined;
  let resolveMesh!: (atMs: number) => void;
  const mesh = new Promise<number>((resolve) => (resolveMesh = resolve));
  const linked = () => nodes.every((node) => node.linkCount === MESH_NODES - 1);
  const check = () => {
    if (linksAt === undefined && linked()) linksAt = performance.now();
    if (linksAt !== undefined && nodes.every((node) => node.knownLocations >= MESH_NODES - 1)) {
      resolveMesh(performance.now());
    }
  };
  for (const node of nodes) {
    node.on("link-up", (event) => {
      if (!ours.has(event.peer)) foreign++;
      check();
    });
    node.on("location-added", check);
  }
  const startMs = performance.now();
  try {
    for (const [i, node] of nodes.entries()) {
      node.start();
      node.attachWorker(new EchoWorker(`W${token}n${i}`));
    }
    const meshAt = await within(platform, mesh, MESH_LIMIT_MS);
    if (meshAt === undefined) {
      const counts = nodes.map((node) => node.linkCount).join(",");
      throw new Error(`Cannot measure: no full mesh in ${MESH_LIMIT_MS} ms (links ${counts})`);
    }
    return { linksMs: linksAt! - startMs, meshMs: meshAt - startMs, foreign };
  } finally {
    for (const node of nodes) node.close();
  }
}

/**
 * `MESH_NODES` nodes with ring membership in this process, from start until every node knows
 * every node alive and has had an answer from the worker of the next node (a lookup, a link
 * opened for it, the answer back).
 */
async function ringRun(platform: Platform, token: string): Promise<MeshRun> {
  const port = await freePort("udp");
  const guids = Array.from({ length: MESH_NODES }, (_, i) => `R${token}n${i}`);
  const ours = new Set(guids);
  const nodes = guids.map((guid) =>
    new AutoMpiNode(platform, {
      guid,
      listen: { host: "127.0.0.1", port: 0 },
      discovery: { port, broadcastAddress: BROADCAST, bindHost: BROADCAST },
      heartbeatIntervalMs: HEARTBEAT_MS,
      membership: "ring",
    })
  );
  let foreign = 0;
  let knownAt: number | undefined;
  let answers = 0;
  let resolveDone!: (atMs: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  const check = () => {
    if (knownAt !== undefined) return;
    if (!nodes.every((node) => node.membership().alive === MESH_NODES)) return;
    knownAt = performance.now();
    for (const [i, node] of nodes.entries()) {
      node.send({
        destination: `W${token}r${(i + 1) % MESH_NODES}`,
        source: node.guid,
        message: { command: "reach" },
      });
    }
  };
  for (const node of nodes) {
    node.on("peer-discovered", (event) => {
      if (!ours.has(event.peer)) foreign++;
      check();
    });
    node.onMessage((message) => {
      if (message.message.echoOf === "reach" && ++answers === MESH_NODES) {
        resolveDone(performance.now());
      }
    });
  }
  const startMs = performance.now();
  try {
    for (const [i, node] of nodes.entries()) {
      node.start();
      node.attachWorker(new EchoWorker(`W${token}r${i}`));
    }
    const doneAt = await within(platform, done, MESH_LIMIT_MS);
    if (doneAt === undefined) {
      const counts = nodes.map((node) => node.membership().alive).join(",");
      throw new Error(
        `Cannot measure: ring not complete in ${MESH_LIMIT_MS} ms (members ${counts}, ${answers} answers)`,
      );
    }
    return { linksMs: knownAt! - startMs, meshMs: doneAt - startMs, foreign };
  } finally {
    for (const node of nodes) node.close();
  }
}

interface Victim {
  readonly guid: string;
  readonly process: NodeProcess;
}

interface DropRun {
  readonly dropMs: number;
  readonly reason: string;
}

/**
 * Signals `victim` and waits for the observer's `link-down` for it; the time from just before
 * the signal to the event.
 */
function dropAfter(
  platform: Platform,
  observer: AutoMpiNode,
  victim: Victim,
  signal: "SIGKILL" | "SIGSTOP",
  ring = false,
): Promise<DropRun> {
  return new Promise((resolve, reject) => {
    let startMs = 0;
    const timer = platform.clock.schedule(DROP_LIMIT_MS, () => {
      off();
      reject(
        new Error(`Cannot measure: ${victim.guid} not dropped ${DROP_LIMIT_MS} ms after ${signal}`),
      );
    });
    // The mesh drops the link; ring membership reports the member lost.
    const off = ring
      ? observer.on("peer-lost", (event) => {
        if (event.peer !== victim.guid) return;
        const dropMs = performance.now() - startMs;
        off();
        timer.cancel();
        resolve({ dropMs, reason: "member-down" });
      })
      : observer.on("link-down", (event) => {
        if (event.peer !== victim.guid) return;
        const dropMs = performance.now() - startMs;
        off();
        timer.cancel();
        resolve({ dropMs, reason: event.reason });
      });
    startMs = performance.now();
    if (!victim.process.signal(signal)) {
      off();
      timer.cancel();
      reject(new Error(`Cannot send ${signal} to ${victim.guid}: it is gone`));
    }
  });
}

interface FailureRuns {
  readonly kills: DropRun[];
  readonly stop: DropRun;
  readonly foreign: number;
}

/** One observer here, `KILL_RUNS + 1` node programs as children: kill -9 each, SIGSTOP one. */
async function failureRuns(
  platform: Platform,
  token: string,
  ring = false,
): Promise<FailureRuns> {
  const runtime = currentRuntime();
  if (findRuntime(runtime) === undefined) throw new Error(`Cannot find the ${runtime} executable`);
  const discoveryPort = await freePort("udp");
  const observer = new AutoMpiNode(platform, {
    guid: `O${token}`,
    listen: { host: "127.0.0.1", port: 0 },
    discovery: { port: discoveryPort, broadcastAddress: BROADCAST, bindHost: BROADCAST },
    heartbeatIntervalMs: HEARTBEAT_MS,
    silenceIntervals: SILENCE_INTERVALS,
    ...(ring ? { membership: "ring" as const } : {}),
  });
  let foreign = 0;
  const victims: Victim[] = [];
  const linkedTo = new Set<string>();
  const waiters = new Set<() => void>();
  // Known to the observer: linked (mesh), or a member (ring).
  observer.on(ring ? "peer-discovered" : "link-up", (event) => {
    if (!event.peer.startsWith(`V${token}`)) foreign++;
    linkedTo.add(event.peer);
    for (const waiter of [...waiters]) waiter();
  });
  try {
    observer.start();
    for (let i = 0; i <= KILL_RUNS; i++) {
      const guid = `V${token}n${i}`;
      const process = startNode({
        name: guid,
        runtime,
        args: [
          "--guid",
          guid,
          "--port",
          String(await freePort("tcp")),
          "--http-port",
          "0",
          "--discovery-port",
          String(discoveryPort),
          "--heartbeat-ms",
          String(HEARTBEAT_MS),
          "--silence",
          String(SILENCE_INTERVALS),
          ...(ring ? ["--membership", "ring"] : []),
        ],
      });
      victims.push({ guid, process });
    }
    await Promise.all(victims.map((victim) => waitForStarted(victim.process, START_LIMIT_MS)));
    await new Promise<void>((resolve, reject) => {
      const timer = platform.clock.schedule(LINK_LIMIT_MS, () => {
        waiters.delete(check);
        reject(new Error(`Cannot measure: the observer linked only to ${[...linkedTo].join(",")}`));
      });
      const check = () => {
        if (!victims.every((victim) => linkedTo.has(victim.guid))) return;
        waiters.delete(check);
        timer.cancel();
        resolve();
      };
      waiters.add(check);
      check();
    });
    const settle = () => new Promise<void>((resolve) => platform.clock.schedule(300, resolve));
    const kills: DropRun[] = [];
    for (const victim of victims.slice(0, KILL_RUNS)) {
      await settle();
      kills.push(await dropAfter(platform, observer, victim, "SIGKILL", ring));
    }
    await settle();
    const stop = await dropAfter(platform, observer, victims[KILL_RUNS], "SIGSTOP", ring);
    return { kills, stop, foreign };
  } finally {
    observer.close();
    // SIGKILL reaches a stopped process too.
    await Promise.all(victims.map((victim) => victim.process.stop("SIGKILL")));
  }
}

/** The rows of this file. */
export async function discoveryRows(): Promise<BenchRow[]> {
  const runtime = runtimeName();
  const token = runToken();
  reapLeftoverProcesses();
  const platform = await createRuntimePlatform();
  const rows: BenchRow[] = [];
  try {
    progress(`discovery: ${MESH_NODES} nodes to a full mesh, ${MESH_RUNS} runs`);
    const meshes: MeshRun[] = [];
    let meshError = "";
    for (let i = 0; i < MESH_RUNS; i++) {
      try {
        meshes.push(await meshRun(platform, `${token}r${i}`));
      } catch (error) {
        meshError = (error as Error).message;
      }
    }
    const foreignMesh = meshes.reduce((sum, run) => sum + run.foreign, 0);
    rows.push({
      name: `discovery_mesh_${MESH_NODES}`,
      runtime,
      value: median(meshes.map((run) => run.meshMs)),
      unit: "ms",
      baseline: HEARTBEAT_MS,
      baselineName: "heartbeat interval",
      note: meshes.length === 0
        ? `not measured: ${meshError}`
        : `median of ${meshes.length} (${meshes.map((run) => ms(run.meshMs)).join(", ")}); ` +
          `all ${(MESH_NODES * (MESH_NODES - 1)) / 2} links after ${
            ms(median(meshes.map((run) => run.linksMs)))
          }, then every worker located` +
          (foreignMesh > 0 ? `; ${foreignMesh} links to nodes outside this run!` : "") +
          (meshError && meshes.length < MESH_RUNS ? `; a run failed: ${meshError}` : ""),
    });
    progress(`discovery: kill -9 and SIGSTOP of node programs (${currentRuntime()})`);
    let failures: FailureRuns | undefined;
    let failureError = "";
    try {
      failures = await failureRuns(platform, token);
    } catch (error) {
      failureError = (error as Error).message.split("\n")[0];
    }
    const reasons = (runs: readonly DropRun[]) => [...new Set(runs.map((run) => run.reason))];
    rows.push(
      {
        name: "drop_after_kill9",
        runtime,
        value: failures === undefined ? NaN : median(failures.kills.map((run) => run.dropMs)),
        unit: "ms",
        baseline: HEARTBEAT_MS,
        baselineName: "heartbeat interval",
        note: failures === undefined
          ? `not measured: ${failureError}`
          : `median of ${failures.kills.length} (${
            failures.kills.map((run) => ms(run.dropMs)).join(", ")
          }), SIGKILL to link-down, reason ${reasons(failures.kills).join("/")}` +
            (failures.foreign > 0 ? `; ${failures.foreign} links to nodes outside this run!` : ""),
      },
      {
        name: "drop_after_sigstop",
        runtime,
        value: failures?.stop.dropMs ?? NaN,
        unit: "ms",
        baseline: SILENCE_INTERVALS * HEARTBEAT_MS,
        baselineName: `silence (${SILENCE_INTERVALS} x ${HEARTBEAT_MS} ms heartbeat)`,
        note: failures === undefined
          ? `not measured: ${failureError}`
          : `frozen, sockets open: reason ${failures.stop.reason}; bound = silence + one tick ` +
            `+ 10% jitter = ${ms((SILENCE_INTERVALS + 1) * HEARTBEAT_MS * 1.1)}`,
      },
    );
    rows.push(...(await ringRows(platform, `${token}g`)));
  } finally {
    await killAll();
    await platform.close();
  }
  return rows;
}

/** The same figures with ring membership (`membership: "ring"`, `--membership ring`). */
async function ringRows(platform: Platform, token: string): Promise<BenchRow[]> {
  const runtime = runtimeName();
  progress(`discovery: ${MESH_NODES} nodes with ring membership, ${MESH_RUNS} runs`);
  const runs: MeshRun[] = [];
  let runError = "";
  for (let i = 0; i < MESH_RUNS; i++) {
    try {
      runs.push(await ringRun(platform, `${token}r${i}`));
    } catch (error) {
      runError = (error as Error).message;
    }
  }
  const foreign = runs.reduce((sum, run) => sum + run.foreign, 0);
  const rows: BenchRow[] = [{
    name: `discovery_ring_${MESH_NODES}`,
    runtime,
    value: median(runs.map((run) => run.meshMs)),
    unit: "ms",
    baseline: HEARTBEAT_MS,
    baselineName: "heartbeat interval",
    note: runs.length === 0
      ? `not measured: ${runError}`
      : `median of ${runs.length} (${runs.map((run) => ms(run.meshMs)).join(", ")}); ` +
        `every node knew all ${MESH_NODES} alive after ${
          ms(median(runs.map((run) => run.linksMs)))
        }, then every node had an answer from the next node's worker` +
        (foreign > 0 ? `; ${foreign} members outside this run!` : "") +
        (runError && runs.length < MESH_RUNS ? `; a run failed: ${runError}` : ""),
  }];
  progress(`discovery: kill -9 and SIGSTOP of ring node programs (${currentRuntime()})`);
  let failures: FailureRuns | undefined;
  let failureError = "";
  try {
    failures = await failureRuns(platform, token, true);
  } catch (error) {
    failureError = (error as Error).message.split("\n")[0];
  }
  rows.push(
    {
      name: "ring_lost_after_kill9",
      runtime,
      value: failures === undefined ? NaN : median(failures.kills.map((run) => run.dropMs)),
      unit: "ms",
      baseline: SILENCE_INTERVALS * HEARTBEAT_MS,
      baselineName: `3 heartbeat intervals`,
      note: failures === undefined
        ? `not measured: ${failureError}`
        : `median of ${failures.kills.length} (${
          failures.kills.map((run) => ms(run.dropMs)).join(", ")
        }), SIGKILL to peer-lost: the membership's verdict, not a link's end (no link to it)`,
    },
    {
      name: "ring_lost_after_sigstop",
      runtime,
      value: failures?.stop.dropMs ?? NaN,
      unit: "ms",
      baseline: SILENCE_INTERVALS * HEARTBEAT_MS,
      baselineName: `3 heartbeat intervals`,
      note: failures === undefined
        ? `not measured: ${failureError}`
        : "frozen, sockets open: SIGSTOP to peer-lost",
    },
  );
  return rows;
}

if (import.meta.main) report(await discoveryRows());
