/**
 * The node program behind `deno run -A mod.ts` and `bun run mod.ts`: parses flags, starts a
 * node on the runtime's platform adapter, serves the state page, prints one line per lifecycle
 * event, and closes links cleanly on Ctrl-C or SIGTERM. Every node hosts the example worker kinds
 * for placement (`--host-kinds`) and can spawn workers anywhere in the cluster (`--spawn`).
 *
 * Everything runtime-specific comes in through a {@link ProgramEnvironment}, so the flag
 * parsing and wiring are tested without sockets.
 *
 * @module
 */
import { AutoMpiNode, type NodeEvents } from "../src/node.ts";
import { createStateApp } from "./http.ts";
import type { CodecName } from "../src/codec.ts";
import type { Platform, Timer } from "../src/platform.ts";
import { placementStrategies, type PlacementStrategyName } from "../src/placement.ts";
import type { Storage } from "../src/storage.ts";
import type { FetchImage } from "../src/workers/camera.ts";
import {
  DEFAULT_CAMERA_URL,
  EXAMPLE_WORKER_KINDS,
  EXAMPLE_WORKER_PARAMETERS,
  exampleWorkerKinds,
  fetchImageOverHttp,
} from "./example_workers.ts";

export {
  DEFAULT_CAMERA_URL,
  type ExampleWorkerEnvironment,
  type ExampleWorkerFactory,
  exampleWorkerKinds,
} from "./example_workers.ts";

/** What the flags say. */
export interface ProgramOptions {
  readonly guid: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly discoveryPort: number;
  readonly broadcast: string | undefined;
  readonly peers: readonly string[];
  readonly httpHost: string;
  readonly httpPort: number;
  readonly codec: CodecName;
  /** Mesh or ring membership (see `NodeOptions.membership`). */
  readonly membership: "mesh" | "ring";
  readonly workers: ReadonlyArray<{ kind: string; guid: string; argument?: string }>;
  readonly token: string | undefined;
  /** The cluster key given on the command line (visible to `ps`: prefer the file). */
  readonly clusterKey: string | undefined;
  /** A file holding the cluster key; read when the program starts. */
  readonly clusterKeyFile: string | undefined;
  readonly heartbeatMs: number;
  readonly silenceIntervals: number;
  readonly json: boolean;
  /** Where the node keeps its workers' durable state; `undefined`: in memory, lost on exit. */
  readonly dataDir: string | undefined;
  /** The store cameras send images to: `--camera-store`, else the first kv worker given. */
  readonly cameraStore: string | undefined;
  /** How often cameras fetch an image. */
  readonly cameraIntervalMs: number;
  /** How long a camera's fetch may take before it is reported as a timeout. */
  readonly cameraTimeoutMs: number | undefined;
  /** The example kinds this node hosts for placement (`--host-kinds`; default all). */
  readonly hostKinds: readonly string[];
  /** The strategy of spawns from this node (`--strategy`; default least-loaded). */
  readonly strategy: PlacementStrategyName;
  /** Workers to spawn once the node has had time to link (`--spawn`), in the order given. */
  readonly spawns: readonly SpawnSpec[];
}

/** One `--spawn KIND:GUID[?k=v&k2=v2]`. */
export interface SpawnSpec {
  readonly kind: string;
  readonly guid: string;
  readonly params: Readonly<Record<string, string>>;
}

/** How many heartbeat intervals after start the `--spawn` workers are spawned. */
export const SPAWN_DELAY_INTERVALS = 2;

