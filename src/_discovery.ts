/**
 * Discovery: the node's heartbeats and what arrives on the discovery port.
 *
 * Heartbeats go to the broadcast address each tick (and once when the socket is ready), made by
 * the cluster auth (the same bytes every time, or numbered and signed). Datagrams that arrive
 * are checked for size, then read one of two ways, chosen once from the cluster auth:
 *
 * - without a key, a datagram from a source that sent the very same bytes last time is not
 *   decoded again (the common case: a peer's unchanged heartbeat), and a linked peer's
 *   unchanged heartbeat only notes the time; anything else is decoded, in whichever codec it
 *   is in, and handed on: a heartbeat, another system message, or a user message;
 * - with a key, only correctly signed heartbeats newer than the last taken from their node
 *   count; anything else is refused and counted.
 *
 * Junk is logged at most once per source per 10 s, so it cannot flood the log.
 *
 * @module
 */
import type { ClusterAuth } from "./_auth.ts";
import type { HelloIdentity, WireProtocol } from "./_wire.ts";
import { type Codec, jsonCodec, msgpackCodec } from "./codec.ts";
import { ProtocolError } from "./errors.ts";
import { REPORT_WINDOW_MS, ReportLimit } from "./_report_limit.ts";
import type { MapMessage } from "./message.ts";
import {
  type Address,
  type Clock,
  type DatagramSocket,
  formatAddress,
  type Logger,
  type Net,
} from "./platform.ts";
import { SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";

/** The limited broadcast address, where the original AutoMPI sends its discovery datagrams. */
export const LIMITED_BROADCAST = "255.255.255.255";

/** Where discovery listens and sends (the node's `discovery` option). */
export interface DiscoveryConfig {
  readonly port?: number;
  readonly broadcastAddress: string;
  readonly bindHost?: string;
  readonly limitedBroadcast?: boolean;
}

/** What discovery knows of a peer a heartbeat updated: enough for the fast path. */
export interface HeardPeer {
  readonly linked: boolean;
  readonly forgotten: boolean;
  readonly address: string;
  readonly incarnation: string;
  lastHeardMs: number;
}

/** The counters discovery keeps. */
export interface DiscoveryStats {
  heartbeatsSent: number;
  heartbeatsReceived: number;
  datagramErrors: number;
  authFailures: number;
  replaysDropped: number;
}

/** What discovery needs from its node. */
export interface DiscoveryHost {
  readonly net: Net;
  readonly clock: Clock;
  readonly log: Logger;
  readonly stats: DiscoveryStats;
  /** Whether the node is running (datagrams are ignored otherwise). */
  running(): boolean;
  /** A node's heartbeat (not an unchanged one from a linked peer); returns the peer it updated. */
  onHeartbeat(
    guid: string,
    address: string,
    incarnation: string,
    memberVersion?: number,
  ): HeardPeer | undefined;
  /** A system datagram that is not a heartbeat. */
  onSystem(message: MapMessage, from: Address): void;
  /** A user message that came by datagram. */
  onMessage(message: MapMessage): void;
  /** A datagram could not be used (already logged). */
  onBadDatagram(source: string, error: string): void;
}

interface CachedDatagram {
  readonly bytes: Uint8Array;
  readonly message: MapMessage;
  /** Set when the datagram is a well-formed heartbeat. */
  readonly heartbeat:
    | { guid: string; address: string; incarnation: string; memberVersion?: number }
    | undefined;
  /** The peer this heartbeat last updated, for the fast path. */
  peer: HeardPeer | undefined;
}

/** What an unsigned system datagram decodes to: the same for every node that receives it. */
interface DecodedSystem {
  readonly message: MapMessage;
  readonly heartbeat: CachedDatagram["heartbeat"];
}

/**
 * Unsigned system datagrams already decoded in this process, by the received array itself.
 * Received bytes are read-only (see `platform.ts`), and a node sends the same heartbeat array
 * each interval, so when one process hosts many nodes (a simulated cluster) a broadcast is
 * decoded once, not once per receiver. Entries go with their arrays.
 */
const decodedSystems = new WeakMap<Uint8Array, DecodedSystem>();

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  // Identity first: received bytes are read-only, and a simulated broadcast shares its array.
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A node's discovery sockets, heartbeats and datagram intake.
 *
 * @example
 * ```ts
 * import { Discovery } from "./_discovery.ts";
 * import { NO_CLUSTER_AUTH } from "./_auth.ts";
 * import { NATIVE_PROTOCOL } from "./_wire.ts";
 * import { msgpackCodec } from "./codec.ts";
 * import type { DatagramHandlers, Net } from "./platform.ts";
 *
 * const sent: Uint8Array[] = [];
 * let handlers: DatagramHandlers | undefined;
 * const net = {
 *   bindDatagram: (_options: unknown, h: DatagramHandlers) => {
 *     handlers = h;
 *     return { send: (bytes: Uint8Array) => sent.push(bytes), close: () => {} };
 *   },
 * } as unknown as Net;
 * const discovery = new Discovery({
 *   net,
 *   clock: { now: () => 0 } as never,
 *   log: { log: () => {} } as never,
 *   stats: { heartbeatsSent: 0, heartbeatsReceived: 0, datagramErrors: 0, authFailures: 0, replaysDropped: 0 },
 *   running: () => true,
 *   onHeartbeat: () => undefined,
 *   onSystem: () => {},
 *   onMessage: () => {},
 *   onBadDatagram: () => {},
 * }, {
 *   config: { broadcastAddress: "10.255.255.255" },
 *   protocol: NATIVE_PROTOCOL,
 *   auth: NO_CLUSTER_AUTH,
 *   codec: msgpackCodec,
 *   maxDatagramBytes: 8192,
 * });
 * discovery.start({ guid: "A", incarnation: "1", codec: "msgpack", address: "10.0.0.1:8888" });
 * handlers!.onReady!({} as never);
 * if (sent.length !== 1) throw new Error("expected one heartbeat");
 * ```
 */
export class Discovery {
  readonly #host: DiscoveryHost;
  readonly #config: DiscoveryConfig | undefined;
  readonly #protocol: WireProtocol;
  readonly #auth: ClusterAuth;
  readonly #codec: Codec;
  readonly #maxDatagramBytes: number;
  /** How a datagram is read: chosen once from the cluster auth. */
  readonly #read: (data: Uint8Array, from: Address) => void;
  #socket: DatagramSocket | undefined;
  /** The socket bound to 255.255.255.255 (see `DiscoveryOptions.limitedBroadcast`). */
  #limitedSocket: DatagramSocket | undefined;
  #heartbeat: (() => Uint8Array) | undefined;
  #self: HelloIdentity | undefined;
  /** Workers still to announce by datagram (original protocol): GUID → announcements left. */
  readonly #announce = new Map<string, number>();
  /** Last system datagram per source host and port, so an unchanged heartbeat is not decoded again. */
  readonly #cache = new Map<string, Map<number, CachedDatagram>>();
  #cacheSize = 0;
  /** Junk and replays are reported at most once per source per window. */
  readonly #reports = new ReportLimit(REPORT_WINDOW_MS);

  /** Discovery for a node; `config` undefined for none (no sockets, no heartbeats). */
  readonly #cacheSources: number;
  readonly #heartbeatOnReady: boolean;

  constructor(host: DiscoveryHost, options: {
    readonly config: DiscoveryConfig | undefined;
    readonly protocol: WireProtocol;
    readonly auth: ClusterAuth;
    readonly codec: Codec;
    readonly maxDatagramBytes: number;
    /**
     * From how many sources decoded datagrams are remembered (the unchanged-heartbeat fast
     * path). Default 1024; ring membership hears few heartbeats and keeps 16.
     */
    readonly cacheSources?: number;
    /**
     * Whether the first heartbeat goes as soon as the socket is ready. Default true; under ring
     * membership the node sends its first at a random moment of the first tenth of an
     * interval instead, so a cluster started at once is not one N² burst.
     */
    readonly heartbeatOnReady?: boolean;
  }) {
    this.#host = host;
    this.#cacheSources = options.cacheSources ?? 1024;
    this.#heartbeatOnReady = options.heartbeatOnReady ?? true;
    this.#config = options.config;
    this.#protocol = options.protocol;
    this.#auth = options.auth;
    this.#codec = options.codec;
    this.#maxDatagramBytes = options.maxDatagramBytes;
    // Every genuine signed heartbeat differs from the last (its number grows): no cache.
    this.#read = options.auth.authenticated
      ? (data, from) => this.#readSigned(data, from)
      : (data, from) => this.#readOpen(data, from);
  }

  /** Binds the discovery sockets (if configured); the first heartbeat goes once bound. */
  start(self: HelloIdentity): void {
    const config = this.#config;
    if (!config) return;
    this.#self = self;
    this.#heartbeat = this.#auth.heartbeats(this.#codec, self);
    const log = this.#host.log;
    this.#socket = this.#host.net.bindDatagram(
      {
        host: config.bindHost ?? "0.0.0.0",
        port: config.port ?? 9999,
        reuseAddress: true,
        broadcast: true,
      },
      {
        onMessage: (data, from) => this.receive(data, from),
        onReady: () => {
          if (this.#heartbeatOnReady) this.sendHeartbeat();
        },
        onError: (error) => log.log("error", "discovery.error", { error: error.message }),
      },
    );
    const bindHost = config.bindHost;
    const limited = config.limitedBroadcast ?? this.#protocol.limitedBroadcastByDefault(bindHost);
    if (limited && bindHost !== LIMITED_BROADCAST) {
      // Receive only: heartbeats still go to broadcastAddress, which originals hear too.
      this.#limitedSocket = this.#host.net.bindDatagram(
        { host: LIMITED_BROADCAST, port: config.port ?? 9999, reuseAddress: true },
        {
          onMessage: (data, from) => this.receive(data, from),
          onError: (error) =>
            log.log("error", "discovery.error", {
              error: error.message,
              socket: LIMITED_BROADCAST,
            }),
        },
      );
    }
  }

  /** Closes the sockets. */
  close(): void {
    this.#socket?.close();
    this.#limitedSocket?.close();
  }

  /** Announces a newly attached worker by datagram on the next `times` heartbeats. */
  announce(worker: string, times: number): void {
    if (times > 0) this.#announce.set(worker, times);
  }

  /** Stops announcing a worker. */
  forget(worker: string): void {
    this.#announce.delete(worker);
  }

  /** Sends a heartbeat, and the worker announcements due, to the broadcast address. */
  sendHeartbeat(): void {
    const config = this.#config;
    if (!config || this.#socket === undefined || this.#heartbeat === undefined) return;
    if (!this.#host.running()) return;
    const to = { host: config.broadcastAddress, port: config.port ?? 9999 };
    try {
      this.#socket.send(this.#heartbeat(), to);
      this.#host.stats.heartbeatsSent++;
      for (const [worker, left] of this.#announce) {
        // The original's announcements carry an empty source, as its heartbeats do.
        this.#socket.send(
          this.#codec.encode({
            destination: "",
            source: "",
            message: {
              [SYSTEM_KEY]: SystemKind.WorkerLocation,
              [SystemField.NodeGuid]: this.#self!.guid,
              [SystemField.WorkerGuid]: worker,
            },
          }),
          to,
        );
        if (left <= 1) this.#announce.delete(worker);
        else this.#announce.set(worker, left - 1);
      }
    } catch (error) {
      this.#host.log.log("warn", "discovery.send-failed", { error: String(error) });
    }
  }

  /** A datagram arrived on a discovery socket. */
  receive(data: Uint8Array, from: Address): void {
    if (!this.#host.running()) return;
    if (data.length > this.#maxDatagramBytes) {
      this.#host.stats.datagramErrors++;
      this.#logError(
        formatAddress(from),
        new ProtocolError(
          `Cannot use datagram: ${data.length} bytes, over maxDatagramBytes ${this.#maxDatagramBytes}`,
        ),
      );
      return;
    }
    this.#read(data, from);
  }

  #readOpen(data: Uint8Array, from: Address): void {
    const host = this.#host;
    let byPort = this.#cache.get(from.host);
    const cached = byPort?.get(from.port);
    if (cached !== undefined && sameBytes(cached.bytes, data)) {
      // The same heartbeat as last time from this source: no decoding, no field lookups.
      const heartbeat = cached.heartbeat;
      if (heartbeat !== undefined) {
        const peer = cached.peer;
        if (
          peer !== undefined && peer.linked && !peer.forgotten &&
          peer.address === heartbeat.address && peer.incarnation === heartbeat.incarnation
        ) {
          // The common case: a linked peer's unchanged heartbeat. Note it and go.
          host.stats.heartbeatsReceived++;
          peer.lastHeardMs = host.clock.now();
          return;
        }
        cached.peer = host.onHeartbeat(
          heartbeat.guid,
          heartbeat.address,
          heartbeat.incarnation,
          heartbeat.memberVersion,
        );
      } else {
        host.onSystem(cached.message, from);
      }
      return;
    }
    let decoded = decodedSystems.get(data);
    if (decoded === undefined) {
      const message = this.#decode(data, from);
      if (message === undefined) return;
      const fields = message.message;
      const kind = fields[SYSTEM_KEY];
      if (kind === undefined) {
        host.onMessage(message);
        return;
      }
      // Only system messages are cached: they never reach user code, so nobody can modify them.
      let heartbeat: CachedDatagram["heartbeat"];
      if (kind === SystemKind.NodeLocation || kind === SystemKind.ConnectToMe) {
        const verdict = this.#auth.checkHeartbeat(fields);
        if (verdict.kind === "replayed") return; // Only signed heartbeats are numbered.
        if (verdict.kind === "refused") {
          host.stats.datagramErrors++;
          this.#logError(formatAddress(from), new ProtocolError(verdict.reason));
          return;
        }
        const memberVersion = Number(fields[SystemField.MemberVersion]);
        heartbeat = {
          guid: verdict.guid,
          address: verdict.address,
          incarnation: verdict.incarnation,
          ...(Number.isFinite(memberVersion) && memberVersion > 0 ? { memberVersion } : {}),
        };
      }
      decoded = { message, heartbeat };
      decodedSystems.set(data, decoded);
    }
    const { message, heartbeat } = decoded;
    // Only small system datagrams are remembered, from a bounded number of sources: junk from many
    // sources must not pin memory.
    if (data.length > 512) {
      this.#onSystem(message, heartbeat, from);
      return;
    }
    if (this.#cacheSize >= this.#cacheSources) {
      this.#cache.clear();
      this.#cacheSize = 0;
      byPort = undefined;
    }
    if (byPort === undefined) this.#cache.set(from.host, byPort = new Map());
    if (!byPort.has(from.port)) this.#cacheSize++;
    const entry: CachedDatagram = { bytes: data, message, heartbeat, peer: undefined };
    byPort.set(from.port, entry);
    entry.peer = this.#onSystem(message, heartbeat, from);
  }

  /** Acts on a decoded system datagram; returns the peer a heartbeat updated, if any. */
  #onSystem(
    message: MapMessage,
    heartbeat: CachedDatagram["heartbeat"],
    from: Address,
  ): HeardPeer | undefined {
    if (heartbeat !== undefined) {
      return this.#host.onHeartbeat(
        heartbeat.guid,
        heartbeat.address,
        heartbeat.incarnation,
        heartbeat.memberVersion,
      );
    }
    this.#host.onSystem(message, from);
    return undefined;
  }

  /**
   * With a cluster key, a datagram counts only as a correctly signed heartbeat that is newer
   * than the last one taken from its node and incarnation; anything else is dropped and counted.
   */
  #readSigned(data: Uint8Array, from: Address): void {
    const message = this.#decode(data, from);
    if (message === undefined) return;
    const verdict = this.#auth.checkHeartbeat(message.message);
    if (verdict.kind === "refused") {
      this.#host.stats.authFailures++;
      this.#logError(formatAddress(from), new ProtocolError(verdict.reason));
      return;
    }
    if (verdict.kind === "replayed") {
      this.#host.stats.replaysDropped++;
      const source = formatAddress(from);
      if (this.#reports.allow(`replay ${source}`, this.#host.clock.now()) !== undefined) {
        this.#host.log.log("debug", "discovery.replay-dropped", {
          from: source,
          node: verdict.guid,
          sequence: verdict.sequence,
        });
      }
      return;
    }
    this.#host.onHeartbeat(verdict.guid, verdict.address, verdict.incarnation);
  }

  /** Decodes a datagram in whichever codec it is in; bad bytes are counted and logged. */
  #decode(data: Uint8Array, from: Address): MapMessage | undefined {
    try {
      return (data[0] === 0x7b ? jsonCodec : msgpackCodec).decode(data);
    } catch (error) {
      this.#host.stats.datagramErrors++;
      this.#logError(formatAddress(from), error);
      return undefined;
    }
  }

  #logError(source: string, error: unknown): void {
    // One line per source per 10 s: junk on the discovery port must not flood the log.
    const text = this.#reports.text(source, this.#host.clock.now(), error);
    if (text === undefined) return;
    this.#host.log.log("warn", "discovery.bad-datagram", { from: source, error: text });
    this.#host.onBadDatagram(source, text);
  }
}
