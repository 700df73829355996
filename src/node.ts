/**
 * The AutoMPI node: discovery, links and their cleanup, routing, workers and worker locations,
 * written once against the {@link Platform} seam so it runs unchanged on real sockets and in
 * the simulator.
 *
 * Everything here reacts synchronously to events from the platform (bytes arrived, a timer
 * fired) and never awaits: in the simulator a whole cluster runs as one ordered event loop.
 *
 * The node is a facade over parts, each in its own file behind a narrow host interface, with
 * its unit tests beside it: options (`_options.ts`), the wire protocol (`_wire.ts`) and cluster
 * auth (`_auth.ts`) chosen once, discovery (`_discovery.ts`), the peer table and dial policy
 * (`_peers.ts`), twins (`_twins.ts`), links (`_link.ts`) and the link table (`_links.ts`),
 * sessions (`_sessions.ts`), gossip (`_gossip.ts`), worker locations (`_locations.ts`), system
 * messages by kind (`_router.ts`), delivery (`_delivery.ts`), the worker host (`_workers.ts`),
 * metric families (`_node_metrics.ts`). Here they are wired together, the node's life (start,
 * tick, close) is run, and what crosses parts (a link coming up or going down) is decided.
 *
 * @module
 */
import type { ClusterAuth } from "./_auth.ts";
import { checkMessage, Delivery, SERVICE_FIELD } from "./_delivery.ts";
import { Discovery } from "./_discovery.ts";
import { Gossip, workerLocation } from "./_gossip.ts";
import { type Frame, type Link, LinkOutput, messageFrame } from "./_link.ts";
import { LinkTable } from "./_links.ts";
import { WorkerLocations } from "./_locations.ts";
import { nodeMetrics } from "./_node_metrics.ts";
import { limitsOf, type ResolvedOptions, resolveOptions } from "./_options.ts";
import { type Peer, PeerTable } from "./_peers.ts";
import { RingMode } from "./_ring.ts";
import { SystemRouter } from "./_router.ts";
import { Sessions } from "./_sessions.ts";
import { Twins } from "./_twins.ts";
import { WorkerHost } from "./_workers.ts";
import type { HelloIdentity, WireProtocol } from "./_wire.ts";
import type { Codec } from "./codec.ts";
import { Emitter, type Unsubscribe } from "./events.ts";
import { ALL_NODES, ALL_WORKERS, type MapMessage } from "./message.ts";

const isBroadcast = (destination: string) =>
  destination === ALL_NODES || destination === ALL_WORKERS;
