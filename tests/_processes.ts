/**
 * Helpers for tests that run real node programs (`mod.ts`) as processes on Deno and Bun: find
 * the runtimes, start a node and read its output line by line, query its HTTP API, poll with a
 * bound, and kill everything that was started — at the end of a test, when the test process
 * exits, and (for processes a crashed earlier run left behind) when the next run starts.
 *
 * Works under both `deno test -A` and `bun test`: only `node:*` modules and web APIs.
 *
 * @module
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** Absolute path of the repository root. */
export const REPO_ROOT: string = dirname(dirname(fileURLToPath(import.meta.url)));

/** Absolute path of `mod.ts`, the node program. */
export const MOD_PATH: string = join(REPO_ROOT, "mod.ts");

/** Where tests keep files for people to look at (gitignored). */
export const ARTIFACTS_DIR: string = join(REPO_ROOT, "tests", "artifacts");

/** A JavaScript runtime that can run `mod.ts`. */
export type RuntimeName = "deno" | "bun";

const g = globalThis as unknown as { Deno?: { execPath(): string }; Bun?: unknown };

/** The runtime running this test file. */
export function currentRuntime(): RuntimeName {
  return g.Bun !== undefined ? "bun" : "deno";
}

/** The runtime not running this test file. */
export function otherRuntime(): RuntimeName {
  return currentRuntime() === "deno" ? "bun" : "deno";
}

function isExecutable(path: string): boolean {
  const result = spawnSync(path, ["--version"], { stdio: "ignore", timeout: 10_000 });
  return result.status === 0;
}

/** Looks a command up in the directories of `PATH`; undefined if it is not there. */
export function whichSync(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir === "") continue;
    const path = join(dir, command);
    if (existsSync(path)) return path;
  }
  return undefined;
}

const runtimePaths = new Map<RuntimeName, string | undefined>();

/**
 * The executable of a runtime: this process's own for the current runtime; for the other one
 * the pinned copy CI installs in `.ci/tools/node_modules/.bin/`, else `PATH`. Undefined when
 * there is none that answers `--version`.
 *
 * @example
 * ```ts ignore
 * const bun = findRuntime("bun"); // "/usr/bin/bun" or undefined
 * ```
 */
export function findRuntime(name: RuntimeName): string | undefined {
  if (runtimePaths.has(name)) return runtimePaths.get(name);
  let found: string | undefined;
  if (name === currentRuntime()) {
    found = name === "deno" ? g.Deno!.execPath() : process.execPath;
  } else {
    const candidates = [join(REPO_ROOT, ".ci", "tools", "node_modules", ".bin", name)];
    const onPath = whichSync(name);
    if (onPath !== undefined) candidates.push(onPath);
    found = candidates.find((path) => existsSync(path) && isExecutable(path));
  }
  runtimePaths.set(name, found);
  return found;
}

/** Arguments that make `runtime` run `script` with `args` (`run -A` for Deno, `run` for Bun). */
export function runArgs(runtime: RuntimeName, script: string, args: readonly string[]): string[] {
  return runtime === "deno" ? ["run", "-A", script, ...args] : ["run", script, ...args];
}

