/**
 * Fault campaigns per second: how many scenarios (`runScenario` of the testing toolkit,
 * `sim/scenario.ts`) a user can run per wall second on 5-, 20- and 100-node clusters, each node
 * hosting the user's own workers, with faults drawn by `faultSchedule` and user traffic.
 *
 * The user's side, written here as a user would: a key-value worker (`kv<i>`) and a client
 * worker (`app<i>`) collecting the answers on every node; a steady load (each node's client asks
 * one key-value worker every {@link LOAD_INTERVAL_MS}, alternating set and get) plus requests
 * drawn by `faultSchedule({ traffic })`; a final check that every value read was written.
 * Scenarios come from `fc.sample(faultSchedule(…), { seed, numRuns })` with a fixed seed, so
 * every runtime runs the very same scenarios (the note's `trace` fingerprint of their trace
 * hashes shows it).
 *
 * Baseline, measured in the same run: the same scenarios with no faults and no traffic (warm-up,
 * the same duration of a quiet cluster heartbeating, settle), so the ratio is the price of the
 * faults, the traffic and its message history.
 *
 * Run: `deno task bench -- --only scenario`, or `deno run -A bench/scenario_bench.ts [--json]`,
 * `bun run bench/scenario_bench.ts [--json]`.
 *
 * @module
 */
import fc from "fast-check";
import type { MapMessage } from "../src/message.ts";
import { WorkerBase } from "../src/worker.ts";
import {
  defineScenario,
  faultSchedule,
  runScenario,
  type Scenario,
  type SimCluster,
  type TrafficItem,
} from "../sim/mod.ts";
import { type BenchRow, progress, report, runtimeName } from "./_harness.ts";

/** fast-check's seed for the schedules: the same scenarios on every runtime and every run. */
const SCHEDULE_SEED = 7;
/**
 * Virtual time of faults and traffic per scenario; then the settle (at most `SETTLE_MS` to
 * converge, then 1 s quiet). With a warm-up of some 20 virtual ms (the simulated mesh forms that
 * fast), a scenario is about 4 to 6 virtual seconds.
 */
const DURATION_MS = 3000;
const SETTLE_MS = 10_000;
/**
 * Scenarios per cluster size, chosen to bound the run: a 100-node scenario costs about 1 s of
 * wall time here on Deno and on Bun (a 5-node one 2 to 6 ms), so the 100-node campaign
 * and its baseline, each run {@link REPEAT} times, take 15 to 25 s together, and the whole file
 * 20 to 30 s.
 */
const PLAN: ReadonlyArray<{ readonly nodes: number; readonly scenarios: number }> = [
  { nodes: 5, scenarios: 40 },
  { nodes: 20, scenarios: 16 },
  { nodes: 100, scenarios: 5 },
];
/** Runs of each campaign and baseline, alternating; the fastest counts (shared, noisy machine). */
const REPEAT = 2;
/** Each node's client sends one request this often during the scenario's duration. */
const LOAD_INTERVAL_MS = 250;
/** Keys the requests draw from: few, so gets mostly find something. */
const KEYS = 16;

/** One request of the user's traffic. */
interface Request {
  readonly command: "set" | "get";
  readonly key: number;
  /** Which node's key-value worker (folded onto the cluster size). */
  readonly to: number;
}

/** The user's key-value store: a map, answering every request to its source. */
class KvWorker extends WorkerBase {
  readonly #values = new Map<string, string>();

  protected override onMessage(message: MapMessage): void {
    const { command, key = "", value = "" } = message.message;
    if (message.source === "" || (command !== "set" && command !== "get")) return;
    if (command === "set") this.#values.set(key, value);
    this.send({
      destination: message.source,
      source: this.guid,
      message: { command: `${command}Reply`, key, value: this.#values.get(key) ?? "" },
    });
  }
}

/** The user's client: keeps the values its gets returned. */
class AppWorker extends WorkerBase {
  readonly #read: string[];

  constructor(guid: string, read: string[]) {
    super(guid);
    this.#read = read;
  }

