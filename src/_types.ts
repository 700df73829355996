/**
 * The node's public types: its options, events, and state snapshot shapes. `node.ts` exports
 * them (and `mod.ts` with it); the node's parts import them from here.
 *
 * @module
 */
import type { CodecName } from "./codec.ts";
import type { MapMessage } from "./message.ts";
import type { PlacementEvents, PlacementOptions, PlacementState } from "./placement.ts";
import type { Address, CloseReason } from "./platform.ts";
import type { Storage } from "./storage.ts";
import type { TracerProvider } from "./_tracing.ts";

/** Discovery by broadcast heartbeats. */
export interface DiscoveryOptions {
  /** UDP port every node of the cluster shares. Default 9999. */
  readonly port?: number;
  /** Where heartbeats go: the subnet broadcast address (e.g. `127.255.255.255`). */
  readonly broadcastAddress: string;
  /** Address the discovery socket binds to. Default `0.0.0.0`. */
  readonly bindHost?: string;
  /**
   * Also receive datagrams sent to the limited broadcast `255.255.255.255` on the same port,
   * with a second socket bound there: original AutoMPI nodes send their heartbeats and worker
   * announcements only to it, which a socket bound to a subnet broadcast never sees. Default:
   * true with `codec: "json"` when `bindHost` is set and is neither `0.0.0.0` (which hears them
   * anyway) nor a loopback address (a loopback cluster must not hear the LAN).
   */
  readonly limitedBroadcast?: boolean;
}

