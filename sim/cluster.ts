/**
 * Simulated clusters of real nodes, for testing your own workers: N nodes of `src/` on one or
 * several simulated subnets, your workers attached by a setup callback that runs on every
 * (re)start, fault verbs by node index or GUID, a message history with ready checkers, your own
 * invariants, and `settle()` to heal everything and check it all.
 *
 * @example
 * ```ts
 * import { SimCluster } from "./cluster.ts";
 * import { EchoWorker } from "../src/worker.ts";
 *
 * const cluster = new SimCluster({
 *   nodes: 5,
 *   seed: 42,
 *   setup: ({ node, index }) => node.attachWorker(new EchoWorker(`echo${index}`)),
 * });
 * cluster.settle(); // every node linked to every other and knowing every worker
 * const client = cluster.client(0);
 * cluster.partition([0, 1], [2, 3, 4]);
 * client.send("echo3", { hello: "across" }); // reported undeliverable: no link
 * cluster.run(1000);
 * cluster.settle(); // heals, converges, checks the history: nothing lost silently
 * client.send("echo3", { hello: "again" });
 * cluster.run(100);
 * if (!(client.received.at(-1)?.source === "echo3")) throw new Error("example failed");
 * ```
 *
 * @module
 */
import { AutoMpiNode, type NodeOptions } from "../src/node.ts";
import { createMessage, type MapMessage } from "../src/message.ts";
import { WorkerBase } from "../src/worker.ts";
import { type ClockSkew, type SimHost, Simulation, type SimulationOptions } from "./simulation.ts";
import { runAsync, SimDisk } from "./storage.ts";
import { DEFAULT_CHECKS, History, type HistoryCheck } from "./history.ts";

/**
 * A worker that records what it receives, for checks.
 *
 * @example
 * ```ts
 * import { RecordingWorker, SimCluster } from "./cluster.ts";
 * const cluster = new SimCluster({ nodes: 2, seed: 1 });
 * const inbox = new RecordingWorker("inbox");
 * cluster.node(1)!.attachWorker(inbox);
 * cluster.settle();
 * cluster.send(0, { destination: "inbox", message: { hello: "there" } });
 * cluster.run(50);
 * if (inbox.received[0]?.message.hello !== "there") throw new Error("not received");
 * ```
 */
export class RecordingWorker extends WorkerBase {
  /** Every message handled, in order. */
  readonly received: MapMessage[] = [];

  protected override onMessage(message: MapMessage): void {
    this.received.push(message);
  }
}

/** A node of a cluster: its index (creation order) or its GUID. */
export type NodeRef = number | string;
/** One node or several. */
export type NodeRefs = NodeRef | readonly NodeRef[];

/** What a setup callback gets, on each start of each node. */
export interface NodeContext {
  /** The node, started. */
  readonly node: AutoMpiNode;
  readonly index: number;
  readonly guid: string;
  readonly host: SimHost<AutoMpiNode>;
  /** The node's disk: what was durable survives crashes and restarts. */
  readonly disk: SimDisk;
  /** 1 on the first start, 2 after the first restart, and so on. */
  readonly start: number;
  readonly cluster: SimCluster;
}

/** What a node-options callback gets, before each start of each node. */
export interface NodeOptionsContext {
  readonly index: number;
  readonly guid: string;
  readonly host: SimHost<AutoMpiNode>;
  readonly disk: SimDisk;
  readonly sim: Simulation;
}

/**
 * A check of your own over the whole cluster (say, a model of your store): return (or throw)
 * what is wrong; `undefined`, `true`, an empty string or an empty list when all is well.
 */
export type Invariant = (cluster: SimCluster) => string | readonly string[] | boolean | void;