/** A flag was wrong; the message says which and how. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The `--help` text. */
export const USAGE = `usage: deno run -A mod.ts [flags]      (or: bun run mod.ts [flags])

Starts an AutoMPI node. With no flags it joins a cluster on loopback: start it twice and the two
nodes find each other. It never broadcasts beyond loopback unless --host says so.

  --guid GUID            node GUID (default: generated)
  --host HOST            address to listen on and advertise (default 127.0.0.1)
  --port N               link port (default 8888; taken -> the next free one)
  --discovery-port N     UDP heartbeat port shared by the cluster (default 9999)
  --broadcast ADDR       heartbeat destination (default: the subnet broadcast of --host;
                         127.255.255.255 on loopback)
  --peers H:P,H:P        static seed addresses to dial, heard or not
  --http-port N          state page port (default 8800; taken -> the next free one; 0 = none)
  --http-host HOST       state page address (default 127.0.0.1)
  --token TOKEN          bearer token for POST /messages, /spawn and /stop (needed when
                         --http-host is not loopback)
  --codec msgpack|json   wire codec (default msgpack)
  --membership mesh|ring how nodes know who is alive (default mesh: everyone heartbeats and
                         links everyone). ring: a cost per node that does not grow with the
                         cluster (UDP on the listen port, links on demand, a worker directory);
                         every node of a cluster must use the same. Not with --codec json or a
                         cluster key
  --cluster-key-file PATH
                         the cluster key: the file's bytes, trailing whitespace and newlines
                         removed. Heartbeats are signed and links need both sides to prove the
                         key, so only nodes with the same key join. Not with --codec json.
  --cluster-key KEY      the same, given inline: other users of this machine can read it
                         with ps, so prefer --cluster-key-file
  --worker KIND:GUID     attach a worker (repeatable). Kinds:
                           template:GUID   the skeleton to copy: logs a tick every 5 s
                           echo:GUID       answers every message to its sender
                           kv:GUID         key-value store: command=set|get|delete, key=K,
                                           value in data (or a value field); get answers
                                           command=getReturn; ack=true answers setReturn
                                           once durable. Kept in --data-dir if given
                           camera:GUID[@URL]
                                           fetches an image from URL every
                                           --camera-interval-ms and sends it to
                                           --camera-store with command=set key=image-<ms>
                                           (URL default ${DEFAULT_CAMERA_URL})
                           scheduler:GUID  sends messages on intervals and at set times;
                                           command=schedule|unschedule|list. Kept in
                                           --data-dir if given
  --host-kinds LIST      the kinds above this node hosts when a worker is spawned anywhere in
                         the cluster: a comma list, all (default) or none (hosts nothing
                         placed, can still spawn elsewhere)
  --strategy NAME        where this node's spawns go: least-loaded (default: the node hosting
                         the fewest placed workers), local (this node if it hosts the kind) or
                         hashed (the same node for the same GUID while that node lives)
  --spawn KIND:GUID[?k=v&k2=v2]
                         spawn a worker of KIND (repeatable) on the node the strategy picks
                         among the linked nodes hosting KIND; if that node is lost, the
                         worker is placed again on a live one. Spawned ${SPAWN_DELAY_INTERVALS} heartbeat
                         intervals after start (2 s by default), time to link to the nodes
                         heard; prints the chosen node, the node it runs on if the cluster
                         placed it already, or why it could not (the node keeps running).
                         Parameters (others default to the hosting node's flags):
                           template intervalMs; echo none; kv maxValueBytes, maxKeyLength;
                           camera url, store, intervalMs, timeoutMs, maxImageBytes,
                           reportTo; scheduler entries (JSON), maxEntries
                         e.g. kv:Store9 or camera:Cam1?url=http://127.0.0.1:8081/a.jpg
  --data-dir DIR         keep the workers' state in DIR (crash-safe; one node per DIR), so a
                         node restarted with the same DIR recovers it (default: in memory)
  --camera-store GUID    where cameras send images (default: the first kv worker given, else
                         Store0001 as the original)
  --camera-interval-ms N time between a camera's fetches (default 2000)
  --camera-timeout-ms N  a fetch slower than this is reported as a timeout (default: the
                         interval)
  --heartbeat-ms N       heartbeat interval (default 1000)
  --silence N            drop a link silent for N heartbeat intervals (default 3)
  --json                 print events as JSON lines
  --demo                 run the simulated demo cluster instead (see --help of the demo)
  --help                 this text
`;

const WORKER_KINDS = new Set(EXAMPLE_WORKER_KINDS);

function isLoopback(host: string): boolean {
  return host.startsWith("127.") || host === "::1" || host === "localhost";
}

const STRATEGY_NAMES = Object.keys(placementStrategies) as PlacementStrategyName[];

