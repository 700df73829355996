/**
 * Scenarios: your cluster, a schedule of timed faults and traffic, and the checks it must pass,
 * as plain JSON that fast-check generates and shrinks and that replays exactly from a file.
 *
 * - {@link defineScenario}: what a run builds (cluster options, your setup), how your traffic
 *   items act, and your final checks.
 * - {@link faultSchedule}: a fast-check arbitrary of {@link Scenario}s: cluster size, seed,
 *   latency, faults (weights and bounds yours to set) and, if you give one, your traffic.
 * - {@link runScenario}: one run; {@link checkScenarios}: many, shrinking a failure to a short
 *   schedule and throwing an error that prints the seed, the schedule and how to replay it
 *   (`replayScenario(definition, schedule)` or `deno task sim -- --replay FILE`).
 *
 * @example
 * ```ts
 * import fc from "fast-check";
 * import { checkScenarios, defineScenario, faultSchedule, type TrafficItem } from "./scenario.ts";
 * import { EchoWorker } from "../src/worker.ts";
 *
 * const echo = defineScenario({
 *   name: "echo answers",
 *   module: import.meta.url, // lets a replay file find this definition
 *   cluster: { setup: ({ node, index }) => node.attachWorker(new EchoWorker(`echo${index}`)) },
 *   traffic: (cluster, item: TrafficItem<number>) => {
 *     cluster.send(item.from, { destination: `echo${item.value % cluster.size}`, source: "x" });
 *   },
 * });
 * // Throws with the shrunk schedule and the replay command if any run breaks an invariant.
 * const report = checkScenarios(
 *   echo,
 *   faultSchedule({ nodes: { min: 2, max: 4 }, traffic: fc.nat(), durationMs: 3000 }),
 *   { numRuns: 3, seed: 1 },
 * );
 * if (report.runs !== 3) throw new Error("example failed");
 * ```
 *
 * @module
 */
import fc from "fast-check";
import { type RunStep, SimCheckError, SimCluster, type SimClusterOptions } from "./cluster.ts";
import { runAsync } from "./storage.ts";

/**
 * Whether `value` is a fast-check arbitrary: by its methods, not `instanceof`, so that an
 * arbitrary from another copy of fast-check (a user's own version) is taken too.
 */
function isArbitrary(value: unknown): value is fc.Arbitrary<unknown> {
  const candidate = value as {
    generate?: unknown;
    shrink?: unknown;
    canShrinkWithoutContext?: unknown;
  };
  return value !== null && typeof value === "object" && typeof candidate.generate === "function" &&
    typeof candidate.shrink === "function" &&
    typeof candidate.canShrinkWithoutContext === "function";
}

/** One timed fault. Node numbers are indexes into the cluster. */
export type Fault =
  | {
    readonly atMs: number;
    readonly kind: "partition";
    readonly a: number[];
    readonly b: number[];
  }
  | {
    readonly atMs: number;
    readonly kind: "oneWay";
    readonly from: number[];
    readonly to: number[];
  }
  | { readonly atMs: number; readonly kind: "heal" }
  | {
    readonly atMs: number;
    readonly kind: "cut";
    readonly a: number;
    readonly b: number;
    readonly forMs: number;
  }
  | {
    readonly atMs: number;
    readonly kind: "hold";
    readonly a: number;
    readonly b: number;
    readonly forMs: number;
  }
  | {
    readonly atMs: number;
    readonly kind: "isolate";
    readonly node: number;
    readonly forMs: number;
  }
  | { readonly atMs: number; readonly kind: "crash"; readonly node: number }
  | { readonly atMs: number; readonly kind: "restart"; readonly node: number }
  | { readonly atMs: number; readonly kind: "pause"; readonly node: number; readonly forMs: number }
  | {
    readonly atMs: number;
    readonly kind: "loss";
    readonly probability: number;
    readonly forMs: number;
  }
  | {
    readonly atMs: number;
    readonly kind: "duplicate";
    readonly probability: number;
    readonly forMs: number;
  }
  | {
    readonly atMs: number;
    readonly kind: "skew";
    readonly node: number;
    readonly offsetMs: number;
    readonly rate: number;
  };

/** The kinds of fault. */
export type FaultKind = Fault["kind"];

/**
 * Every fault kind, in a fixed order.
 *
 * @example
 * ```ts
 * import { FAULT_KINDS, faultSchedule } from "./scenario.ts";
 * // Everything but clock skew, crashes three times as often as the rest:
 * const weights = Object.fromEntries(FAULT_KINDS.map((k) => [k, k === "crash" ? 3 : 1]));
 * faultSchedule({ weights: { ...weights, skew: 0 } });
 * ```
 */
export const FAULT_KINDS: readonly FaultKind[] = [
  "partition",
  "oneWay",
  "heal",
  "cut",
  "hold",
  "isolate",
  "crash",
  "restart",
  "pause",
  "loss",
  "duplicate",
  "skew",
];

/** A traffic item of yours as {@link faultSchedule} makes it from your payload arbitrary. */
export interface TrafficItem<T> {
  readonly atMs: number;
  /** Index of the node it starts from. */
  readonly from: number;
  readonly value: T;
}

/** A whole run: everything it depends on, as JSON. */
export interface Scenario<I extends { readonly atMs: number } = TrafficItem<unknown>> {
  readonly version: 1;
  readonly seed: number;
  readonly nodes: number;
  /** How long faults and traffic run (after the warm-up). */
  readonly durationMs: number;
  /** Then every fault ends and the cluster has this long to converge. */
  readonly settleMs: number;
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
  readonly faults: readonly Fault[];
  readonly traffic: readonly I[];
}

