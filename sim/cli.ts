/**
 * The simulator's command line: runs a cluster of real nodes (one worker each) on a simulated
 * subnet for some virtual seconds and prints what happened, as one JSON line or a short summary.
 *
 * ```sh
 * deno task sim -- --nodes 100 --seconds 60 --seed 7 --json
 * bun run sim/cli.ts --nodes 20 --seconds 10 --seed 1 --loss 0.1 --latency-ms 1..20
 * ```
 *
 * Everything the run does follows from the flags, so the same flags print the same
 * `trace_hash` on Deno and Bun; only `wall_ms` and `speedup` vary. This file is an edge, like
 * `mod.ts`: it alone in `sim/` reads arguments, the real clock and the exit code.
 *
 * @module
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createSimCluster, type SimCluster, workerGuid } from "./cluster.ts";
import { type Campaign, checkCampaign, runCampaign } from "./campaign.ts";
import { fuzzCampaigns } from "./fuzz.ts";
import { resolve } from "node:path";
import { cwd } from "node:process";
import { pathToFileURL } from "node:url";
import {
  findDefinition,
  type ReplayFile,
  replayScenarioAsync,
  type ScenarioDefinition,
  type ScenarioResult,
} from "./scenario.ts";

/** What the flags ask for. */
export interface SimCliOptions {
  readonly nodes: number;
  readonly seconds: number;
  readonly seed: number;
  /** Probability that a datagram is lost. */
  readonly lossProbability: number;
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
  /** Print one JSON line instead of the summary. */
  readonly json: boolean;
  /** Print the usage and run nothing. */
  readonly help: boolean;
}

/** The figures of one run; the JSON line is this object. */
export interface SimRunReport {
  readonly nodes: number;
  readonly seed: number;
  readonly loss: number;
  readonly latency_ms_min: number;
  readonly latency_ms_max: number;
  /** Virtual time run, in milliseconds. */
  readonly simulated_ms: number;
  /** Real time the run took, in milliseconds (cluster set-up included). */
  readonly wall_ms: number;
  /** `simulated_ms / wall_ms`: how many times faster than real time. */
  readonly speedup: number;
  /** Simulator events run. */
  readonly events: number;
  /** First virtual time at which every node linked every other and knew every worker. */
  readonly converged_at_ms: number | null;
  /** Distinct pairs of nodes linked to each other at the end. */
  readonly links: number;
  /** `nodes × (nodes − 1) / 2`: the links of a converged cluster. */
  readonly links_expected: number;
  /** Sum over nodes of the remote worker locations known at the end. */
  readonly worker_locations_known: number;
  /** `nodes × (nodes − 1)`: the locations a converged cluster knows. */
  readonly worker_locations_expected: number;
  /** Links that went down, summed over nodes (`linksDown` in node stats). */
  readonly link_failures: number;
  /** Links closed for bad bytes or a failed handshake, summed over nodes. */
  readonly protocol_errors: number;
  /** Messages a node could not deliver, summed over nodes. */
  readonly undeliverable: number;
  readonly datagrams_sent: number;
  readonly datagrams_lost: number;
  readonly segments_sent: number;
  /** 16 hex digits; equal for equal flags on every runtime. */
  readonly trace_hash: string;
}