function parseHostKinds(text: string): string[] {
  const names = text.split(",").map((name) => name.trim()).filter(Boolean);
  if (names.length === 1 && names[0] === "all") return [...EXAMPLE_WORKER_KINDS];
  if (names.length === 1 && names[0] === "none") return [];
  if (names.length === 0) {
    throw new UsageError("Cannot use --host-kinds: it is empty (give none to host nothing)");
  }
  for (const name of names) {
    if (!WORKER_KINDS.has(name)) {
      throw new UsageError(
        `Cannot use --host-kinds "${text}": "${name}" is not one of ${
          [...WORKER_KINDS].join(", ")
        } (or all, none alone)`,
      );
    }
  }
  return [...new Set(names)];
}

function parseSpawn(spec: string): SpawnSpec {
  const match = /^([a-z]+):([^?]+)(?:\?(.*))?$/.exec(spec);
  if (!match || !WORKER_KINDS.has(match[1])) {
    throw new UsageError(
      `Cannot use --spawn "${spec}": expected KIND:GUID[?k=v&k2=v2] with KIND one of ${
        [...WORKER_KINDS].join(", ")
      }`,
    );
  }
  const [, kind, guid, query] = match;
  if (guid.length > 256) {
    throw new UsageError(`Cannot use --spawn "${spec}": the GUID is over 256 characters`);
  }
  const params: Record<string, string> = {};
  const known = EXAMPLE_WORKER_PARAMETERS[kind];
  for (const [name, value] of new URLSearchParams(query ?? "")) {
    if (!known.includes(name)) {
      throw new UsageError(
        `Cannot use --spawn "${spec}": ${kind} takes no parameter "${name}" (known: ${
          known.join(", ") || "none"
        })`,
      );
    }
    if (name in params) {
      throw new UsageError(`Cannot use --spawn "${spec}": parameter "${name}" is given twice`);
    }
    params[name] = value;
  }
  return { kind, guid, params };
}

function parsePort(text: string | undefined, flag: string, allowZero = false): number {
  const value = Number(text);
  if (!/^\d+$/.test(text ?? "") || value > 65535 || (value === 0 && !allowZero)) {
    throw new UsageError(`Cannot use ${flag} "${text ?? ""}": expected a port number`);
  }
  return value;
}