/** Options of a node. Every duration is in milliseconds. */
export interface NodeOptions {
  /** The node's GUID; default: 32 random hex digits. */
  readonly guid?: string;
  /** Where links are accepted. Default `{ host: "0.0.0.0", port: 8888 }`. */
  readonly listen?: Address;
  /** Host put in heartbeats and hellos; default the listen host (required if that is 0.0.0.0). */
  readonly advertiseHost?: string;
  /** If the listen port is taken, try up to this many following ports. Default 1 (no search). */
  readonly portSearch?: number;
  /** Broadcast discovery; `false` for none (seeds and peer lists only). */
  readonly discovery?: DiscoveryOptions | false;
  /** Link addresses (`host:port`) to dial whether heard or not. */
  readonly seeds?: ReadonlyArray<string | Address>;
  /**
   * How the node knows who is alive and where workers are.
   * - `"mesh"` (default): every node heartbeats every node and keeps a link to each, and every
   *   node knows every worker's location. Simplest, converges in milliseconds, and what the
   *   original does; its cost per node grows with the cluster (fine to about 100 nodes).
   * - `"ring"`: a cost per node that does not grow with the cluster. Membership by beats to two
   *   ring monitors over UDP on the listen port (a crash is known everywhere in about 2.75
   *   heartbeat intervals), broadcast heartbeats only to join (on the first intervals, then
   *   only while it knows no one), links opened when there is something to send and closed when idle, worker
   *   locations in a directory spread over the members with a cache at each sender. A message
   *   to `ALLNodes` or `ALLWorkers` opens a link to every member. Needs the native protocol;
   *   with a cluster key every ring datagram is sealed. See `docs/scaling.md`.
   */
  readonly membership?: "mesh" | "ring";
  /**
   * Ring membership: how long a dead member's tombstone is kept after this node learned of the
   * death (it stops a stale "alive" from bringing the member back); then it is dropped, so the
   * tables of a churning cluster do not grow without end. Default 24 hours.
   */
  readonly tombstoneMs?: number;
  /** Heartbeat and housekeeping interval. Default 1000. */
  readonly heartbeatIntervalMs?: number;
  /** Each interval is drawn in `interval × (1 ± jitter)`. Default 0.1. */
  readonly heartbeatJitter?: number;
  /**
   * A link with nothing heard for this many intervals is dropped. Default 3. With `codec:
   * "json"` the bound is at least this many of the original's 1 s heartbeats, so a fast
   * interval here does not drop original nodes between their heartbeats.
   */
  readonly silenceIntervals?: number;
  /** A link whose handshake is not done in this time is dropped. Default 2000. */
  readonly handshakeTimeoutMs?: number;
  /** A dial not connected in this time is abandoned. Default 2000. */
  readonly connectTimeoutMs?: number;
  /** First delay before redialling a failed peer; doubles up to the max. Default 250. */
  readonly reconnectMinMs?: number;
  /** Longest redial delay. Default 8000. */
  readonly reconnectMaxMs?: number;
  /**
   * Of two nodes that hear each other, the one with the lower GUID dials; the other dials too
   * only if no link appeared within this time. Default 2 intervals.
   */
  readonly dialGraceMs?: number;
  /** Codec of this node's MapMessage frames and heartbeats. Default `"msgpack"`. */
  readonly codec?: CodecName;
  /** Largest frame accepted on a link. Default 16 MiB. */
  readonly maxFrameBytes?: number;
  /** A link with more than this many bytes waiting to be sent refuses more. Default 8 MiB. */
  readonly maxLinkBufferBytes?: number;
  /**
   * How long a message sent on a link that went down is kept to be resent when a link to the
   * same peer incarnation comes back (a flap, a partition, a pause). Past it, the message is
   * reported `uncertain`, and its outcome later if it becomes known (`message-outcome`).
   * Default 30,000.
   */
  readonly resendWindowMs?: number;
  /**
   * Most bytes of unconfirmed messages kept per peer (they are held until confirmed anyway: this
   * bounds how far a sender runs ahead of a slow or cut-off peer); past it, sends to that peer
   * are refused with `link-buffer-full`. Default 8 × `maxLinkBufferBytes` (64 MiB).
   */
  readonly resendWindowBytes?: number;
  /** How often workers' `doWork` runs. Default 100. */
  readonly workerTickMs?: number;
  /**
   * Largest datagram accepted on the discovery port; larger ones are dropped and counted.
   * Default 8192 (a heartbeat is about 200 bytes; the original's datagrams fit in 8 KiB).
   */
  readonly maxDatagramBytes?: number;
  /** Most links at once: no dialling beyond it, and further peers are refused. Default 1024. */
  readonly maxLinks?: number;
  /**
   * Most accepted connections still in their handshake at once; more are closed at once, so a
   * flood of connections that never say hello cannot pile up. Connections this node dials do
   * not count. Default 1024, like `maxLinks`: when a cluster starts, the node with the highest
   * GUID is dialled by every other node at once, and refusing some only delays the mesh by a
   * backoff; the handshake timeout bounds how long each may wait.
   */
  readonly maxPendingHandshakes?: number;
  /**
   * Every this many intervals, send a peer list to one random link that has not had our
   * current set of links yet (so a quiet cluster sends none); 0 never. Default 5.
   */
  readonly gossipIntervals?: number;
  /** An external message handler, as if added with `onMessage`. */
  readonly onMessage?: MessageHandler;
  /**
   * A secret every node of the cluster shares (text, as its UTF-8 bytes, or bytes). With it,
   * heartbeats are signed (HMAC-SHA256) and numbered, and a link comes up only after both
   * sides proved the key over fresh nonces: a node without it can neither link nor get a
   * message in, and datagrams other than signed heartbeats are refused (under ring
   * membership each membership and directory datagram is sealed: numbered and signed, replays
   * dropped). Nodes with and
   * without a key (or with different keys) never link. Not with `codec: "json"`: the original
   * protocol cannot carry it. Link traffic is not encrypted. Default: none.
   */
  readonly clusterKey?: string | Uint8Array;
  /**
   * Where hosted workers keep durable state (each under `workers/<guid>/`, see
   * {@link WorkerContext.storage}). Default: a fresh {@link MemoryStorage}, gone with the node.
   * The node never closes it: whoever made it does.
   */
  readonly storage?: Storage;
  /**
   * The placement layer: the worker kinds this node hosts and how it chooses hosts when it
   * spawns (see {@link AutoMpiNode.spawn}). Every node takes part in placement; without
   * kinds it hosts nothing placed but can still spawn elsewhere.
   */
  readonly placement?: PlacementOptions;
  /**
   * Where the node's trace spans go (`@opentelemetry/api`): default the provider the application
   * registered with the API before creating the node; with none, the node traces nothing and
   * adds nothing to messages. `false` turns tracing off whatever is registered. See the README's
   * "Traces".
   */
  readonly tracerProvider?: TracerProvider | false;
}