/** What {@link runSimCli} would print and exit with. */
export interface SimCliResult {
  /** 0 success, 1 the run failed, 2 bad flags. */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Bad command-line input: printed without a stack trace, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The usage text `--help` prints. */
export const USAGE = `Usage: deno task sim -- [flags]      (or: bun run sim/cli.ts [flags])

Runs a cluster of real AutoMPI nodes, one worker each, on a simulated subnet, and prints
what happened. The same flags give the same trace_hash on every runtime.

Flags:
  --nodes N             nodes in the cluster, 1..20000 (default 10)
  --seconds S           simulated seconds to run, > 0 (default 10)
  --seed X              root seed, an integer (default 1)
  --loss P              probability that a datagram is lost, 0..1 (default 0)
  --latency-ms A..B     one-way latency drawn in [A, B] ms; "A" alone means A..A (default 1..5)
  --json                print one JSON line instead of a summary
  -h, --help            print this and exit
  --replay FILE         re-run a saved failure exactly and print it as one JSON line: a fault
                        campaign, or a scenario replay file of yours (printed by checkScenarios),
                        whose definition is imported from the module the file names
  fuzz …                fault campaigns (see: deno task fuzz -- --help)

JSON fields: nodes, seed, loss, latency_ms_min, latency_ms_max, simulated_ms, wall_ms, speedup,
events, converged_at_ms (null if never), links, links_expected, worker_locations_known,
worker_locations_expected, link_failures, protocol_errors, undeliverable, datagrams_sent,
datagrams_lost, segments_sent, trace_hash.

Exit codes: 0 done, 1 the run failed, 2 bad flags.
`;

const DEFAULTS: SimCliOptions = {
  nodes: 10,
  seconds: 10,
  seed: 1,
  lossProbability: 0,
  latencyMsMin: 1,
  latencyMsMax: 5,
  json: false,
  help: false,
};

const MAX_SECONDS = 86_400;

function numberOf(flag: string, text: string): number {
  const value = text.trim() === "" ? NaN : Number(text);
  if (!Number.isFinite(value)) {
    throw new UsageError(`Cannot use ${flag} ${JSON.stringify(text)}: not a number`);
  }
  return value;
}

function latencyOf(text: string): [number, number] {
  const parts = text.split("..");
  if (parts.length > 2) {
    throw new UsageError(`Cannot use --latency-ms ${JSON.stringify(text)}: expected A..B`);
  }
  const min = numberOf("--latency-ms", parts[0]);
  const max = parts.length === 2 ? numberOf("--latency-ms", parts[1]) : min;
  if (min < 0 || max < min) {
    throw new UsageError(
      `Cannot use --latency-ms ${text}: need 0 <= A <= B (milliseconds)`,
    );
  }
  return [min, max];
}

/**
 * Parses the flags; throws a {@link UsageError} naming the first problem. A bare `--` (which
 * `deno task sim -- …` passes on) is ignored, and `--flag=value` works as `--flag value`.
 *
 * @example
 * ```ts
 * import { parseSimArgs } from "./cli.ts";
 * const options = parseSimArgs(["--nodes", "5", "--latency-ms=2..8", "--json"]);
 * console.assert(options.nodes === 5 && options.latencyMsMax === 8 && options.json);
 * ```
 */
export function parseSimArgs(args: readonly string[]): SimCliOptions {
  let options: SimCliOptions = { ...DEFAULTS };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") continue;
    if (arg === "-h" || arg === "--help") {
      options = { ...options, help: true };
      continue;
    }
    if (!arg.startsWith("--")) {
      throw new UsageError(`Cannot use argument ${JSON.stringify(arg)}: flags start with --`);
    }
    const equals = arg.indexOf("=");
    const flag = equals < 0 ? arg : arg.slice(0, equals);
    if (flag === "--json") {
      if (equals >= 0) throw new UsageError("Cannot use --json=…: --json takes no value");
      options = { ...options, json: true };
      continue;
    }
    if (!["--nodes", "--seconds", "--seed", "--loss", "--latency-ms"].includes(flag)) {
      throw new UsageError(`Cannot use flag ${flag}: unknown`);
    }
    let value: string;
    if (equals >= 0) {
      value = arg.slice(equals + 1);
    } else {
      if (i + 1 >= args.length || args[i + 1].startsWith("--")) {
        throw new UsageError(`Cannot use flag ${flag}: it needs a value`);
      }
      value = args[++i];
    }
    switch (flag) {
      case "--nodes": {
        const nodes = numberOf(flag, value);
        if (!Number.isInteger(nodes) || nodes < 1 || nodes > 20_000) {
          throw new UsageError(`Cannot use --nodes ${value}: need an integer in 1..20000`);
        }
        options = { ...options, nodes };
        break;
      }
      case "--seconds": {
        const seconds = numberOf(flag, value);
        if (!(seconds > 0 && seconds <= MAX_SECONDS)) {
          throw new UsageError(`Cannot use --seconds ${value}: need 0 < S <= ${MAX_SECONDS}`);
        }
        options = { ...options, seconds };
        break;
      }
      case "--seed": {
        const seed = numberOf(flag, value);
        if (!Number.isSafeInteger(seed)) {
          throw new UsageError(`Cannot use --seed ${value}: need a safe integer`);
        }
        options = { ...options, seed };
        break;
      }
      case "--loss": {
        const loss = numberOf(flag, value);
        if (!(loss >= 0 && loss <= 1)) {
          throw new UsageError(`Cannot use --loss ${value}: need a probability in 0..1`);
        }
        options = { ...options, lossProbability: loss };
        break;
      }
      default: {
        const [latencyMsMin, latencyMsMax] = latencyOf(value);
        options = { ...options, latencyMsMin, latencyMsMax };
      }
    }
  }
  return options;
}