/** Options of {@link SimCluster}; the simulation's own (seed, latency, loss…) apply too. */
export interface SimClusterOptions extends SimulationOptions {
  /** How many nodes: 1..20000. */
  readonly nodes: number;
  /**
   * Spread the nodes round-robin over this many /16 subnets (`10.<s>.0.0/16`). Broadcast
   * discovery stays inside a subnet; every node gets the first node of every other subnet as a
   * seed. Default 1.
   */
  readonly subnets?: number;
  /** Node options for every node (guid, listen and discovery are set per node). */
  readonly node?: Partial<NodeOptions>;
  /** Further node options per node, before each start (kinds to host, storage…). */
  readonly nodeOptions?: (context: NodeOptionsContext) => Partial<NodeOptions>;
  /** Runs after each start of each node: attach your workers here. */
  readonly setup?: (context: NodeContext) => void;
  /** GUID of node `index`; default `N` + index padded to 4 digits. */
  readonly guidOf?: (index: number) => string;
  /** Attach one {@link RecordingWorker} per node (GUID {@link workerGuid}). Default false. */
  readonly workers?: boolean;
  /**
   * History checks run by {@link SimCluster.settle} and {@link SimCluster.check}; default
   * {@link DEFAULT_CHECKS}. `false` for none.
   */
  readonly checks?: Readonly<Record<string, HistoryCheck>> | false;
  /** Your invariants, checked at each settle and check; more with {@link SimCluster.invariant}. */
  readonly invariants?: Readonly<Record<string, Invariant>>;
  /** Keep a message history (needed by the checks). Default true. */
  readonly history?: boolean;
}

/** One stretch of running: `ms` virtual ms, or until `until` holds (the step's result). */
export interface RunStep {
  readonly ms: number;
  readonly until?: () => boolean;
}

/** Options of {@link SimCluster.settle}. */
export interface SettleOptions {
  /** The longest wait for convergence, in virtual ms. Default 30,000. */
  readonly maxMs?: number;
  /** Then run this much longer (in-flight messages land, reports come in). Default 1,000. */
  readonly quietMs?: number;
  /** Throw a {@link SimCheckError} on a violation (default), or only return them. */
  readonly throwOnViolation?: boolean;
}

/** What a settle found. */
export interface SettleReport {
  readonly converged: boolean;
  /** Virtual time when it converged (or gave up). */
  readonly atMs: number;
  readonly violations: readonly string[];
}

/**
 * A settle or check found violations: `violations` lists them all, the message the first ten and
 * the seed.
 *
 * @example
 * ```ts
 * import { SimCheckError, SimCluster } from "./cluster.ts";
 * const cluster = new SimCluster({ nodes: 2, seed: 3, invariants: { "never": () => "broken" } });
 * try {
 *   cluster.settle();
 * } catch (error) {
 *   if (!(error instanceof SimCheckError) || error.violations[0] !== "never: broken") throw error;
 * }
 * ```
 */
export class SimCheckError extends Error {
  override readonly name = "SimCheckError";
  /** Every violation, one line each. */
  readonly violations: readonly string[];
  /** The simulation's seed, to reproduce it. */
  readonly seed: number;

  constructor(violations: readonly string[], seed: number, atMs: number) {
    const shown = violations.slice(0, 10).map((v) => `  - ${v}`).join("\n");
    const more = violations.length > 10 ? `\n  … and ${violations.length - 10} more` : "";
    super(
      `Cluster check failed at ${atMs} ms (seed ${seed}): ${violations.length} violation(s)\n${shown}${more}`,
    );
    this.violations = violations;
    this.seed = seed;
  }
}

/**
 * The GUID of the {@link RecordingWorker} of node `index` (option `workers`).
 *
 * @example
 * ```ts
 * import { workerGuid } from "./cluster.ts";
 * if (workerGuid(7) !== "W0007") throw new Error("unexpected");
 * ```
 */
export function workerGuid(index: number): string {
  return `W${String(index).padStart(4, "0")}`;
}

/**
 * A client outside the cluster's workers: a worker of its own on one node, that sends messages
 * and keeps what comes back (a reply addressed to its GUID). After a crash of its node it is
 * attached again on restart, with what it had received.
 *
 * @example
 * ```ts
 * import { SimCluster } from "./cluster.ts";
 * import { EchoWorker } from "../src/worker.ts";
 * const cluster = new SimCluster({
 *   nodes: 3,
 *   seed: 2,
 *   setup: ({ node, index }) => node.attachWorker(new EchoWorker(`echo${index}`)),
 * });
 * const app = cluster.client(0, "app");
 * cluster.settle();
 * const answer = app.request("echo2", { command: "ping" }); // runs until the answer comes
 * if (answer?.message.echoOf !== "ping") throw new Error("no answer");
 * ```
 */
export class SimClient {
  /** Its GUID: replies go there. */
  readonly guid: string;
  /** Every message it received, in order. */
  readonly received: MapMessage[] = [];
  readonly #cluster: SimCluster;
  readonly #at: number;

  /** Use {@link SimCluster.client}. */
  constructor(cluster: SimCluster, at: number, guid: string) {
    this.#cluster = cluster;
    this.#at = at;
    this.guid = guid;
  }

