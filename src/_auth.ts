/**
 * Cluster authentication, chosen once from the node's options: none, or a cluster key. The
 * value makes the node's heartbeats and hellos, checks signed heartbeats and runs each link's
 * handshake, so no other part of the node looks at the key.
 *
 * Without a key a heartbeat is the same bytes every time, a hello is the protocol's, and the
 * peer's hello is taken as it is (unless it asks for a key). With one, each heartbeat is
 * numbered and signed, a hello carries a fresh nonce, and a link comes up only after both
 * sides proved the key over both hellos (see `_cluster_key.ts`), and each ring datagram is
 * sealed: numbered in its sender's session and signed ({@link DatagramSeal}).
 *
 * @module
 */
import {
  type ClusterKey,
  DATAGRAM_TAG_BYTES,
  DatagramWindows,
  HeartbeatSequences,
} from "./_cluster_key.ts";
import type { Codec } from "./codec.ts";
import { encodeFrame } from "./framing.ts";
import { timingSafeEqual } from "./_sha256.ts";
import type { Random } from "./platform.ts";
import {
  decodeHello,
  decodeProof,
  encodeHello,
  encodeProof,
  type Hello,
  MIN_NONCE_BYTES,
  PROTOCOL_VERSION,
  SYSTEM_KEY,
  SystemField,
  SystemKind,
} from "./system.ts";
import type { HelloIdentity } from "./_wire.ts";

/** What a connection keeps of its handshake under a cluster key. */
export interface HandshakeSlots {
  /** The hello payload this node sent (it has our nonce). */
  helloSent: Uint8Array | undefined;
  /** The peer's hello, held until its proof arrives. */
  peerHello: Hello | undefined;
  peerHelloBytes: Uint8Array | undefined;
}

/** What one handshake frame leads to. */
export type HandshakeStep =
  /** The peer is who its hello says: the hello takes effect. */
  | { readonly kind: "hello"; readonly hello: Hello }
  /** Write `frame` (our proof) and wait for the peer's. */
  | { readonly kind: "reply"; readonly frame: Uint8Array }
  /** The frame is not a hello: a protocol error. */
  | { readonly kind: "malformed"; readonly error: unknown }
  /** The key was not proven (or a keyless node met a keyed one). */
  | { readonly kind: "refused"; readonly reason: string };

/** What a heartbeat datagram's check under a cluster key found. */
export type HeartbeatVerdict =
  | {
    readonly kind: "taken";
    readonly guid: string;
    readonly address: string;
    readonly incarnation: string;
  }
  /** Not a correctly signed heartbeat. */
  | { readonly kind: "refused"; readonly reason: string }
  /** Correctly signed but not newer than one taken before: replayed, duplicated, reordered. */
  | { readonly kind: "replayed"; readonly guid: string; readonly sequence: string };

/**
 * Seals and opens a node's ring datagrams under the cluster key. A sealed datagram is the
 * payload, then 8 bytes of the sender's session (random, drawn when its node starts), an 8-byte
 * number (one more for each datagram it sends) and a 16-byte tag over all of them.
 */
export interface DatagramSeal {
  /** The payload sealed: numbered in this node's session and signed. */
  seal(payload: Uint8Array): Uint8Array;
  /**
   * The payload of a sealed datagram, or `"replayed"` for one taken before (a replay, or a
   * duplicate the network made). Throws a "Cannot" error for one not sealed with the key.
   */
  open(data: Uint8Array): Uint8Array | "replayed";
}

/** Bytes a seal adds: session, number and tag. */
export const SEAL_BYTES = 16 + DATAGRAM_TAG_BYTES;

/** A node's cluster authentication; see the module text. */
export interface ClusterAuth {
  /** Whether there is a cluster key (signed heartbeats, proven links). */
  readonly authenticated: boolean;
  /** Returns the maker of this node's heartbeat datagrams, one call per heartbeat sent. */
  heartbeats(codec: Codec, self: HelloIdentity): () => Uint8Array;
  /**
   * Checks a datagram's fields as a signed heartbeat (an authenticated node takes no other
   * datagram); a keyless node takes every heartbeat as it is.
   */
  checkHeartbeat(fields: Readonly<Record<string, string>>): HeartbeatVerdict;
  /**
   * The seal of this node's ring datagrams, drawing its session from `random`; `undefined`
   * without a key (ring datagrams then go as they are).
   */
  datagramSeal(random: Random): DatagramSeal | undefined;
  /** The hello frame to send on a new connection; `plain` is the protocol's keyless one. */
  hello(slots: HandshakeSlots, plain: Uint8Array, self: HelloIdentity, random: Random): Uint8Array;
  /** Takes one handshake frame from the peer; `readHello` is the protocol's hello reader. */
  handshake(
    slots: HandshakeSlots,
    frame: Uint8Array,
    readHello: (frame: Uint8Array) => Hello,
  ): HandshakeStep;
}