/**
 * Runs a cluster until `cluster.converged()` first holds, or for `maxMs`; returns the virtual
 * time it held at, or `null`. The predicate runs after every distinct instant, so a cheap
 * necessary condition goes first: every live node knows as many worker locations as a
 * converged node does (`knownLocations` is a counter, where `converged()` copies every link
 * list). For clusters whose workers stay as `createSimCluster` attached them.
 *
 * @example
 * ```ts
 * import { createSimCluster } from "./cluster.ts";
 * import { runUntilConverged } from "./cli.ts";
 * const cluster = createSimCluster({ nodes: 4, seed: 2 });
 * const atMs = runUntilConverged(cluster, 3000);
 * console.assert(atMs !== null && atMs === cluster.sim.now);
 * ```
 */
export function runUntilConverged(cluster: SimCluster, maxMs: number): number | null {
  const { hosts, sim } = cluster;
  const workersEach = hosts[0]?.app?.worker(workerGuid(0)) === undefined ? 0 : 1;
  const locationsKnown = () => {
    let live = 0;
    for (const host of hosts) if (host.state !== "down" && host.app !== undefined) live++;
    const needed = (live - 1) * workersEach;
    for (const host of hosts) {
      if (host.state !== "down" && host.app !== undefined && host.app.knownLocations < needed) {
        return false;
      }
    }
    return true;
  };
  return sim.runUntil(() => locationsKnown() && cluster.converged(), maxMs) ? sim.now : null;
}

const round3 = (value: number) => Math.round(value * 1000) / 1000;
const round1 = (value: number) => Math.round(value * 10) / 10;

/**
 * Runs the cluster the options describe and returns its figures. `now` reads the real clock in
 * milliseconds, for `wall_ms` only; nothing else depends on it.
 *
 * @example
 * ```ts
 * import { parseSimArgs, runSimulation } from "./cli.ts";
 * const report = runSimulation(parseSimArgs(["--nodes", "4", "--seconds", "2"]));
 * console.assert(report.links === 6 && report.converged_at_ms !== null);
 * ```
 */
export function runSimulation(
  options: SimCliOptions,
  now: () => number = () => performance.now(),
): SimRunReport {
  const { nodes, seed } = options;
  const durationMs = options.seconds * 1000;
  const startedMs = now();
  const cluster = createSimCluster({
    nodes,
    seed,
    lossProbability: options.lossProbability,
    latencyMsMin: options.latencyMsMin,
    latencyMsMax: options.latencyMsMax,
    // Host code that throws is a bug to report, not a crash to simulate.
    hostErrors: "throw",
    logLimit: 0,
  });
  const { sim } = cluster;
  const convergedAtMs = runUntilConverged(cluster, durationMs);
  if (sim.now < durationMs) sim.run(durationMs - sim.now);
  const wallMs = now() - startedMs;
  let linkFailures = 0;
  let protocolErrors = 0;
  let undeliverable = 0;
  for (const node of cluster.liveNodes()) {
    const { stats } = node.state();
    linkFailures += stats.linksDown;
    protocolErrors += stats.protocolErrors;
    undeliverable += stats.undeliverable;
  }
  return {
    nodes,
    seed,
    loss: options.lossProbability,
    latency_ms_min: options.latencyMsMin,
    latency_ms_max: options.latencyMsMax,
    simulated_ms: round3(sim.now),
    wall_ms: round1(wallMs),
    speedup: round1(sim.now / Math.max(wallMs, 0.001)),
    events: sim.events,
    converged_at_ms: convergedAtMs === null ? null : round3(convergedAtMs),
    links: cluster.linkedPairs(),
    links_expected: (nodes * (nodes - 1)) / 2,
    worker_locations_known: cluster.locationsKnown(),
    worker_locations_expected: nodes * (nodes - 1),
    link_failures: linkFailures,
    protocol_errors: protocolErrors,
    undeliverable,
    datagrams_sent: sim.stats.datagramsSent,
    datagrams_lost: sim.stats.datagramsLost,
    segments_sent: sim.stats.segmentsSent,
    trace_hash: sim.traceHash,
  };
}

