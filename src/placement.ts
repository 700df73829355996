/**
 * Placement: spawn a worker of a kind from any node and let the cluster choose where it runs.
 *
 * Nodes register the worker kinds they can host ({@link WorkerFactory} per kind). A spawn
 * chooses a host among the linked nodes that host the kind, with a {@link PlacementStrategy}
 * (least loaded by default; local, hashed, or your own), and records the choice in a table
 * every node keeps a copy of. The host starts the worker; the node's usual worker-location
 * exchange then routes messages to it.
 *
 * How the table stays consistent without a coordinator:
 * - Each entry ({@link PlacedWorker}) has a version. Entries merge by "greater version wins,
 *   then greater host GUID, then removed": every node that has seen the same entries holds the
 *   same table, whatever order it saw them in.
 * - A node that loses its link to a host (silence, reset, goodbye) puts that host on its lost
 *   list. The lowest GUID among a node and its linked peers is responsible for placing again
 *   every worker whose host is lost: it writes the entry with version + 1 and a new host.
 *   If the responsible node dies too, the next lowest sees it lost and takes over.
 * - A partition gives each side its own responsible node, so a worker can be placed on both
 *   sides. When the sides link again they exchange tables, the merge picks one entry, and the
 *   host that lost the merge stops its copy: after a heal every worker runs in exactly one place.
 * - A host that went quiet but is heard from again (its heartbeats arrive) is given until the
 *   silence bound to link again before its workers move: a heal does not churn workers.
 *
 * Workers keep durable state in their node's storage under `workers/<guid>/`; a worker placed
 * again on a node sharing that storage finds it.
 *
 * @module
 */
import type { MapMessage } from "./message.ts";
import type { Clock, Logger, Timer } from "./platform.ts";
import type { Worker } from "./worker.ts";

/** Makes a worker of one kind; `params` are the spawn's parameters, the same on every node. */
export type WorkerFactory = (guid: string, params: Readonly<Record<string, string>>) => Worker;

/** A node a worker may be placed on. */
export interface PlacementCandidate {
  /** The node's GUID. */
  readonly node: string;
  /** How many placed workers it hosts now. */
  readonly load: number;
  /** Whether it is the node making the choice. */
  readonly self: boolean;
}

/** What is being placed. */
export interface PlacementRequest {
  readonly kind: string;
  readonly guid: string;
  readonly params: Readonly<Record<string, string>>;
  /** The node choosing. */
  readonly chooser: string;
  /** Set when the worker is placed again because this host was lost. */
  readonly lostHost?: string;
}

/**
 * Chooses a host: returns the `node` of one of `candidates` (never empty, in a fixed order,
 * every one able to host the kind). Must be deterministic for the simulator's sake: use
 * {@link rendezvousScore} rather than randomness to break ties.
 */
export type PlacementStrategy = (
  request: PlacementRequest,
  candidates: readonly PlacementCandidate[],
) => string;

/** The built-in strategies, by name. */
export type PlacementStrategyName = "least-loaded" | "local" | "hashed";

/** One entry of the placement table. */
export interface PlacedWorker {
  readonly guid: string;
  readonly kind: string;
  readonly params: Readonly<Record<string, string>>;
  /** The node that runs it. */
  readonly host: string;
  /** Raised on every placement; the greater version wins a merge. */
  readonly version: number;
  /** The strategy's name, used again when the worker is placed again ("custom" for a function). */
  readonly strategy: string;
  /** Stopped on purpose: kept as a tombstone so an older entry cannot bring it back. */
  readonly removed: boolean;
}

/** Why a worker was placed. */
export type PlacementReason = "spawn" | "host-lost" | "not-hostable";

/** Events of the placement layer (forwarded as node events). */
export interface PlacementEvents {
  /** This node chose a host for a worker. */
  "worker-placed": {
    worker: string;
    kind: string;
    node: string;
    version: number;
    reason: PlacementReason;
  };
  /** This node was to run a placed worker and could not. */
  "spawn-failed": { worker: string; kind: string; error: string };
}

/** What the placement layer needs from its node. */
export interface PlacementHost {
  readonly guid: string;
  readonly clock: Clock;
  readonly log: Logger;
  /** Sends a message to a node (or `ALLNodes`); false if it could not be handed on. */
  send(message: MapMessage): boolean;
  attachWorker(worker: Worker): void;
  detachWorker(guid: string): boolean;
  hasWorker(guid: string): boolean;
  /** Whether a link to `peer` is up. */
  isLinked(peer: string): boolean;
  /** The peers linked now. */
  linkedPeers(): Iterable<string>;
  /** The node a worker is known to live on. */
  locate(guid: string): string | undefined;
  /** When a heartbeat or frame of `peer` was last heard (clock ms), if it is known. */
  lastHeardMs(peer: string): number | undefined;
  /** How long a link may stay silent before it is dropped. */
  readonly silenceMs: number;
  emit<K extends keyof PlacementEvents>(type: K, event: PlacementEvents[K]): void;
}