  /** Index of the node it lives on. */
  get at(): number {
    return this.#at;
  }

  /**
   * Sends from this client; returns what the node's `send` returned (false: reported
   * undeliverable at once, see the history).
   */
  send(destination: string, message: Record<string, string> = {}, data?: Uint8Array): boolean {
    return this.#cluster.send(
      this.#at,
      createMessage(destination, message, { source: this.guid, data }),
    );
  }

  /**
   * Sends and runs the simulation until a message comes back that `match` accepts (default:
   * any from `destination`), for at most `maxMs`; returns it, or `undefined`.
   */
  request(
    destination: string,
    message: Record<string, string> = {},
    options: { data?: Uint8Array; maxMs?: number; match?: (reply: MapMessage) => boolean } = {},
  ): MapMessage | undefined {
    const from = this.received.length;
    const match = options.match ?? ((reply: MapMessage) => reply.source === destination);
    if (!this.send(destination, message, options.data)) return undefined;
    let found: MapMessage | undefined;
    this.#cluster.runUntil(() => {
      for (let i = from; i < this.received.length && found === undefined; i++) {
        if (match(this.received[i])) found = this.received[i];
      }
      return found !== undefined;
    }, options.maxMs ?? 5000);
    return found;
  }

  /** The worker the node hosts for it (internal). */
  makeWorker(): WorkerBase {
    const received = this.received;
    return new (class extends WorkerBase {
      protected override onMessage(message: MapMessage): void {
        received.push(message);
      }
    })(this.guid);
  }
}

const MAX_NODES = 20_000;

/**
 * A simulated cluster of real nodes. See the module documentation for a tour.
 *
 * Every method that takes a node takes its index or GUID, and throws a `RangeError` naming
 * the argument when there is no such node.
 *
 * @example
 * ```ts
 * import { SimCluster } from "./cluster.ts";
 * import { EchoWorker } from "../src/worker.ts";
 * const cluster = new SimCluster({
 *   nodes: 4,
 *   seed: 5,
 *   setup: ({ node, index }) => node.attachWorker(new EchoWorker(`echo${index}`)),
 * });
 * cluster.invariant("four nodes up", (c) => c.liveNodes().length === 4);
 * cluster.settle();
 * cluster.crash("N0003"); // by GUID, or by index: cluster.crash(3)
 * cluster.run(4000); // past the silence bound of 3 heartbeats
 * if (cluster.node(0)!.locate("echo3") !== undefined) throw new Error("still known");
 * cluster.settle(); // restarts N0003; its setup runs again; checks pass or throw
 * if (cluster.node(0)!.locate("echo3") !== "N0003") throw new Error("not relearned");
 * ```
 */
export class SimCluster {
  /** The simulation underneath, for anything the cluster verbs do not cover. */
  readonly sim: Simulation;
  /** The hosts, in index order. */
  readonly hosts: ReadonlyArray<SimHost<AutoMpiNode>>;
  /** Every message sent, delivered and reported (see {@link History}). */
  readonly history: History;
  /** One disk per node, in index order. */
  readonly disks: readonly SimDisk[];
  readonly #guids: readonly string[];
  readonly #byGuid = new Map<string, number>();
  readonly #checks: Readonly<Record<string, HistoryCheck>>;
  readonly #invariants = new Map<string, Invariant>();
  readonly #clients: SimClient[] = [];
  readonly #starts: number[];
  readonly #workerCount: boolean;
  #baseLoss = 0;
  #baseDuplicate = 0;