/** What {@link defineScenario} takes. */
export interface ScenarioDefinition<I extends { readonly atMs: number } = TrafficItem<unknown>> {
  /** A name, unique in its module: replay files find the definition by it. */
  readonly name: string;
  /** The module that exports the definition (`import.meta.url`), for replay files. */
  readonly module?: string;
  /** The cluster options (nodes, seed and latency come from the scenario). */
  readonly cluster?:
    | Omit<SimClusterOptions, "nodes" | "seed">
    | ((scenario: Scenario<I>) => Omit<SimClusterOptions, "nodes" | "seed">);
  /**
   * Before the schedule starts, run until the cluster converged (at most this many virtual ms;
   * a cluster that does not is a violation). `0` starts the schedule at once, cold. Default
   * 30,000.
   */
  readonly warmupMs?: number;
  /** After the warm-up, before the schedule: schedule checks of your own, add invariants… */
  readonly prepare?: (cluster: SimCluster, scenario: Scenario<I>) => void;
  /** Acts out one traffic item at its time. */
  readonly traffic?: (cluster: SimCluster, item: I, scenario: Scenario<I>) => void;
  /** After the settle: return (or throw) what is wrong. */
  readonly check?: (
    cluster: SimCluster,
    scenario: Scenario<I>,
  ) => readonly string[] | string | void;
  /** The settle's quiet time after convergence. Default 1,000. */
  readonly quietMs?: number;
}

/**
 * Checks and freezes a scenario definition.
 *
 * @example
 * ```ts
 * import { defineScenario } from "./scenario.ts";
 * const quiet = defineScenario({ name: "quiet", module: import.meta.url });
 * if (quiet.name !== "quiet") throw new Error("example failed");
 * let error = "";
 * try {
 *   defineScenario({ name: "" });
 * } catch (thrown) {
 *   error = String(thrown);
 * }
 * if (!/Cannot define scenario: name/.test(error)) throw new Error(`unexpected: ${error}`);
 * ```
 */
export function defineScenario<I extends { readonly atMs: number } = TrafficItem<unknown>>(
  definition: ScenarioDefinition<I>,
): ScenarioDefinition<I> {
  const fail = (what: string): never => {
    throw new TypeError(`Cannot define scenario: ${what}`);
  };
  if (definition === null || typeof definition !== "object") fail("expected an object");
  if (typeof definition.name !== "string" || definition.name === "") {
    fail("name must be a non-empty string");
  }
  for (const key of ["prepare", "traffic", "check"] as const) {
    if (definition[key] !== undefined && typeof definition[key] !== "function") {
      fail(`${key} must be a function`);
    }
  }
  const cluster = definition.cluster;
  if (cluster !== undefined && typeof cluster !== "function" && typeof cluster !== "object") {
    fail("cluster must be options or a function returning them");
  }
  if (definition.warmupMs !== undefined && !(definition.warmupMs >= 0)) {
    fail(`warmupMs ${definition.warmupMs} must be >= 0`);
  }
  if (definition.module !== undefined && typeof definition.module !== "string") {
    fail("module must be a string (import.meta.url)");
  }
  return Object.freeze({ ...definition, [DEFINITION]: true });
}

/** Marks what {@link defineScenario} made (a registered symbol: two copies of this module agree). */
const DEFINITION = Symbol.for("automp.scenario-definition");

/** What one run found. */
export interface ScenarioResult {
  readonly violations: readonly string[];
  readonly traceHash: string;
  readonly events: number;
  /** Messages sent, delivered to a worker, reported undeliverable (from the history). */
  readonly sent: number;
  readonly delivered: number;
  readonly reported: number;
  /** Messages neither delivered nor reported, excused by a crash. */
  readonly exempt: number;
  /** Virtual time when the settled cluster converged, or undefined. */
  readonly convergedAtMs: number | undefined;
}

/** Options of {@link runScenario}. */
export interface RunScenarioOptions {
  /** Called after the run with the cluster, to look closer. */
  readonly inspect?: (cluster: SimCluster) => void;
  /** Keep this many readable trace lines (see `Simulation.trace`). */
  readonly traceLimit?: number;
}

const MAX_SCENARIO_NODES = 1000;

/**
 * Throws a `TypeError` naming what is wrong with a scenario (a hand-edited replay file, a
 * schedule out of range). `nodeKeys` are the fields of faults and traffic items that name nodes.
 *
 * @example
 * ```ts
 * import { checkScenario } from "./scenario.ts";
 * const base = { version: 1, seed: 1, nodes: 3, durationMs: 100, settleMs: 100,
 *   latencyMsMin: 1, latencyMsMax: 2, faults: [], traffic: [] } as const;
 * checkScenario(base);
 * let error = "";
 * try {
 *   checkScenario({ ...base, faults: [{ atMs: 5, kind: "crash", node: 3 }] });
 * } catch (thrown) {
 *   error = String(thrown);
 * }
 * if (!/crash \(faults\[0\]\) names node 3, outside 0..2/.test(error)) throw new Error(error);
 * ```
 */