/** Parses the program's flags; throws {@link UsageError} for anything wrong. */
export function parseProgramArgs(args: readonly string[]): ProgramOptions | "help" {
  const options = {
    guid: undefined as string | undefined,
    host: "127.0.0.1",
    port: 8888,
    discoveryPort: 9999,
    broadcast: undefined as string | undefined,
    peers: [] as string[],
    httpHost: "127.0.0.1",
    httpPort: 8800,
    codec: "msgpack" as CodecName,
    membership: "mesh" as "mesh" | "ring",
    workers: [] as Array<{ kind: string; guid: string; argument?: string }>,
    token: undefined as string | undefined,
    clusterKey: undefined as string | undefined,
    clusterKeyFile: undefined as string | undefined,
    heartbeatMs: 1000,
    silenceIntervals: 3,
    json: false,
    dataDir: undefined as string | undefined,
    cameraStore: undefined as string | undefined,
    cameraIntervalMs: 2000,
    cameraTimeoutMs: undefined as number | undefined,
    hostKinds: [...EXAMPLE_WORKER_KINDS] as string[],
    strategy: "least-loaded" as PlacementStrategyName,
    spawns: [] as SpawnSpec[],
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = () => {
      const next = inline ?? args[++i];
      if (next === undefined) throw new UsageError(`Cannot use ${flag}: it needs a value`);
      return next;
    };
    switch (flag) {
      case "--help":
      case "-h":
        return "help";
      case "--guid":
        options.guid = value();
        if (options.guid === "") throw new UsageError("Cannot use --guid: it is empty");
        break;
      case "--host":
        options.host = value();
        break;
      case "--port":
        options.port = parsePort(value(), flag);
        break;
      case "--discovery-port":
        options.discoveryPort = parsePort(value(), flag);
        break;
      case "--broadcast":
        options.broadcast = value();
        break;
      case "--peers":
        options.peers.push(...value().split(",").map((p) => p.trim()).filter(Boolean));
        break;
      case "--http-port":
        options.httpPort = parsePort(value(), flag, true);
        break;
      case "--http-host":
        options.httpHost = value();
        break;
      case "--token":
        options.token = value();
        break;
      case "--cluster-key":
        options.clusterKey = value();
        if (options.clusterKey === "") {
          throw new UsageError("Cannot use --cluster-key: it is empty");
        }
        break;
      case "--cluster-key-file":
        options.clusterKeyFile = value();
        if (options.clusterKeyFile === "") {
          throw new UsageError("Cannot use --cluster-key-file: the path is empty");
        }
        break;
      case "--membership": {
        const membership = value();
        if (membership !== "mesh" && membership !== "ring") {
          throw new UsageError(`Cannot use --membership "${membership}": expected mesh or ring`);
        }
        options.membership = membership;
        break;
      }
      case "--codec": {
        const codec = value();
        if (codec !== "msgpack" && codec !== "json") {
          throw new UsageError(`Cannot use --codec "${codec}": expected msgpack or json`);
        }
        options.codec = codec;
        break;
      }
      case "--worker": {
        const spec = value();
        const match = /^([a-z]+):([^@]+)(?:@(.+))?$/.exec(spec);
        if (!match || !WORKER_KINDS.has(match[1])) {
          throw new UsageError(
            `Cannot use --worker "${spec}": expected KIND:GUID with KIND one of ${
              [...WORKER_KINDS].join(", ")
            }`,
          );
        }
        if (match[3] !== undefined && match[1] !== "camera") {
          throw new UsageError(
            `Cannot use --worker "${spec}": only a camera takes an @URL`,
          );
        }
        if (match[3] !== undefined && !/^https?:\/\/\S+$/.test(match[3])) {
          throw new UsageError(
            `Cannot use --worker "${spec}": the camera URL must be http:// or https://`,
          );
        }
        if (options.workers.some((w) => w.guid === match[2])) {
          throw new UsageError(`Cannot use --worker "${spec}": GUID ${match[2]} is given twice`);
        }
        options.workers.push({ kind: match[1], guid: match[2], argument: match[3] });
        break;
      }
      case "--host-kinds":
        options.hostKinds = parseHostKinds(value());
        break;
      case "--strategy": {
        const name = value();
        if (!(STRATEGY_NAMES as string[]).includes(name)) {
          throw new UsageError(
            `Cannot use --strategy "${name}": expected ${STRATEGY_NAMES.join(", ")}`,
          );
        }
        options.strategy = name as PlacementStrategyName;
        break;
      }
      case "--spawn": {
        const spec = value();
        const spawn = parseSpawn(spec);
        if (options.spawns.some((s) => s.guid === spawn.guid)) {
          throw new UsageError(`Cannot use --spawn "${spec}": GUID ${spawn.guid} is given twice`);
        }
        options.spawns.push(spawn);
        break;
      }
      case "--data-dir":
        options.dataDir = value();
        if (options.dataDir === "") {
          throw new UsageError("Cannot use --data-dir: the path is empty");
        }
        break;
      case "--camera-store":
        options.cameraStore = value();
        if (options.cameraStore === "") {
          throw new UsageError("Cannot use --camera-store: the GUID is empty");
        }
        break;
      case "--camera-interval-ms":
      case "--camera-timeout-ms": {
        const text = value();
        const ms = Number(text);
        if (!/^\d+$/.test(text) || !(ms >= 10 && ms <= 86_400_000)) {
          throw new UsageError(`Cannot use ${flag} "${text}": expected 10..86400000`);
        }
        if (flag === "--camera-interval-ms") options.cameraIntervalMs = ms;
        else options.cameraTimeoutMs = ms;
        break;
      }
      case "--heartbeat-ms": {
        const ms = Number(value());
        if (!(ms >= 10 && ms <= 600_000)) {
          throw new UsageError("Cannot use --heartbeat-ms: expected 10..600000");
        }
        options.heartbeatMs = ms;
        break;
      }
      case "--silence": {
        const n = Number(value());
        if (!(n >= 1 && n <= 1000)) throw new UsageError("Cannot use --silence: expected 1..1000");
        options.silenceIntervals = n;
        break;
      }
      case "--json":
        options.json = true;
        break;
      default:
        throw new UsageError(`Cannot use "${arg}": unknown flag (see --help)`);
    }
  }
  for (const spawn of options.spawns) {
    if (options.workers.some((w) => w.guid === spawn.guid)) {
      throw new UsageError(
        `Cannot use --spawn ${spawn.kind}:${spawn.guid}: --worker attaches ${spawn.guid} already`,
      );
    }
  }
  if (options.host === "0.0.0.0" || options.host === "::") {
    throw new UsageError("Cannot use --host 0.0.0.0: give the address peers should dial");
  }
  if (options.clusterKey !== undefined && options.clusterKeyFile !== undefined) {
    throw new UsageError("Cannot use --cluster-key and --cluster-key-file together: pick one");
  }
  if (
    options.codec === "json" &&
    (options.clusterKey !== undefined || options.clusterKeyFile !== undefined)
  ) {
    throw new UsageError(
      "Cannot use a cluster key with --codec json: the original protocol cannot carry it",
    );
  }
  if (options.membership === "ring" && options.codec === "json") {
    throw new UsageError(
      "Cannot use --membership ring with --codec json: it needs the native protocol",
    );
  }
  if (
    options.membership === "ring" &&
    (options.clusterKey !== undefined || options.clusterKeyFile !== undefined)
  ) {
    throw new UsageError(
      "Cannot use --membership ring with a cluster key: ring datagrams are not signed yet",
    );
  }
  if (!isLoopback(options.httpHost) && options.token === undefined) {
    throw new UsageError(
      `Cannot serve HTTP on ${options.httpHost} without --token: POST /messages would be open`,
    );
  }
  return options;
}