/** The human-readable summary of a run: the same numbers as the JSON line. */
export function formatSummary(report: SimRunReport): string {
  const count = (value: number) => value.toLocaleString("en-US");
  const converged = report.converged_at_ms === null
    ? `did not converge in ${report.simulated_ms} ms`
    : `converged at ${report.converged_at_ms} ms`;
  return [
    `${report.nodes} nodes, seed ${report.seed}, loss ${report.loss}, latency ` +
    `${report.latency_ms_min}..${report.latency_ms_max} ms`,
    `${count(report.simulated_ms)} ms simulated in ${count(report.wall_ms)} ms ` +
    `(${report.speedup}x real time), ${count(report.events)} events`,
    `${converged}; at the end ${count(report.links)}/${count(report.links_expected)} links, ` +
    `${count(report.worker_locations_known)}/${count(report.worker_locations_expected)} ` +
    `worker locations known`,
    `link failures ${report.link_failures}, protocol errors ${report.protocol_errors}, ` +
    `undeliverable ${report.undeliverable}`,
    `datagrams ${count(report.datagrams_sent)} sent, ${count(report.datagrams_lost)} lost; ` +
    `${count(report.segments_sent)} stream segments`,
    `trace hash ${report.trace_hash}`,
    "",
  ].join("\n");
}

/**
 * The whole command, without touching the process: parses `args`, runs, and returns what to
 * print and the exit code. Never throws.
 *
 * @example
 * ```ts
 * import { runSimCli } from "./cli.ts";
 * const { code, stdout } = runSimCli(["--nodes", "3", "--seconds", "1", "--json"]);
 * console.assert(code === 0 && JSON.parse(stdout).links === 3);
 * console.assert(runSimCli(["--bogus"]).code === 2);
 * ```
 */
export function runSimCli(
  args: readonly string[],
  now: () => number = () => performance.now(),
): SimCliResult {
  const rest = args[0] === "--" ? args.slice(1) : args;
  if (rest[0] === "fuzz") return runFuzzCli(rest.slice(rest[1] === "--" ? 2 : 1));
  const replayAt = rest.findIndex((arg) => arg === "--replay" || arg.startsWith("--replay="));
  if (replayAt >= 0) {
    const file = rest[replayAt].includes("=") ? rest[replayAt].split("=")[1] : rest[replayAt + 1];
    return replayCli(file);
  }
  let options: SimCliOptions;
  try {
    options = parseSimArgs(args);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { code: 2, stdout: "", stderr: `sim: ${message}\nRun with --help for usage.\n` };
  }
  if (options.help) return { code: 0, stdout: USAGE, stderr: "" };
  try {
    const report = runSimulation(options, now);
    const stdout = options.json ? `${JSON.stringify(report)}\n` : formatSummary(report);
    return { code: 0, stdout, stderr: "" };
  } catch (error) {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return {
      code: 1,
      stdout: "",
      stderr: `sim: Cannot finish the simulation (seed ${options.seed}): ${message}\n`,
    };
  }
}

/**
 * `--replay FILE` for every kind of file: a saved campaign, or a scenario replay file of yours
 * (`{"automp":"scenario-replay",…}`, printed by `checkScenarios`), whose definition is imported
 * from the module the file names. Prints the result as one JSON line.
 *
 * @example
 * ```ts ignore
 * import { runSimCliAsync } from "./cli.ts";
 * const { code, stdout } = await runSimCliAsync(["--replay", "tests/artifacts/failure.json"]);
 * ```
 */
