/**
 * The wire protocol a node speaks, chosen once from its codec: AutoMPI's native protocol
 * (msgpack), or the original AutoMPI's (`codec: "json"`), for clusters that include original
 * nodes. The parts of a node ask this value what the protocol does; none tests which protocol
 * it is.
 *
 * How the original differs: its handshake is the GUID alone; each side of a pair sends on the
 * connection it dialled and reads the one it accepted; links carry no keepalives (heartbeats,
 * every second whatever our interval, vouch for them), no sessions, no peer lists, no
 * refusals, no placement traffic; a new worker is announced by datagram on three heartbeats,
 * and a link gets one `WorkerLocation` per worker rather than the whole set.
 *
 * @module
 */
import { encodeFrame } from "./framing.ts";
import type { CodecName } from "./codec.ts";
import {
  decodeHello,
  encodeHello,
  HandshakeError,
  type Hello,
  PROTOCOL_VERSION,
} from "./system.ts";

/** Who a node is, as its hello says. */
export interface HelloIdentity {
  readonly guid: string;
  readonly incarnation: string;
  readonly codec: CodecName;
  /** Its link address, `host:port`. */
  readonly address: string;
  /** Ring membership only: its membership version, carried on its heartbeats. */
  readonly memberVersion?: number;
}

/** What a hello is read against: the connection it came on and the peers known. */
export interface HelloContext {
  readonly direction: "in" | "out";
  /** The address dialled, for a connection this node made. */
  readonly dialled: string;
  /** What this node knows of a peer by GUID. */
  known(guid: string): { readonly incarnation: string; readonly address: string } | undefined;
}

/** What a wire protocol does; see the module text for how the two differ. */
export interface WireProtocol {
  readonly name: "native" | "original";
  /** Whether a cluster key can be carried (signed heartbeats, proven links). */
  readonly carriesClusterKey: boolean;
  /**
   * Whether a pair shares one connection (the lower GUID dials first, the other after a
   * grace); otherwise each side dials, sends on what it dialled and reads what it accepted.
   */
  readonly sharedConnection: boolean;
  /**
   * Whether idle links carry keepalives and are judged by what they carry; otherwise links
   * carry none and a peer's heartbeats vouch for its link.
   */
  readonly keepAlives: boolean;
  /** Whether links carry sessions: Resume, Align, Ack, counted Goodbye, exactly-once delivery. */
  readonly sessions: boolean;
  /** Whether a twin's claim on a linked peer's GUID is refused with a `Refused` frame. */
  readonly refusals: boolean;
  /** Whether links exchange peer lists. */
  readonly peerLists: boolean;
  /** Whether placement traffic goes over links (otherwise spawns stay on this node). */
  readonly placement: boolean;
  /**
   * Whether sent messages carry W3C trace context (`traceparent`); the original's nodes and
   * workers would take the fields for part of the command. Incoming context is read either way.
   */
  readonly traceContext: boolean;
  /**
   * Whether a new link gets this node's whole worker set in one `WorkerSet` message (and such
   * messages are taken); otherwise one `WorkerLocation` per worker.
   */
  readonly workerSets: boolean;
  /**
   * On how many heartbeats a newly attached worker is announced by datagram; when more than
   * none, announcements by datagram from linked nodes are taken too.
   */
  readonly workerAnnouncements: number;
  /** The silence bound for links and unlinked peers, from the node's own. */
  silenceMs(silenceMs: number, silenceIntervals: number): number;
  /**
   * Whether discovery also binds the limited broadcast address when the options do not say
   * (see `DiscoveryOptions.limitedBroadcast`).
   */
  limitedBroadcastByDefault(bindHost: string | undefined): boolean;
  /** The hello frame this node sends on each new connection (without a cluster key). */
  helloFrame(self: HelloIdentity): Uint8Array;
  /** Reads a peer's hello frame; throws a `HandshakeError` if it is not one. */
  readHello(frame: Uint8Array, context: HelloContext): Hello;
}

/** How often an original AutoMPI node heartbeats, whatever this node's interval is. */
export const ORIGINAL_HEARTBEAT_MS = 1000;