function heartbeatFields(self: HelloIdentity): Record<string, string> {
  return {
    [SYSTEM_KEY]: SystemKind.NodeLocation,
    [SystemField.NodeGuid]: self.guid,
    [SystemField.HostEndpoint]: self.address,
    [SystemField.Version]: String(PROTOCOL_VERSION),
    [SystemField.Incarnation]: self.incarnation,
    ...(self.memberVersion === undefined
      ? {}
      : { [SystemField.MemberVersion]: String(self.memberVersion) }),
  };
}

/** A heartbeat's node, address and incarnation, or `undefined` if it names no node. */
function heartbeatOf(
  fields: Readonly<Record<string, string>>,
): { guid: string; address: string; incarnation: string } | undefined {
  const guid = fields[SystemField.NodeGuid];
  const address = fields[SystemField.HostEndpoint];
  if (typeof guid !== "string" || guid === "" || typeof address !== "string") return undefined;
  return { guid, address, incarnation: fields[SystemField.Incarnation] ?? "" };
}

/**
 * No cluster key.
 *
 * @example
 * ```ts
 * import { NO_CLUSTER_AUTH } from "./_auth.ts";
 * import { NATIVE_PROTOCOL } from "./_wire.ts";
 * const self = { guid: "A", incarnation: "1", codec: "msgpack" as const, address: "h:1" };
 * const plain = NATIVE_PROTOCOL.helloFrame(self);
 * const slots = { helloSent: undefined, peerHello: undefined, peerHelloBytes: undefined };
 * if (NO_CLUSTER_AUTH.hello(slots, plain, self, { next: () => 0, int: () => 0, fill: (b) => b }) !== plain) {
 *   throw new Error("unexpected");
 * }
 * ```
 */
export const NO_CLUSTER_AUTH: ClusterAuth = Object.freeze({
  authenticated: false,
  heartbeats(codec: Codec, self: HelloIdentity): () => Uint8Array {
    const frame = codec.encode({ destination: "", source: "", message: heartbeatFields(self) });
    return () => frame;
  },
  checkHeartbeat(fields: Readonly<Record<string, string>>): HeartbeatVerdict {
    const heartbeat = heartbeatOf(fields);
    return heartbeat === undefined
      ? { kind: "refused", reason: "Cannot use heartbeat: no node GUID or address" }
      : { kind: "taken", ...heartbeat };
  },
  datagramSeal: () => undefined,
  hello: (_slots: HandshakeSlots, plain: Uint8Array) => plain,
  handshake(
    _slots: HandshakeSlots,
    frame: Uint8Array,
    readHello: (frame: Uint8Array) => Hello,
  ): HandshakeStep {
    let hello: Hello;
    try {
      hello = readHello(frame);
    } catch (error) {
      return { kind: "malformed", error };
    }
    if (hello.nonce !== undefined) {
      return {
        kind: "refused",
        reason: "Cannot link: peer requires a cluster key, and this node has none",
      };
    }
    return { kind: "hello", hello };
  },
});

/**
 * Authentication with a cluster key.
 *
 * @example
 * ```ts
 * import { keyedClusterAuth } from "./_auth.ts";
 * import { ClusterKey } from "./_cluster_key.ts";
 * import { msgpackCodec } from "./codec.ts";
 * const auth = keyedClusterAuth(new ClusterKey("secret"));
 * const self = { guid: "A", incarnation: "1", codec: "msgpack" as const, address: "h:1" };
 * const heartbeat = auth.heartbeats(msgpackCodec, self);
 * const fields = msgpackCodec.decode(heartbeat()).message;
 * if (auth.checkHeartbeat(fields).kind !== "taken") throw new Error("unexpected");
 * if (auth.checkHeartbeat(fields).kind !== "replayed") throw new Error("unexpected");
 * ```
 */