  /**
   * Creates the simulation and starts every node. A setup callback that throws is rethrown as
   * `Cannot set up node …` naming the node.
   */
  constructor(options: SimClusterOptions) {
    if (options === null || typeof options !== "object") {
      throw new TypeError("Cannot create cluster: options must be an object");
    }
    const { nodes, subnets = 1, node: shared = {}, setup, nodeOptions } = options;
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) {
      throw new RangeError(
        `Cannot create cluster of ${nodes} nodes: nodes must be an integer in 1..${MAX_NODES}`,
      );
    }
    if (!Number.isInteger(subnets) || subnets < 1 || subnets > Math.min(nodes, 250)) {
      throw new RangeError(
        `Cannot create cluster: subnets ${subnets} must be an integer in 1..${
          Math.min(nodes, 250)
        }`,
      );
    }
    for (
      const [name, fn] of [["setup", setup], ["nodeOptions", nodeOptions], [
        "guidOf",
        options.guidOf,
      ]] as const
    ) {
      if (fn !== undefined && typeof fn !== "function") {
        throw new TypeError(`Cannot create cluster: ${name} must be a function`);
      }
    }
    this.sim = new Simulation({ ...options, subnet: subnets > 1 ? "10.0.0.0/16" : options.subnet });
    const sim = this.sim;
    this.history = new History(() => sim.now);
    const keepHistory = options.history !== false;
    this.#checks = options.checks === false ? {} : options.checks ?? DEFAULT_CHECKS;
    for (const [name, invariant] of Object.entries(options.invariants ?? {})) {
      this.invariant(name, invariant);
    }
    this.#workerCount = options.workers === true;
    const guidOf = options.guidOf ?? ((index: number) => `N${String(index).padStart(4, "0")}`);
    const guids = Array.from({ length: nodes }, (_, index) => String(guidOf(index)));
    for (const [index, guid] of guids.entries()) {
      if (guid === "" || this.#byGuid.has(guid)) {
        throw new TypeError(
          `Cannot create cluster: guidOf(${index}) gives "${guid}", empty or taken`,
        );
      }
      this.#byGuid.set(guid, index);
    }
    this.#guids = guids;
    this.#starts = guids.map(() => 0);
    this.disks = guids.map((guid) => new SimDisk(sim, { name: `disk-${guid}` }));
    const subnetOf = (index: number) => index % subnets;
    const hosts: Array<SimHost<AutoMpiNode>> = [];
    this.hosts = hosts;
    // With several subnets, node i is host number ⌊i / subnets⌋ + 1 of subnet i mod subnets,
    // and the first node of each subnet seeds the nodes of the others.
    const addressOf = (index: number) => {
      const position = Math.floor(index / subnets) + 1;
      return `10.${subnetOf(index)}.${position >> 8}.${position & 255}`;
    };
    const seedsFor = (index: number) =>
      subnets === 1 ? [] : Array.from({ length: subnets }, (_, s) => s)
        .filter((s) => s !== subnetOf(index))
        .map((s) => `${addressOf(s)}:8888`);
    for (let index = 0; index < nodes; index++) {
      const subnet = subnets > 1 ? `10.${subnetOf(index)}.0.0/16` : undefined;
      hosts.push(sim.addHost(`n${index}`, (platform, host) => {
        const typed = host as SimHost<AutoMpiNode>;
        const guid = guids[index];
        const disk = this.disks[index];
        const perNode = nodeOptions?.({ index, guid, host: typed, disk, sim }) ?? {};
        const seeds = [...(shared.seeds ?? []), ...(perNode.seeds ?? []), ...seedsFor(index)];
        const node = new AutoMpiNode(platform, {
          ...shared,
          ...perNode,
          guid,
          listen: { host: host.address, port: 8888 },
          discovery: shared.discovery === false || perNode.discovery === false
            ? false
            : { broadcastAddress: subnetBroadcast(host.subnet) },
          ...(seeds.length > 0 ? { seeds } : {}),
        });
        if (keepHistory) this.history.watch(node);
        node.start();
        this.#starts[index]++;
        if (this.#workerCount) node.attachWorker(new RecordingWorker(workerGuid(index)));
        if (setup !== undefined) {
          try {
            setup({
              node,
              index,
              guid,
              host: typed,
              disk,
              start: this.#starts[index],
              cluster: this,
            });
          } catch (error) {
            throw new Error(
              `Cannot set up node ${index} (${guid}): the setup callback threw: ${
                error instanceof Error ? error.message : String(error)
              }`,
              { cause: error },
            );
          }
        }
        // Clients of this node (made before, or by the setup callback just now).
        for (const client of this.#clients) {
          if (client.at === index && node.worker(client.guid) === undefined) {
            node.attachWorker(client.makeWorker());
          }
        }
        return node;
      }, { start: false, ...(subnet ? { subnet, address: addressOf(index) } : {}) }));
    }
    // Every host exists before the first one starts: a setup callback sees the whole cluster.
    for (const host of hosts) sim.restart(host);
  }

  /** How many nodes (up or not). */
  get size(): number {
    return this.hosts.length;
  }

  /** Virtual time now, in ms. */
  get now(): number {
    return this.sim.now;
  }