/** What the program needs from the runtime. */
export interface ProgramEnvironment {
  /** `"deno"`, `"bun"` or `"node"`. */
  readonly runtime: string;
  readonly platform: Platform;
  /** The broadcast address of the subnet `host` is on, or undefined if unknown. */
  subnetBroadcast(host: string): string | undefined;
  /** Serves HTTP; resolves with the bound port or rejects (e.g. address in use). */
  serve(
    fetch: (request: Request) => Response | Promise<Response>,
    host: string,
    port: number,
  ): Promise<{
    port: number;
    close(): Promise<void> | void;
  }>;
  /** Reads a whole file (for `--cluster-key-file`); default: `node:fs`. */
  readFile?(path: string): Promise<Uint8Array>;
  /** Opens the storage of `--data-dir`; default: `openFileStorage` of `file_storage.ts`. */
  openStorage?(dir: string): Promise<Storage>;
  /** How cameras fetch images; default: the runtime's `fetch` ({@link fetchImageOverHttp}). */
  readonly fetchImage?: FetchImage;
  /** Calls `handler` on SIGINT and SIGTERM. */
  onSignal(handler: (signal: string) => void): void;
  /** Writes a line to standard output. */
  print(line: string): void;
  /** Writes a line to standard error. */
  printError(line: string): void;
  exit(code: number): void;
}

/** A running node program. */
export interface RunningProgram {
  readonly node: AutoMpiNode;
  readonly httpPort: number | undefined;
  /** Closes the node and the HTTP server. */
  stop(): Promise<void>;
}