export function keyedClusterAuth(key: ClusterKey): ClusterAuth {
  const sequences = new HeartbeatSequences();
  const windows = new DatagramWindows();
  return {
    authenticated: true,
    heartbeats(codec: Codec, self: HelloIdentity): () => Uint8Array {
      // The number of our last signed heartbeat.
      let sequence = 0;
      return () => {
        const fields = heartbeatFields(self);
        const number = String(++sequence);
        fields[SystemField.Sequence] = number;
        fields[SystemField.Tag] = key.heartbeatTag([
          SystemKind.NodeLocation,
          self.guid,
          self.address,
          fields[SystemField.Version],
          self.incarnation,
          number,
        ]);
        return codec.encode({ destination: "", source: "", message: fields });
      };
    },
    checkHeartbeat(fields: Readonly<Record<string, string>>): HeartbeatVerdict {
      const kind = fields[SYSTEM_KEY];
      if (kind !== SystemKind.NodeLocation && kind !== SystemKind.ConnectToMe) {
        return {
          kind: "refused",
          reason:
            "Cannot use datagram: with a cluster key only signed heartbeats are taken by datagram",
        };
      }
      const heartbeat = heartbeatOf(fields);
      const sequence = fields[SystemField.Sequence] ?? "";
      if (
        heartbeat === undefined || !/^[1-9][0-9]{0,14}$/.test(sequence) ||
        !key.checkHeartbeatTag([
          kind,
          heartbeat.guid,
          heartbeat.address,
          fields[SystemField.Version] ?? "",
          heartbeat.incarnation,
          sequence,
        ], fields[SystemField.Tag])
      ) {
        return {
          kind: "refused",
          reason: "Cannot use heartbeat: it is not signed with the cluster key",
        };
      }
      if (!sequences.take(heartbeat.guid, heartbeat.incarnation, Number(sequence))) {
        return { kind: "replayed", guid: heartbeat.guid, sequence };
      }
      return { kind: "taken", ...heartbeat };
    },
    datagramSeal(random: Random): DatagramSeal {
      return sealWith(key, random.fill(new Uint8Array(8)), windows);
    },
    hello(slots: HandshakeSlots, _plain: Uint8Array, self: HelloIdentity, random: Random) {
      slots.helloSent = encodeHello({
        version: PROTOCOL_VERSION,
        guid: self.guid,
        incarnation: self.incarnation,
        codec: self.codec,
        address: self.address,
        nonce: random.fill(new Uint8Array(MIN_NONCE_BYTES)),
      });
      return encodeFrame(slots.helloSent);
    },
    /**
     * The peer's hello (which must carry a nonce), answered with our proof over both hellos;
     * then the peer's proof. Only a valid proof lets the hello take effect, so a node without
     * the key never gets a link, nor any frame past its hello read.
     */
    handshake(slots: HandshakeSlots, frame: Uint8Array): HandshakeStep {
      const hello = slots.peerHello;
      if (hello === undefined) {
        let received: Hello;
        try {
          received = decodeHello(frame);
        } catch (error) {
          return { kind: "malformed", error };
        }
        if (received.nonce === undefined) {
          return {
            kind: "refused",
            reason:
              "Cannot link: peer did not prove the cluster key (its hello has no key challenge: it has no key)",
          };
        }
        slots.peerHello = received;
        slots.peerHelloBytes = frame.slice();
        const proof = key.linkProof(slots.helloSent!, slots.peerHelloBytes);
        return { kind: "reply", frame: encodeFrame(encodeProof(proof)) };
      }
      let tag: Uint8Array;
      try {
        tag = decodeProof(frame);
      } catch (error) {
        return { kind: "refused", reason: (error as Error).message };
      }
      if (!key.checkLinkProof(slots.helloSent!, slots.peerHelloBytes!, tag)) {
        return {
          kind: "refused",
          reason:
            "Cannot link: peer did not prove the cluster key (wrong key, or a replayed proof)",
        };
      }
      slots.peerHello = undefined;
      slots.peerHelloBytes = undefined;
      return { kind: "hello", hello };
    },
  };
}

/** A datagram seal under `key` for the sender session `session` (8 bytes). */
function sealWith(key: ClusterKey, session: Uint8Array, windows: DatagramWindows): DatagramSeal {
  let sent = 0;
  return {
    seal(payload: Uint8Array): Uint8Array {
      sent++;
      const out = new Uint8Array(payload.length + SEAL_BYTES);
      out.set(payload, 0);
      const head = out.subarray(payload.length, payload.length + 16);
      head.set(session, 0);
      // The number as 8 bytes, big-endian (below 2^53).
      const view = new DataView(out.buffer, out.byteOffset + payload.length + 8, 8);
      view.setUint32(0, Math.floor(sent / 2 ** 32));
      view.setUint32(4, sent >>> 0);
      out.set(key.datagramTag(head, payload), payload.length + 16);
      return out;
    },
    open(data: Uint8Array): Uint8Array | "replayed" {
      if (data.length <= SEAL_BYTES) {
        throw new Error("Cannot read ring datagram: too short to be sealed with the cluster key");
      }
      const end = data.length - SEAL_BYTES;
      const payload = data.subarray(0, end);
      const head = data.subarray(end, end + 16);
      if (!timingSafeEqual(key.datagramTag(head, payload), data.subarray(end + 16))) {
        throw new Error("Cannot read ring datagram: it is not sealed with the cluster key");
      }
      const view = new DataView(data.buffer, data.byteOffset + end, 16);
      const high = view.getUint32(8);
      if (high >= 2 ** 21) {
        throw new Error("Cannot read ring datagram: its number is out of range");
      }
      const number = high * 2 ** 32 + view.getUint32(12);
      const sender = view.getUint32(0).toString(16) + "." + view.getUint32(4).toString(16);
      return windows.take(sender, number) ? payload : "replayed";
    },
  };
}