/** Where a received message came from. */
export interface MessageInfo {
  /** GUID of the node it came from over a link, or `undefined` (datagram or local send). */
  readonly fromNode: string | undefined;
  readonly via: "link" | "datagram" | "local";
}

/** An external message handler: gets `ALLNodes` and messages addressed to the node. */
export type MessageHandler = (message: MapMessage, info: MessageInfo) => void;

/** Why a link went down. */
export type LinkDownReason =
  | CloseReason
  | "silence"
  | "goodbye"
  | "peer-restarted"
  | "protocol-error"
  | "replaced"
  | "closing"
  | "buffer-full"
  /** The peer refused us: it holds a live link to another node with our GUID. */
  | "duplicate-guid"
  /** Ring membership: the link carried nothing for a while (both sides agree, with a goodbye). */
  | "idle"
  /** Ring membership: the membership holds the peer dead. */
  | "member-down";

/** Why a message could not be delivered. */
export type UndeliverableReason =
  | "unknown-destination"
  | "no-link"
  | "not-here"
  | "worker-queue-full"
  | "link-buffer-full"
  | "too-large"
  | "link-lost"
  | "node-closed"
  /** Ring membership: the worker directory did not answer where the destination is. */
  | "lookup-failed"
  /**
   * Sent on a link, then not confirmed within the resend window (the peer paused, partitioned,
   * restarted or gone): it may or may not have been handled. A `message-outcome` event follows
   * if the outcome becomes known.
   */
  | "uncertain";

/** Lifecycle events of a node and their payloads. */
export interface NodeEvents {
  started: { guid: string; incarnation: string; address: string };
  "peer-discovered": {
    peer: string;
    address: string;
    via: "heartbeat" | "seed" | "gossip" | "link" | "membership";
  };
  "link-up": { peer: string; address: string; direction: "in" | "out" };
  "link-down": { peer: string; address: string; reason: LinkDownReason; detail?: string };
  "peer-lost": { peer: string; address: string };
  undeliverable: { message: MapMessage; reason: UndeliverableReason; detail?: string };
  /**
   * A message entered this node through {@link AutoMpiNode.send} (by the application or one of
   * its workers), before routing. Services' own traffic is not reported. For tests and tracing:
   * the simulator's message history is built from it.
   */
  "message-sent": { message: MapMessage };
  /** A worker on this node accepted a message into its queue. Services' traffic is not reported. */
  "message-delivered": { worker: string; message: MapMessage };
  /**
   * The outcome of a message reported `undeliverable` with reason `uncertain` became known: the
   * peer it was for took it after all (`delivered`), or certainly never will (`not-delivered`).
   */
  "message-outcome": { message: MapMessage; outcome: "delivered" | "not-delivered" };
  "duplicate-guid": { guid: string; address: string; incarnation: string };
  "protocol-error": { address: string; stage: "handshake" | "frame" | "datagram"; error: string };
  "location-added": { worker: string; node: string };
  "location-removed": { worker: string; node: string };
  "worker-attached": { worker: string };
  "worker-detached": { worker: string };
  /** This node chose a host for a spawned worker (a spawn, or its host was lost). */
  "worker-placed": PlacementEvents["worker-placed"];
  /** A spawned worker placed on this node could not be started here. */
  "spawn-failed": PlacementEvents["spawn-failed"];
  closed: Record<string, never>;
}

/** The cluster as one node sees it. */
export interface ClusterView {
  readonly nodes: ReadonlyArray<{ guid: string; address: string; self: boolean; linked: boolean }>;
  /** Pairs of linked nodes, each pair once, lower GUID first. */
  readonly links: ReadonlyArray<readonly [string, string]>;
}