/** Options of the placement layer (node option `placement`). */
export interface PlacementOptions {
  /** Kinds this node hosts from the start. */
  readonly kinds?: Readonly<Record<string, WorkerFactory>> | ReadonlyMap<string, WorkerFactory>;
  /** Default strategy of spawns from this node. Default `"least-loaded"`. */
  readonly strategy?: PlacementStrategyName | PlacementStrategy;
  /**
   * Named strategies of your own, usable by name in `spawn`; give every node the same ones, as
   * the node that places a worker again uses the strategy named in its entry.
   */
  readonly strategies?: Readonly<Record<string, PlacementStrategy>>;
  /** Most entries (tombstones included) the table holds. Default 100,000. */
  readonly maxPlacedWorkers?: number;
}

/** Options of one spawn. */
export interface SpawnOptions {
  /** Parameters given to the kind's factory on whichever node runs it. */
  readonly params?: Readonly<Record<string, string>>;
  /** The strategy for this spawn (a built-in or registered name, or a function). */
  readonly strategy?: string | PlacementStrategy;
}

/** One node as the placement layer sees it. */
export interface PlacementMember {
  readonly node: string;
  readonly kinds: readonly string[];
  readonly load: number;
  readonly self: boolean;
}

/** A snapshot of the placement layer for the state page. */
export interface PlacementState {
  readonly kinds: readonly string[];
  readonly members: readonly PlacementMember[];
  readonly lost: readonly string[];
  readonly workers: ReadonlyArray<PlacedWorker & { running: boolean }>;
  readonly stats: Readonly<PlacementStats>;
}

/** Counters of the placement layer. */
export interface PlacementStats {
  spawned: number;
  placedAgain: number;
  started: number;
  stopped: number;
  startFailures: number;
  badUpdates: number;
}

/** The message field value that routes placement traffic (see `SERVICE_FIELD`). */
export const PLACEMENT_SERVICE = "placement";

const MAX_NAME_LENGTH = 256;
const MAX_PARAMS = 64;
const MAX_PARAM_BYTES = 4096;

/**
 * A stable score of placing `worker` on `node` (rendezvous hashing): the node with the highest
 * score wins, and removing a node only moves the workers that were on it.
 *
 * @example
 * ```ts
 * import { rendezvousScore } from "./placement.ts";
 * const score = rendezvousScore("kv-1", "node-a");
 * console.assert(score === rendezvousScore("kv-1", "node-a") && score >= 0 && score < 2 ** 32);
 * ```
 */