import {
  type Address,
  formatAddress,
  type Platform,
  type StreamListener,
  type Timer,
} from "./platform.ts";
import { SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";
import {
  Placement,
  PLACEMENT_SERVICE,
  type SpawnOptions,
  type WorkerFactory,
} from "./placement.ts";
import { Histogram, LATENCY_BUCKETS_SECONDS, type MetricFamily } from "./metrics.ts";
import { NodeTracing } from "./_tracing.ts";
import type { Worker } from "./worker.ts";
import type {
  ClusterView,
  LinkDownReason,
  MembershipState,
  MessageHandler,
  NodeEvents,
  NodeOptions,
  NodeState,
  NodeStats,
  UndeliverableReason,
} from "./_types.ts";

export type {
  ClusterView,
  DiscoveryOptions,
  DuplicateGuidState,
  LinkDownReason,
  LinkState,
  MembershipState,
  MessageHandler,
  MessageInfo,
  NodeEvents,
  NodeLimits,
  NodeOptions,
  NodeState,
  NodeStats,
  UndeliverableReason,
} from "./_types.ts";
export { checkMessage, SERVICE_FIELD } from "./_delivery.ts";

/**
 * A node: hosts workers, finds and links to other nodes, routes messages.
 *
 * @example
 * ```ts
 * import { AutoMpiNode } from "./node.ts";
 * import type { Platform } from "./platform.ts";
 *
 * // The platform comes from an adapter (real sockets) or from a simulated host.
 * export function startNode(platform: Platform): AutoMpiNode {
 *   const node = new AutoMpiNode(platform, {
 *     guid: "NodeA",
 *     listen: { host: "127.0.0.1", port: 8888 },
 *     discovery: { broadcastAddress: "127.255.255.255" },
 *   });
 *   node.on("link-up", ({ peer }) => console.log("linked", peer));
 *   node.onMessage((message) => console.log("got", message.message));
 *   node.start();
 *   return node;
 * }
 * ```
 */
export class AutoMpiNode {
  readonly guid: string;
  readonly incarnation: string;
  readonly #platform: Platform;
  /** The options, resolved: defaults applied, bounds derived. */
  readonly #o: ResolvedOptions;
  readonly #codec: Codec;
  /** The wire protocol, native or the original's: what links carry (see `_wire.ts`). */
  readonly #protocol: WireProtocol;
  /** No cluster key, or one: heartbeats, hellos, handshakes (see `_auth.ts`). */
  readonly #auth: ClusterAuth;
  /** Each peer's session: exactly-once delivery across links that come and go. */
  readonly #sessions: Sessions<Link>;
  readonly #events: Emitter<NodeEvents>;
  /** Where messages go: workers, links, handlers and services; what is said when they cannot. */
  readonly #delivery: Delivery<Link>;
  readonly #peers: PeerTable;
  /** Every connection, from dial or accept to close, and the link to each peer. */
  readonly #table: LinkTable;
  /** The table's links by peer GUID (the same map). */
  readonly #links: ReadonlyMap<string, Link>;
  /** The table's connections (the same set). */
  readonly #connections: ReadonlySet<Link>;
  /** The workers attached here, their queues and their time. */
  readonly #workers: WorkerHost;
  readonly #locations: WorkerLocations;
  readonly #gossip: Gossip<Link>;
  readonly #twins: Twins;
  /** System messages by kind, on links and by datagram. */
  readonly #router: SystemRouter<Link>;
  /** For metrics: link-downs by reason. */
  readonly #linksDownByReason = new Map<string, number>();
  /** Handshakes: the latency buckets from 500 µs to 2.5 s (the buckets this metric shipped with). */
  readonly #handshakeSeconds = new Histogram(LATENCY_BUCKETS_SECONDS.slice(2, -1));
  /** How late the heartbeat and worker timers fired: the event loop's lag. */
  readonly #loopLagSeconds = new Histogram(LATENCY_BUCKETS_SECONDS);
  /**
   * Ticks whose timer fired on time, not yet in `#loopLagSeconds`: counted here and added when
   * the metrics are read, so a simulated cluster's rounds (always on time) do not each touch
   * the histogram.
   */
  #onTimeTicks = 0;
  #tickDueMs = 0;
  /** `undefined` when the node does not trace: each call site then costs one check. */
  readonly #tracing: NodeTracing | undefined;
  readonly #stats: NodeStats = {
    heartbeatsSent: 0,
    heartbeatsReceived: 0,
    framesIn: 0,
    framesOut: 0,
    messagesSent: 0,
    messagesReceived: 0,
    undeliverable: 0,
    protocolErrors: 0,
    datagramErrors: 0,
    listenerErrors: 0,
    workerErrors: 0,
    linksUp: 0,
    linksDown: 0,
    duplicateGuids: 0,
    duplicatesDropped: 0,
    authFailures: 0,
    replaysDropped: 0,
    connectionsRefused: 0,
    unknownService: 0,
  };
  #state: "new" | "starting" | "running" | "closed" = "new";
  #startedAtMs = 0;
  #listener: StreamListener | undefined;
  readonly #discovery: Discovery;
  #address = "";
  /** Who this node is, as hellos and heartbeats say (set once listening). */
  #identity: HelloIdentity | undefined;
  readonly #placement: Placement;
  #tickTimer: Timer | undefined;
  /** Output batching shared by this node's links. */
  readonly #output: LinkOutput;
  #ticks = 0;
  /** Ring membership (`membership: "ring"`), or `undefined` for the mesh. */
  readonly #ring: RingMode | undefined;
  /** Messages routed again after their link went down unwritten, and how often. */
  readonly #rerouted = new WeakMap<MapMessage, number>();
  /** The port the node listens on (the ring's datagrams use the same number). */
  #listenPort = 0;

  constructor(platform: Platform, options: NodeOptions = {}) {
    if (platform === null || typeof platform !== "object" || !platform.clock || !platform.net) {
      throw new TypeError("Cannot create node: platform must be a Platform object");
    }
    this.#platform = platform;
    const o = resolveOptions(platform.random, options);
    this.#o = o;
    this.guid = o.guid;
    this.incarnation = o.incarnation;
    this.#codec = o.codec;
    this.#protocol = o.protocol;
    this.#auth = o.auth;
    this.#output = new LinkOutput(platform.clock, this.#stats);
    this.#tracing = NodeTracing.create(options.tracerProvider, {
      nodeGuid: o.guid,
      clock: platform.clock,
      virtualTime: platform.name === "sim",
      inject: o.protocol.traceContext,
      skipField: SERVICE_FIELD,
    });
    this.#peers = new PeerTable({
      clock: platform.clock,
      random: platform.random,
      log: platform.log,
      running: () => this.#state === "running",
      connectionCount: () => this.#connections.size,
      isLinked: (guid) => this.#links.has(guid),
      linkIncarnation: (guid) => this.#links.get(guid)?.peerIncarnation,
      probe: (guid) => this.#table.probe(this.#links.get(guid)!),
      dial: (address, peer, seed) => {
        this.#ring?.stir();
        return this.#table.dial(address, peer, seed);
      },
      onDiscovered: (peer) =>
        this.#events.emit("peer-discovered", {
          peer: peer.guid,
          address: peer.address,
          via: peer.via,
        }),
      onLost: (peer) => this.#events.emit("peer-lost", { peer: peer.guid, address: peer.address }),
    }, {
      guid: o.guid,
      maxLinks: o.maxLinks,
      dialGraceMs: o.dialGraceMs,
      reconnectMinMs: o.reconnectMinMs,
      reconnectMaxMs: o.reconnectMaxMs,
      silenceMs: o.peerSilenceMs,
      sharedConnection: o.protocol.sharedConnection,
      seeds: o.seeds,
      autoDial: o.membership === "mesh",
    });
    this.#sessions = new Sessions<Link>({
      clock: platform.clock,
      random: platform.random,
      stats: this.#stats,
      frame: (message, transient) => this.#frame(message, transient),
      isCurrent: (link) => this.#links.get(link.peerGuid) === link,
      isLinked: (guid) => this.#links.has(guid),
      undeliverable: (message, reason, detail) =>
        this.#delivery.undeliverable(message, reason, detail),
      tooLarge: (message, frame) => this.#delivery.tooLarge(message, frame),
      outcome: (message, outcome) => this.#delivery.outcome(message, outcome),
      malformed: (link, error) => this.#table.protocolFailure(link, "frame", error),
      closeGoodbye: (link) => this.#table.close(link, "goodbye", true),
      ...(o.membership === "ring"
        ? {
          unwritten: (message: MapMessage, link: Link) => {
            // A link replaced at once (both sides dialled) or closed before its Resume: the
            // message goes again, a few times at most.
            const tries = this.#rerouted.get(message) ?? 0;
            if (this.#state !== "running" || tries >= 3) return false;
            this.#rerouted.set(message, tries + 1);
            this.#platform.clock.defer(() => this.#ring!.route(message, link.peerGuid));
            return true;
          },
        }
        : {}),
    }, {
      enabled: o.protocol.sessions,
      resendWindowMs: o.resendWindowMs,
      resendWindowBytes: o.resendWindowBytes,
      maxFrameBytes: o.maxFrameBytes,
    });
    this.#workers = new WorkerHost({
      clock: platform.clock,
      random: platform.random,
      log: platform.log,
      storage: o.storage,
      stats: this.#stats,
      nodeGuid: o.guid,
      closed: () => this.#state === "closed",
      send: (message) => this.send(message),
      attached: (guid) => {
        if (this.#ring !== undefined) {
          this.#ring.attached(guid);
          this.#events.emit("worker-attached", { worker: guid });
          return;
        }
        this.#broadcastSystem(workerLocation(this.guid, guid).message);
        // The original announces a new worker by datagram on three heartbeats.
        this.#discovery.announce(guid, this.#protocol.workerAnnouncements);
        this.#events.emit("worker-attached", { worker: guid });
      },
      detaching: (guid) => this.#discovery.forget(guid),
      detached: (guid) => {
        if (this.#ring !== undefined) {
          this.#ring.detached(guid);
          this.#events.emit("worker-detached", { worker: guid });
          return;
        }
        this.#broadcastSystem({
          [SYSTEM_KEY]: SystemKind.WorkerRemoved,
          [SystemField.NodeGuid]: this.guid,
          [SystemField.WorkerGuid]: guid,
        });
        this.#events.emit("worker-detached", { worker: guid });
      },
      refused: (message, worker) =>
        this.#delivery.undeliverable(
          message,
          "worker-queue-full",
          `worker "${worker.guid}" refused it`,
        ),
      delivered: (worker, message) => {
        if (
          this.#events.has("message-delivered") && message.message[SERVICE_FIELD] === undefined
        ) {
          this.#events.emit("message-delivered", { worker: worker.guid, message });
        }
        this.#tracing?.queued(message);
      },
      ...(this.#tracing === undefined ? {} : {
        traceHandling: (guid: string) => this.#tracing!.handling(guid),
      }),
      late: (ms) => this.#loopLagSeconds.observe(ms / 1000),
    }, o.workerTickMs);
    this.#delivery = new Delivery<Link>({
      log: platform.log,
      stats: this.#stats,
      workers: this.#workers,
      links: () => this.#links,
      locate: (worker) =>
        this.#ring === undefined ? this.#locations.get(worker) : this.#ring.located(worker),
      knowsNode: (guid) =>
        this.#ring === undefined ? this.#peers.has(guid) : this.#ring.isMember(guid),
      frame: (message, transient) => this.#frame(message, transient),
      write: (link, message, frame) => {
        if (message.message[SERVICE_FIELD] === undefined) this.#ring?.used(link.peerGuid);
        return this.#sessions.write(link, message, frame);
      },
      ...(o.membership === "ring"
        ? {
          unrouted: (message: MapMessage, node: string | undefined) =>
            this.#ring!.send(message, node),
          broadcastUnlinked: (message: MapMessage) => {
            for (const member of this.#ring!.liveMembers()) {
              if (!this.#links.has(member)) this.#ring!.send(message, member);
            }
          },
        }
        : {}),
      onUndeliverable: (message, reason, detail) =>
        this.#events.emit("undeliverable", { message, reason, ...(detail ? { detail } : {}) }),
      onOutcome: (message, outcome) => this.#events.emit("message-outcome", { message, outcome }),
    }, {
      guid: o.guid,
      maxFrameBytes: o.maxFrameBytes,
      maxLinkBufferBytes: o.maxLinkBufferBytes,
    });
    this.#locations = new WorkerLocations({
      log: platform.log,
      hostsLocally: (worker) => this.#workers.has(worker),
      onAdded: (worker, node) => this.#events.emit("location-added", { worker, node }),
      onRemoved: (worker, node) => this.#events.emit("location-removed", { worker, node }),
    });
    this.#gossip = new Gossip<Link>({
      random: platform.random,
      links: () => this.#links,
      workers: () => this.#workers.guids(),
      write: (link, message, transient) => link.write(this.#frame(message, transient)),
      learn: (guid, address, incarnation) => {
        this.#peers.learn(guid, address, incarnation, "gossip");
      },
      malformed: (link, error) => this.#table.protocolFailure(link, "frame", error),
      workerSet: (node, workers) => this.#locations.replace(node, workers),
    }, {
      guid: o.guid,
      // Under ring membership the membership tells who is alive: links carry no peer lists.
      peerLists: o.protocol.peerLists && o.membership === "mesh",
      workerSets: o.protocol.workerSets,
      gossipIntervals: o.gossipIntervals,
    });
    this.#twins = new Twins({
      clock: platform.clock,
      log: platform.log,
      stats: this.#stats,
      onReport: (guid, address, incarnation) =>
        this.#events.emit("duplicate-guid", { guid, address, incarnation }),
    });
    this.#table = new LinkTable({
      net: platform.net,
      clock: platform.clock,
      random: platform.random,
      log: platform.log,
      stats: this.#stats,
      output: this.#output,
      peers: this.#peers,
      twins: this.#twins,
      sessions: this.#sessions,
      running: () => this.#state === "running",
      startedAtMs: () => this.#startedAtMs,
      activate: (link) => this.#activate(link),
      onLinkDown: (link, reason, detail) => this.#linkDown(link, reason, detail),
      onMessage: (link, message) => this.#onLinkMessage(link, message),
      onProtocolError: (address, stage, error) =>
        this.#events.emit("protocol-error", { address, stage, error }),
      resendWorkerSet: (link) => {
        if (this.#ring === undefined) this.#gossip.sendWorkerSet(link);
      },
      forgetLocations: (guid) => this.#locations.forget(guid),
    }, o);
    this.#links = this.#table.links;
    this.#connections = this.#table.connections;
    this.#router = new SystemRouter<Link>({
      log: platform.log,
      sessions: this.#sessions,
      gossip: this.#gossip,
      locations: this.#locations,
      heartbeat: (guid, address, incarnation) => {
        this.#onHeartbeat(guid, address, incarnation);
      },
      isLinked: (guid) => this.#links.has(guid),
      refused: (link, fields) => this.#table.onRefused(link, fields),
    }, o.protocol);
    this.#discovery = new Discovery({
      net: platform.net,
      clock: platform.clock,
      log: platform.log,
      stats: this.#stats,
      running: () => this.#state === "running",
      onHeartbeat: (guid, address, incarnation, memberVersion) =>
        this.#onHeartbeat(guid, address, incarnation, memberVersion),
      onSystem: (message, from) => this.#router.onDatagram(message, from),
      onMessage: (message) => this.#receive(message, undefined),
      onBadDatagram: (address, error) =>
        this.#events.emit("protocol-error", { address, stage: "datagram", error }),
    }, {
      config: o.discovery,
      protocol: o.protocol,
      auth: o.auth,
      codec: o.codec,
      maxDatagramBytes: o.maxDatagramBytes,
      cacheSources: o.membership === "ring" ? 16 : 1024,
      heartbeatOnReady: o.membership === "mesh",
    });
    this.#events = new Emitter<NodeEvents>((error, type) => {
      this.#stats.listenerErrors++;
      this.#platform.log.log("error", "listener.error", { event: type, error: String(error) });
    });
    if (options.onMessage) this.onMessage(options.onMessage);
    this.#placement = new Placement({
      guid: this.guid,
      clock: platform.clock,
      log: platform.log,
      silenceMs: this.#o.silenceMs,
      send: (message) => this.send(message),
      attachWorker: (worker) => this.#workers.attach(worker),
      detachWorker: (guid) => this.#workers.detach(guid),
      hasWorker: (guid) => this.#workers.has(guid),
      locate: (guid) => this.locate(guid),
      // Under ring membership every live member takes part (links open as messages need them).
      isLinked: (peer) => this.#ring?.isMember(peer) ?? this.#links.has(peer),
      linkedPeers: () =>
        !this.#protocol.placement
          ? []
          : this.#ring !== undefined
          ? this.#ring.liveMembers()
          : [...this.#links.keys()],
      lastHeardMs: (peer) => {
        // Under ring membership a live member is heard from (through its monitors) whether or
        // not a link to it is open.
        if (this.#ring?.isMember(peer)) return platform.clock.now();
        const heard = this.#peers.get(peer)?.lastHeardMs;
        const link = this.#links.get(peer)?.lastReceivedMs;
        return heard === undefined ? link : Math.max(heard, link ?? heard);
      },
      emit: (type, event) => this.#events.emit(type, event as never),
    }, options.placement);
    this.handleService(
      PLACEMENT_SERVICE,
      (message, info) => {
        this.#ring?.stir();
        this.#placement.receive(message, info.fromNode);
      },
      (message, reason) => this.#placement.undelivered(message.destination, reason),
    );
    // The original's nodes would take placement traffic for user messages: in its protocol
    // placement stays local (spawns land on this node).
    if (this.#protocol.placement) {
      this.#events.on("link-up", ({ peer }) => {
        if (this.#ring === undefined) this.#placement.linkUp(peer);
      });
    }
    // Under ring membership links come and go with traffic: a host is lost when the membership
    // says so (see memberDown below), not when its link closes.
    this.#events.on("link-down", ({ peer }) => {
      if (this.#ring === undefined && !this.#links.has(peer)) this.#placement.linkDown(peer);
    });
    this.#ring = o.membership === "mesh" ? undefined : new RingMode({
      net: platform.net,
      clock: platform.clock,
      random: platform.random,
      log: platform.log,
      stats: this.#stats,
      isLinked: (node) => this.#links.has(node),
      isBusy: (node) => {
        const link = this.#links.get(node);
        return link !== undefined && (link.session?.window.length ?? 0) > 0;
      },
      dial: (_node, address) => {
        this.#ring?.stir();
        this.#table.dial(address, undefined, undefined);
      },
      closeLink: (node, reason, detail) => {
        const link = this.#links.get(node);
        if (link !== undefined) this.#table.close(link, reason, reason === "idle", detail);
      },
      route: (message, node) => {
        if (this.#state === "closed") this.#delivery.undeliverable(message, "node-closed");
        else if (node !== undefined && isBroadcast(message.destination)) {
          // A broadcast that waited for one node's link goes on that link only.
          this.#delivery.toLink(node, message);
        } else this.#delivery.reroute(message);
      },
      undeliverable: (message, reason, detail) =>
        this.#delivery.undeliverable(message, reason, detail),
      memberUp: (node, address) => {
        // A node that hosts no kinds and placed nothing has nothing to say: at scale, saying it
        // to every member would cost a link to each.
        if (this.#placement.active) this.#placement.linkUp(node);
        this.#events.emit("peer-discovered", { peer: node, address, via: "membership" });
      },
      memberDown: (node, address) => {
        this.#placement.linkDown(node);
        this.#events.emit("peer-lost", { peer: node, address });
      },
      round: (dueMs) => {
        this.#tickDueMs = dueMs;
        this.#tick();
        return this.#quietRounds();
      },
      quietUntilMs: () => this.#sessions.nextLookMs,
      badDatagram: (address, error) =>
        this.#events.emit("protocol-error", {
          address: formatAddress(address),
          stage: "datagram",
          error: error.message,
        }),
    }, {
      guid: o.guid,
      intervalMs: o.intervalMs,
      maxLinks: Math.min(o.maxLinks, 64),
      seeds: o.seeds,
      dialTimeoutMs: 3 * o.intervalMs,
      tombstoneMs: o.tombstoneMs,
      auth: o.auth,
    });
  }

  /**
   * Registers a worker kind this node can host: spawns from any node may now place workers of
   * that kind here. `factory(guid, params)` makes one.
   */
  registerKind(kind: string, factory: WorkerFactory): void {
    this.#placement.registerKind(kind, factory);
  }

  /**
   * Spawns a worker of `kind` on a node chosen by the placement strategy (least loaded by
   * default) among this node and its linked peers that host the kind, and returns that node's
   * GUID. Every linked node learns the choice; if the host is lost, the worker is placed again
   * on a live node. Throws if the GUID is placed already or no node hosts the kind.
   *
   * @example
   * ```ts
   * import { AutoMpiNode } from "./node.ts";
   * import { EchoWorker } from "./worker.ts";
   * import type { Platform } from "./platform.ts";
   *
   * // Every node that can host echo workers registers the kind (here, from the start).
   * export function startEchoHost(platform: Platform): AutoMpiNode {
   *   const node = new AutoMpiNode(platform, {
   *     placement: { kinds: { echo: (guid) => new EchoWorker(guid) } },
   *   });
   *   node.start();
   *   return node;
   * }
   * // Then, on any node of the cluster, hosting echo workers or not:
   * export const place = (node: AutoMpiNode) => node.spawn("echo", "echo-1"); // the host's GUID
   * ```
   */
  spawn(kind: string, guid: string, options?: SpawnOptions): string {
    return this.#placement.spawn(kind, guid, options);
  }

  /** Stops a spawned worker wherever it runs; returns whether it was placed. */
  stopWorker(guid: string): boolean {
    return this.#placement.stop(guid);
  }

  /** The placement layer: where spawned workers run, each node's load. */
  get placement(): Placement {
    return this.#placement;
  }

  // ---- public API --------------------------------------------------------------------------------

  /** `host:port` peers dial to reach this node (final once started). */
  get address(): string {
    return this.#address;
  }

  /** Whether the node is running. */
  get running(): boolean {
    return this.#state === "running";
  }

  /** Listens to a lifecycle event; returns a function that stops listening. */
  on<K extends keyof NodeEvents>(type: K, listener: (event: NodeEvents[K]) => void): Unsubscribe {
    return this.#events.on(type, listener);
  }

  /**
   * Registers the handler of a node service (placement, say): node-addressed messages whose
   * {@link SERVICE_FIELD} names it go to `handler` alone, not to {@link onMessage} handlers;
   * those naming a service nobody registered are counted (`stats.unknownService`) and dropped.
   * Messages of the service that cannot be delivered are reported to `onUndeliverable`
   * instead of the node's `undeliverable` event. Returns a function that unregisters it.
   */
  handleService(
    name: string,
    handler: MessageHandler,
    onUndeliverable?: (message: MapMessage, reason: UndeliverableReason) => void,
  ): Unsubscribe {
    if (typeof name !== "string" || name === "") {
      throw new TypeError("Cannot register service: name must be a non-empty string");
    }
    if (typeof handler !== "function") {
      throw new TypeError(`Cannot register service "${name}": handler is not a function`);
    }
    return this.#delivery.addService(name, handler, onUndeliverable);
  }

  /** Adds an external message handler; returns a function that removes it. */
  onMessage(handler: MessageHandler): Unsubscribe {
    if (typeof handler !== "function") {
      throw new TypeError("Cannot add message handler: it is not a function");
    }
    return this.#delivery.addHandler(handler);
  }

  /** Starts listening, discovery and housekeeping. Emits `started` once listening. */
  start(): void {
    if (this.#state !== "new") {
      throw new Error(`Cannot start node ${this.guid}: it is ${this.#state}`);
    }
    this.#state = "starting";
    this.#startedAtMs = this.#now();
    this.#listen(this.#o.listen, 0, this.#o.portSearch);
  }

  /** Attaches a worker: it starts getting messages, and every linked node learns where it is. */
  attachWorker(worker: Worker): void {
    this.#workers.attach(worker);
  }

  /** Detaches and closes a worker; linked nodes forget its location. Returns whether it was here. */
  detachWorker(guid: string): boolean {
    // A spawned worker is stopped cluster-wide; otherwise its entry would start it again.
    if (this.#placement.runs(guid)) return this.#placement.stop(guid);
    return this.#workers.detach(guid);
  }

  /** The worker attached with this GUID, if any. */
  worker(guid: string): Worker | undefined {
    return this.#workers.get(guid);
  }

  /**
   * Sends a message: to a local worker directly, to a remote worker or node over its link,
   * to `ALLNodes`/`ALLWorkers` over every link and locally. Returns `false` if it could not be
   * handed on anywhere; an `undeliverable` event then says why. Do not modify the message
   * afterwards: local receivers get the same object (when the node traces, a copy carrying the
   * trace context in `traceparent`).
   */
  send(message: MapMessage): boolean {
    checkMessage(message);
    return this.#tracing === undefined
      ? this.#route(message)
      : this.#tracing.send(message, this.#routeTraced);
  }

  readonly #routeTraced = (message: MapMessage): boolean => this.#route(message);

  #route(message: MapMessage): boolean {
    if (this.#events.has("message-sent") && message.message[SERVICE_FIELD] === undefined) {
      this.#events.emit("message-sent", { message });
    }
    if (this.#state === "closed") return this.#delivery.undeliverable(message, "node-closed");
    return this.#delivery.route(message);
  }

  /**
   * The node's metrics, as Prometheus and OpenMetrics name them (`automp_…`; units as suffixes,
   * counters as `_total` when formatted, no label but the node's own GUID on `automp_node_info`).
   * Format them with `formatMetrics` (the state server's `GET /metrics` does); in the simulator,
   * read them straight.
   *
   * @example
   * ```ts
   * import type { AutoMpiNode } from "./node.ts";
   * import { formatMetrics } from "./metrics.ts";
   *
   * // What the state server's GET /metrics answers (a simulated node's metrics read the same).
   * export const scrape = (node: AutoMpiNode): string => formatMetrics(node.metrics());
   * // Or one figure, straight from the families:
   * export function linksUp(node: AutoMpiNode): number {
   *   const family = node.metrics().find((m) => m.name === "automp_links");
   *   return family?.type === "gauge" ? family.samples[0].value : 0;
   * }
   * ```
   */
  metrics(): MetricFamily[] {
    let bytesIn = this.#table.closedBytesIn;
    let bytesOut = this.#table.closedBytesOut;
    for (const connection of this.#connections) {
      bytesIn += connection.bytesIn;
      bytesOut += connection.bytesOut;
    }
    let queued = 0;
    for (const worker of this.#workers.workers()) {
      queued += (worker as { queuedMessages?: number }).queuedMessages ?? 0;
    }
    let unconfirmed = 0;
    let uncertain = 0;
    for (const session of this.#sessions.outbound()) {
      unconfirmed += session.window.length;
      uncertain += session.uncertain.size;
    }
    const families = nodeMetrics({
      guid: this.guid,
      incarnation: this.incarnation,
      codec: this.#codec.name,
      uptimeSeconds: this.#state === "new" ? 0 : (this.#now() - this.#startedAtMs) / 1000,
      links: this.#links.size,
      peers: this.#peers.size,
      workers: this.#workers.size,
      locations: this.#locations.size,
      queuedMessages: queued,
      unconfirmed,
      uncertain,
      bytesIn,
      bytesOut,
      stats: this.#stats,
      undeliverableByReason: this.#delivery.undeliverableByReason,
      linksDownByReason: this.#linksDownByReason,
      handshakeSeconds: this.#handshakeSeconds,
      roundTripSeconds: this.#sessions.roundTripSeconds,
      loopLagSeconds: this.#loopLag(),
      storage: this.#o.storage.metrics?.(),
    });
    if (this.#ring !== undefined) families.push(...this.#ring.metrics());
    return families;
  }

  /** The loop-lag histogram, with the on-time ticks counted so far added. */
  #loopLag(): Histogram {
    this.#countShortRounds();
    if (this.#onTimeTicks > 0) {
      this.#loopLagSeconds.observe(0, this.#onTimeTicks);
      this.#onTimeTicks = 0;
    }
    return this.#loopLagSeconds;
  }

  /** A snapshot of the node's state. */
  state(): NodeState {
    const now = this.#now();
    const locations: Record<string, string> = {};
    for (const [worker, node] of this.#locations.entries()) locations[worker] = node;
    return {
      guid: this.guid,
      incarnation: this.incarnation,
      address: this.#address,
      codec: this.#codec.name,
      authenticated: this.#auth.authenticated,
      state: this.#state,
      uptimeMs: this.#state === "new" ? 0 : now - this.#startedAtMs,
      links: this.#table.states(now),
      peers: [...this.#peers.values()].map((peer) => ({
        guid: peer.guid,
        address: peer.address,
        lastHeardMs: now - peer.lastHeardMs,
        linked: this.#links.has(peer.guid),
      })),
      workers: [...this.#workers.workers()].map((worker) => ({
        guid: worker.guid,
        ageMs: worker.age(),
      })),
      locations,
      stats: { ...this.#stats },
      limits: limitsOf(this.#o),
      placement: this.#placement.state(),
      membership: this.membership(),
      ...(this.#twins.last === undefined ? {} : { duplicateGuid: this.#twins.last }),
    };
  }

  /** How many nodes are linked now. */
  get linkCount(): number {
    return this.#links.size;
  }

  /** GUIDs of the nodes linked now. */
  linkedPeers(): string[] {
    return [...this.#links.keys()];
  }

  /** Where a worker lives: this node's GUID, another node's, or `undefined`. */
  locate(worker: string): string | undefined {
    if (this.#workers.has(worker)) return this.guid;
    return this.#ring === undefined ? this.#locations.get(worker) : this.#ring.located(worker);
  }

  /**
   * Which membership runs (`NodeOptions.membership`) and, under ring membership, how many
   * members are alive, suspect and dead and what the worker directory holds. Cheap: counts only.
   */
  membership(): MembershipState {
    return this.#ring?.state() ?? { mode: "mesh" };
  }

  /** How many workers this node hosts now. */
  get workerCount(): number {
    return this.#workers.size;
  }

  /** GUIDs of the workers this node hosts now, in attach order. */
  workerGuids(): string[] {
    return [...this.#workers.guids()];
  }

  /** How many remote worker locations this node knows. */
  get knownLocations(): number {
    return this.#locations.size;
  }

  /**
   * The cluster as this node sees it: itself, the peers it knows, its own links, and the links
   * its linked peers reported in their latest peer lists (so it may lag by a few intervals).
   */
  clusterView(): ClusterView {
    const nodes: Array<ClusterView["nodes"][number]> = [{
      guid: this.guid,
      address: this.#address,
      self: true,
      linked: false,
    }];
    for (const peer of this.#peers.values()) {
      nodes.push({
        guid: peer.guid,
        address: peer.address,
        self: false,
        linked: this.#links.has(peer.guid),
      });
    }
    return { nodes, links: this.#gossip.clusterLinks(nodes) };
  }

  /**
   * Closes the node: says goodbye on every link (so peers drop it at once), closes sockets
   * and workers. Idempotent.
   */
  close(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#tickTimer?.cancel();
    this.#workers.stopWork();
    this.#table.closeAll();
    this.#sessions.endAll();
    this.#listener?.close();
    this.#discovery.close();
    this.#ring?.close();
    this.#placement.close();
    this.#workers.closeAll();
    this.#platform.log.log("info", "node.closed", { guid: this.guid });
    this.#events.emit("closed", {});
  }

  // ---- start-up ----------------------------------------------------------------------------------

  #listen(listen: Address, attempt: number, search: number): void {
    const port = listen.port === 0 ? 0 : listen.port + attempt;
    this.#listener = this.#platform.net.listen({ host: listen.host, port }, {
      onListening: (listener) => {
        if (this.#state !== "starting") return listener.close();
        this.#address = formatAddress({ host: this.#o.advertiseHost, port: listener.local.port });
        this.#listenPort = listener.local.port;
        this.#onListening();
      },
      onError: (error) => {
        const code = (error as { code?: string }).code;
        if (code === "EADDRINUSE" && attempt + 1 < search && listen.port !== 0) {
          this.#listen(listen, attempt + 1, search);
          return;
        }
        this.#platform.log.log("error", "node.listen-failed", { port, error: error.message });
        this.#state = "closed";
        this.#events.emit("closed", {});
      },
      onConnection: (conn) => {
        this.#ring?.stir();
        return this.#table.accept(conn);
      },
    });
  }

  #onListening(): void {
    this.#state = "running";
    this.#identity = {
      guid: this.guid,
      incarnation: this.incarnation,
      codec: this.#codec.name,
      address: this.#address,
      ...(this.#ring === undefined ? {} : { memberVersion: this.#ring.version }),
    };
    this.#table.start(this.#identity);
    this.#discovery.start(this.#identity);
    this.#platform.log.log("info", "node.started", {
      guid: this.guid,
      incarnation: this.incarnation,
      address: this.#address,
    });
    this.#events.emit("started", {
      guid: this.guid,
      incarnation: this.incarnation,
      address: this.#address,
    });
    this.#ring?.start({ host: this.#o.listen.host, port: this.#listenPort }, this.#address);
    this.#peers.dialSeeds();
    // Under ring membership the housekeeping runs on the membership's rounds (one wake), and the
    // first heartbeat goes at a random moment of the first tenth of an interval: soon, yet a
    // cluster started at once does not broadcast at once (each round costs a subnet N²).
    if (this.#ring === undefined) {
      this.#scheduleTick(this.#platform.random.next() * this.#o.intervalMs);
    } else {
      this.#platform.clock.schedule(this.#platform.random.next() * this.#o.intervalMs / 10, () => {
        if (this.#state === "running") this.#discovery.sendHeartbeat();
      });
    }
  }

  // ---- housekeeping ------------------------------------------------------------------------------

  #now(): number {
    return this.#platform.clock.now();
  }

  #scheduleTick(delayMs: number): void {
    this.#tickDueMs = this.#now() + delayMs;
    this.#tickTimer = this.#platform.clock.schedule(delayMs, () => this.#tick());
  }

  #tick(): void {
    if (this.#state !== "running") return;
    this.#countShortRounds();
    this.#ticks++;
    const now = this.#now();
    const lagMs = now - this.#tickDueMs;
    if (lagMs <= 0) this.#onTimeTicks++;
    else this.#loopLagSeconds.observe(lagMs / 1000);
    // Under ring membership heartbeats only help others join: they back off.
    if (this.#ring === undefined || this.#ring.shouldBeat(this.#ticks - 1)) {
      this.#discovery.sendHeartbeat();
    }
    this.#ring?.tick(now);
    if (this.#connections.size > 0) this.#table.tick(now);
    this.#peers.tick(now);
    this.#sessions.expire(now);
    if (this.#protocol.placement) this.#placement.tick();
    this.#gossip.tick(this.#ticks);
    if (this.#ring !== undefined) return; // the next round calls again
    const spread = this.#o.intervalMs * this.#o.jitter;
    this.#scheduleTick(this.#o.intervalMs - spread + 2 * spread * this.#platform.random.next());
  }

  /**
   * Counts the ring's short rounds since the last count as ticks (on time, with nothing to do:
   * see `RingMode`'s wake) for this node and its placement.
   */
  #countShortRounds(): void {
    const rounds = this.#ring?.takeShortRounds() ?? 0;
    if (rounds === 0) return;
    this.#ticks += rounds;
    this.#onTimeTicks += rounds;
    if (this.#protocol.placement) this.#placement.skipTicks(rounds);
  }

  /**
   * After a round under ring membership: how many of the next rounds would find nothing to do
   * here (see `RingHost.round`) if nothing happens before them. None while a link or a peer is
   * there, or when the next tick may broadcast a heartbeat (the ring looks at "alone" itself);
   * the placement's digest rounds are never skipped, nor a session's look (a time).
   */
  #quietRounds(): number {
    if (this.#state !== "running" || this.#ring?.shouldBeat(this.#ticks) !== false) return 0;
    if (this.#connections.size > 0 || this.#peers.size > 0) return 0;
    return this.#protocol.placement ? this.#placement.quietTicks() : Infinity;
  }

  #onHeartbeat(
    guid: string,
    address: string,
    incarnation: string,
    memberVersion?: number,
  ): Peer | undefined {
    this.#stats.heartbeatsReceived++;
    if (guid === this.guid) {
      if (incarnation !== this.incarnation) this.#twins.report(guid, address, incarnation);
      return undefined;
    }
    if (this.#ring !== undefined) {
      this.#ring.heard(guid, address, memberVersion ?? 0);
      return undefined;
    }
    return this.#peers.learn(guid, address, incarnation, "heartbeat");
  }

  // ---- links (the link table's host): up, down, what arrives ------------------------------------

  #activate(connection: Link): void {
    if (this.#links.size >= this.#o.maxLinks) {
      // Both sides may have dialled while under the limit: the first to finish wins.
      this.#stats.connectionsRefused++;
      this.#platform.log.log("warn", "link.refused", {
        peer: connection.peerGuid,
        reason: `${this.#links.size} links, the limit`,
      });
      this.#table.close(connection, "local", false);
      return;
    }
    const now = this.#now();
    this.#table.detach(connection);
    connection.state = "active";
    connection.activeAtMs = now;
    this.#handshakeSeconds.observe((now - connection.createdAtMs) / 1000);
    const known = this.#peers.get(connection.peerGuid);
    const peer = this.#peers.learn(
      connection.peerGuid,
      connection.peerAddress,
      connection.peerIncarnation,
      "link",
    );
    connection.peer = peer;
    this.#peers.linked(peer, connection.seed);
    this.#table.links.set(connection.peerGuid, connection);
    peer.linked = true;
    if (this.#protocol.sessions) this.#sessions.start(connection);
    this.#gossip.linked();
    this.#stats.linksUp++;
    this.#platform.log.log("info", "link.up", {
      peer: connection.peerGuid,
      address: connection.peerAddress,
      direction: connection.direction,
    });
    this.#events.emit("link-up", {
      peer: connection.peerGuid,
      address: connection.peerAddress,
      direction: connection.direction,
    });
    if (connection.state !== "active") return;
    if (this.#ring !== undefined) {
      this.#ring.linkUp(connection.peerGuid);
      return;
    }
    this.#gossip.sendWorkerSet(connection);
    // A peer we did not hear by broadcast may not hear the others either: tell it whom we know.
    if (known === undefined || known.via !== "heartbeat") this.#gossip.sendPeerList(connection);
  }

  #linkDown(connection: Link, reason: LinkDownReason, detail?: string): void {
    const peerGuid = connection.peerGuid;
    this.#gossip.unlinked(peerGuid);
    this.#stats.linksDown++;
    this.#linksDownByReason.set(reason, (this.#linksDownByReason.get(reason) ?? 0) + 1);
    this.#locations.forget(peerGuid);
    // One that left on purpose is forgotten now rather than redialled.
    const peer = this.#peers.unlinked(peerGuid, reason);
    this.#platform.log.log("info", "link.down", {
      peer: peerGuid,
      address: connection.peerAddress,
      reason,
      ...(detail ? { detail } : {}),
    });
    this.#events.emit("link-down", {
      peer: peerGuid,
      address: connection.peerAddress,
      reason,
      ...(detail ? { detail } : {}),
    });
    if (this.#ring !== undefined) {
      // Links close when idle: the membership, not a goodbye, says who is lost.
      this.#ring.linkDown(peerGuid, reason);
      return;
    }
    if (reason === "goodbye" && peer !== undefined) this.#peers.announceLost(peer);
  }

  /** A message arrived on a link: a system message, or data taken once by its session. */
  #onLinkMessage(link: Link, message: MapMessage): void {
    if (message.message[SYSTEM_KEY] !== undefined) {
      this.#router.onLink(link, message, link.remote);
    } else if (this.#sessions.take(link)) {
      // Only the application's data keeps a link from being idle (not keepalives, acks or
      // services' traffic such as placement's).
      if (message.message[SERVICE_FIELD] === undefined) this.#ring?.used(link.peerGuid);
      this.#receive(message, link);
    }
  }

  /** A message arrived (over `link`, or by datagram): delivered, within a span when tracing. */
  #receive(message: MapMessage, link: Link | undefined): void {
    if (this.#tracing === undefined) this.#delivery.receive(message, link);
    else this.#tracing.receive(message, link?.conn.remote, this.#deliverTraced, link);
  }

  readonly #deliverTraced = (message: MapMessage, link: Link | undefined): void =>
    this.#delivery.receive(message, link);

  // ---- frames out --------------------------------------------------------------------------------

  /**
   * A message's frame payload in this node's codec, in pieces (large data stays where it is);
   * the length header is added per write.
   */
  #frame(message: MapMessage, transient = false): Frame {
    return messageFrame(this.#codec, message, transient);
  }

  #broadcastSystem(fields: Record<string, string>): void {
    if (this.#links.size === 0) return;
    const frame = this.#frame({ destination: "", source: this.guid, message: fields });
    for (const link of this.#links.values()) link.write(frame);
  }
}

/**
 * Creates (without starting) a node; the same as `new AutoMpiNode(platform, options)`.
 *
 * @example
 * ```ts
 * import { createNode } from "./node.ts";
 * import type { Platform } from "./platform.ts";
 * export const make = (platform: Platform) => createNode(platform, { guid: "A" });
 * ```
 */
export function createNode(platform: Platform, options: NodeOptions = {}): AutoMpiNode {
  return new AutoMpiNode(platform, options);
}