/** A short token unique to this test process, to put in GUIDs and resource names. */
export function runToken(): string {
  return `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
}

/** Ports for one test cluster: a discovery port and bases for link and HTTP ports. */
export interface TestPorts {
  /** The UDP heartbeat port, random in 20000..29999. */
  readonly discoveryPort: number;
  /** Node `i` (1-based) listens for links on `linkPortBase + 10 * i`. */
  readonly linkPortBase: number;
  /** Node `i` serves HTTP from `httpPortBase + 10 * i` (the program takes the next free one). */
  readonly httpPortBase: number;
}

/**
 * Random ports below the kernel's ephemeral range (32768+), so that neither parallel test runs
 * nor a developer's node on 8888/9999 collide with them.
 */
export function randomPorts(): TestPorts {
  const linkPortBase = 10_000 + 1000 * Math.floor(Math.random() * 9);
  return {
    discoveryPort: 20_000 + Math.floor(Math.random() * 10_000),
    linkPortBase: linkPortBase + Math.floor(Math.random() * 40) * 10,
    httpPortBase: linkPortBase + 500 + Math.floor(Math.random() * 40) * 10,
  };
}

/** One line a process printed, and when the test read it. */
export interface OutputLine {
  readonly text: string;
  readonly stream: "stdout" | "stderr";
  /** `Date.now()` when the line arrived. */
  readonly atMs: number;
}

/** How a process ended. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: string | null;
}

// ---- the registry of everything started --------------------------------------------------------

const REGISTRY_DIR = join(tmpdir(), "automp-test-processes");
const REGISTRY_FILE = join(REGISTRY_DIR, `${process.pid}.pids`);
const running = new Set<TestProcess>();
let exitHookInstalled = false;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
    } catch {
      // Already gone, or not a group leader.
    }
  }
}

/**
 * Kills processes that an earlier test run started and left behind because it was killed
 * itself (it could not run its cleanup). A process is killed only if the run that started it
 * is gone and its command line still carries the marker that run gave it.
 */
export function reapLeftoverProcesses(): void {
  let files: string[];
  try {
    files = readdirSync(REGISTRY_DIR);
  } catch {
    return;
  }
  for (const file of files) {
    const owner = Number(file.replace(/\.pids$/, ""));
    if (!Number.isInteger(owner) || owner === process.pid || isAlive(owner)) continue;
    try {
      for (const line of readFileSync(join(REGISTRY_DIR, file), "utf8").split("\n")) {
        const [pidText, marker] = line.split(" ");
        const pid = Number(pidText);
        if (!Number.isInteger(pid) || pid <= 1 || !marker) continue;
        let commandLine = "";
        try {
          commandLine = readFileSync(`/proc/${pid}/cmdline`, "utf8");
        } catch {
          continue;
        }
        if (commandLine.includes(marker)) killGroup(pid, "SIGKILL");
      }
      rmSync(join(REGISTRY_DIR, file), { force: true });
    } catch {
      // Another run is reaping the same file.
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when a test forgot its cleanup or the runner exits early. Bun's test runner
  // emits the process "exit" event; Deno's emits only the global "unload" event.
  const onExit = () => {
    for (const child of running) killGroup(child.pid, "SIGKILL");
    running.clear();
    rmSync(REGISTRY_FILE, { force: true });
  };
  process.on("exit", onExit);
  (globalThis as { addEventListener?: (type: string, listener: () => void) => void })
    .addEventListener?.("unload", onExit);
}

// ---- processes ------------------------------------------------------------------------------------

/** Options of {@link startProcess}. */
export interface StartProcessOptions {
  /** Name used in failure messages, e.g. `"n1(deno)"`. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  /**
   * A string in the command line that tells this run's processes apart (a GUID suffix, a
   * temporary directory); lets the next run reap this process if this run dies. Default: none.
   */
  readonly marker?: string;
}

/** A started process whose output is read line by line. */
export class TestProcess {
  readonly name: string;
  readonly pid: number;
  /** Every line printed so far, stdout and stderr interleaved in arrival order. */
  readonly lines: OutputLine[] = [];
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  #status: ExitStatus | undefined;
  #child: ChildProcess;
  #listeners = new Set<() => void>();

  constructor(options: StartProcessOptions) {
    this.name = options.name;
    // Its own process group, so that cleanup also reaches any children it starts.
    this.#child = spawn(options.command, [...options.args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, NO_COLOR: "1", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    if (this.#child.pid === undefined) {
      throw new Error(`Cannot start ${options.name}: ${options.command} did not spawn`);
    }
    this.pid = this.#child.pid;
    for (const stream of ["stdout", "stderr"] as const) {
      let partial = "";
      const readable = this.#child[stream]!;
      readable.setEncoding("utf8");
      readable.on("data", (chunk: string) => {
        const parts = (partial + chunk).split("\n");
        partial = parts.pop()!;
        for (const text of parts) this.#push(text, stream);
      });
      readable.on("end", () => {
        if (partial !== "") this.#push(partial, stream);
        partial = "";
      });
    }
    this.exited = new Promise<ExitStatus>((resolve) => {
      const done = (code: number | null, signal: string | null) => {
        if (this.#status !== undefined) return;
        this.#status = { code, signal };
        running.delete(this);
        this.#notify();
        resolve(this.#status);
      };
      this.#child.on("exit", done);
      this.#child.on("error", (error) => {
        this.#push(`spawn error: ${error.message}`, "stderr");
        done(null, null);
      });
    });
    running.add(this);
    installExitHook();
    if (options.marker !== undefined) {
      try {
        mkdirSync(REGISTRY_DIR, { recursive: true });
        appendFileSync(REGISTRY_FILE, `${this.pid} ${options.marker}\n`);
      } catch {
        // Best effort: only a crashed run needs it.
      }
    }
  }

  #push(text: string, stream: "stdout" | "stderr"): void {
    this.lines.push({ text, stream, atMs: Date.now() });
    this.#notify();
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /** The exit status, or undefined while it runs. */
  get status(): ExitStatus | undefined {
    return this.#status;
  }

  /** Everything printed, for failure messages (the last `maxLines` lines). */
  output(maxLines = 60): string {
    const lines = this.lines.slice(-maxLines).map((line) =>
      `${this.name}${line.stream === "stderr" ? " !" : " |"} ${line.text}`
    );
    return lines.join("\n");
  }

  /**
   * Waits for a line matching `pattern`, looking from line index `fromIndex` (default 0: lines
   * already printed count). Rejects after `timeoutMs`, or when the process exits first.
   */
  waitForLine(
    pattern: RegExp,
    timeoutMs: number,
    options: { fromIndex?: number; stream?: "stdout" | "stderr" } = {},
  ): Promise<OutputLine> {
    let next = options.fromIndex ?? 0;
    return new Promise<OutputLine>((resolve, reject) => {
      const check = () => {
        for (; next < this.lines.length; next++) {
          const line = this.lines[next];
          if (options.stream !== undefined && line.stream !== options.stream) continue;
          if (pattern.test(line.text)) return finish(undefined, line);
        }
        if (this.#status !== undefined) {
          finish(
            new Error(
              `${this.name} exited (${
                JSON.stringify(this.#status)
              }) before printing ${pattern}\n${this.output()}`,
            ),
          );
        }
      };
      const timer = setTimeout(
        () =>
          finish(
            new Error(
              `${this.name} printed no line matching ${pattern} in ${timeoutMs} ms\n${this.output()}`,
            ),
          ),
        timeoutMs,
      );
      const finish = (error: Error | undefined, line?: OutputLine) => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        if (error) reject(error);
        else resolve(line!);
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** Sends a signal to the process itself (not its group); false if it is gone. */
  signal(signal: NodeJS.Signals): boolean {
    if (this.#status !== undefined) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stops the process: `signal` first (default SIGKILL), then SIGKILL to its whole group if it
   * has not exited after `graceMs`. Resolves with how it ended.
   */
  async stop(signal: NodeJS.Signals = "SIGKILL", graceMs = 3000): Promise<ExitStatus> {
    if (this.#status !== undefined) return this.#status;
    if (signal === "SIGKILL") killGroup(this.pid, "SIGKILL");
    else this.signal(signal);
    const ended = await Promise.race([this.exited, sleep(graceMs).then(() => undefined)]);
    if (ended !== undefined) return ended;
    killGroup(this.pid, "SIGKILL");
    const killed = await Promise.race([this.exited, sleep(3000).then(() => undefined)]);
    return killed ?? { code: null, signal: "SIGKILL (no exit seen)" };
  }
}

/**
 * Starts a process and reads its output line by line.
 *
 * @example
 * ```ts ignore
 * const child = startProcess({ name: "ls", command: "ls", args: ["-l"] });
 * await child.exited;
 * ```
 */
export function startProcess(options: StartProcessOptions): TestProcess {
  return new TestProcess(options);
}

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  /** Name used in failure messages, e.g. `"n1"`; the runtime is appended. */
  readonly name: string;
  readonly runtime: RuntimeName;
  /** Flags of `mod.ts`. */
  readonly args: readonly string[];
  /** Run it inside this network namespace (`ip netns exec NS …`). */
  readonly netns?: string;
  /** See {@link StartProcessOptions.marker}; default: the value of `--guid` if given. */
  readonly marker?: string;
}

/** A node program started by {@link startNode}. */
export type NodeProcess = TestProcess & { readonly runtime: RuntimeName };

/**
 * Starts `mod.ts` on a runtime (by absolute path, so it works from any directory and inside
 * `ip netns exec`). Throws if the runtime's executable is missing.
 *
 * @example
 * ```ts ignore
 * const node = startNode({ name: "n1", runtime: "deno", args: ["--guid", "N1", "--port", "12000"] });
 * const started = await node.waitForLine(/ started /, 20_000);
 * ```
 */
export function startNode(options: StartNodeOptions): NodeProcess {
  const executable = findRuntime(options.runtime);
  if (executable === undefined) {
    throw new Error(`Cannot start ${options.name}: no ${options.runtime} executable found`);
  }
  const nodeArgs = runArgs(options.runtime, MOD_PATH, options.args);
  const guidIndex = options.args.indexOf("--guid");
  const marker = options.marker ?? (guidIndex >= 0 ? options.args[guidIndex + 1] : undefined);
  const child = startProcess({
    name: `${options.name}(${options.runtime})`,
    command: options.netns === undefined ? executable : "ip",
    args: options.netns === undefined
      ? nodeArgs
      : ["netns", "exec", options.netns, executable, ...nodeArgs],
    marker,
  });
  return Object.assign(child, { runtime: options.runtime });
}

/** Kills every process started by these helpers that is still running (SIGKILL, whole group). */
export async function killAll(): Promise<void> {
  const children = [...running];
  await Promise.all(children.map((child) => child.stop("SIGKILL")));
}

// ---- lines the program prints ----------------------------------------------------------------------

/** The `key=value` fields of a program line such as `12:00:00.000 link-down peer=X reason=Y`. */
export function lineFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of text.matchAll(/(?:^|\s)([a-zA-Z]+)=(\S*)/g)) fields[match[1]] = match[2];
  return fields;
}

/** The event name of a program line (`link-down`, `started`…), or undefined. */
export function lineEvent(text: string): string | undefined {
  return /^\d\d:\d\d:\d\d\.\d{3} (\S+)/.exec(text)?.[1];
}

/**
 * How many milliseconds after `sinceMs` (a `Date.now()` value) the program stamped a line; it
 * stamps lines with UTC `HH:MM:SS.mmm` from the same system clock. Undefined without a stamp.
 */
export function lineDelayMs(text: string, sinceMs: number): number | undefined {
  const match = /^(\d\d):(\d\d):(\d\d)\.(\d{3}) /.exec(text);
  if (!match) return undefined;
  const day = 86_400_000;
  const lineOfDay = ((Number(match[1]) * 60 + Number(match[2])) * 60 + Number(match[3])) * 1000 +
    Number(match[4]);
  let delay = lineOfDay - (sinceMs % day);
  if (delay < -day / 2) delay += day; // across midnight
  if (delay > day / 2) delay -= day;
  return delay;
}

/** What the program's `started` line says. */
export interface StartedInfo {
  readonly guid: string;
  readonly incarnation: string;
  /** `host:port` of the link listener. */
  readonly links: string;
  /** `broadcast:port` of discovery. */
  readonly discovery: string;
  /** The bound HTTP port, or undefined with `--http-port 0`. */
  readonly httpPort: number | undefined;
  readonly runtime: string;
}

/** Waits for a node's `started` line (from line `fromIndex`) and reads it. */
export async function waitForStarted(
  node: TestProcess,
  timeoutMs: number,
  fromIndex = 0,
): Promise<StartedInfo> {
  const line = await node.waitForLine(/^\S+ started /, timeoutMs, { fromIndex, stream: "stdout" });
  const fields = lineFields(line.text);
  const http = /^https?:\/\/[^/]+:(\d+)\//.exec(fields.http ?? "");
  return {
    guid: fields.guid,
    incarnation: fields.incarnation,
    links: fields.links,
    discovery: fields.discovery,
    httpPort: http ? Number(http[1]) : undefined,
    runtime: fields.runtime,
  };
}

// ---- HTTP --------------------------------------------------------------------------------------

/** One link in `/state`. */
export interface StateLink {
  readonly peer: string;
  readonly address: string;
  readonly incarnation: string;
  readonly direction: "in" | "out";
}

/** The parts of `GET /state` the tests read. */
export interface NodeStateJson {
  readonly guid: string;
  readonly incarnation: string;
  readonly address: string;
  readonly state: string;
  readonly links: readonly StateLink[];
  readonly peers: ReadonlyArray<{ guid: string; address: string; linked: boolean }>;
  readonly workers: ReadonlyArray<{ guid: string }>;
  readonly locations: Readonly<Record<string, string>>;
  readonly cluster: {
    nodes: ReadonlyArray<{ guid: string; linked: boolean; self: boolean }>;
    links: ReadonlyArray<readonly [string, string]>;
  };
  readonly info: Readonly<Record<string, unknown>>;
  readonly stats: Readonly<Record<string, number>>;
}

/** A message in `GET /messages`. */
export interface RecentMessageJson {
  readonly destination: string;
  readonly source: string;
  readonly message: Readonly<Record<string, string>>;
  readonly data: string | null;
  readonly fromNode: string | null;
  readonly via: string;
}

/** Fetches `http://127.0.0.1:<port><path>` as JSON, within `timeoutMs`; throws on non-2xx. */
export async function httpJson<T>(
  port: number,
  path: string,
  init: { method?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: init.method ?? "GET",
    headers: init.body === undefined ? undefined : { "content-type": "application/json" },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: AbortSignal.timeout(init.timeoutMs ?? 3000),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`Cannot ${init.method ?? "GET"} ${path}: HTTP ${response.status} ${text}`);
  }
  return JSON.parse(text) as T;
}

/** `GET /state` of the node whose HTTP is on `port` (127.0.0.1). */
export function getState(port: number): Promise<NodeStateJson> {
  return httpJson<NodeStateJson>(port, "/state");
}

/** `GET /state`, or undefined when the node does not answer (yet, or any more). */
export async function tryGetState(port: number): Promise<NodeStateJson | undefined> {
  try {
    return await getState(port);
  } catch {
    return undefined;
  }
}

// ---- waiting -----------------------------------------------------------------------------------

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `predicate` every `intervalMs` until it returns something other than `undefined`,
 * `false`, `null` or `0`, and returns that; throws after `timeoutMs` with `what` and the last
 * value or error seen. A predicate that throws counts as "not yet".
 *
 * @example
 * ```ts ignore
 * const state = await waitFor(() => tryGetState(port), 10_000, { what: "node 1 answers" });
 * ```
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs: number,
  options: { intervalMs?: number; what?: string; describe?: () => string } = {},
): Promise<Exclude<T, undefined | false | null | 0>> {
  const deadline = Date.now() + timeoutMs;
  const intervalMs = options.intervalMs ?? 100;
  let last: unknown;
  for (let attempt = 0;; attempt++) {
    try {
      const value = await predicate();
      if (value !== undefined && value !== false && value !== null && value !== 0) {
        return value as Exclude<T, undefined | false | null | 0>;
      }
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
  const detail = options.describe?.() ??
    (last instanceof Error ? last.message : JSON.stringify(last));
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for ${options.what ?? "a condition"}: ${
      detail ?? "no value"
    }`,
  );
}

/** Runs a command to completion within `timeoutMs`; never throws. */
export function runSync(
  command: string,
  args: readonly string[],
  options: { timeoutMs?: number; input?: string } = {},
): { status: number | null; stdout: string; stderr: string; error?: string } {
  const result = spawnSync(command, [...args], {
    encoding: "utf8",
    timeout: options.timeoutMs ?? 10_000,
    input: options.input,
    env: { ...process.env, NO_COLOR: "1" },
    killSignal: "SIGKILL",
  });
  return {
    status: result.status,
    stdout: result.stdout ?? "",
    stderr: result.stderr ?? "",
    ...(result.error ? { error: result.error.message } : {}),
  };
}

/** Runs a command to completion within `timeoutMs` without blocking the event loop. */
export function runAsync(
  command: string,
  args: readonly string[],
  options: { timeoutMs?: number; input?: string } = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, [...args], {
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8");
    child.stderr!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => (stdout += chunk));
    child.stderr!.on("data", (chunk: string) => (stderr += chunk));
    if (options.input !== undefined) child.stdin!.end(options.input);
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 10_000);
    let settled = false;
    const done = (status: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    };
    child.on("close", (code) => done(code));
    child.on("error", (error) => {
      stderr += error.message;
      done(null);
    });
  });
}

/** Options of {@link startLoopbackCluster}. */
export interface LoopbackClusterOptions {
  /** One node per GUID, each with an echo worker `echo-<guid>-<index>`. */
  readonly guids: readonly string[];
  readonly heartbeatMs?: number;
  /** Ports to use; default {@link randomPorts}. */
  readonly ports?: TestPorts;
  /** More program arguments for node `index` (say `--data-dir`, another `--worker`). */
  readonly extraArgs?: (index: number, guid: string) => readonly string[];
  /** Workers each node hosts, for {@link LoopbackCluster.meshed}. Default 1 (the echo worker). */
  readonly workersPerNode?: number;
}

/** Node programs on loopback, this runtime and the other alternating (when the other is found). */
export interface LoopbackCluster {
  readonly ports: TestPorts;
  readonly nodes: NodeProcess[];
  /** Each node's state-server port, in node order. */
  readonly http: number[];
  /** Starts node `index` (again, or one more) with `guid`; resolves with its HTTP port. */
  start(index: number, guid: string): Promise<{ node: NodeProcess; http: number }>;
  /** The last lines of every node's output, for failure messages. */
  outputs(): string;
  /** Waits until every node links every other and knows every other's worker. */
  meshed(timeoutMs?: number): Promise<void>;
}

/**
 * Starts node programs on loopback and waits for each to say it started.
 *
 * @example
 * ```ts ignore
 * const cluster = await startLoopbackCluster({ guids: ["A", "B", "C"] });
 * await cluster.meshed();
 * ```
 */
export async function startLoopbackCluster(
  options: LoopbackClusterOptions,
): Promise<LoopbackCluster> {
  const ports = options.ports ?? randomPorts();
  const mixed = findRuntime(otherRuntime()) !== undefined;
  const runtimeOf = (i: number): RuntimeName =>
    mixed && i % 2 === 1 ? otherRuntime() : currentRuntime();
  const nodes: NodeProcess[] = [];
  const http: number[] = [];
  const start = async (index: number, guid: string) => {
    const node = startNode({
      name: `${guid}#${index}`,
      runtime: runtimeOf(index),
      args: [
        "--guid",
        guid,
        "--port",
        String(ports.linkPortBase + 10 * index),
        "--http-port",
        String(ports.httpPortBase + 10 * index),
        "--discovery-port",
        String(ports.discoveryPort),
        "--heartbeat-ms",
        String(options.heartbeatMs ?? 300),
        "--worker",
        `echo:echo-${guid}-${index}`,
        ...(options.extraArgs?.(index, guid) ?? []),
      ],
    });
    nodes[index] = node;
    http[index] = (await waitForStarted(node, 20_000)).httpPort!;
    return { node, http: http[index] };
  };
  await Promise.all(options.guids.map((guid, i) => start(i, guid)));
  const outputs = () => nodes.map((n) => n.output(20)).join("\n");
  return {
    ports,
    nodes,
    http,
    start,
    outputs,
    async meshed(timeoutMs = 20_000) {
      const count = options.guids.length;
      const workers = options.workersPerNode ?? 1;
      await waitFor(
        async () => {
          const states = await Promise.all(http.slice(0, count).map((port) => tryGetState(port)));
          return states.every((s) =>
              s?.links.length === count - 1 &&
              Object.keys(s.locations).length === workers * (count - 1)
            )
            ? true
            : undefined;
        },
        timeoutMs,
        { what: `${count} nodes meshed`, describe: outputs },
      );
    },
  };
}
