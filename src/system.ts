/**
 * System messages: the keys the original AutoMPI uses in a MapMessage's `message` map to run
 * the cluster (discovery, worker locations), plus this project's additions, and the link
 * handshake ("hello") frame.
 *
 * @module
 */
import { Decoder, encode as msgpackEncode } from "@msgpack/msgpack";
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
  /**
   * The sender refuses this link: it holds a live link to another incarnation of the same GUID
   * (a twin). Carries the holder's address and incarnation and how often this claimant was
   * refused (native protocol only).
   */
  Refused: "AutoMPI_SKD_Refused",
  /**
   * Sent first on a new link: which session of the peer's the sender last followed and how many
   * of its messages it took, so that the peer resends exactly the rest (native protocol only).
   */
  Resume: "AutoMPI_SKD_Resume",
  /** The answer to a Resume: the sender's session id, and where its numbering goes on. */
  Align: "AutoMPI_SKD_Align",
  /**
   * Every worker the sender hosts, sent when a link comes up: replaces what the receiver knew of
   * the sender's workers (native protocol only; the original gets one WorkerLocation each).
   */
  WorkerSet: "AutoMPI_SKD_WorkerSet",
} as const;

/** Field keys of system messages. The first four are the original's. */
export const SystemField = {
  NodeGuid: "AutoMPI_SMDP_GUID_Node",
  HostEndpoint: "AutoMPI_SMDP_HOST_IPEP",
  WorkerGuid: "AutoMPI_SMDP_GUID_Worker",
  AgentLocationTtl: "AutoMPI_SMDP_AgentLocationMessageTTL",
  Version: "AutoMPI_SMDP_Version",
  Incarnation: "AutoMPI_SMDP_Incarnation",
  /** Ring membership: the sender's membership version, on its heartbeats (see `_ring.ts`). */
  MemberVersion: "AutoMPI_SMDP_MemberVersion",
  /** JSON array of `[guid, "host:port", incarnation]`. */
  Peers: "AutoMPI_SMDP_Peers",
  Reason: "AutoMPI_SMDP_Reason",
  /** JSON array of worker GUIDs (WorkerSet). */
  Workers: "AutoMPI_SMDP_Workers",
  /** A session id (Resume, Align, Goodbye). */
  Session: "AutoMPI_SMDP_Session",
  /** A decimal count, in acknowledgements. */
  Count: "AutoMPI_SMDP_Count",
  /**
   * A heartbeat's number, decimal, from 1 up within one incarnation (heartbeats of nodes with a
   * cluster key only): a receiver drops one not above the last it took, so a replay is useless.
   */
  Sequence: "AutoMPI_SMDP_Sequence",
  /** A heartbeat's HMAC-SHA256 under the cluster key, as 64 hex digits (see `_cluster_key.ts`). */
  Tag: "AutoMPI_SMDP_Tag",
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
  /**
   * Present when the sender has a cluster key: fresh random bytes (16..64) the peer must sign
   * with the key, in a {@link encodeProof proof frame}, before the link is up.
   */
  readonly nonce?: Uint8Array;
}

/** Fewest bytes of a hello's nonce. */
export const MIN_NONCE_BYTES = 16;
/** Most bytes of a hello's nonce. */
export const MAX_NONCE_BYTES = 64;

/** The second element of a proof frame. */
const PROOF_MARK = "proof";

/**
 * Decodes handshake frames, which come from peers not yet known: with limits far above any
 * real hello, so a few bytes claiming huge arrays or strings are refused before anything is
 * allocated for them.
 */
const handshakeDecoder = new Decoder({
  maxStrLength: 4096,
  maxBinLength: 4096,
  maxArrayLength: 64,
  maxMapLength: 64,
  maxExtLength: 4096,
});

function msgpackDecode(bytes: Uint8Array): unknown {
  return handshakeDecoder.decode(bytes);
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
 * address]`, plus `nonce` (bin) as a seventh element when there is one. A keyless hello is
 * byte for byte what it was before cluster keys; decoders of either kind ignore elements past
 * the ones they know, so the nonce is how a keyed node and a keyless one tell each other apart.
 *
 * @example
 * ```ts
 * import { decodeHello, encodeHello } from "./system.ts";
 * const hello = { version: 1, guid: "A", incarnation: "1", codec: "msgpack" as const, address: "10.0.0.1:8888" };
 * console.assert(decodeHello(encodeHello(hello)).guid === "A");
 * ```
 */
export function encodeHello(hello: Hello): Uint8Array {
  const fields: unknown[] = [
    PROTOCOL_MAGIC,
    hello.version,
    hello.guid,
    hello.incarnation,
    hello.codec,
    hello.address,
  ];
  if (hello.nonce !== undefined) fields.push(hello.nonce);
  return msgpackEncode(fields);
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
  const [, version, guid, incarnation, codec, address, nonce] = value;
  if (version !== PROTOCOL_VERSION) {
    // Described, not converted: a hostile map may have a `toString` that is not a function.
    const shown = typeof version === "number" ? String(version) : `of type ${typeof version}`;
    throw new HandshakeError(
      `Cannot accept hello: protocol version ${shown}, this node speaks ${PROTOCOL_VERSION}`,
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
  if (nonce === undefined || nonce === null) return { version, guid, incarnation, codec, address };
  if (
    !(nonce instanceof Uint8Array) || nonce.length < MIN_NONCE_BYTES ||
    nonce.length > MAX_NONCE_BYTES
  ) {
    throw new HandshakeError(
      `Cannot accept hello: the key challenge is not ${MIN_NONCE_BYTES}..${MAX_NONCE_BYTES} bytes`,
    );
  }
  return { version, guid, incarnation, codec, address, nonce };
}

/**
 * Encodes a proof frame payload, the second frame each side of a keyed link sends: a msgpack
 * array `[magic, "proof", tag]`, where `tag` (bin, 32 bytes) is the HMAC the sender computed
 * over both hellos with the cluster key.
 *
 * @example
 * ```ts
 * import { decodeProof, encodeProof } from "./system.ts";
 * const tag = new Uint8Array(32).fill(7);
 * console.assert(decodeProof(encodeProof(tag))[0] === 7);
 * ```
 */
export function encodeProof(tag: Uint8Array): Uint8Array {
  return msgpackEncode([PROTOCOL_MAGIC, PROOF_MARK, tag]);
}

/**
 * Decodes a proof frame payload into its tag; throws {@link HandshakeError} for anything else
 * (a peer that sends messages instead did not prove the key).
 */
export function decodeProof(bytes: Uint8Array): Uint8Array {
  let value: unknown;
  try {
    value = msgpackDecode(bytes);
  } catch {
    value = undefined;
  }
  if (
    !Array.isArray(value) || value.length < 3 || value[0] !== PROTOCOL_MAGIC ||
    value[1] !== PROOF_MARK || !(value[2] instanceof Uint8Array) || value[2].length !== 32
  ) {
    throw new HandshakeError(
      "Cannot link: peer did not prove the cluster key (its second frame is not a proof)",
    );
  }
  return value[2];
}