function timestamp(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

const EVENTS: ReadonlyArray<keyof NodeEvents> = [
  "peer-discovered",
  "link-up",
  "link-down",
  "peer-lost",
  "undeliverable",
  "duplicate-guid",
  "protocol-error",
  "worker-attached",
  "worker-detached",
  "worker-placed",
  "spawn-failed",
  "closed",
];

/** Whitespace bytes a key file may end with: space, tab, CR, LF. */
const TRAILING_WHITESPACE = new Set([0x20, 0x09, 0x0d, 0x0a]);

/**
 * The cluster key from the options: the inline text, or the key file's bytes without trailing
 * whitespace (so `echo KEY > file` and `--cluster-key KEY` give the same key).
 */
export async function readClusterKey(
  options: Pick<ProgramOptions, "clusterKey" | "clusterKeyFile">,
  env: Pick<ProgramEnvironment, "readFile">,
): Promise<string | Uint8Array | undefined> {
  if (options.clusterKeyFile === undefined) return options.clusterKey;
  const path = options.clusterKeyFile;
  let bytes: Uint8Array;
  try {
    bytes = env.readFile
      ? await env.readFile(path)
      : new Uint8Array(await (await import("node:fs/promises")).readFile(path));
  } catch (error) {
    throw new UsageError(`Cannot read --cluster-key-file ${path}: ${(error as Error).message}`);
  }
  let end = bytes.length;
  while (end > 0 && TRAILING_WHITESPACE.has(bytes[end - 1])) end--;
  if (end === 0) throw new UsageError(`Cannot use --cluster-key-file ${path}: it holds no key`);
  return bytes.slice(0, end);
}

/** Opens the storage of `--data-dir`; a failure is a {@link UsageError} naming the directory. */
async function openStorage(
  options: Pick<ProgramOptions, "dataDir">,
  env: Pick<ProgramEnvironment, "openStorage">,
): Promise<Storage> {
  const dir = options.dataDir!;
  try {
    if (env.openStorage) return await env.openStorage(dir);
    const { openFileStorage } = await import("./file_storage.ts");
    return await openFileStorage(dir);
  } catch (error) {
    throw new UsageError(`Cannot use --data-dir ${dir}: ${(error as Error).message}`);
  }
}

/** Starts the node program with parsed options in an environment. */
export async function startProgram(
  options: ProgramOptions,
  env: ProgramEnvironment,
): Promise<RunningProgram> {
  const broadcast = options.broadcast ??
    (isLoopback(options.host) ? "127.255.255.255" : env.subnetBroadcast(options.host));
  if (broadcast === undefined) {
    throw new UsageError(
      `Cannot find the subnet broadcast of ${options.host}: pass --broadcast`,
    );
  }
  // Awaited only for a key file: otherwise the node starts in the same turn (the simulator's
  // callers rely on it).
  const clusterKey = options.clusterKeyFile === undefined
    ? options.clusterKey
    : await readClusterKey(options, env);
  // Awaited only with --data-dir, for the same reason.
  const storage = options.dataDir === undefined ? undefined : await openStorage(options, env);
  const kinds = exampleWorkerKinds({
    fetchImage: env.fetchImage ?? fetchImageOverHttp,
    cameraStore: options.cameraStore ??
      options.workers.find((spec) => spec.kind === "kv")?.guid,
    cameraIntervalMs: options.cameraIntervalMs,
  });
  const node = new AutoMpiNode(env.platform, {
    guid: options.guid,
    listen: { host: options.host, port: options.port },
    portSearch: 100,
    discovery: { port: options.discoveryPort, broadcastAddress: broadcast, bindHost: broadcast },
    seeds: options.peers,
    codec: options.codec,
    membership: options.membership,
    heartbeatIntervalMs: options.heartbeatMs,
    silenceIntervals: options.silenceIntervals,
    clusterKey,
    storage,
    placement: {
      kinds: new Map(options.hostKinds.map((kind) => [kind, kinds.get(kind)!])),
      strategy: options.strategy,
    },
  });
  const clock = env.platform.clock;
  const say = (type: string, fields: Record<string, unknown>) => {
    if (options.json) {
      env.print(
        JSON.stringify({ time: new Date(clock.wallNow()).toISOString(), event: type, ...fields }),
      );
    } else {
      const text = Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)
        .join(" ");
      env.print(`${timestamp(clock.wallNow())} ${type.padEnd(15)} ${text}`);
    }
  };
  for (const type of EVENTS) {
    node.on(type, (event) => {
      if (type === "undeliverable") {
        const { message, reason, detail } = event as NodeEvents["undeliverable"];
        say(type, { destination: message.destination, reason, detail });
      } else {
        say(type, event as Record<string, unknown>);
      }
    });
  }
  const started = new Promise<void>((resolve, reject) => {
    node.on("started", () => resolve());
    node.on(
      "closed",
      () =>
        reject(
          new Error(`Cannot start node: could not listen on ${options.host}:${options.port}+`),
        ),
    );
  });
  node.start();
  try {
    await started;
  } catch (error) {
    await storage?.close();
    throw error;
  }
  for (const spec of options.workers) {
    const params: Record<string, string> = {};
    if (spec.kind === "camera") {
      params.url = spec.argument ?? DEFAULT_CAMERA_URL;
      if (options.cameraTimeoutMs !== undefined) {
        params.timeoutMs = String(options.cameraTimeoutMs);
      }
    }
    node.attachWorker(kinds.get(spec.kind)!(spec.guid, params));
  }

  let http: { port: number; close(): Promise<void> | void } | undefined;
  const { app, close: closeApp } = createStateApp(node, {
    clock,
    token: options.token,
    info: { runtime: env.runtime, broadcast, discoveryPort: options.discoveryPort },
  });
  if (options.httpPort !== 0) {
    for (let port = options.httpPort; port < options.httpPort + 100 && http === undefined; port++) {
      try {
        http = await env.serve(app.fetch, options.httpHost, port);
      } catch (error) {
        const code = (error as { code?: string; name?: string }).code ?? (error as Error).name;
        if (code !== "EADDRINUSE" && code !== "AddrInUse") throw error;
      }
    }
    if (http === undefined) {
      throw new Error(
        `Cannot serve HTTP: ports ${options.httpPort}..${options.httpPort + 99} are taken`,
      );
    }
  }
  say("started", {
    guid: node.guid,
    incarnation: node.incarnation,
    links: node.address,
    discovery: `${broadcast}:${options.discoveryPort}`,
    http: http ? `http://${options.httpHost}:${http.port}/` : "off",
    runtime: env.runtime,
    codec: options.codec,
    membership: options.membership,
    key: clusterKey === undefined ? undefined : "set",
    storage: options.dataDir ?? "memory",
  });
  if (options.port !== Number(node.address.split(":").pop())) {
    say("note", { message: `port ${options.port} was taken; links use ${node.address}` });
  }
  // Spawned once the node has heard its peers' heartbeats and linked to them: spawned at once,
  // a worker could only land here, the one node this node knows of.
  let spawnTimer: Timer | undefined;
  if (options.spawns.length > 0) {
    spawnTimer = clock.schedule(SPAWN_DELAY_INTERVALS * options.heartbeatMs, () => {
      spawnTimer = undefined;
      for (const spec of options.spawns) spawnOne(node, spec, options.strategy, say);
    });
  }
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      spawnTimer?.cancel();
      node.close();
      closeApp();
      await http?.close();
      // After the node: its workers are closed, so nothing new is written.
      await storage?.close();
    })();
  return { node, httpPort: http?.port, stop };
}