  /** The index of a node given by index or GUID; a `RangeError` if there is none. */
  indexOf(ref: NodeRef): number {
    if (typeof ref === "number") {
      if (Number.isInteger(ref) && ref >= 0 && ref < this.hosts.length) return ref;
      throw new RangeError(
        `Cannot find node ${ref}: node indexes are integers in 0..${this.hosts.length - 1}`,
      );
    }
    if (typeof ref === "string") {
      const index = this.#byGuid.get(ref);
      if (index !== undefined) return index;
      throw new RangeError(`Cannot find node "${ref}": no node of this cluster has that GUID`);
    }
    throw new TypeError(`Cannot find node ${String(ref)}: give an index or a GUID`);
  }

  /** The GUID of a node. */
  guidOf(ref: NodeRef): string {
    return this.#guids[this.indexOf(ref)];
  }

  /** The running node, or `undefined` while it is down. */
  node(ref: NodeRef): AutoMpiNode | undefined {
    const host = this.hosts[this.indexOf(ref)];
    return host.state === "down" ? undefined : host.app;
  }

  /** The host of a node (its address, state, incarnation). */
  host(ref: NodeRef): SimHost<AutoMpiNode> {
    return this.hosts[this.indexOf(ref)];
  }

  /** The live nodes (up or paused), in index order. */
  liveNodes(): AutoMpiNode[] {
    const live: AutoMpiNode[] = [];
    for (const host of this.hosts) {
      if (host.state !== "down" && host.app !== undefined) live.push(host.app);
    }
    return live;
  }

  /**
   * Runs `fn` for every live node now, with the same context a setup callback gets (for
   * workers you attach after the start; they are not attached again on restart: use `setup`).
   */
  each(fn: (context: NodeContext) => void): void {
    for (const host of this.hosts) {
      if (host.state === "down" || host.app === undefined) continue;
      fn({
        node: host.app,
        index: host.index,
        guid: this.#guids[host.index],
        host,
        disk: this.disks[host.index],
        start: this.#starts[host.index],
        cluster: this,
      });
    }
  }

  // ---- time ------------------------------------------------------------------------------------

  /** Runs the simulation for `ms` virtual milliseconds. */
  run(ms: number): void {
    this.sim.run(ms);
  }

  /** Runs until `predicate` holds or `maxMs` pass; returns whether it held. */
  runUntil(predicate: () => boolean, maxMs: number): boolean {
    return this.sim.runUntil(predicate, maxMs);
  }

  // ---- faults ------------------------------------------------------------------------------------