export async function runSimCliAsync(args: readonly string[]): Promise<SimCliResult> {
  const rest = args[0] === "--" ? args.slice(1) : args;
  const replayAt = rest.findIndex((arg) => arg === "--replay" || arg.startsWith("--replay="));
  if (replayAt < 0 || rest[0] === "fuzz") return runSimCli(args);
  const file = rest[replayAt].includes("=") ? rest[replayAt].split("=")[1] : rest[replayAt + 1];
  if (!file) return replayCli(file);
  let parsed: Partial<ReplayFile<{ readonly atMs: number }>>;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    return {
      code: 2,
      stdout: "",
      stderr: `sim: Cannot replay ${file}: ${(error as Error).message}\n`,
    };
  }
  if (parsed?.automp !== "scenario-replay") return replayCli(file);
  let definition: ScenarioDefinition<{ readonly atMs: number }>;
  try {
    if (typeof parsed.module !== "string" || parsed.module === "") {
      throw new TypeError(
        "the file names no module: give the definition module: import.meta.url",
      );
    }
    const url = /^[a-z]+:/.test(parsed.module)
      ? parsed.module
      : pathToFileURL(resolve(cwd(), parsed.module)).href;
    const exports = await import(url);
    definition = findDefinition(exports, String(parsed.name));
  } catch (error) {
    return {
      code: 2,
      stdout: "",
      stderr: `sim: Cannot replay ${file}: ${(error as Error).message}\n`,
    };
  }
  let result: ScenarioResult;
  try {
    result = await replayScenarioAsync(
      definition,
      parsed as ReplayFile<{ readonly atMs: number }>,
    );
  } catch (error) {
    return {
      code: 2,
      stdout: "",
      stderr: `sim: Cannot replay ${file}: ${(error as Error).message}\n`,
    };
  }
  const scenario = parsed.scenario!;
  const line = JSON.stringify({
    replay: file,
    scenario: definition.name,
    seed: scenario.seed,
    nodes: scenario.nodes,
    trace_hash: result.traceHash,
    events: result.events,
    sent: result.sent,
    delivered: result.delivered,
    reported_undeliverable: result.reported,
    exempt_by_crash: result.exempt,
    violations: result.violations,
  });
  return { code: result.violations.length > 0 ? 1 : 0, stdout: `${line}\n`, stderr: "" };
}

/** `--replay FILE`: re-runs a saved campaign exactly and prints its result as one JSON line. */
export function replayCli(file: string | undefined): SimCliResult {
  if (!file) return { code: 2, stdout: "", stderr: "sim: Cannot replay: --replay needs a FILE\n" };
  let campaign: Campaign;
  try {
    campaign = JSON.parse(readFileSync(file, "utf8"));
    if ((campaign as unknown as { automp?: string })?.automp === "scenario-replay") {
      throw new TypeError("a scenario replay file needs runSimCliAsync (the CLI uses it)");
    }
    checkCampaign(campaign);
  } catch (error) {
    return {
      code: 2,
      stdout: "",
      stderr: `sim: Cannot replay ${file}: ${(error as Error).message}\n`,
    };
  }
  const result = runCampaign(campaign);
  const line = JSON.stringify({
    replay: file,
    seed: campaign.seed,
    nodes: campaign.nodes,
    trace_hash: result.traceHash,
    events: result.events,
    sent: result.sent,
    delivered: result.delivered,
    reported_undeliverable: result.reported,
    exempt_by_crash: result.exempt,
    violations: result.violations,
  });
  return { code: result.violations.length > 0 ? 1 : 0, stdout: `${line}\n`, stderr: "" };
}

/** The usage of `fuzz`. */
export const FUZZ_USAGE =
  `Usage: deno task fuzz -- [flags]      (or: bun run sim/cli.ts fuzz [flags])

Generates fault campaigns (partitions, one-way cuts, holds, crashes, restarts, pauses, loss and
duplication bursts, clock skew, messages between workers, workers attached and detached), runs
each on a simulated cluster of real nodes and checks the invariants. A failure is shrunk to a
short schedule, saved as JSON, and printed with the command that replays it exactly.

  --runs N           campaigns to run (default 100)
  --seed S           fast-check seed (default: time-based, printed)
  --nodes A..B       cluster sizes (default 2..20)
  --duration-ms D    faults and traffic last D virtual ms (default 6000; then heal and settle)
  --out FILE         where a failing campaign is saved (default tests/artifacts/fuzz-failure-SEED.json)
  --no-determinism   skip running each campaign twice to compare trace hashes
`;