export function checkScenario(
  scenario: Scenario<{ readonly atMs: number }>,
  nodeKeys: readonly string[] = ["node", "from", "to", "a", "b"],
): void {
  const fail = (what: string): never => {
    throw new TypeError(`Cannot run scenario: ${what}`);
  };
  if (scenario === null || typeof scenario !== "object" || scenario.version !== 1) {
    fail("not a version 1 scenario");
  }
  const { nodes } = scenario;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_SCENARIO_NODES) {
    fail(`nodes ${nodes} not in 1..${MAX_SCENARIO_NODES}`);
  }
  if (!Number.isSafeInteger(scenario.seed)) fail(`seed ${scenario.seed} is not an integer`);
  for (const key of ["durationMs", "settleMs", "latencyMsMin", "latencyMsMax"] as const) {
    if (!(scenario[key] >= 0 && scenario[key] <= 3_600_000)) {
      fail(`${key} ${scenario[key]} not in 0..3600000`);
    }
  }
  if (scenario.latencyMsMax < scenario.latencyMsMin) {
    fail(`latencyMsMax ${scenario.latencyMsMax} < latencyMsMin ${scenario.latencyMsMin}`);
  }
  if (!Array.isArray(scenario.faults)) fail("faults must be an array");
  if (!Array.isArray(scenario.traffic)) fail("traffic must be an array");
  const kinds = new Set<string>(FAULT_KINDS);
  const nodeOk = (n: unknown) => Number.isInteger(n) && (n as number) >= 0 && (n as number) < nodes;
  const check = (item: Record<string, unknown>, where: string) => {
    if (item === null || typeof item !== "object") fail(`${where} is not an object`);
    const atMs = item.atMs as number;
    if (!(atMs >= 0 && atMs <= scenario.durationMs)) {
      fail(`${where} at ${atMs} ms is outside 0..${scenario.durationMs}`);
    }
    for (const key of nodeKeys) {
      const value = item[key];
      if (value === undefined) continue;
      const list = Array.isArray(value) ? value : [value];
      const bad = list.find((n) => !nodeOk(n));
      if (bad !== undefined || (Array.isArray(value) && value.length === 0 && key !== "b")) {
        fail(`${where} names node ${String(bad)}, outside 0..${nodes - 1}`);
      }
    }
    for (const key of ["forMs", "probability", "offsetMs", "rate"]) {
      const value = item[key];
      if (value !== undefined && (typeof value !== "number" || !Number.isFinite(value))) {
        fail(`${where} has ${key} ${String(value)}, not a finite number`);
      }
    }
  };
  for (const [i, fault] of scenario.faults.entries()) {
    if (!kinds.has((fault as { kind?: string })?.kind ?? "")) {
      fail(`faults[${i}] has unknown kind ${JSON.stringify((fault as { kind?: string })?.kind)}`);
    }
    const f = fault as unknown as Record<string, unknown>;
    check(f, `${fault.kind} (faults[${i}])`);
    if ("probability" in f && !((f.probability as number) >= 0 && (f.probability as number) <= 1)) {
      fail(`${fault.kind} (faults[${i}]) has probability ${f.probability}, not in [0, 1]`);
    }
    if ("forMs" in f && !((f.forMs as number) > 0)) {
      fail(`${fault.kind} (faults[${i}]) has forMs ${f.forMs}, not > 0`);
    }
  }
  for (const [i, item] of scenario.traffic.entries()) {
    check(item as unknown as Record<string, unknown>, `traffic[${i}]`);
  }
}

/**
 * Applies one fault to a cluster at the current virtual time (what {@link runScenario} does at
 * each fault's `atMs`); faults with `forMs` undo themselves after it.
 *
 * @example
 * ```ts
 * import { applyFault } from "./scenario.ts";
 * import { SimCluster } from "./cluster.ts";
 * const cluster = new SimCluster({ nodes: 3, seed: 1 });
 * cluster.settle();
 * applyFault(cluster, { atMs: 0, kind: "pause", node: 2, forMs: 500 });
 * if (cluster.host(2).state !== "paused") throw new Error("not paused");
 * cluster.run(501);
 * if (cluster.host(2).state !== "up") throw new Error("not resumed");
 * ```
 */
export function applyFault(cluster: SimCluster, fault: Fault): void {
  const sim = cluster.sim;
  switch (fault.kind) {
    case "partition":
      if (fault.a.length > 0 && fault.b.length > 0) cluster.partition(fault.a, fault.b);
      break;
    case "oneWay":
      cluster.partitionOneWay(fault.from, fault.to);
      break;
    case "heal":
      cluster.heal();
      break;
    case "cut":
      cluster.partition(fault.a, fault.b);
      sim.schedule(fault.forMs, () => cluster.heal(fault.a, fault.b));
      break;
    case "hold":
      cluster.hold(fault.a, fault.b);
      sim.schedule(fault.forMs, () => cluster.release(fault.a, fault.b));
      break;
    case "isolate":
      if (cluster.size > 1) {
        cluster.isolate(fault.node);
        sim.schedule(fault.forMs, () => cluster.heal(fault.node));
      }
      break;
    case "crash":
      cluster.crash(fault.node);
      break;
    case "restart":
      cluster.restart(fault.node);
      break;
    case "pause":
      if (cluster.host(fault.node).state === "up") {
        cluster.pause(fault.node);
        sim.schedule(fault.forMs, () => cluster.resume(fault.node));
      }
      break;
    case "loss":
      cluster.loss(fault.probability, fault.forMs);
      break;
    case "duplicate":
      cluster.duplicate(fault.probability, fault.forMs);
      break;
    case "skew":
      cluster.skew(fault.node, { offsetMs: fault.offsetMs, rate: fault.rate });
      break;
  }
}

/**
 * Runs one scenario: builds the cluster, warms it up, plays the faults and traffic at their
 * times, settles (every fault ended) and checks the history, your invariants and your `check`.
 * Returns what it found; throws only for a malformed scenario or definition.
 *
 * @example
 * ```ts
 * import { defineScenario, runScenario } from "./scenario.ts";
 * import { EchoWorker } from "../src/worker.ts";
 * const echo = defineScenario({
 *   name: "echo",
 *   cluster: { setup: ({ node, index }) => node.attachWorker(new EchoWorker(`e${index}`)) },
 *   traffic: (cluster, item: { atMs: number; from: number }) => {
 *     cluster.send(item.from, { destination: "e0", message: { hi: "1" } });
 *   },
 * });
 * const result = runScenario(echo, {
 *   version: 1, seed: 9, nodes: 3, durationMs: 2000, settleMs: 10_000,
 *   latencyMsMin: 1, latencyMsMax: 5,
 *   faults: [{ atMs: 100, kind: "crash", node: 2 }, { atMs: 900, kind: "restart", node: 2 }],
 *   traffic: [{ atMs: 500, from: 1 }],
 * });
 * if (result.violations.length !== 0) throw new Error(String(result.violations));
 * if (result.sent !== 1) throw new Error("example failed");
 * ```
 */
export function runScenario<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  scenario: Scenario<I>,
  options: RunScenarioOptions = {},
): ScenarioResult {
  const play = new ScenarioPlay(definition, scenario, options);
  const steps = play.steps();
  try {
    let step = steps.next();
    while (!step.done) {
      const { ms, until } = step.value;
      step = steps.next(until ? play.cluster.runUntil(until, ms) : (play.cluster.run(ms), true));
    }
  } catch (error) {
    play.fail(error);
  }
  return play.result();
}