  protected override onMessage(message: MapMessage): void {
    if (message.message.command === "getReply") this.#read.push(message.message.value);
  }
}

/** What one run's workers and traffic share: values written, values read. */
interface RunState {
  readonly written: Set<string>;
  readonly read: string[];
}

const states = new WeakMap<SimCluster, RunState>();

function stateOf(cluster: SimCluster): RunState {
  let state = states.get(cluster);
  if (state === undefined) {
    state = { written: new Set(), read: [] };
    states.set(cluster, state);
  }
  return state;
}

/** Wall time when the running scenario's warm-up ended (the bench's stopwatch, not the user's). */
let warmedUpAtMs = 0;

/**
 * The user's definition: kv and app workers on every node, requests sent, reads checked.
 * Exported with its module, so a violation a campaign finds replays with
 * `deno task sim -- --replay FILE`.
 *
 * @example
 * ```ts
 * import { runScenario } from "../sim/mod.ts";
 * import { campaignScenarios, keyValueCampaign } from "./scenario_bench.ts";
 * const [scenario] = campaignScenarios(5, 1);
 * const result = runScenario(keyValueCampaign, scenario);
 * if (result.violations.length > 0 || result.sent === 0) throw new Error("example failed");
 * ```
 */
export const keyValueCampaign = defineScenario({
  name: "bench key-value",
  module: import.meta.url,
  cluster: {
    setup: ({ node, index, cluster }) => {
      node.attachWorker(new KvWorker(`kv${index}`));
      node.attachWorker(new AppWorker(`app${index}`, stateOf(cluster).read));
    },
  },
  prepare: () => void (warmedUpAtMs = performance.now()),
  traffic: (cluster, item: TrafficItem<Request>) => {
    const { command, key, to } = item.value;
    const value = `v${item.from}.${item.atMs}`;
    // Written once sent: a value a crash swallowed may never be read, never the other way.
    if (command === "set") stateOf(cluster).written.add(value);
    cluster.send(item.from, {
      destination: `kv${to % cluster.size}`,
      source: `app${item.from}`,
      message: { command, key: `k${key}`, value },
    });
  },
  check: (cluster) => {
    const { written, read } = stateOf(cluster);
    return read.filter((value) => value !== "" && !written.has(value))
      .map((value) => `read ${value}, never written`);
  },
});

/** The steady load: each node asks key-value worker `i + round` (set, get, set, …). */
function steadyLoad(nodes: number): TrafficItem<Request>[] {
  const items: TrafficItem<Request>[] = [];
  for (let atMs = LOAD_INTERVAL_MS, round = 1; atMs <= DURATION_MS; atMs += LOAD_INTERVAL_MS) {
    for (let from = 0; from < nodes; from++, round++) {
      const command = round % 2 === 1 ? "set" : "get";
      items.push({ atMs, from, value: { command, key: round % KEYS, to: from + round } });
    }
  }
  return items;
}

/**
 * The campaign's scenarios: faults and requests drawn by `faultSchedule` (fast-check seed
 * {@link SCHEDULE_SEED}, so always the same), plus the steady load.
 *
 * @example
 * ```ts
 * import { campaignScenarios } from "./scenario_bench.ts";
 * const [a] = campaignScenarios(20, 1);
 * const [b] = campaignScenarios(20, 1);
 * if (a.nodes !== 20 || JSON.stringify(a) !== JSON.stringify(b)) throw new Error("example failed");
 * ```
 */
export function campaignScenarios(nodes: number, count: number): Scenario<TrafficItem<Request>>[] {
  const request = fc.record({
    command: fc.constantFrom("set" as const, "get" as const),
    key: fc.integer({ min: 0, max: KEYS - 1 }),
    to: fc.nat({ max: nodes - 1 }),
  });
  const schedule = faultSchedule({
    nodes,
    durationMs: DURATION_MS,
    settleMs: SETTLE_MS,
    traffic: request,
  });
  return fc.sample(schedule, { seed: SCHEDULE_SEED, numRuns: count }).map((scenario) => ({
    ...scenario,
    traffic: [...scenario.traffic, ...steadyLoad(nodes)],
  }));
}

interface Campaign {
  readonly runs: number;
  readonly wallMs: number;
  /** Wall time of the warm-ups: building each cluster and running it until converged. */
  readonly warmupWallMs: number;
  readonly virtualMs: number;
  readonly events: number;
  readonly sent: number;
  readonly delivered: number;
  readonly reported: number;
  readonly violations: number;
  /** The first violation seen, for the note. */
  readonly firstViolation?: string;
  /** FNV-1a of the runs' trace hashes: equal on every runtime when the runs are equal. */
  readonly fingerprint: string;
}

/** Runs the scenarios one after the other; the figures are their sums. */
function runCampaign(scenarios: readonly Scenario<TrafficItem<Request>>[]): Campaign {
  let virtualMs = 0;
  let events = 0;
  let sent = 0;
  let delivered = 0;
  let reported = 0;
  let violations = 0;
  let firstViolation: string | undefined;
  let fingerprint = 0x811c9dc5;
  let warmupWallMs = 0;
  const inspect = (cluster: SimCluster) => void (virtualMs += cluster.now);
  const startMs = performance.now();
  for (const scenario of scenarios) {
    warmedUpAtMs = NaN; // A run that never reaches `prepare` has no warm-up time to add.
    const scenarioStartMs = performance.now();
    const result = runScenario(keyValueCampaign, scenario, { inspect });
    warmupWallMs += warmedUpAtMs - scenarioStartMs;
    events += result.events;
    sent += result.sent;
    delivered += result.delivered;
    reported += result.reported;
    violations += result.violations.length;
    firstViolation ??= result.violations[0];
    for (let i = 0; i < result.traceHash.length; i++) {
      fingerprint = Math.imul(fingerprint ^ result.traceHash.charCodeAt(i), 0x01000193) >>> 0;
    }
  }
  const wallMs = performance.now() - startMs;
  return {
    runs: scenarios.length,
    wallMs,
    warmupWallMs,
    virtualMs,
    events,
    sent,
    delivered,
    reported,
    violations,
    firstViolation,
    fingerprint: fingerprint.toString(16).padStart(8, "0"),
  };
}

/** The faster of two runs of the same scenarios, which must have done the same work. */
function faster(a: Campaign, b: Campaign): Campaign {
  if (a.fingerprint !== b.fingerprint) {
    throw new Error(
      `Cannot compare runs: trace fingerprint ${a.fingerprint}, then ${b.fingerprint}`,
    );
  }
  return b.wallMs < a.wallMs ? b : a;
}

const thousands = (value: number) => Math.round(value).toLocaleString("en-US");

/** The rows of one cluster size: the campaign beside its quiet baseline. */
function sizeRows(nodes: number, count: number, runtime: string): BenchRow[] {
  const scenarios = campaignScenarios(nodes, count);
  const quietScenarios = scenarios.map((s) => ({ ...s, faults: [], traffic: [] }));
  progress(`scenario: ${count} scenarios on ${nodes} nodes, ${REPEAT} times, then quiet`);
  const fulls: Campaign[] = [];
  const quiets: Campaign[] = [];
  // No forced GC between these runs: on Deno it is a memory-reducing collection after which the
  // next half second of simulation runs 2 to 4 times slower (smaller young generation, more
  // collections), which would bill it to whichever run came next. Alternating runs share out
  // the garbage each leaves instead.
  for (let i = 0; i < REPEAT; i++) {
    fulls.push(runCampaign(scenarios));
    quiets.push(runCampaign(quietScenarios));
  }
  const full = fulls.reduce(faster);
  const quiet = quiets.reduce(faster);
  // A quiet cluster that breaks a check measures a broken build, not the toolkit's speed. (A
  // violation of the campaign is a finding of its faults: it is counted in the note.)
  if (quiet.violations > 0 || quiet.sent > 0) {
    throw new Error(
      `Cannot measure ${nodes}-node scenarios: the quiet baseline sent ${quiet.sent} messages ` +
        `and broke ${quiet.violations} check(s), first: ${quiet.firstViolation}`,
    );
  }
  const name = `scenario_${nodes}_nodes`;
  const quietName = `${name}_quiet`;
  const perSecond = (value: number, run: Campaign) => value / (run.wallMs / 1000);
  const faults = scenarios.reduce((sum, s) => sum + s.faults.length, 0);
  const items = scenarios.reduce((sum, s) => sum + s.traffic.length, 0);
  const violations = full.violations === 0
    ? "no violations"
    : `${full.violations} violation(s), first: ${full.firstViolation!.slice(0, 80)}`;
  return [
    {
      name: `${name}_runs`,
      runtime,
      value: full.runs,
      unit: "scenarios",
      note: `fc seed ${SCHEDULE_SEED}: ${faults} faults, ${thousands(items)} traffic items; ` +
        `${DURATION_MS} ms each + settle; ${violations}`,
    },
    {
      name: `${name}_wall`,
      runtime,
      value: full.wallMs,
      unit: "ms",
      baseline: quiet.wallMs,
      baselineName: quietName,
      note: `trace ${full.fingerprint} (quiet ${quiet.fingerprint}): equal on every runtime`,
    },
    {
      name,
      runtime,
      value: perSecond(full.runs, full),
      unit: "scenarios/s",
      baseline: perSecond(quiet.runs, quiet),
      baselineName: quietName,
      note: "baseline: the same scenarios without faults or traffic",
    },
    {
      name: `${name}_virtual`,
      runtime,
      value: perSecond(full.virtualMs / 1000, full),
      unit: "virtual s/s",
      baseline: perSecond(quiet.virtualMs / 1000, quiet),
      baselineName: quietName,
      note: `${(full.virtualMs / 1000).toFixed(1)} virtual s in all (quiet ${
        (quiet.virtualMs / 1000).toFixed(1)
      })`,
    },
    {
      name: `${name}_events`,
      runtime,
      value: perSecond(full.events, full),
      unit: "events/s",
      baseline: perSecond(quiet.events, quiet),
      baselineName: quietName,
      note: `${thousands(full.events / full.runs)} events per scenario (quiet ${
        thousands(quiet.events / quiet.runs)
      })`,
    },
    {
      name: `${name}_sent`,
      runtime,
      value: full.sent / full.runs,
      unit: "messages/scenario",
      note: `mean sent; delivered ${thousands(full.delivered / full.runs)}, reported ` +
        `undeliverable ${thousands(full.reported / full.runs)}`,
    },
    {
      name: `${name}_warmup`,
      runtime,
      value: (full.warmupWallMs / full.wallMs) * 100,
      unit: "% of wall",
      baseline: (quiet.warmupWallMs / quiet.wallMs) * 100,
      baselineName: quietName,
      note: `building each cluster and running it until converged: ${
        (full.warmupWallMs / full.runs).toFixed(1)
      } ms per scenario`,
    },
  ];
}

/** The rows of this file: every size of {@link PLAN}, campaign beside quiet baseline. */
export function scenarioRows(): BenchRow[] {
  const runtime = runtimeName();
  // Before anything is timed, the smallest campaign until it stops getting faster (at most 6
  // runs, a second or two): the code is compiled and the heap is grown again after the forced
  // GC `bench/mod.ts` runs between groups; the first row would pay for both otherwise.
  const warmup = campaignScenarios(PLAN[0].nodes, PLAN[0].scenarios);
  let previousMs = Infinity;
  for (let i = 0; i < 6; i++) {
    const { wallMs } = runCampaign(warmup);
    if (wallMs > previousMs * 0.9) break;
    previousMs = wallMs;
  }
  return PLAN.flatMap(({ nodes, scenarios }) => sizeRows(nodes, scenarios, runtime));
}

if (import.meta.main) report(scenarioRows());
