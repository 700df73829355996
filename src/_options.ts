/**
 * Options resolution: a node's {@link NodeOptions} checked once and turned into the values its
 * parts use (every default applied, every derived bound computed, the wire protocol and the
 * cluster authentication chosen).
 *
 * A bad option throws here, before the node exists, with a "Cannot create node: …" message.
 * The only draws from the platform's randomness are the GUID (when none is given) and the
 * incarnation, in that order.
 *
 * @module
 */
import { ClusterKey } from "./_cluster_key.ts";
import { type ClusterAuth, keyedClusterAuth, NO_CLUSTER_AUTH } from "./_auth.ts";
import { type WireProtocol, wireProtocol } from "./_wire.ts";
import { type Codec, codecByName } from "./codec.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "./framing.ts";
import { ALL_NODES, ALL_WORKERS } from "./message.ts";
import type { DiscoveryOptions, NodeLimits, NodeOptions } from "./_types.ts";
import { type Address, parseAddress, type Random } from "./platform.ts";
import { MemoryStorage, type Storage } from "./storage.ts";

/** A node's options with every default applied and every bound derived. Durations in ms. */
export interface ResolvedOptions {
  readonly guid: string;
  readonly incarnation: string;
  readonly codec: Codec;
  readonly protocol: WireProtocol;
  readonly auth: ClusterAuth;
  readonly storage: Storage;
  readonly listen: Address;
  /** The host put in heartbeats and hellos. */
  readonly advertiseHost: string;
  /** How many ports to try from the listen port on (at least 1). */
  readonly portSearch: number;
  readonly discovery: DiscoveryOptions | undefined;
  readonly seeds: readonly Address[];
  /** Mesh (everyone heartbeats and links everyone) or ring (constant cost per node). */
  readonly membership: "mesh" | "ring";
  readonly tombstoneMs: number;
  readonly intervalMs: number;
  readonly jitter: number;
  /** The node's own silence bound: `silenceIntervals` intervals. */
  readonly silenceMs: number;
  /** The silence bound for links and unlinked peers under the wire protocol. */
  readonly peerSilenceMs: number;
  /** An idle link gets a keepalive once it has sent nothing for this long. */
  readonly keepAliveMs: number;
  /**
   * A link heard from within this long is alive by its own rhythm (a keepalive at least every
   * `keepAliveMs`, ticks a jittered interval apart): a claimant of its GUID is a twin.
   */
  readonly holderAliveMs: number;
  readonly handshakeTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly dialGraceMs: number;
  readonly maxFrameBytes: number;
  readonly maxLinkBufferBytes: number;
  readonly resendWindowMs: number;
  readonly resendWindowBytes: number;
  readonly workerTickMs: number;
  readonly maxLinks: number;
  readonly maxDatagramBytes: number;
  readonly maxPendingHandshakes: number;
  readonly gossipIntervals: number;
}

const HEX = "0123456789abcdef";

/** `digits` random hexadecimal digits. */
export function randomHex(random: Random, digits: number): string {
  let out = "";
  for (let i = 0; i < digits; i++) out += HEX[random.int(0, 15)];
  return out;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  const result = value ?? fallback;
  if (!(typeof result === "number" && result > 0 && Number.isFinite(result))) {
    throw new RangeError(`Cannot create node: ${name} ${result} is not a positive number`);
  }
  return result;
}

/**
 * Checks `options` and resolves them; throws a `TypeError` or `RangeError` naming the first
 * bad option.
 *
 * @example
 * ```ts
 * import { resolveOptions } from "./_options.ts";
 * import type { Random } from "./platform.ts";
 * const random: Random = { next: () => 0.5, int: (min) => min, fill: (bytes) => bytes };
 * const resolved = resolveOptions(random, { guid: "A", listen: { host: "127.0.0.1", port: 0 } });
 * if (resolved.silenceMs !== 3000 || resolved.protocol.name !== "native") {
 *   throw new Error("unexpected");
 * }
 * ```
 */