/**
 * {@link runScenario} for workers that await real Promises (say, their storage on a
 * `SimDisk`): the simulation runs with `runAsync`, so each goes on at the right virtual instant.
 * For workers that await nothing it gives the same result, trace hash included.
 *
 * @example
 * ```ts
 * import { defineScenario, runScenario, runScenarioAsync } from "./scenario.ts";
 * const quiet = defineScenario({ name: "quiet" });
 * const scenario = { version: 1, seed: 3, nodes: 3, durationMs: 500, settleMs: 5000,
 *   latencyMsMin: 1, latencyMsMax: 2, faults: [{ atMs: 50, kind: "crash", node: 1 }],
 *   traffic: [] } as const;
 * const result = await runScenarioAsync(quiet, scenario);
 * if (result.traceHash !== runScenario(quiet, scenario).traceHash) throw new Error("differs");
 * ```
 */
export async function runScenarioAsync<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  scenario: Scenario<I>,
  options: RunScenarioOptions = {},
): Promise<ScenarioResult> {
  const play = new ScenarioPlay(definition, scenario, options);
  const steps = play.steps();
  try {
    let step = steps.next();
    while (!step.done) {
      const { ms, until } = step.value;
      const held = await runAsync(play.cluster.sim, ms, until ? { until } : {});
      step = steps.next(until ? held : true);
    }
  } catch (error) {
    play.fail(error);
  }
  return play.result();
}

/** One run of a scenario: the steps both drivers carry out, and the result. */
class ScenarioPlay<I extends { readonly atMs: number }> {
  readonly cluster: SimCluster;
  readonly #violations: string[] = [];
  #convergedAtMs: number | undefined;

  constructor(
    readonly definition: ScenarioDefinition<I>,
    readonly scenario: Scenario<I>,
    readonly options: RunScenarioOptions,
  ) {
    checkScenario(scenario);
    const base = typeof definition.cluster === "function"
      ? definition.cluster(scenario)
      : definition.cluster ?? {};
    this.cluster = new SimCluster({
      ...base,
      nodes: scenario.nodes,
      seed: scenario.seed,
      latencyMsMin: scenario.latencyMsMin,
      latencyMsMax: scenario.latencyMsMax,
      ...(options.traceLimit ? { logLevel: "debug", logLimit: options.traceLimit } : {}),
      traceLimit: options.traceLimit ?? base.traceLimit ?? 0,
    });
  }

  /** Warm-up, schedule, faults ended, convergence, quiet time, checks. */
  *steps(): Generator<RunStep, void, boolean> {
    const { definition, scenario, cluster } = this;
    const violations = this.#violations;
    const warmupMs = definition.warmupMs ?? 30_000;
    if (warmupMs > 0 && !(yield { ms: warmupMs, until: () => cluster.converged() })) {
      violations.push(`warm-up: the cluster did not converge within ${warmupMs} ms`);
    }
    definition.prepare?.(cluster, scenario);
    for (const fault of scenario.faults) {
      cluster.sim.schedule(fault.atMs, () => applyFault(cluster, fault));
    }
    const act = definition.traffic;
    if (act !== undefined) {
      for (const item of scenario.traffic) {
        cluster.sim.schedule(item.atMs, () => act(cluster, item, scenario));
      }
    }
    yield { ms: scenario.durationMs };
    cluster.endFaults();
    const converged = yield { ms: scenario.settleMs, until: () => cluster.converged() };
    if (converged) this.#convergedAtMs = cluster.now;
    yield { ms: definition.quietMs ?? 1000 };
    if (!converged) {
      violations.push(
        `converged: not within ${scenario.settleMs} ms (${cluster.whyNotConverged()})`,
      );
    }
    violations.push(...cluster.violations());
    if (definition.check !== undefined) {
      const found = definition.check(cluster, scenario);
      if (typeof found === "string" && found !== "") violations.push(`check: ${found}`);
      else if (Array.isArray(found)) {
        for (const line of found) violations.push(`check: ${line}`);
      }
    }
  }

  fail(error: unknown): void {
    if (error instanceof SimCheckError) this.#violations.push(...error.violations);
    else {
      this.#violations.push(
        `uncaught exception: ${error instanceof Error ? error.stack ?? error.message : error}`,
      );
    }
  }

  result(): ScenarioResult {
    const { cluster } = this;
    this.options.inspect?.(cluster);
    const records = cluster.history.records;
    let delivered = 0;
    let reported = 0;
    let exempt = 0;
    for (const record of records) {
      if (record.deliveries.length > 0) delivered++;
      else if (record.reports.length > 0) reported++;
      else if (
        cluster.history.crashedSince(record.node, record.sentAtMs) ||
        cluster.history.crashedSince(record.hostNode, record.sentAtMs)
      ) exempt++;
    }
    return {
      violations: this.#violations.slice(0, 100),
      traceHash: cluster.sim.traceHash,
      events: cluster.sim.events,
      sent: records.length,
      delivered,
      reported,
      exempt,
      convergedAtMs: this.#convergedAtMs,
    };
  }
}

/** Options of {@link faultSchedule}. */
export interface FaultScheduleOptions<T = never, I extends { readonly atMs: number } = never> {
  /** Cluster size: a number, or a range. Default 2..20. */
  readonly nodes?: number | { readonly min: number; readonly max: number };
  /** How long faults and traffic run, in virtual ms. Default 6,000. */
  readonly durationMs?: number;
  /** How long the settle may take to converge. Default 10,000. */
  readonly settleMs?: number;
  /** Most faults in a schedule. Default 8. */
  readonly maxFaults?: number;
  /** Relative weight of each fault kind (default 1 each); 0 leaves a kind out. */
  readonly weights?: Partial<Readonly<Record<FaultKind, number>>>;
  /** Longest fault (cut, hold, isolate, pause, loss, duplicate). Default 3,000 ms. */
  readonly forMsMax?: number;
  /** Highest loss probability of a loss burst. Default 0.6. */
  readonly lossMax?: number;
  /** Highest duplication probability of a duplication burst. Default 0.3. */
  readonly duplicateMax?: number;
  /** Largest clock offset of a skew, either way. Default 5,000 ms. */
  readonly skewMsMax?: number;
  /** Highest one-way latency drawn. Default 30 ms. */
  readonly latencyMsMax?: number;
  /**
   * Your traffic: an arbitrary of payloads (each becomes a {@link TrafficItem} at a random time
   * from a random node), or a function of the largest cluster size and the duration returning
   * an arbitrary of whole items (with `atMs`). Fields named `node`, `from`, `to`, `a` and `b`
   * hold node numbers: they are folded onto the drawn cluster size (`n % nodes`).
   */
  readonly traffic?: fc.Arbitrary<T> | ((nodes: number, durationMs: number) => fc.Arbitrary<I>);
  /** Most traffic items. Default 12. */
  readonly maxTraffic?: number;
}