/** One link in a state snapshot. */
export interface LinkState {
  readonly peer: string;
  readonly address: string;
  readonly incarnation: string;
  readonly direction: "in" | "out";
  readonly ageMs: number;
  readonly lastHeardMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly framesIn: number;
  readonly framesOut: number;
  readonly bufferedBytes: number;
  /** Messages sent on the link that the peer has not acknowledged yet. */
  readonly unacked: number;
}

/** Counters of a node. */
export interface NodeStats {
  heartbeatsSent: number;
  heartbeatsReceived: number;
  framesIn: number;
  framesOut: number;
  messagesSent: number;
  messagesReceived: number;
  undeliverable: number;
  protocolErrors: number;
  datagramErrors: number;
  listenerErrors: number;
  workerErrors: number;
  linksUp: number;
  linksDown: number;
  duplicateGuids: number;
  /** Messages a peer resent after a link came back that this node had already taken. */
  duplicatesDropped: number;
  /**
   * Heartbeats, datagrams, hellos and proofs refused for the cluster key: unsigned, wrongly
   * signed, or (on a node without a key) a peer asking for one.
   */
  authFailures: number;
  /** Correctly signed heartbeats dropped as seen before: replayed, duplicated or reordered. */
  replaysDropped: number;
  /** Connections refused at the link or pending-handshake limit. */
  connectionsRefused: number;
  /** Node-addressed messages for a service no one registered here (see `handleService`). */
  unknownService: number;
}

/** The limits a node enforces, as its state snapshot shows them. */
export interface NodeLimits {
  maxFrameBytes: number;
  maxLinkBufferBytes: number;
  /** See {@link NodeOptions.resendWindowMs}. */
  resendWindowMs: number;
  /** See {@link NodeOptions.resendWindowBytes}. */
  resendWindowBytes: number;
  maxLinks: number;
  maxPendingHandshakes: number;
  maxDatagramBytes: number;
  handshakeTimeoutMs: number;
  /** How long a link or peer may stay silent before it is dropped (see silenceIntervals). */
  silenceMs: number;
}

/** A node seen claiming a GUID already in use (this node's, or that of a node it links). */
export interface DuplicateGuidState {
  /** The GUID claimed twice. */
  readonly guid: string;
  /** The other claimant's address (for our own GUID, the node holding links as it). */
  readonly address: string;
  readonly incarnation: string;
  /** On this node's clock. */
  readonly atMs: number;
}

/** A snapshot of a node's state. */
export interface NodeState {
  readonly guid: string;
  readonly incarnation: string;
  readonly address: string;
  readonly codec: CodecName;
  /** Whether the node has a cluster key: signed heartbeats, proven links. */
  readonly authenticated: boolean;
  readonly state: "new" | "starting" | "running" | "closed";
  readonly uptimeMs: number;
  readonly links: readonly LinkState[];
  readonly peers: ReadonlyArray<
    { guid: string; address: string; lastHeardMs: number; linked: boolean }
  >;
  readonly workers: ReadonlyArray<{ guid: string; ageMs: number }>;
  /** Worker GUID → GUID of the node hosting it, for workers on other nodes. */
  readonly locations: Readonly<Record<string, string>>;
  readonly stats: Readonly<NodeStats>;
  /** The limits this node enforces. */
  readonly limits: Readonly<NodeLimits>;
  /**
   * The last twin seen: a node that claimed this node's GUID, a second live claimant of a
   * linked peer's GUID that was refused, or a peer that refused us for one. Absent if none.
   */
  readonly duplicateGuid?: DuplicateGuidState;
  /** The placement table as this node sees it, with each node's load. */
  readonly placement: PlacementState;
  /** Which membership runs; with `"ring"`, what it holds. */
  readonly membership: MembershipState;
}

/** What a node's membership holds (see `NodeOptions.membership`). */
export interface MembershipState {
  readonly mode: "mesh" | "ring";
  /** Ring only: members alive, suspect and dead (tombstones), this node included. */
  readonly alive?: number;
  readonly suspect?: number;
  readonly dead?: number;
  /** Ring only: worker directory entries this node owns, and cached locations. */
  readonly directoryEntries?: number;
  readonly cachedLocations?: number;
}
