/**
 * System messages: the keys the original AutoMPI uses in a MapMessage's `message` map to run
 * the cluster (discovery, worker locations), plus this project's additions, and the link
 * handshake ("hello") frame.
 *
 * @module
 */
import { decode as msgpackDecode, encode as msgpackEncode } from "@msgpack/msgpack";
import { ProtocolError } from "./errors.ts";
import type { CodecName } from "./codec.ts";

/** The key whose presence makes a MapMessage a system message (the original's name). */
export const SYSTEM_KEY = "AutoMPI_System_Message";

/** System message kinds (`SYSTEM_KEY` values). The first four are the original's. */
export const SystemKind = {
  /** A node's heartbeat: its GUID and link address. */
  NodeLocation: "AutoMPI_SKD_NodeLocation",
  /** "Dial me": handled like a NodeLocation. */
  ConnectToMe: "AutoMPI_SKD_ConnectToMe",
  /** A worker lives on a node. */
  WorkerLocation: "AutoMPI_SKD_WorkerLocation",
  /** Defined, never used, by the original. */
  WhereIsThisAgent: "AutoMPI_SKD_WhereIsThisAgent",
  /** A worker left a node. */
  WorkerRemoved: "AutoMPI_SKD_WorkerRemoved",
  /** The nodes the sender is linked to, so the receiver can join nodes it cannot hear. */
  PeerList: "AutoMPI_SKD_PeerList",
  /** Keeps an idle link from looking silent. */
  KeepAlive: "AutoMPI_SKD_KeepAlive",
  /** The sender is closing this link on purpose. */
  Goodbye: "AutoMPI_SKD_Goodbye",
  /** How many messages the sender has received on this link so far (native protocol only). */
  Ack: "AutoMPI_SKD_Ack",
} as const;

/** Field keys of system messages. The first four are the original's. */
export const SystemField = {
  NodeGuid: "AutoMPI_SMDP_GUID_Node",
  HostEndpoint: "AutoMPI_SMDP_HOST_IPEP",
  WorkerGuid: "AutoMPI_SMDP_GUID_Worker",
  AgentLocationTtl: "AutoMPI_SMDP_AgentLocationMessageTTL",
  Version: "AutoMPI_SMDP_Version",
  Incarnation: "AutoMPI_SMDP_Incarnation",
  /** JSON array of `[guid, "host:port", incarnation]`. */
  Peers: "AutoMPI_SMDP_Peers",
  Reason: "AutoMPI_SMDP_Reason",
  /** A decimal count, in acknowledgements. */
  Count: "AutoMPI_SMDP_Count",
} as const;

/** The protocol version this project speaks. */
export const PROTOCOL_VERSION = 1;

/** The magic that opens a hello frame. */
export const PROTOCOL_MAGIC = "AutoMPI";

/** The first frame each side of a link sends. */
export interface Hello {
  readonly version: number;
  readonly guid: string;
  readonly incarnation: string;
  /** The codec the sender encodes its MapMessage frames with. */
  readonly codec: CodecName;
  /** The sender's link address as `host:port`, for peer lists. */
  readonly address: string;
}

/**
 * The handshake was malformed, of another protocol or version, or did not finish in time.
 *
 * @example
 * ```ts
 * import { decodeHello, HandshakeError } from "./system.ts";
 * let failed = false;
 * try {
 *   decodeHello(new Uint8Array([1, 2, 3]));
 * } catch (error) {
 *   failed = error instanceof HandshakeError;
 * }
 * console.assert(failed);
 * ```
 */
export class HandshakeError extends ProtocolError {
  override name: string = "HandshakeError";
}

/**
 * Encodes a hello frame payload: a msgpack array `[magic, version, guid, incarnation, codec,
 * address]`.
 *
 * @example
 * ```ts
 * import { decodeHello, encodeHello } from "./system.ts";
 * const hello = { version: 1, guid: "A", incarnation: "1", codec: "msgpack" as const, address: "10.0.0.1:8888" };
 * console.assert(decodeHello(encodeHello(hello)).guid === "A");
 * ```
 */
export function encodeHello(hello: Hello): Uint8Array {
  return msgpackEncode([
    PROTOCOL_MAGIC,
    hello.version,
    hello.guid,
    hello.incarnation,
    hello.codec,
    hello.address,
  ]);
}

/** Decodes a hello frame payload; throws {@link HandshakeError} for anything else. */
export function decodeHello(bytes: Uint8Array): Hello {
  let value: unknown;
  try {
    value = msgpackDecode(bytes);
  } catch (error) {
    throw new HandshakeError(`Cannot decode hello: not msgpack (${(error as Error).message})`);
  }
  if (!Array.isArray(value) || value.length < 6 || value[0] !== PROTOCOL_MAGIC) {
    throw new HandshakeError("Cannot decode hello: not an AutoMPI handshake");
  }
  const [, version, guid, incarnation, codec, address] = value;
  if (version !== PROTOCOL_VERSION) {
    throw new HandshakeError(
      `Cannot accept hello: protocol version ${
        String(version)
      }, this node speaks ${PROTOCOL_VERSION}`,
    );
  }
  if (typeof guid !== "string" || guid === "" || guid.length > 256) {
    throw new HandshakeError("Cannot accept hello: the GUID is not a string of 1..256 characters");
  }
  if (typeof incarnation !== "string" || incarnation.length > 64) {
    throw new HandshakeError("Cannot accept hello: the incarnation is not a short string");
  }
  if (codec !== "msgpack" && codec !== "json") {
    throw new HandshakeError(`Cannot accept hello: unknown codec ${JSON.stringify(codec)}`);
  }
  if (typeof address !== "string" || address.length > 300) {
    throw new HandshakeError("Cannot accept hello: the address is not a string");
  }
  return { version, guid, incarnation, codec, address };
}