function intIn(value: number, min: number, max: number, name: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot build fault schedule: ${name} ${value} is not an integer in ${min}..${max}`,
    );
  }
  return value;
}

function numberIn(value: number, min: number, max: number, name: string): number {
  if (!(value >= min && value <= max)) {
    throw new RangeError(`Cannot build fault schedule: ${name} ${value} is not in ${min}..${max}`);
  }
  return value;
}

/**
 * A fast-check arbitrary of {@link Scenario}s. Shrinking drops faults and traffic, shortens
 * them and moves them earlier, so a failure ends as a short schedule. Compose it with your own
 * arbitraries (`fc.tuple(faultSchedule(…), myArb)`) or give your payloads as `traffic`.
 *
 * @example
 * ```ts
 * import fc from "fast-check";
 * import { faultSchedule } from "./scenario.ts";
 * const [s] = fc.sample(faultSchedule({ nodes: 5, weights: { crash: 0, restart: 0 } }), { seed: 1, numRuns: 1 });
 * if (s.nodes !== 5) throw new Error("example failed");
 * if (!(s.faults.every((f) => f.kind !== "crash"))) throw new Error("example failed");
 * ```
 */
export function faultSchedule<T = never, I extends { readonly atMs: number } = TrafficItem<T>>(
  options: FaultScheduleOptions<T, I> = {},
): fc.Arbitrary<Scenario<I>> {
  const range = options.nodes ?? { min: 2, max: 20 };
  const nodesMin = typeof range === "number" ? range : range.min;
  const nodesMax = typeof range === "number" ? range : range.max;
  intIn(nodesMin, 1, MAX_SCENARIO_NODES, "nodes (min)");
  intIn(nodesMax, nodesMin, MAX_SCENARIO_NODES, "nodes (max)");
  const durationMs = intIn(options.durationMs ?? 6000, 1, 3_600_000, "durationMs");
  const settleMs = intIn(options.settleMs ?? 10_000, 0, 3_600_000, "settleMs");
  const maxFaults = intIn(options.maxFaults ?? 8, 0, 1000, "maxFaults");
  const maxTraffic = intIn(options.maxTraffic ?? 12, 0, 100_000, "maxTraffic");
  const forMsMax = intIn(options.forMsMax ?? 3000, 1, 3_600_000, "forMsMax");
  const lossMax = numberIn(options.lossMax ?? 0.6, 0, 1, "lossMax");
  const duplicateMax = numberIn(options.duplicateMax ?? 0.3, 0, 1, "duplicateMax");
  const skewMsMax = intIn(options.skewMsMax ?? 5000, 0, 3_600_000, "skewMsMax");
  const latencyMsMax = intIn(options.latencyMsMax ?? 30, 1, 60_000, "latencyMsMax");
  const weights = options.weights ?? {};
  for (const [kind, weight] of Object.entries(weights)) {
    if (!FAULT_KINDS.includes(kind as FaultKind)) {
      throw new RangeError(`Cannot build fault schedule: weights names unknown fault "${kind}"`);
    }
    intIn(weight as number, 0, 1000, `weights.${kind}`);
  }
  const traffic = options.traffic;
  if (
    traffic !== undefined && typeof traffic !== "function" && !isArbitrary(traffic)
  ) {
    throw new TypeError(
      "Cannot build fault schedule: traffic must be a fast-check arbitrary or a function",
    );
  }
  // Node numbers are drawn below nodesMax and folded onto the drawn size afterwards (no
  // `chain`): fast-check then shrinks the cluster size like any other field.
  const node = fc.integer({ min: 0, max: nodesMax - 1 });
  const group = fc.uniqueArray(node, { minLength: 1, maxLength: Math.max(1, nodesMax - 1) });
  const atMs = fc.integer({ min: 0, max: durationMs });
  const forMs = fc.integer({ min: Math.min(50, forMsMax), max: forMsMax });
  const all: Record<FaultKind, fc.Arbitrary<Fault>> = {
    partition: fc.record({ atMs, kind: fc.constant("partition" as const), a: group, b: group }),
    oneWay: fc.record({ atMs, kind: fc.constant("oneWay" as const), from: group, to: group }),
    heal: fc.record({ atMs, kind: fc.constant("heal" as const) }),
    cut: fc.record({ atMs, kind: fc.constant("cut" as const), a: node, b: node, forMs }),
    hold: fc.record({ atMs, kind: fc.constant("hold" as const), a: node, b: node, forMs }),
    isolate: fc.record({ atMs, kind: fc.constant("isolate" as const), node, forMs }),
    crash: fc.record({ atMs, kind: fc.constant("crash" as const), node }),
    restart: fc.record({ atMs, kind: fc.constant("restart" as const), node }),
    pause: fc.record({ atMs, kind: fc.constant("pause" as const), node, forMs }),
    loss: fc.record({
      atMs,
      kind: fc.constant("loss" as const),
      probability: fc.double({ min: 0, max: lossMax, noNaN: true }),
      forMs,
    }),
    duplicate: fc.record({
      atMs,
      kind: fc.constant("duplicate" as const),
      probability: fc.double({ min: 0, max: duplicateMax, noNaN: true }),
      forMs,
    }),
    skew: fc.record({
      atMs,
      kind: fc.constant("skew" as const),
      node,
      offsetMs: fc.integer({ min: -skewMsMax, max: skewMsMax }),
      rate: fc.double({ min: 0.9, max: 1.1, noNaN: true }),
    }),
  };
  const weighted = FAULT_KINDS
    .map((kind) => ({ weight: weights[kind] ?? 1, arbitrary: all[kind] }))
    .filter((w) => w.weight > 0);
  const faults = weighted.length === 0 || maxFaults === 0
    ? fc.constant([] as Fault[])
    : fc.array(fc.oneof(...weighted), { maxLength: maxFaults });
  let items: fc.Arbitrary<I[]> = fc.constant([]);
  if (isArbitrary(traffic)) {
    items = fc.array(
      fc.record({ atMs, from: node, value: traffic }) as unknown as fc.Arbitrary<I>,
      { maxLength: maxTraffic },
    );
  } else if (typeof traffic === "function") {
    items = fc.array(traffic(nodesMax, durationMs), { maxLength: maxTraffic });
  }
  return fc.record({
    nodes: fc.integer({ min: nodesMin, max: nodesMax }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    latencyMsMax: fc.integer({ min: 1, max: latencyMsMax }),
    faults,
    traffic: items,
  }).map(({ nodes, seed, latencyMsMax, faults, traffic }) => ({
    version: 1 as const,
    seed,
    nodes,
    durationMs,
    settleMs,
    latencyMsMin: 1,
    latencyMsMax,
    faults: faults.map((fault) => foldNodes(fault, nodes)),
    traffic: traffic.map((item) => foldNodes(item, nodes)),
  }));
}

/** The fields of faults and traffic items that hold node numbers. */
const NODE_KEYS = ["node", "from", "to", "a", "b"] as const;

/** Maps every node number of an item onto `0..nodes-1` (lists keep distinct members). */
function foldNodes<T extends object>(item: T, nodes: number): T {
  const folded: Record<string, unknown> = { ...item } as Record<string, unknown>;
  for (const key of NODE_KEYS) {
    const value = folded[key];
    if (typeof value === "number") folded[key] = value % nodes;
    else if (Array.isArray(value)) folded[key] = [...new Set(value.map((n) => n % nodes))];
  }
  if (folded.kind === "partition" && Array.isArray(folded.a) && Array.isArray(folded.b)) {
    const a = folded.a as number[];
    folded.b = (folded.b as number[]).filter((n) => !a.includes(n));
  }
  return folded as T;
}

/** What a search found: a clean report, or the shrunk failure. */
export interface ScenarioReport<I extends { readonly atMs: number } = TrafficItem<unknown>> {
  readonly runs: number;
  readonly sent: number;
  readonly delivered: number;
  readonly reported: number;
  readonly failure?: {
    readonly scenario: Scenario<I>;
    readonly violations: readonly string[];
    /** fast-check's seed and path: `fc.assert(…, { seed, path })` replays the shrunk case. */
    readonly seed: number;
    readonly path: string;
    readonly shrinks: number;
    /** The replay file's content (see {@link replayFile}). */
    readonly replay: ReplayFile<I>;
  };
}

/** Options of {@link searchScenarios} and {@link checkScenarios}. */
export interface SearchOptions {
  /** How many scenarios. Default 100. */
  readonly numRuns?: number;
  /** fast-check's seed: the same seed generates the same scenarios. Default 1. */
  readonly seed?: number;
  /** Run each scenario twice and require the same trace hash. Default false. */
  readonly checkDeterminism?: boolean;
  /** Called after each run (shrinking runs included). */
  readonly onProgress?: (done: number, total: number) => void;
}

/** A replay file: the definition's module and name, and the scenario. */
export interface ReplayFile<I extends { readonly atMs: number } = TrafficItem<unknown>> {
  readonly automp: "scenario-replay";
  readonly version: 1;
  readonly name: string;
  readonly module: string | null;
  readonly scenario: Scenario<I>;
}

/**
 * The replay file of a scenario: save it as JSON and run `deno task sim -- --replay FILE`.
 *
 * @example
 * ```ts
 * import { defineScenario, replayFile } from "./scenario.ts";
 * const quiet = defineScenario({ name: "quiet", module: "file:///app/quiet.ts" });
 * const scenario = { version: 1, seed: 1, nodes: 2, durationMs: 10, settleMs: 10,
 *   latencyMsMin: 1, latencyMsMax: 1, faults: [], traffic: [] } as const;
 * if (replayFile(quiet, scenario).module !== "file:///app/quiet.ts") throw new Error("example failed");
 * ```
 */
export function replayFile<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  scenario: Scenario<I>,
): ReplayFile<I> {
  return {
    automp: "scenario-replay",
    version: 1,
    name: definition.name,
    module: definition.module ?? null,
    scenario,
  };
}

function runChecked<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  scenario: Scenario<I>,
  checkDeterminism: boolean,
): ScenarioResult {
  const result = runScenario(definition, scenario);
  if (!checkDeterminism || result.violations.length > 0) return result;
  const again = runScenario(definition, scenario);
  if (again.traceHash === result.traceHash) return result;
  return {
    ...result,
    violations: [`nondeterminism: trace hash ${result.traceHash} then ${again.traceHash}`],
  };
}

async function runCheckedAsync<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  scenario: Scenario<I>,
  checkDeterminism: boolean,
): Promise<ScenarioResult> {
  const result = await runScenarioAsync(definition, scenario);
  if (!checkDeterminism || result.violations.length > 0) return result;
  const again = await runScenarioAsync(definition, scenario);
  if (again.traceHash === result.traceHash) return result;
  return {
    ...result,
    violations: [`nondeterminism: trace hash ${result.traceHash} then ${again.traceHash}`],
  };
}

/**
 * Generates and runs scenarios until one fails (then shrinks it) or `numRuns` pass; never
 * throws for a violation: the report says.
 *
 * @example
 * ```ts
 * import { defineScenario, faultSchedule, searchScenarios } from "./scenario.ts";
 * const quiet = defineScenario({ name: "quiet" });
 * const report = searchScenarios(quiet, faultSchedule({ nodes: 3, maxFaults: 2 }), { numRuns: 2 });
 * if (report.failure !== undefined) throw new Error("example failed");
 * ```
 */
export function searchScenarios<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  arbitrary: fc.Arbitrary<Scenario<I>>,
  options: SearchOptions = {},
): ScenarioReport<I> {
  const search = new Search(definition, arbitrary, options);
  const property = fc.property(
    arbitrary,
    (scenario) => search.take(scenario, runChecked(definition, scenario, search.determinism)),
  );
  const details = fc.check(property, { seed: options.seed ?? 1, numRuns: search.numRuns });
  const example = details.counterexample?.[0];
  return search.report(
    details,
    example === undefined
      ? []
      : search.failures.get(example) ?? runChecked(definition, example, true).violations,
  );
}

/**
 * {@link searchScenarios} with {@link runScenarioAsync}, for workers that await storage.
 *
 * @example
 * ```ts
 * import { defineScenario, faultSchedule, searchScenariosAsync } from "./scenario.ts";
 * const quiet = defineScenario({ name: "quiet" });
 * const report = await searchScenariosAsync(quiet, faultSchedule({ nodes: 2, maxFaults: 1 }), {
 *   numRuns: 2,
 * });
 * if (report.failure !== undefined) throw new Error("unexpected");
 * ```
 */
export async function searchScenariosAsync<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  arbitrary: fc.Arbitrary<Scenario<I>>,
  options: SearchOptions = {},
): Promise<ScenarioReport<I>> {
  const search = new Search(definition, arbitrary, options);
  const property = fc.asyncProperty(
    arbitrary,
    async (scenario) =>
      search.take(scenario, await runCheckedAsync(definition, scenario, search.determinism)),
  );
  const details = await fc.check(property, { seed: options.seed ?? 1, numRuns: search.numRuns });
  const example = details.counterexample?.[0];
  return search.report(
    details,
    example === undefined ? [] : search.failures.get(example) ??
      (await runCheckedAsync(definition, example, true)).violations,
  );
}

/** What a search counts as it goes, and its report. */
class Search<I extends { readonly atMs: number }> {
  readonly numRuns: number;
  readonly determinism: boolean;
  readonly failures = new Map<Scenario<I>, readonly string[]>();
  #sent = 0;
  #delivered = 0;
  #reported = 0;
  #done = 0;

  constructor(
    readonly definition: ScenarioDefinition<I>,
    arbitrary: unknown,
    readonly options: SearchOptions,
  ) {
    this.numRuns = options.numRuns ?? 100;
    if (!Number.isInteger(this.numRuns) || this.numRuns < 1) {
      throw new RangeError(
        `Cannot search scenarios: numRuns ${this.numRuns} is not a positive integer`,
      );
    }
    if (!isArbitrary(arbitrary)) {
      throw new TypeError("Cannot search scenarios: arbitrary is not a fast-check arbitrary");
    }
    this.determinism = options.checkDeterminism ?? false;
  }

  /** One run's result: whether it held. */
  take(scenario: Scenario<I>, result: ScenarioResult): boolean {
    this.options.onProgress?.(++this.#done, this.numRuns);
    if (result.violations.length === 0) {
      this.#sent += result.sent;
      this.#delivered += result.delivered;
      this.#reported += result.reported;
      return true;
    }
    this.failures.set(scenario, result.violations);
    return false;
  }

  report(
    details: {
      failed: boolean;
      numRuns: number;
      seed: number;
      numShrinks: number;
      counterexample: [Scenario<I>] | null;
      counterexamplePath: string | null;
      errorInstance: unknown;
    },
    violations: readonly string[],
  ): ScenarioReport<I> {
    const counts = {
      runs: details.numRuns,
      sent: this.#sent,
      delivered: this.#delivered,
      reported: this.#reported,
    };
    if (!details.failed || details.counterexample === null) {
      if (details.failed) {
        throw new Error(
          `Cannot search scenarios: the property failed without a counterexample: ${details.errorInstance}`,
        );
      }
      return counts;
    }
    const [scenario] = details.counterexample;
    return {
      ...counts,
      failure: {
        scenario,
        violations,
        seed: details.seed,
        path: details.counterexamplePath ?? "",
        shrinks: details.numShrinks,
        replay: replayFile(this.definition, scenario),
      },
    };
  }
}

/**
 * A scenario search found a failure; the message says how to replay it, `report` holds it.
 *
 * @example
 * ```ts
 * import { checkScenarios, defineScenario, faultSchedule, ScenarioFailure } from "./scenario.ts";
 * const broken = defineScenario({ name: "broken", check: () => "wrong" });
 * try {
 *   checkScenarios(broken, faultSchedule({ nodes: 2, maxFaults: 0 }), { numRuns: 1 });
 * } catch (error) {
 *   if (!(error instanceof ScenarioFailure)) throw error;
 *   const replay = error.report.failure!.replay; // JSON for `deno task sim -- --replay FILE`
 *   if (replay.name !== "broken") throw new Error("unexpected");
 * }
 * ```
 */
export class ScenarioFailure extends Error {
  override readonly name = "ScenarioFailure";
  /** The report, with the shrunk scenario and its replay file. */
  readonly report: ScenarioReport<{ readonly atMs: number }>;

  constructor(report: ScenarioReport<{ readonly atMs: number }>, text: string) {
    super(text);
    this.report = report;
  }
}

/**
 * {@link searchScenarios}, but a failure throws a {@link ScenarioFailure} whose message holds
 * the violations, fast-check's seed and path, the shrunk schedule, and the replay: as an API
 * call and as a file for `deno task sim -- --replay FILE`. For Node's test runner, `deno test` and
 * `bun test` alike.
 *
 * @example
 * ```ts
 * import { checkScenarios, defineScenario, faultSchedule } from "./scenario.ts";
 * const broken = defineScenario({ name: "broken", check: () => "always wrong" });
 * let error = "";
 * try {
 *   checkScenarios(broken, faultSchedule({ nodes: 2, maxFaults: 1 }), { numRuns: 1 });
 * } catch (thrown) {
 *   error = String(thrown); // the violations, the shrunk schedule, how to replay it
 * }
 * if (!/check: always wrong[\s\S]*--replay/.test(error)) throw new Error(error);
 * ```
 */
export function checkScenarios<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  arbitrary: fc.Arbitrary<Scenario<I>>,
  options: SearchOptions = {},
): ScenarioReport<I> {
  return throwOnFailure(definition, searchScenarios(definition, arbitrary, options));
}

/**
 * {@link checkScenarios} with {@link runScenarioAsync}, for workers that await storage.
 *
 * @example
 * ```ts
 * import { checkScenariosAsync, defineScenario, faultSchedule } from "./scenario.ts";
 * const quiet = defineScenario({ name: "quiet" });
 * await checkScenariosAsync(quiet, faultSchedule({ nodes: 2, maxFaults: 1 }), { numRuns: 2 });
 * ```
 */
export async function checkScenariosAsync<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  arbitrary: fc.Arbitrary<Scenario<I>>,
  options: SearchOptions = {},
): Promise<ScenarioReport<I>> {
  return throwOnFailure(definition, await searchScenariosAsync(definition, arbitrary, options));
}

function throwOnFailure<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  report: ScenarioReport<I>,
): ScenarioReport<I> {
  const failure = report.failure;
  if (failure === undefined) return report;
  const shown = failure.violations.slice(0, 10).map((v) => `  - ${v}`);
  if (failure.violations.length > 10) shown.push(`  … and ${failure.violations.length - 10} more`);
  const text = [
    `Scenario "${definition.name}" failed after ${report.runs} run(s) and ${failure.shrinks} shrink(s):`,
    ...shown,
    `shrunk schedule (${failure.scenario.faults.length} fault(s), ${failure.scenario.traffic.length} traffic item(s); atMs counts from the end of the warm-up, violations from the cluster's start):`,
    `  ${JSON.stringify(failure.scenario)}`,
    `replay it exactly:`,
    `  runScenario(definition, ${
      JSON.stringify(failure.scenario)
    }) (runScenarioAsync for workers that await)`,
    `  or save this line as FILE.json and run: deno task sim -- --replay FILE.json (or bun run sim/cli.ts --replay FILE.json)`,
    `  ${JSON.stringify(failure.replay)}`,
    definition.module === undefined
      ? `  (give the definition module: import.meta.url so that the file can find it)`
      : "",
    `re-run the search: { seed: ${failure.seed}, path: "${failure.path}" } in fast-check terms, or the same options`,
  ].filter((line) => line !== "").join("\n");
  throw new ScenarioFailure(report as ScenarioReport<{ readonly atMs: number }>, text);
}