/** `fuzz`: runs a fault campaign; prints progress on standard error. */
export function runFuzzCli(args: readonly string[]): SimCliResult {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help") return { code: 0, stdout: FUZZ_USAGE, stderr: "" };
    if (arg === "--no-determinism") {
      flags.set(arg, "1");
      continue;
    }
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s) : [arg, undefined];
    if (!["--runs", "--seed", "--nodes", "--duration-ms", "--out"].includes(flag)) {
      return {
        code: 2,
        stdout: "",
        stderr: `fuzz: Cannot use "${arg}": unknown flag (see --help)\n`,
      };
    }
    const value = inline ?? args[++i];
    if (value === undefined) {
      return { code: 2, stdout: "", stderr: `fuzz: ${flag} needs a value\n` };
    }
    flags.set(flag, value);
  }
  const runs = Number(flags.get("--runs") ?? 100);
  const seed = Number(flags.get("--seed") ?? (Math.floor(performance.now() * 1000) % 2147483647));
  const [nodesMin, nodesMax] = (flags.get("--nodes") ?? "2..20").split("..").map(Number);
  const durationMs = Number(flags.get("--duration-ms") ?? 6000);
  if (
    !Number.isInteger(runs) || runs < 1 || !Number.isSafeInteger(seed) ||
    !(nodesMin >= 1 && nodesMax >= nodesMin && nodesMax <= 200) || !(durationMs >= 100)
  ) {
    return { code: 2, stdout: "", stderr: "fuzz: Cannot use those flags (see --help)\n" };
  }
  const started = performance.now();
  let lastDraw = 0;
  const report = fuzzCampaigns({
    runs,
    seed,
    nodesMin,
    nodesMax,
    durationMs,
    checkDeterminism: !flags.has("--no-determinism"),
    onProgress(done, total) {
      const t = performance.now();
      if (t - lastDraw < 100 && done < total) return;
      lastDraw = t;
      const width = 30;
      const filled = Math.min(width, Math.round((Math.min(done, total) / total) * width));
      const bar = "#".repeat(filled) + "-".repeat(width - filled);
      writeErr(
        `\rfuzz [${bar}] ${done}/${total} campaigns, ${((t - started) / 1000).toFixed(1)} s`,
      );
    },
  });
  writeErr("\n");
  if (!report.failure) {
    const line = JSON.stringify({
      runs: report.runs,
      seed,
      nodes: `${nodesMin}..${nodesMax}`,
      wall_ms: Math.round(performance.now() - started),
      messages_sent: report.sent,
      delivered: report.delivered,
      reported_undeliverable: report.reported,
      violations: 0,
    });
    return { code: 0, stdout: `${line}\n`, stderr: "" };
  }
  const failure = report.failure;
  const out = flags.get("--out") ?? `tests/artifacts/fuzz-failure-${seed}.json`;
  let saved = true;
  try {
    mkdirSync(out.includes("/") ? out.slice(0, out.lastIndexOf("/")) : ".", { recursive: true });
    writeFileSync(out, `${JSON.stringify(failure.campaign, null, 2)}\n`);
  } catch {
    saved = false;
  }
  const text = [
    `fuzz: invariant violated (seed ${seed}, after ${failure.shrinks} shrinks):`,
    ...failure.violations.map((v) => `  - ${v}`),
    `shrunk schedule: ${JSON.stringify(failure.campaign)}`,
    saved
      ? `saved to ${out}; replay with: deno task sim -- --replay ${out}`
      : `could not save to ${out}`,
    `re-run the search with: deno task fuzz -- --runs ${runs} --seed ${seed} --nodes ${nodesMin}..${nodesMax}`,
  ].join("\n");
  return { code: 1, stdout: "", stderr: `${text}\n` };
}

function writeErr(text: string): void {
  const g = globalThis as unknown as {
    Deno?: { stderr: { writeSync(bytes: Uint8Array): number } };
    process?: { stderr: { write(text: string): void } };
  };
  if (g.Deno) g.Deno.stderr.writeSync(new TextEncoder().encode(text));
  else g.process?.stderr.write(text);
}

interface Runtime {
  Deno?: { args: string[]; exitCode: number };
  process?: { argv: string[]; exitCode?: number };
}

if (import.meta.main) {
  const runtime = globalThis as unknown as Runtime;
  const result = await runSimCliAsync(runtime.Deno?.args ?? runtime.process?.argv.slice(2) ?? []);
  if (result.stdout) console.log(result.stdout.replace(/\n$/, ""));
  if (result.stderr) console.error(result.stderr.replace(/\n$/, ""));
  if (runtime.Deno) runtime.Deno.exitCode = result.code;
  else if (runtime.process) runtime.process.exitCode = result.code;
}
