/**
 * Cluster authentication, chosen once from the node's options: none, or a cluster key. The
 * value makes the node's heartbeats and hellos, checks signed heartbeats and runs each link's
 * handshake, so no other part of the node looks at the key.
 *
 * Without a key a heartbeat is the same bytes every time, a hello is the protocol's, and the
 * peer's hello is taken as it is (unless it asks for a key). With one, each heartbeat is
 * numbered and signed, a hello carries a fresh nonce, and a link comes up only after both
 * sides proved the key over both hellos (see `_cluster_key.ts`).
 *
 * @module
 */
import { type ClusterKey, HeartbeatSequences } from "./_cluster_key.ts";
import type { Codec } from "./codec.ts";
import { encodeFrame } from "./framing.ts";
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