/**
 * Runs a replay file's scenario with a definition (one you imported, or found by name among a
 * module's exports with {@link findDefinition}).
 *
 * @example
 * ```ts
 * import { defineScenario, replayFile, replayScenario } from "./scenario.ts";
 * const quiet = defineScenario({ name: "quiet" });
 * const scenario = { version: 1, seed: 1, nodes: 2, durationMs: 10, settleMs: 5000,
 *   latencyMsMin: 1, latencyMsMax: 1, faults: [], traffic: [] } as const;
 * const file = JSON.parse(JSON.stringify(replayFile(quiet, scenario)));
 * if (replayScenario(quiet, file).violations.length !== 0) throw new Error(String(replayScenario(quiet, file).violations));
 * ```
 */
export function replayScenario<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  file: ReplayFile<I> | Scenario<I>,
  options: RunScenarioOptions = {},
): ScenarioResult {
  return runScenario(definition, scenarioOf(definition, file), options);
}

/**
 * {@link replayScenario} with {@link runScenarioAsync}: what `deno task sim -- --replay FILE`
 * runs (the same result for workers that await nothing).
 *
 * @example
 * ```ts
 * import { defineScenario, replayFile, replayScenarioAsync } from "./scenario.ts";
 * const quiet = defineScenario({ name: "quiet" });
 * const scenario = { version: 1, seed: 1, nodes: 2, durationMs: 10, settleMs: 5000,
 *   latencyMsMin: 1, latencyMsMax: 1, faults: [], traffic: [] } as const;
 * const result = await replayScenarioAsync(quiet, replayFile(quiet, scenario));
 * if (result.violations.length !== 0) throw new Error(String(result.violations));
 * ```
 */