export function rendezvousScore(worker: string, node: string): number {
  // FNV-1a over both strings (with a separator), then a murmur3-style finalizer to spread it.
  let hash = 0x811c9dc5;
  for (let i = 0; i < worker.length; i++) {
    hash = Math.imul(hash ^ worker.charCodeAt(i), 0x01000193);
  }
  hash = Math.imul(hash ^ 0x1f, 0x01000193);
  for (let i = 0; i < node.length; i++) {
    hash = Math.imul(hash ^ node.charCodeAt(i), 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

function highestScore(guid: string, candidates: readonly PlacementCandidate[]): string {
  let best = candidates[0].node;
  let bestScore = -1;
  for (const candidate of candidates) {
    const score = rendezvousScore(guid, candidate.node);
    if (score > bestScore || (score === bestScore && candidate.node > best)) {
      best = candidate.node;
      bestScore = score;
    }
  }
  return best;
}

/**
 * The built-in strategies.
 * - `least-loaded`: the candidate hosting the fewest placed workers; ties go to the highest
 *   {@link rendezvousScore}, so concurrent spawns from different nodes spread out.
 * - `local`: the choosing node if it hosts the kind, else least loaded.
 * - `hashed`: the highest rendezvous score: the same worker lands on the same node while that
 *   node lives, whoever spawns it.
 *
 * @example
 * ```ts
 * import { placementStrategies } from "./placement.ts";
 * const request = { kind: "kv", guid: "kv-1", params: {}, chooser: "a" };
 * const candidates = [{ node: "a", load: 3, self: true }, { node: "b", load: 1, self: false }];
 * console.assert(placementStrategies["least-loaded"](request, candidates) === "b");
 * console.assert(placementStrategies.local(request, candidates) === "a");
 * ```
 */
export const placementStrategies: Readonly<Record<PlacementStrategyName, PlacementStrategy>> =
  Object.freeze({
    "least-loaded": (request, candidates) => {
      let least = Infinity;
      for (const candidate of candidates) least = Math.min(least, candidate.load);
      return highestScore(
        request.guid,
        candidates.filter((candidate) => candidate.load === least),
      );
    },
    local: (request, candidates) =>
      candidates.find((candidate) => candidate.self)?.node ??
        placementStrategies["least-loaded"](request, candidates),
    hashed: (request, candidates) => highestScore(request.guid, candidates),
  });

/** Greater version wins, then greater host, then a tombstone: a total order, so merges agree. */
function supersedes(a: PlacedWorker, b: PlacedWorker): boolean {
  if (a.version !== b.version) return a.version > b.version;
  if (a.host !== b.host) return a.host > b.host;
  return a.removed && !b.removed;
}

/** A hash of what makes two copies of an entry the same (FNV-1a, 32 bits). */
function entryHash(record: PlacedWorker): number {
  const text = `${record.guid}\u0000${record.version}\u0000${record.host}\u0000${
    record.removed ? 1 : 0
  }`;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** Every this many ticks a node compares its table's digest with one linked node's. */
const DIGEST_EVERY_TICKS = 3;

/** The placement messages nodes exchange. */
const OPS = new Set(["hello", "update", "kinds", "digest", "sync"]);

function checkName(value: unknown, what: string): string {
  if (typeof value !== "string" || value === "" || value.length > MAX_NAME_LENGTH) {
    throw new TypeError(`${what} must be a string of 1..${MAX_NAME_LENGTH} characters`);
  }
  return value;
}

function checkParams(value: unknown): Readonly<Record<string, string>> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError("params must be an object of strings");
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_PARAMS) throw new RangeError(`params has more than ${MAX_PARAMS} keys`);
  let bytes = 0;
  const params: Record<string, string> = {};
  for (const [key, item] of entries) {
    if (typeof item !== "string") throw new TypeError(`param "${key}" must be a string`);
    bytes += key.length + item.length;
    params[key] = item;
  }
  if (bytes > MAX_PARAM_BYTES) throw new RangeError(`params exceed ${MAX_PARAM_BYTES} characters`);
  return Object.freeze(params);
}

type WireRecord = [string, string, string, number, 0 | 1, string, Record<string, string>];

function toWire(record: PlacedWorker): WireRecord {
  return [
    record.guid,
    record.kind,
    record.host,
    record.version,
    record.removed ? 1 : 0,
    record.strategy,
    record.params as Record<string, string>,
  ];
}

function fromWire(value: unknown): PlacedWorker {
  if (!Array.isArray(value) || value.length !== 7) throw new TypeError("an entry is malformed");
  const [guid, kind, host, version, removed, strategy, params] = value;
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new TypeError("an entry's version is not a positive integer");
  }
  if (removed !== 0 && removed !== 1) throw new TypeError("an entry's removed flag is not 0/1");
  return {
    guid: checkName(guid, "an entry's guid"),
    kind: checkName(kind, "an entry's kind"),
    host: checkName(host, "an entry's host"),
    version,
    removed: removed === 1,
    strategy: checkName(strategy, "an entry's strategy"),
    params: checkParams(params),
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The placement layer of one node. Nodes create it themselves (node option `placement`, and
 * {@link AutoMpiNode.spawn}); it is exported for its types and for tests.
 */
export class Placement {
  readonly #host: PlacementHost;
  readonly #factories = new Map<string, WorkerFactory>();
  readonly #strategy: string | PlacementStrategy;
  readonly #strategies: Readonly<Record<string, PlacementStrategy>>;
  readonly #maxRecords: number;
  readonly #records = new Map<string, PlacedWorker>();
  /** XOR of every entry's hash: equal tables have equal digests. */
  #digest = 0;
  #ticks = 0;
  /** Round-robin position among the linked nodes for the next digest. */
  #digestTurn = 0;
  /** Linked peers that said which kinds they host. */
  readonly #members = new Map<string, ReadonlySet<string>>();
  /** Peers whose link dropped, with when: their workers are placed again. */
  readonly #lost = new Map<string, number>();
  /** Placed workers hosted here, and the ones that failed to start (not retried). */
  readonly #running = new Set<string>();
  readonly #failed = new Map<string, number>();
  /** The placed (not removed) workers of each host. */
  readonly #byHost = new Map<string, Set<string>>();
  /** Workers whose entry changed in a way that may start or stop one here. */
  readonly #touched = new Set<string>();
  readonly #outbox = new Map<string, PlacedWorker>();
  #flushQueued = false;
  /** Linked peers that may have missed something we sent: they get the whole table again. */
  readonly #resend = new Set<string>();
  #recheck: Timer | undefined;
  #reconciling = false;
  #closed = false;
  readonly #stats: PlacementStats = {
    spawned: 0,
    placedAgain: 0,
    started: 0,
    stopped: 0,
    startFailures: 0,
    badUpdates: 0,
  };

  constructor(host: PlacementHost, options: PlacementOptions = {}) {
    this.#host = host;
    const strategies = options.strategies ?? {};
    for (const [name, strategy] of Object.entries(strategies)) {
      if (typeof strategy !== "function") {
        throw new TypeError(`Cannot create placement: strategy "${name}" is not a function`);
      }
    }
    this.#strategies = { ...strategies, ...placementStrategies };
    const strategy = options.strategy ?? "least-loaded";
    if (typeof strategy !== "function" && !(strategy in this.#strategies)) {
      throw new TypeError(`Cannot create placement: unknown strategy "${strategy}"`);
    }
    this.#strategy = strategy;
    const max = options.maxPlacedWorkers ?? 100_000;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError(`Cannot create placement: maxPlacedWorkers ${max} is not positive`);
    }
    this.#maxRecords = max;
    const kinds = options.kinds ?? {};
    const entries = kinds instanceof Map
      ? [...kinds.entries()]
      : Object.entries(kinds as Record<string, WorkerFactory>);
    for (const [kind, factory] of entries) this.#register(kind, factory);
  }

  /** The kinds this node hosts. */
  /** Whether this node has anything to tell a new peer: kinds it hosts, or placed workers. */
  get active(): boolean {
    return this.#factories.size > 0 || this.#records.size > 0;
  }

  get kinds(): string[] {
    return [...this.#factories.keys()];
  }

  /** Registers a kind this node can host, and tells linked nodes. */
  registerKind(kind: string, factory: WorkerFactory): void {
    this.#register(kind, factory);
    this.#broadcast({ op: "kinds", kinds: this.kinds });
    this.#reconcile();
  }

  /**
   * Places a worker of `kind` on a node chosen by the strategy and returns that node's GUID.
   * Throws if the GUID is already placed and not removed, or if no linked node (this one
   * included) hosts the kind.
   */
  spawn(kind: string, guid: string, options: SpawnOptions = {}): string {
    checkName(kind, "Cannot spawn: kind");
    checkName(guid, "Cannot spawn: guid");
    if (this.#closed) throw new Error(`Cannot spawn "${guid}": the node is closed`);
    let params: Readonly<Record<string, string>>;
    try {
      params = checkParams(options.params);
    } catch (error) {
      throw new TypeError(`Cannot spawn "${guid}": ${(error as Error).message}`);
    }
    const existing = this.#records.get(guid);
    if (existing !== undefined && !existing.removed) {
      throw new Error(`Cannot spawn "${guid}": it is already placed on node ${existing.host}`);
    }
    if (existing === undefined && this.#records.size >= this.#maxRecords) {
      throw new RangeError(`Cannot spawn "${guid}": the table holds ${this.#maxRecords} entries`);
    }
    const strategy = options.strategy ?? this.#strategy;
    const strategyName = typeof strategy === "function" ? "custom" : strategy;
    if (typeof strategy !== "function" && !(strategy in this.#strategies)) {
      throw new TypeError(`Cannot spawn "${guid}": unknown strategy "${strategy}"`);
    }
    const host = this.#choose(
      { kind, guid, params, chooser: this.#host.guid },
      typeof strategy === "function" ? strategy : this.#strategies[strategy],
      undefined,
    );
    if (host === undefined) {
      throw new Error(`Cannot spawn "${guid}": no linked node hosts kind "${kind}"`);
    }
    const record: PlacedWorker = {
      guid,
      kind,
      params,
      host,
      version: (existing?.version ?? 0) + 1,
      strategy: strategyName,
      removed: false,
    };
    this.#stats.spawned++;
    this.#adopt(record);
    this.#host.emit("worker-placed", {
      worker: guid,
      kind,
      node: host,
      version: record.version,
      reason: "spawn",
    });
    this.#reconcile();
    return host;
  }

  /** Stops a placed worker wherever it runs; returns whether it was placed. */
  stop(guid: string): boolean {
    const record = this.#records.get(guid);
    if (record === undefined || record.removed) return false;
    this.#adopt({ ...record, version: record.version + 1, removed: true });
    this.#reconcile();
    return true;
  }

  /** The node a placed worker runs on, if it is placed. */
  where(guid: string): string | undefined {
    const record = this.#records.get(guid);
    return record === undefined || record.removed ? undefined : record.host;
  }

  /** The entry of a placed worker (tombstones included). */
  entry(guid: string): PlacedWorker | undefined {
    return this.#records.get(guid);
  }

  /** Every placed worker (no tombstones), in the order they were first seen. */
  placed(): PlacedWorker[] {
    return [...this.#records.values()].filter((record) => !record.removed);
  }

  /** Placed workers per node, for the nodes this one is linked to and itself. */
  load(): Map<string, number> {
    const load = new Map<string, number>([[this.#host.guid, this.#loadOf(this.#host.guid)]]);
    for (const node of this.#members.keys()) load.set(node, this.#loadOf(node));
    return load;
  }

  /** Whether this node runs the placed worker `guid`. */
  runs(guid: string): boolean {
    return this.#running.has(guid);
  }

  /** A snapshot for the state page. */
  state(): PlacementState {
    const members: PlacementMember[] = [{
      node: this.#host.guid,
      kinds: this.kinds,
      load: this.#loadOf(this.#host.guid),
      self: true,
    }];
    for (const [node, kinds] of this.#members) {
      members.push({ node, kinds: [...kinds], load: this.#loadOf(node), self: false });
    }
    return {
      kinds: this.kinds,
      members,
      lost: [...this.#lost.keys()],
      workers: this.placed().map((record) => ({
        ...record,
        running: record.host === this.#host.guid
          ? this.#running.has(record.guid)
          : this.#host.locate(record.guid) === record.host,
      })),
      stats: { ...this.#stats },
    };
  }

  /** The node linked to `peer`: tell it which kinds this node hosts and the whole table. */
  linkUp(peer: string): void {
    if (this.#closed) return;
    if (this.#lost.delete(peer)) this.#scheduleRecheck();
    const records: WireRecord[] = [];
    for (const record of this.#records.values()) records.push(toWire(record));
    this.#sendTo(peer, { op: "hello", kinds: this.kinds, records });
    // Both sides say hello when a link comes up, but a link can come back on one side only (a
    // replaced connection): a peer still silent a while later is asked to say hello.
    if (!this.#members.has(peer)) {
      this.#host.clock.schedule(this.#host.silenceMs / 2, () => {
        if (!this.#closed && this.#host.isLinked(peer) && !this.#members.has(peer)) {
          this.#sendTo(peer, { op: "kinds", kinds: this.kinds, ask: 1 });
        }
      });
    }
  }

  /**
   * A placement message to `peer` was not (or may not have been) delivered, say because the
   * link it travelled on was replaced: if `peer` is still linked, it gets the whole table again.
   */
  undelivered(peer: string, reason: string): void {
    if (this.#closed || !this.#host.isLinked(peer) || this.#resend.has(peer)) return;
    // A replaced link (or a peer that restarted before confirming) is resent to at once; a full
    // link buffer is given time to drain (resending at once would only fill it again). Anything
    // else (no link, too large) has no cure here.
    let delayMs: number;
    if (reason === "link-lost" || reason === "uncertain") delayMs = 0;
    else if (reason === "link-buffer-full") delayMs = this.#host.silenceMs / 2;
    else return;
    this.#resend.add(peer);
    this.#host.clock.schedule(delayMs, () => {
      this.#resend.delete(peer);
      if (!this.#closed && this.#host.isLinked(peer)) this.linkUp(peer);
    });
  }

  /** The link to `peer` dropped: its workers are placed again (by the responsible node). */
  linkDown(peer: string): void {
    if (this.#closed) return;
    const wasMember = this.#members.delete(peer);
    if (wasMember || this.#hostsAny(peer)) this.#lost.set(peer, this.#host.clock.now());
    this.#tellResponsible(peer);
    this.#reconcile();
  }

  /**
   * The entries this node has for the lost `peer`'s workers go to the node responsible for
   * placing them again. It may not have them: the lost node can die right after telling only
   * some nodes of a change (say, that it took a worker over), and the others never hear of it.
   */
  #tellResponsible(peer: string): void {
    const hosted = this.#byHost.get(peer);
    if (hosted === undefined || hosted.size === 0) return;
    const self = this.#host.guid;
    let responsible = self;
    for (const node of this.#members.keys()) if (node < responsible) responsible = node;
    if (responsible === self) return;
    const records: WireRecord[] = [];
    for (const guid of hosted) {
      const record = this.#records.get(guid);
      if (record !== undefined) records.push(toWire(record));
    }
    this.#sendTo(responsible, { op: "update", records });
  }

  /** A placement message from a peer (or this node's own broadcast, ignored). */
  receive(message: MapMessage, fromNode: string | undefined): void {
    if (this.#closed || fromNode === undefined || fromNode === this.#host.guid) return;
    let body: { op?: unknown; kinds?: unknown; records?: unknown; ask?: unknown };
    let records: PlacedWorker[] = [];
    let kinds: string[] | undefined;
    try {
      if (message.data === undefined) throw new TypeError("it has no data");
      body = JSON.parse(decoder.decode(message.data));
      if (body === null || typeof body !== "object") throw new TypeError("it is not an object");
      if (body.kinds !== undefined) {
        if (!Array.isArray(body.kinds) || body.kinds.length > 1000) {
          throw new TypeError("kinds is not a list of at most 1000 names");
        }
        kinds = body.kinds.map((kind) => checkName(kind, "a kind"));
      }
      if (body.records !== undefined) {
        if (!Array.isArray(body.records)) throw new TypeError("records is not a list");
        records = body.records.map(fromWire);
      }
      if (!OPS.has(body.op as string)) {
        throw new TypeError(`unknown op ${JSON.stringify(body.op)}`);
      }
      if (body.op === "digest" && !Number.isSafeInteger((body as { digest?: unknown }).digest)) {
        throw new TypeError("digest is not an integer");
      }
    } catch (error) {
      this.#stats.badUpdates++;
      this.#host.log.log("warn", "placement.bad-update", {
        from: fromNode,
        error: `Cannot apply placement update: ${(error as Error).message}`,
      });
      return;
    }
    if (kinds !== undefined) {
      this.#members.set(fromNode, new Set(kinds));
      this.#lost.delete(fromNode);
    }
    if (body.ask === 1) this.#sendTo(fromNode, { op: "kinds", kinds: this.kinds });
    if (body.op === "digest") {
      // Tables differ: send ours whole, and the peer answers with its own if still needed.
      if ((body as { digest: number }).digest !== this.#digest) {
        this.#sendTo(fromNode, { op: "sync", records: this.#wireTable(), digest: this.#digest });
      }
      return;
    }
    const repaired: PlacedWorker[] = [];
    for (const record of records) if (this.#merge(record)) repaired.push(record);
    if (body.op === "sync") {
      // An entry a sync brought was missed by this node; maybe by others too (a writer can die
      // mid-broadcast): pass the repairs on, and answer with our table if the peer lacks some.
      for (const record of repaired) this.#send(record);
      if ((body as { digest?: unknown }).digest !== this.#digest && body.ask !== 0) {
        this.#sendTo(fromNode, { op: "sync", records: this.#wireTable(), ask: 0 });
      }
    }
    this.#reconcile();
  }

  /**
   * How many of the next ticks have nothing to do if no placement message comes before them:
   * those before the next digest while there are members to send it to, else all.
   */
  quietTicks(): number {
    if (this.#closed || this.#members.size === 0) return Infinity;
    return DIGEST_EVERY_TICKS - 1 - (this.#ticks % DIGEST_EVERY_TICKS);
  }

  /** Counts `ticks` ticks that had nothing to do (see {@link quietTicks}), as if each was called. */
  skipTicks(ticks: number): void {
    if (!this.#closed) this.#ticks += ticks;
  }

  /**
   * Called every heartbeat: every few, the table's digest goes to one linked node in turn, so
   * tables that drifted apart (a change whose writer died before everyone had it) meet again.
   */
  tick(): void {
    if (this.#closed || ++this.#ticks % DIGEST_EVERY_TICKS !== 0 || this.#members.size === 0) {
      return;
    }
    const members = [...this.#members.keys()].filter((peer) => this.#host.isLinked(peer));
    if (members.length === 0) return;
    const peer = members[this.#digestTurn++ % members.length];
    this.#sendTo(peer, { op: "digest", digest: this.#digest });
  }

  #wireTable(): WireRecord[] {
    const records: WireRecord[] = [];
    for (const record of this.#records.values()) records.push(toWire(record));
    return records;
  }

  /** Stops the workers this node runs for the table; the table itself stays with the others. */
  close(): void {
    this.#closed = true;
    this.#recheck?.cancel();
    this.#running.clear();
  }

  #register(kind: string, factory: WorkerFactory): void {
    checkName(kind, "Cannot register kind: kind");
    if (typeof factory !== "function") {
      throw new TypeError(`Cannot register kind "${kind}": the factory is not a function`);
    }
    if (this.#factories.has(kind)) {
      throw new Error(`Cannot register kind "${kind}": it is already registered`);
    }
    this.#factories.set(kind, factory);
  }

  #loadOf(node: string): number {
    return this.#byHost.get(node)?.size ?? 0;
  }

  #hostsAny(node: string): boolean {
    return this.#loadOf(node) > 0;
  }

  /** Replaces a worker's entry, keeping the per-host index and the to-check set right. */
  #put(record: PlacedWorker, previous: PlacedWorker | undefined): void {
    const self = this.#host.guid;
    if (previous !== undefined && !previous.removed) {
      const set = this.#byHost.get(previous.host);
      set?.delete(previous.guid);
      if (set?.size === 0) this.#byHost.delete(previous.host);
    }
    if (!record.removed) {
      let set = this.#byHost.get(record.host);
      if (set === undefined) this.#byHost.set(record.host, set = new Set());
      set.add(record.guid);
    }
    this.#records.set(record.guid, record);
    if (previous !== undefined) this.#digest ^= entryHash(previous);
    this.#digest = (this.#digest ^ entryHash(record)) >>> 0;
    this.#failed.delete(record.guid);
    if (record.host === self || previous?.host === self || this.#running.has(record.guid)) {
      this.#touched.add(record.guid);
    }
  }

  /** Takes a record this node wrote: into the table and out to every linked node. */
  #adopt(record: PlacedWorker): void {
    this.#put(record, this.#records.get(record.guid));
    this.#send(record);
  }

  /** Queues a record for every linked node. */
  #send(record: PlacedWorker): void {
    this.#outbox.set(record.guid, record);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      // Spawns of one turn travel together: one frame per link instead of one per spawn.
      this.#host.clock.defer(() => this.#flush());
    }
  }

  /** Takes a peer's entry if it is new or supersedes ours; returns whether it did. */
  #merge(record: PlacedWorker): boolean {
    const current = this.#records.get(record.guid);
    if (current === undefined) {
      if (this.#records.size >= this.#maxRecords) {
        this.#stats.badUpdates++;
        this.#host.log.log("warn", "placement.table-full", {
          worker: record.guid,
          error: `Cannot take placement entry: the table holds ${this.#maxRecords} entries`,
        });
        return false;
      }
    } else if (!supersedes(record, current)) {
      return false;
    }
    this.#put(record, current);
    return true;
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#outbox.size === 0 || this.#closed) return;
    const records: WireRecord[] = [];
    for (const record of this.#outbox.values()) records.push(toWire(record));
    this.#outbox.clear();
    this.#broadcast({ op: "update", records });
  }

  #broadcast(body: Record<string, unknown>): void {
    // Every linked peer, member yet or not: one whose hello is still on its way has had our
    // table already (our hello) and must not miss what changed since.
    for (const node of this.#host.linkedPeers()) this.#sendTo(node, body);
  }

  #sendTo(node: string, body: Record<string, unknown>): void {
    this.#host.send({
      destination: node,
      source: this.#host.guid,
      message: { "automp.service": PLACEMENT_SERVICE, op: String(body.op) },
      data: encoder.encode(JSON.stringify(body)),
    });
  }

  /** The linked nodes (and this one) that host `kind`, minus `exclude`, in GUID order. */
  #candidates(kind: string, exclude: string | undefined): PlacementCandidate[] {
    const candidates: PlacementCandidate[] = [];
    const self = this.#host.guid;
    if (this.#factories.has(kind) && self !== exclude) {
      candidates.push({ node: self, load: this.#loadOf(self), self: true });
    }
    for (const [node, kinds] of this.#members) {
      if (node !== exclude && kinds.has(kind)) {
        candidates.push({ node, load: this.#loadOf(node), self: false });
      }
    }
    return candidates.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  #choose(
    request: PlacementRequest,
    strategy: PlacementStrategy,
    exclude: string | undefined,
  ): string | undefined {
    const candidates = this.#candidates(request.kind, exclude);
    if (candidates.length === 0) return undefined;
    let chosen: unknown;
    try {
      chosen = strategy(request, candidates);
    } catch (error) {
      this.#host.log.log("error", "placement.strategy-error", {
        worker: request.guid,
        error: String(error),
      });
    }
    if (!candidates.some((candidate) => candidate.node === chosen)) {
      this.#host.log.log("warn", "placement.strategy-invalid", {
        worker: request.guid,
        chosen: String(chosen),
      });
      chosen = placementStrategies["least-loaded"](request, candidates);
    }
    return chosen as string;
  }

  #strategyFor(record: PlacedWorker): PlacementStrategy {
    const named = this.#strategies[record.strategy];
    if (named !== undefined) return named;
    return typeof this.#strategy === "function" ? this.#strategy : this.#strategies[this.#strategy];
  }

  /** The lowest GUID among this node and its linked members places lost hosts' workers. */
  #responsible(): boolean {
    const self = this.#host.guid;
    for (const node of this.#members.keys()) if (node < self) return false;
    return true;
  }

  /**
   * A lost host heard from since we lost it is probably coming back (a heal): give it until
   * the silence bound to link again before its workers move.
   */
  #comingBack(node: string, lostAtMs: number): boolean {
    const heard = this.#host.lastHeardMs(node);
    return heard !== undefined && heard > lostAtMs &&
      this.#host.clock.now() - lostAtMs < this.#host.silenceMs;
  }

  #scheduleRecheck(): void {
    this.#recheck?.cancel();
    this.#recheck = undefined;
    if (this.#lost.size === 0 || this.#closed) return;
    this.#recheck = this.#host.clock.schedule(this.#host.silenceMs / 2, () => {
      this.#recheck = undefined;
      this.#reconcile();
    });
  }

  #reconcile(): void {
    if (this.#closed || this.#reconciling) return;
    this.#reconciling = true;
    try {
      this.#forgetLost();
      this.#placeAgain();
      this.#startAndStop();
    } finally {
      this.#reconciling = false;
    }
  }

  /** A lost node that hosts nothing any more is forgotten after ten silence bounds. */
  #forgetLost(): void {
    const now = this.#host.clock.now();
    for (const [node, lostAtMs] of this.#lost) {
      if (now - lostAtMs > 10 * this.#host.silenceMs && !this.#hostsAny(node)) {
        this.#lost.delete(node);
      }
    }
  }

  #placeAgain(): void {
    if (this.#lost.size === 0 || !this.#responsible()) return;
    let waiting = false;
    for (const [node, lostAtMs] of this.#lost) {
      const hosted = this.#byHost.get(node);
      if (hosted === undefined) continue;
      if (this.#comingBack(node, lostAtMs)) {
        waiting = true;
        continue;
      }
      for (const guid of [...hosted]) this.#moveAway(this.#records.get(guid)!, "host-lost");
    }
    if (waiting) this.#scheduleRecheck();
  }

  #moveAway(record: PlacedWorker, reason: PlacementReason): void {
    const host = this.#choose(
      {
        kind: record.kind,
        guid: record.guid,
        params: record.params,
        chooser: this.#host.guid,
        lostHost: record.host,
      },
      this.#strategyFor(record),
      record.host,
    );
    if (host === undefined) {
      this.#host.log.log("warn", "placement.no-host", {
        worker: record.guid,
        kind: record.kind,
        error: `Cannot place "${record.guid}" again: no linked node hosts kind "${record.kind}"`,
      });
      return;
    }
    this.#stats.placedAgain++;
    const moved = { ...record, host, version: record.version + 1 };
    this.#adopt(moved);
    this.#host.log.log("info", "placement.placed-again", {
      worker: record.guid,
      from: record.host,
      to: host,
      reason,
    });
    this.#host.emit("worker-placed", {
      worker: record.guid,
      kind: record.kind,
      node: host,
      version: moved.version,
      reason,
    });
  }

  #startAndStop(): void {
    const self = this.#host.guid;
    if (this.#touched.size === 0) return;
    const touched = [...this.#touched];
    this.#touched.clear();
    for (const guid of touched) {
      if (!this.#running.has(guid)) continue;
      const record = this.#records.get(guid);
      if (record === undefined || record.removed || record.host !== self) {
        this.#running.delete(guid);
        this.#stats.stopped++;
        this.#host.detachWorker(guid);
        this.#host.log.log("info", "placement.stopped", {
          worker: guid,
          reason: record === undefined || record.removed ? "removed" : `moved to ${record.host}`,
        });
      }
    }
    for (const guid of touched) {
      const record = this.#records.get(guid);
      if (record === undefined || record.removed || record.host !== self) continue;
      if (this.#running.has(guid)) continue;
      if (this.#failed.get(record.guid) === record.version) continue;
      const factory = this.#factories.get(record.kind);
      if (factory === undefined) {
        // Placed here by a node that thought we host the kind: let someone who does take it.
        this.#moveAway(record, "not-hostable");
        continue;
      }
      try {
        if (this.#host.hasWorker(record.guid)) {
          throw new Error(`a worker with GUID "${record.guid}" is already attached here`);
        }
        this.#host.attachWorker(factory(record.guid, record.params));
        this.#running.add(record.guid);
        this.#stats.started++;
      } catch (error) {
        this.#failed.set(record.guid, record.version);
        this.#stats.startFailures++;
        const text = `Cannot start placed worker "${record.guid}" of kind "${record.kind}": ${
          (error as Error)?.message ?? String(error)
        }`;
        this.#host.log.log("error", "placement.start-failed", { worker: record.guid, error: text });
        this.#host.emit("spawn-failed", { worker: record.guid, kind: record.kind, error: text });
      }
    }
  }
}