export function resolveOptions(random: Random, options: NodeOptions): ResolvedOptions {
  const guid = options.guid ?? randomHex(random, 32);
  if (typeof guid !== "string" || guid === "" || guid.length > 256) {
    throw new TypeError("Cannot create node: guid must be a string of 1..256 characters");
  }
  if (guid === ALL_NODES || guid === ALL_WORKERS) {
    throw new TypeError(`Cannot create node: "${guid}" is a reserved destination`);
  }
  const incarnation = randomHex(random, 16);
  const codec = codecByName(options.codec ?? "msgpack");
  const protocol = wireProtocol(codec.name);
  const tracer = options.tracerProvider;
  if (
    tracer !== undefined && tracer !== false &&
    (tracer === null || typeof tracer !== "object" || typeof tracer.getTracer !== "function")
  ) {
    throw new TypeError("Cannot create node: tracerProvider must be a TracerProvider or false");
  }
  const membership = options.membership ?? "mesh";
  if (membership !== "mesh" && membership !== "ring") {
    throw new TypeError(
      `Cannot create node: membership must be "mesh" or "ring", not ${JSON.stringify(membership)}`,
    );
  }
  if (membership === "ring" && protocol.name !== "native") {
    throw new TypeError(
      'Cannot create node: ring membership needs the native protocol (codec "json" is the original\'s)',
    );
  }
  let auth = NO_CLUSTER_AUTH;
  if (options.clusterKey !== undefined) {
    if (!protocol.carriesClusterKey) {
      throw new TypeError(
        'Cannot create node: the original protocol (codec "json") cannot carry a cluster key',
      );
    }
    try {
      auth = keyedClusterAuth(new ClusterKey(options.clusterKey));
    } catch (error) {
      throw new TypeError(`Cannot create node: ${(error as Error).message}`);
    }
  }
  if (
    options.storage !== undefined &&
    (options.storage === null || typeof options.storage !== "object" ||
      typeof options.storage.batch !== "function")
  ) {
    throw new TypeError("Cannot create node: storage must be a Storage object");
  }
  const storage = options.storage ?? new MemoryStorage();
  const intervalMs = positive(options.heartbeatIntervalMs, 1000, "heartbeatIntervalMs");
  const jitter = options.heartbeatJitter ?? 0.1;
  if (!(jitter >= 0 && jitter < 1)) {
    throw new RangeError(`Cannot create node: heartbeatJitter ${jitter} is not in [0, 1)`);
  }
  const silenceIntervals = positive(options.silenceIntervals, 3, "silenceIntervals");
  const silenceMs = intervalMs * silenceIntervals;
  // An idle link gets a keepalive once half the silence bound has passed, checked at each
  // tick: with jittered ticks the longest gap stays under the bound by most of an interval.
  const keepAliveMs = Math.max(intervalMs * 0.75, silenceMs / 2 - intervalMs * 0.3);
  const holderAliveMs = Math.min(silenceMs, keepAliveMs + intervalMs * (1 + jitter));
  const handshakeTimeoutMs = positive(options.handshakeTimeoutMs, 2000, "handshakeTimeoutMs");
  const connectTimeoutMs = positive(options.connectTimeoutMs, 2000, "connectTimeoutMs");
  const reconnectMinMs = positive(options.reconnectMinMs, 250, "reconnectMinMs");
  const reconnectMaxMs = positive(options.reconnectMaxMs, 8000, "reconnectMaxMs");
  const dialGraceMs = positive(options.dialGraceMs, 2 * intervalMs, "dialGraceMs");
  const maxFrameBytes = positive(options.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES, "maxFrameBytes");
  const maxLinkBufferBytes = positive(options.maxLinkBufferBytes, 8 << 20, "maxLinkBufferBytes");
  const resendWindowMs = positive(options.resendWindowMs, 30_000, "resendWindowMs");
  const resendWindowBytes = positive(
    options.resendWindowBytes,
    8 * maxLinkBufferBytes,
    "resendWindowBytes",
  );
  const workerTickMs = positive(options.workerTickMs, 100, "workerTickMs");
  const maxLinks = positive(options.maxLinks, 1024, "maxLinks");
  const maxDatagramBytes = positive(options.maxDatagramBytes, 8192, "maxDatagramBytes");
  const maxPendingHandshakes = positive(
    options.maxPendingHandshakes,
    1024,
    "maxPendingHandshakes",
  );
  const tombstoneMs = positive(options.tombstoneMs, 24 * 3600_000, "tombstoneMs");
  const gossipIntervals = options.gossipIntervals ?? 5;
  if (options.discovery && typeof options.discovery.broadcastAddress !== "string") {
    throw new TypeError("Cannot create node: discovery.broadcastAddress must be a string");
  }
  const listen = options.listen ?? { host: "0.0.0.0", port: 8888 };
  const advertiseHost = options.advertiseHost ?? listen.host;
  if (advertiseHost === "0.0.0.0") {
    throw new TypeError(
      "Cannot create node: listening on 0.0.0.0 needs advertiseHost, the address peers dial",
    );
  }
  const seeds: Address[] = [];
  for (const seed of options.seeds ?? []) {
    seeds.push(typeof seed === "string" ? parseAddress(seed) : seed);
  }
  return {
    guid,
    incarnation,
    codec,
    protocol,
    auth,
    storage,
    listen,
    advertiseHost,
    portSearch: Math.max(1, Math.floor(options.portSearch ?? 1)),
    discovery: options.discovery || undefined,
    seeds,
    membership,
    tombstoneMs,
    intervalMs,
    jitter,
    silenceMs,
    peerSilenceMs: protocol.silenceMs(silenceMs, silenceIntervals),
    keepAliveMs,
    holderAliveMs,
    handshakeTimeoutMs,
    connectTimeoutMs,
    reconnectMinMs,
    reconnectMaxMs,
    dialGraceMs,
    maxFrameBytes,
    maxLinkBufferBytes,
    resendWindowMs,
    resendWindowBytes,
    workerTickMs,
    maxLinks,
    maxDatagramBytes,
    maxPendingHandshakes,
    gossipIntervals,
  };
}

/**
 * The limits a node with these options enforces, as its state snapshot shows them.
 *
 * @example
 * ```ts
 * import { limitsOf, resolveOptions } from "./_options.ts";
 * const random = { next: () => 0.5, int: (min: number) => min, fill: (b: Uint8Array) => b };
 * const limits = limitsOf(resolveOptions(random, { guid: "A", listen: { host: "h", port: 1 } }));
 * if (limits.maxLinks !== 1024 || limits.silenceMs !== 3000) throw new Error("unexpected");
 * ```
 */
export function limitsOf(o: ResolvedOptions): NodeLimits {
  return {
    maxFrameBytes: o.maxFrameBytes,
    maxLinkBufferBytes: o.maxLinkBufferBytes,
    resendWindowMs: o.resendWindowMs,
    resendWindowBytes: o.resendWindowBytes,
    maxLinks: o.maxLinks,
    maxPendingHandshakes: o.maxPendingHandshakes,
    maxDatagramBytes: o.maxDatagramBytes,
    handshakeTimeoutMs: o.handshakeTimeoutMs,
    silenceMs: o.peerSilenceMs,
  };
}