export async function replayScenarioAsync<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  file: ReplayFile<I> | Scenario<I>,
  options: RunScenarioOptions = {},
): Promise<ScenarioResult> {
  // Awaited here so that a bad file rejects the Promise rather than throwing at the call.
  return await runScenarioAsync(definition, scenarioOf(definition, file), options);
}

/** The scenario of a replay file (checked to be for `definition`), or the scenario given. */
function scenarioOf<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  file: ReplayFile<I> | Scenario<I>,
): Scenario<I> {
  if (file === null || typeof file !== "object") {
    throw new TypeError("Cannot replay: expected a replay file or a scenario object");
  }
  if (!("automp" in file)) return file;
  if (file.automp !== "scenario-replay" || file.version !== 1) {
    throw new TypeError("Cannot replay: not a version 1 scenario replay file");
  }
  if (file.name !== definition.name) {
    throw new TypeError(
      `Cannot replay: the file is for scenario "${file.name}", not "${definition.name}"`,
    );
  }
  return file.scenario;
}

/** Whether a value is a scenario definition (made by {@link defineScenario}). */
function isDefinition(value: unknown): value is ScenarioDefinition<{ readonly atMs: number }> {
  return value !== null && typeof value === "object" &&
    (value as Record<symbol, unknown>)[DEFINITION] === true;
}

/**
 * The definition named `name` among a module's exports (for replay files).
 *
 * @example
 * ```ts
 * import { defineScenario, findDefinition } from "./scenario.ts";
 * const exports = { quiet: defineScenario({ name: "quiet", module: import.meta.url }) };
 * if (findDefinition(exports, "quiet") !== exports.quiet) throw new Error("example failed");
 * let error = "";
 * try {
 *   findDefinition(exports, "loud");
 * } catch (thrown) {
 *   error = String(thrown);
 * }
 * if (!/no exported scenario named "loud"/.test(error)) throw new Error(error);
 * ```
 */
export function findDefinition(
  exports: Record<string, unknown>,
  name: string,
): ScenarioDefinition<{ readonly atMs: number }> {
  const found = Object.values(exports).filter(isDefinition).filter((d) => d.name === name);
  if (found.length === 0) {
    const names = Object.values(exports).filter(isDefinition).map((d) => `"${d.name}"`);
    throw new TypeError(
      `Cannot replay: no exported scenario named "${name}" (exported: ${
        names.join(", ") || "none"
      })`,
    );
  }
  if (found.length > 1) {
    throw new TypeError(`Cannot replay: two exported scenarios named "${name}"`);
  }
  return found[0];
}