/** Spawns one `--spawn` worker and prints where it went, or why it did not. */
function spawnOne(
  node: AutoMpiNode,
  spec: SpawnSpec,
  strategy: PlacementStrategyName,
  say: (type: string, fields: Record<string, unknown>) => void,
): void {
  // Another node may have spawned it already (the same flags on every node, or a restart of
  // this one): its table came with the link, and the worker runs where that node put it.
  const placed = node.placement.entry(spec.guid);
  if (placed !== undefined && !placed.removed) {
    say("spawn", { worker: spec.guid, kind: placed.kind, node: placed.host, already: "placed" });
    return;
  }
  try {
    const host = node.spawn(spec.kind, spec.guid, { params: spec.params });
    say("spawn", { worker: spec.guid, kind: spec.kind, node: host, strategy });
  } catch (error) {
    say("spawn-error", {
      worker: spec.guid,
      kind: spec.kind,
      error: (error as Error)?.message ?? String(error),
    });
  }
}

/** Parses flags, starts the program, and wires signals; for `mod.ts` when run as a program. */
export async function runProgram(args: readonly string[], env: ProgramEnvironment): Promise<void> {
  let options: ProgramOptions | "help";
  try {
    options = parseProgramArgs(args);
  } catch (error) {
    env.printError(`${(error as Error).message}`);
    env.exit(2);
    return;
  }
  if (options === "help") {
    env.print(USAGE);
    return;
  }
  let program: RunningProgram;
  try {
    program = await startProgram(options, env);
  } catch (error) {
    env.printError(`${(error as Error).message}`);
    env.exit(error instanceof UsageError ? 2 : 1);
    return;
  }
  let stoppingSinceMs: number | undefined;
  env.onSignal(async (signal) => {
    const now = Date.now();
    if (stoppingSinceMs !== undefined) {
      // A second Ctrl-C forces the exit; a duplicate delivery of the first one is ignored.
      if (now - stoppingSinceMs < 500) return;
      env.printError(`${timestamp(now)} ${"forced exit".padEnd(15)} signal=${signal}`);
      env.exit(130);
      return;
    }
    stoppingSinceMs = now;
    env.print(`${timestamp(now)} ${"stopping".padEnd(15)} signal=${signal}`);
    await program.stop();
    env.exit(0);
  });
}