  #hostsOf(refs: NodeRefs, what: string): Array<SimHost<AutoMpiNode>> {
    const list = Array.isArray(refs) ? refs : [refs as NodeRef];
    if (list.length === 0) throw new RangeError(`Cannot ${what}: no node given`);
    return list.map((ref) => this.hosts[this.indexOf(ref)]);
  }

  /**
   * Cuts every path between `a` and `b` (both ways); `b` defaults to every other node. Streams
   * hold their bytes until heal or until they time out, as TCP does.
   */
  partition(a: NodeRefs, b?: NodeRefs): void {
    const left = this.#hostsOf(a, "partition");
    const right = b === undefined
      ? this.hosts.filter((h) => !left.includes(h))
      : this.#hostsOf(b, "partition");
    if (right.length === 0) throw new RangeError("Cannot partition: the other side is empty");
    this.sim.partition(left, right);
  }

  /** Cuts the paths from `from` to `to` only: `to` still reaches `from`. */
  partitionOneWay(from: NodeRefs, to: NodeRefs): void {
    this.sim.partitionOneWay(
      this.#hostsOf(from, "partition one way"),
      this.#hostsOf(to, "partition one way"),
    );
  }

  /** Cuts a node (or several) off from every other node. */
  isolate(refs: NodeRefs): void {
    for (const host of this.#hostsOf(refs, "isolate")) this.partition(host.index);
  }

  /** Removes cuts: all of them, or those between `a` and `b`. */
  heal(a?: NodeRefs, b?: NodeRefs): void {
    if (a === undefined) return this.sim.heal();
    this.sim.heal(this.#hostsOf(a, "heal"), b === undefined ? undefined : this.#hostsOf(b, "heal"));
  }

  /** Holds traffic between `a` and `b` (queued, not lost) until {@link release}. */
  hold(a: NodeRefs, b: NodeRefs): void {
    this.sim.hold(this.#hostsOf(a, "hold"), this.#hostsOf(b, "hold"));
  }

  /** Delivers what was held: all of it, or between `a` and `b`. */
  release(a?: NodeRefs, b?: NodeRefs): void {
    if (a === undefined) return this.sim.release();
    this.sim.release(
      this.#hostsOf(a, "release"),
      b === undefined ? undefined : this.#hostsOf(b, "release"),
    );
  }

  /** Crashes nodes: their memory is lost, their disks keep what was durable. No-op if down. */
  crash(refs: NodeRefs): void {
    for (const host of this.#hostsOf(refs, "crash")) {
      if (host.state === "down") continue;
      this.history.noteCrash(this.#guids[host.index]);
      this.sim.crash(host);
    }
  }

  /** Starts crashed nodes again, same GUID and disk, new incarnation. No-op if up. */
  restart(refs: NodeRefs): void {
    for (const host of this.#hostsOf(refs, "restart")) {
      if (host.state === "down") this.sim.restart(host);
    }
  }

  /** Freezes nodes: no timer fires, nothing is read, until {@link resume}. */
  pause(refs: NodeRefs): void {
    for (const host of this.#hostsOf(refs, "pause")) {
      if (host.state === "up") this.sim.pause(host);
    }
  }

  /** Thaws paused nodes. */
  resume(refs: NodeRefs): void {
    for (const host of this.#hostsOf(refs, "resume")) {
      if (host.state === "paused") this.sim.resume(host);
    }
  }

  /** Skews a node's clock: it reads `offsetMs + rate × virtual time`. */
  skew(ref: NodeRef, skew: ClockSkew): void {
    this.sim.setClockSkew(this.hosts[this.indexOf(ref)], skew);
  }

  /** Loses each packet with `probability`, for `forMs` (default: until changed or settled). */
  loss(probability: number, forMs?: number): void {
    this.#burst("lossProbability", probability, forMs);
  }

  /** Duplicates each packet with `probability`, for `forMs` (default: until settled). */
  duplicate(probability: number, forMs?: number): void {
    this.#burst("duplicateProbability", probability, forMs);
  }

  #burst(key: "lossProbability" | "duplicateProbability", probability: number, forMs?: number) {
    const verb = key === "lossProbability" ? "loss" : "duplicate";
    if (!(probability >= 0 && probability <= 1)) {
      throw new RangeError(`Cannot set ${verb}: probability ${probability} is not in [0, 1]`);
    }
    if (forMs !== undefined && !(forMs > 0 && Number.isFinite(forMs))) {
      throw new RangeError(`Cannot set ${verb}: forMs ${forMs} is not a positive duration`);
    }
    this.sim.setNetwork({ [key]: probability });
    if (forMs !== undefined) {
      const base = key === "lossProbability" ? this.#baseLoss : this.#baseDuplicate;
      this.sim.schedule(forMs, () => this.sim.setNetwork({ [key]: base }));
    }
  }

  // ---- traffic -----------------------------------------------------------------------------------

  /**
   * Sends a message from node `from` (a worker GUID as `source`, or none); returns what the
   * node's `send` returned. The history records it and what became of it. A node that is down
   * or paused sends nothing and this returns false (a traffic item may fall in a crash).
   */
  send(
    from: NodeRef,
    message: MapMessage | {
      destination: string;
      source?: string;
      message?: Record<string, string>;
      data?: Uint8Array;
    },
  ): boolean {
    const index = this.indexOf(from);
    const host = this.hosts[index];
    // A crashed or frozen process sends nothing: no message, no record.
    if (host.state !== "up" || host.app === undefined) return false;
    const node = host.app;
    const full = createMessage(message.destination, message.message ?? {}, {
      source: message.source ?? "",
      data: message.data,
    });
    return node.send(full);
  }

  /**
   * A client living on node `at` (default 0) under `guid` (default `client<n>`), to send
   * messages and see what your workers answer. See {@link SimClient}.
   */
  client(at: NodeRef = 0, guid?: string): SimClient {
    const index = this.indexOf(at);
    const name = guid ?? `client${this.#clients.length}`;
    if (typeof name !== "string" || name === "") {
      throw new TypeError("Cannot create client: guid must be a non-empty string");
    }
    if (this.#clients.some((c) => c.guid === name)) {
      throw new TypeError(`Cannot create client "${name}": a client has that GUID`);
    }
    const client = new SimClient(this, index, name);
    this.#clients.push(client);
    this.node(index)?.attachWorker(client.makeWorker());
    return client;
  }

  // ---- checks ------------------------------------------------------------------------------------

  /** Adds an invariant of yours, checked at each {@link settle} and {@link check}. */
  invariant(name: string, check: Invariant): void {
    if (typeof name !== "string" || name === "") {
      throw new TypeError("Cannot add invariant: name must be a non-empty string");
    }
    if (typeof check !== "function") {
      throw new TypeError(`Cannot add invariant "${name}": check must be a function`);
    }
    this.#invariants.set(name, check);
  }

  /**
   * Every live node links every other live node and knows where every worker of every other
   * live node is.
   */
  converged(): boolean {
    const first = this.hosts.find((host) => host.state !== "down" && host.app !== undefined);
    if (first?.app?.membership().mode === "ring") {
      // Ring membership: links come and go with traffic; every live node must know every live
      // node alive, and no one suspect. Looked at without building a list: at thousands of
      // nodes this runs after every event, and most looks fail at the first few nodes.
      let alive = -1;
      let live = 0;
      for (const host of this.hosts) {
        const node = host.state === "down" ? undefined : host.app;
        if (node === undefined) continue;
        const m = node.membership();
        if (m.mode !== "ring" || !node.running || m.suspect !== 0 || m.alive === undefined) {
          return false;
        }
        if (alive === -1) alive = m.alive;
        else if (m.alive !== alive) return false;
        live++;
      }
      return live > 0 && alive === live;
    }
    const nodes = this.liveNodes();
    const count = nodes.length;
    let workers = 0;
    for (const node of nodes) workers += node.workerCount;
    // Cheap counts first: most instants fail here, before any list is copied.
    for (const node of nodes) {
      if (!node.running || node.linkCount !== count - 1) return false;
      if (node.knownLocations < workers - node.workerCount) return false;
    }
    const byGuid = new Map(nodes.map((n) => [n.guid, n]));
    for (const node of nodes) {
      for (const peer of node.linkedPeers()) {
        if (!byGuid.get(peer)?.linkedPeers().includes(node.guid)) return false;
      }
    }
    for (const node of nodes) {
      for (const guid of node.workerGuids()) {
        for (const other of nodes) {
          if (other !== node && other.locate(guid) !== node.guid) return false;
        }
      }
    }
    return true;
  }

  /** Distinct pairs of live nodes linked to each other (both sides agree). */
  linkedPairs(): number {
    const nodes = this.liveNodes();
    const byGuid = new Map(nodes.map((n) => [n.guid, n]));
    let pairs = 0;
    for (const n of nodes) {
      for (const peer of n.linkedPeers()) {
        if (n.guid < peer && byGuid.get(peer)?.linkedPeers().includes(n.guid)) pairs++;
      }
    }
    return pairs;
  }

  /** Sum over live nodes of the remote worker locations they know. */
  locationsKnown(): number {
    return this.liveNodes().reduce((sum, n) => sum + n.knownLocations, 0);
  }

  /**
   * Runs the history checks and your invariants now; returns the violations, each line
   * prefixed with the check's name.
   */
  violations(): string[] {
    const found: string[] = [];
    for (const [name, check] of Object.entries(this.#checks)) {
      for (const line of check(this.history)) found.push(`${name}: ${line}`);
    }
    for (const [name, invariant] of this.#invariants) {
      let result: ReturnType<Invariant>;
      try {
        result = invariant(this);
      } catch (error) {
        found.push(`${name}: threw ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      if (result === false) found.push(`${name}: does not hold`);
      else if (typeof result === "string" && result !== "") found.push(`${name}: ${result}`);
      else if (Array.isArray(result)) { for (const line of result) found.push(`${name}: ${line}`); }
    }
    return found;
  }

  /** Like {@link violations}, but throws a {@link SimCheckError} if there is any. */
  check(): void {
    const found = this.violations();
    if (found.length > 0) throw new SimCheckError(found, this.sim.seed, this.sim.now);
  }

  /**
   * Ends every fault: heals all cuts, releases held traffic, resumes paused nodes, restarts
   * crashed ones, stops loss and duplication bursts. Then runs until {@link converged} (at most
   * `maxMs`), runs `quietMs` more, and checks the history and your invariants. Throws a
   * {@link SimCheckError} listing every violation (not converging is one), unless
   * `throwOnViolation` is false.
   */
  settle(options: SettleOptions = {}): SettleReport {
    const steps = this.#settleSteps(options);
    let step = steps.next();
    while (!step.done) {
      step = steps.next(
        step.value.until ? this.sim.runUntil(step.value.until, step.value.ms) : (this.sim.run(
          step.value.ms,
        ),
          true),
      );
    }
    return step.value;
  }

  /**
   * {@link settle} for workers that await real Promises (storage): runs with `runAsync`, so
   * they go on at the right virtual instant.
   *
   * @example
   * ```ts
   * import { SimCluster } from "./cluster.ts";
   * const cluster = new SimCluster({ nodes: 3, seed: 4 });
   * cluster.crash(1);
   * const report = await cluster.settleAsync();
   * if (!report.converged) throw new Error("not converged");
   * ```
   */
  async settleAsync(options: SettleOptions = {}): Promise<SettleReport> {
    const steps = this.#settleSteps(options);
    let step = steps.next();
    while (!step.done) {
      const { ms, until } = step.value;
      const held = await runAsync(this.sim, ms, until ? { until } : {});
      step = steps.next(until ? held : true);
    }
    return step.value;
  }

  /** The settle, as steps of running that a sync or an async driver carries out. */
  *#settleSteps(options: SettleOptions): Generator<RunStep, SettleReport, boolean> {
    const maxMs = options.maxMs ?? 30_000;
    const quietMs = options.quietMs ?? 1000;
    if (!(maxMs >= 0) || !(quietMs >= 0)) {
      throw new RangeError(`Cannot settle: maxMs ${maxMs} and quietMs ${quietMs} must be >= 0`);
    }
    this.endFaults();
    const converged = yield { ms: maxMs, until: () => this.converged() };
    const atMs = this.sim.now;
    yield { ms: quietMs };
    const violations = this.violations();
    if (!converged) {
      violations.unshift(`converged: not within ${maxMs} ms (${this.whyNotConverged()})`);
    }
    if (violations.length > 0 && options.throwOnViolation !== false) {
      throw new SimCheckError(violations, this.sim.seed, atMs);
    }
    return { converged, atMs, violations };
  }

  /**
   * Ends every fault at once: heals all cuts, releases held traffic, stops loss and duplication
   * bursts, resumes paused nodes and restarts crashed ones (what {@link settle} does first).
   */
  endFaults(): void {
    this.sim.heal();
    this.sim.release();
    this.#baseLoss = 0;
    this.#baseDuplicate = 0;
    this.sim.setNetwork({ lossProbability: 0, duplicateProbability: 0 });
    for (const host of this.hosts) {
      if (host.state === "paused") this.sim.resume(host);
      if (host.state === "down") this.sim.restart(host);
    }
  }

  /** What keeps the cluster from converging, in a few words (for a violation or a log). */
  whyNotConverged(): string {
    const nodes = this.liveNodes();
    // One worker GUID on two nodes can never be located in one place.
    const hostOf = new Map<string, string>();
    for (const node of nodes) {
      for (const worker of node.workerGuids()) {
        const other = hostOf.get(worker);
        if (other !== undefined) {
          return `worker "${worker}" is attached on both ${other} and ${node.guid}: GUIDs must be unique`;
        }
        hostOf.set(worker, node.guid);
      }
    }
    const short = nodes.filter((n) => n.linkCount !== nodes.length - 1);
    if (short.length > 0) {
      return `${short.length} node(s) short of links, first ${short[0].guid} with ${
        short[0].linkCount
      } of ${nodes.length - 1}`;
    }
    return "every node has its links; some worker locations are unknown";
  }
}

function subnetBroadcast(cidr: string): string {
  // Subnets here are /16 (the simulation's default and the cluster's own).
  const [base, bits] = cidr.split("/");
  const parts = base.split(".").map(Number);
  const prefix = Number(bits);
  const value = ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
  const broadcast = (value | (prefix === 0 ? 0xffffffff : (2 ** (32 - prefix) - 1))) >>> 0;
  return [24, 16, 8, 0].map((shift) => (broadcast >>> shift) & 255).join(".");
}

/** Options of {@link createSimCluster}: {@link SimClusterOptions}, with `workers` on by default. */
export type CreateSimClusterOptions = SimClusterOptions;

/**
 * Starts a simulated cluster with one {@link RecordingWorker} per node unless `workers: false`:
 * the shape the project's own tests use.
 *
 * @example
 * ```ts
 * import { createSimCluster } from "./cluster.ts";
 * const cluster = createSimCluster({ nodes: 5, seed: 3 });
 * cluster.sim.runUntil(() => cluster.converged(), 3000);
 * if (!(cluster.linkedPairs() === 10)) throw new Error("example failed");
 * ```
 */
export function createSimCluster(options: CreateSimClusterOptions): SimCluster {
  return new SimCluster({ ...options, workers: options.workers ?? true });
}