/**
 * AutoMPI's own protocol (see `system.ts` for its hello).
 *
 * @example
 * ```ts
 * import { NATIVE_PROTOCOL } from "./_wire.ts";
 * if (!NATIVE_PROTOCOL.sessions || NATIVE_PROTOCOL.silenceMs(300, 3) !== 300) {
 *   throw new Error("unexpected");
 * }
 * ```
 */
export const NATIVE_PROTOCOL: WireProtocol = Object.freeze({
  name: "native" as const,
  carriesClusterKey: true,
  sharedConnection: true,
  keepAlives: true,
  sessions: true,
  refusals: true,
  peerLists: true,
  placement: true,
  traceContext: true,
  workerSets: true,
  workerAnnouncements: 0,
  silenceMs: (silenceMs: number) => silenceMs,
  limitedBroadcastByDefault: () => false,
  helloFrame: (self: HelloIdentity) =>
    encodeFrame(encodeHello({
      version: PROTOCOL_VERSION,
      guid: self.guid,
      incarnation: self.incarnation,
      codec: self.codec,
      address: self.address,
    })),
  readHello: (frame: Uint8Array) => decodeHello(frame),
});

/**
 * The original AutoMPI's protocol.
 *
 * @example
 * ```ts
 * import { ORIGINAL_PROTOCOL } from "./_wire.ts";
 * const hello = ORIGINAL_PROTOCOL.readHello(new TextEncoder().encode("NodeB"), {
 *   direction: "out",
 *   dialled: "10.0.0.2:8888",
 *   known: () => undefined,
 * });
 * if (hello.guid !== "NodeB" || hello.address !== "10.0.0.2:8888") throw new Error("unexpected");
 * ```
 */
export const ORIGINAL_PROTOCOL: WireProtocol = Object.freeze({
  name: "original" as const,
  carriesClusterKey: false,
  sharedConnection: false,
  keepAlives: false,
  sessions: false,
  refusals: false,
  peerLists: false,
  placement: false,
  traceContext: false,
  workerSets: false,
  workerAnnouncements: 3,
  // Original nodes heartbeat every second whatever our interval is, and send nothing else that
  // vouches for them: a bound shorter than their rhythm would drop them between heartbeats.
  silenceMs: (silenceMs: number, silenceIntervals: number) =>
    Math.max(silenceMs, ORIGINAL_HEARTBEAT_MS * silenceIntervals),
  // Originals send discovery datagrams only to 255.255.255.255, which a socket bound to a
  // subnet broadcast never sees; 0.0.0.0 hears them anyway, and a loopback cluster must not.
  limitedBroadcastByDefault: (bindHost: string | undefined) =>
    bindHost !== undefined && bindHost !== "0.0.0.0" && !bindHost.startsWith("127."),
  // The original protocol's handshake is the GUID alone.
  helloFrame: (self: HelloIdentity) => encodeFrame(new TextEncoder().encode(self.guid)),
  readHello: (frame: Uint8Array, context: HelloContext): Hello => {
    let guid: string;
    try {
      guid = new TextDecoder("utf-8", { fatal: true }).decode(frame);
    } catch {
      throw new HandshakeError("Cannot link: the handshake is not a UTF-8 GUID");
    }
    // deno-lint-ignore no-control-regex
    if (guid === "" || guid.length > 256 || /[\u0000-\u001f]/.test(guid)) {
      throw new HandshakeError("Cannot link: the handshake is not a GUID of 1..256 characters");
    }
    const known = context.known(guid);
    return {
      version: 0,
      guid,
      incarnation: known?.incarnation ?? "",
      codec: "json",
      address: context.direction === "out" ? context.dialled : known?.address ?? "",
    };
  },
});

/**
 * The protocol a codec implies: `"json"` is the original's, anything else the native one.
 *
 * @example
 * ```ts
 * import { wireProtocol } from "./_wire.ts";
 * if (wireProtocol("json").name !== "original") throw new Error("unexpected");
 * ```
 */
export function wireProtocol(codec: CodecName): WireProtocol {
  return codec === "json" ? ORIGINAL_PROTOCOL : NATIVE_PROTOCOL;
}
