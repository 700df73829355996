/**
 * A link: one stream connection to a peer, with what the node keeps about it (handshake, peer,
 * session, counters) and how bytes go out.
 *
 * Output is batched: small frames written in one turn are copied into one buffer that goes out
 * as a single write once the turn is over (via `clock.defer`), so a burst of small messages
 * costs one system call, not one each. A large frame goes alone, its data not copied. A frame
 * that is already whole (a hello, a keepalive) and alone in its turn is written as it is, so a
 * keepalive stays one recognisable chunk that the receiver can skip without decoding.
 *
 * @module
 */
import type { HandshakeSlots } from "./_auth.ts";
import type { Peer, Seed } from "./_peers.ts";
import type { InboundSession, OutboundSession } from "./_session.ts";
import { type Codec, type CodecName, jsonCodec, msgpackCodec } from "./codec.ts";
import { encodeFrame, encodeFrameHeader, FRAME_HEADER_BYTES, FrameDecoder } from "./framing.ts";
import type { MapMessage } from "./message.ts";
import { type Clock, formatAddress, type StreamConn } from "./platform.ts";
import { type Hello, SYSTEM_KEY, SystemKind } from "./system.ts";

/** A frame payload as pieces to write one after the other. */
export interface Frame {
  readonly parts: readonly Uint8Array[];
  readonly length: number;
}

/** Frames are coalesced into writes of up to this many bytes; larger frames go alone. */
export const BATCH_BYTES = 64 * 1024;

function keepAlivePayload(codec: Codec): Uint8Array {
  return codec.encode({
    destination: "",
    source: "",
    message: { [SYSTEM_KEY]: SystemKind.KeepAlive },
  });
}

const KEEPALIVE: Record<CodecName, Uint8Array> = {
  msgpack: keepAlivePayload(msgpackCodec),
  json: keepAlivePayload(jsonCodec),
};

/** Whole keepalive frames, shared by every node: a chunk that is exactly one skips the decoder. */
export const KEEPALIVE_FRAME: Readonly<Record<CodecName, Uint8Array>> = {
  msgpack: encodeFrame(KEEPALIVE.msgpack),
  json: encodeFrame(KEEPALIVE.json),
};

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  // Identity first: received bytes are read-only, and a simulated broadcast shares its array.
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether `chunk` is exactly one whole keepalive frame in `codec`.
 *
 * @example
 * ```ts
 * import { isKeepAliveFrame, KEEPALIVE_FRAME } from "./_link.ts";
 * if (!isKeepAliveFrame("msgpack", KEEPALIVE_FRAME.msgpack)) throw new Error("unexpected");
 * ```
 */
export function isKeepAliveFrame(codec: CodecName, chunk: Uint8Array): boolean {
  const keepAlive = KEEPALIVE_FRAME[codec];
  return chunk.length === keepAlive.length && sameBytes(chunk, keepAlive);
}

/**
 * Whether a frame payload is a keepalive in `codec`.
 *
 * @example
 * ```ts
 * import { isKeepAlivePayload } from "./_link.ts";
 * if (isKeepAlivePayload("json", new Uint8Array(3))) throw new Error("unexpected");
 * ```
 */
export function isKeepAlivePayload(codec: CodecName, payload: Uint8Array): boolean {
  const keepAlive = KEEPALIVE[codec];
  return payload.length === keepAlive.length && sameBytes(payload, keepAlive);
}

/**
 * A message's frame payload in `codec`, in pieces (large data stays where it is); the length
 * header is added per write. A `transient` encoding lives in the codec's scratch memory: fine
 * when the frame is copied into a batch at once, before anything else is encoded.
 *
 * @example
 * ```ts
 * import { messageFrame } from "./_link.ts";
 * import { msgpackCodec } from "./codec.ts";
 * import { createMessage } from "./message.ts";
 * const frame = messageFrame(msgpackCodec, createMessage("w1", { k: "v" }));
 * if (frame.length !== 11 || frame.parts.length !== 1) throw new Error("unexpected");
 * ```
 */
export function messageFrame(codec: Codec, message: MapMessage, transient = false): Frame {
  const large = message.data !== undefined && message.data.length >= BATCH_BYTES;
  const parts = large ? codec.encodeParts?.(message) ?? [codec.encode(message)] : [
    transient && codec.encodeTransient ? codec.encodeTransient(message) : codec.encode(message),
  ];
  let length = 0;
  for (const part of parts) length += part.length;
  return { parts, length };
}

/**
 * What the links of one node share for output: the clock, the frame counter, and the set of
 * links with a batch waiting for the end of the turn.
 *
 * @example
 * ```ts
 * import { Link, LinkOutput } from "./_link.ts";
 * import type { StreamConn } from "./platform.ts";
 * const deferred: Array<() => void> = [];
 * const output = new LinkOutput(
 *   { now: () => 0, defer: (fn: () => void) => deferred.push(fn) } as never,
 *   { framesOut: 0 },
 * );
 * const writes: Uint8Array[] = [];
 * const link = new Link("out", output, 1024);
 * link.conn = { write: (bytes: Uint8Array) => writes.push(bytes) } as unknown as StreamConn;
 * link.write({ parts: [new Uint8Array([1])], length: 1 });
 * link.write({ parts: [new Uint8Array([2])], length: 1 });
 * for (const fn of deferred) fn(); // the end of the turn: one write of both frames
 * if (writes.length !== 1 || writes[0].length !== 10) throw new Error("unexpected");
 * ```
 */
export class LinkOutput {
  readonly clock: Clock;
  readonly stats: { framesOut: number };
  readonly #dirty = new Set<Link>();
  #flushScheduled = false;

  /** Output shared by the links of a node. */
  constructor(clock: Clock, stats: { framesOut: number }) {
    this.clock = clock;
    this.stats = stats;
  }

  /** Whether `link` has a batch waiting for the end of the turn. */
  waiting(link: Link): boolean {
    return this.#dirty.has(link);
  }

  /** `link` has a batch: it goes out at the end of the turn, with every other link's. */
  markWaiting(link: Link): void {
    if (this.#dirty.has(link)) return;
    this.#dirty.add(link);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      this.clock.defer(() => this.#flushAll());
    }
  }

  #flushAll(): void {
    this.#flushScheduled = false;
    for (const link of this.#dirty) {
      if (link.state !== "closed") link.flush();
    }
    this.#dirty.clear();
  }
}

/** One stream connection to a peer, from dial or accept to close. */
export class Link implements HandshakeSlots {
  state: "connecting" | "handshaking" | "active" | "closed" = "connecting";
  peerGuid = "";
  peerIncarnation = "";
  peerAddress = "";
  peerCodec: Codec = msgpackCodec;
  readonly decoder: FrameDecoder;
  readonly createdAtMs: number;
  activeAtMs = 0;
  lastReceivedMs: number;
  lastSentMs: number;
  /** When a keepalive last probed this link for a reset. */
  probedAtMs = -Infinity;
  /**
   * Refused as a twin: told why, and left open until the peer hangs up (or the handshake time
   * runs out), so that what it sent meanwhile meets no reset that could overtake the reason.
   */
  refused = false;
  bytesIn = 0;
  bytesOut = 0;
  framesIn = 0;
  framesOut = 0;
  conn!: StreamConn;
  peer: Peer | undefined;
  seed: Seed | undefined;
  /** The session this link carries messages of (with sessions, once active). */
  session: OutboundSession | undefined;
  inbound: InboundSession | undefined;
  /** Messages sent before the peer's `Resume` arrived: written once it has. */
  held: MapMessage[] = [];
  /** Whether the peer's `Align` arrived on this link (data before it is a protocol error). */
  aligned = false;
  /** The number of the last message the peer wrote on this link (see `Align`). */
  expectSeq = 0;
  ackScheduled = false;
  /** This turn's batch of small frames, written together. */
  outBuffer: Uint8Array | undefined;
  outLength = 0;
  lastBatchBytes = 0;
  /** The version of our link set this peer last got in a peer list. */
  gossipVersion = -1;
  /** The address dialled, for outgoing connections. */
  dialled = "";
  /** With a cluster key: the hello payload we sent on this connection (it has our nonce). */
  helloSent: Uint8Array | undefined;
  /** With a cluster key: the peer's hello, held until its proof arrives. */
  peerHello: Hello | undefined;
  peerHelloBytes: Uint8Array | undefined;
  readonly #output: LinkOutput;

  /** A connection this node dials (`out`) or accepted (`in`), made now. */
  constructor(readonly direction: "in" | "out", output: LinkOutput, maxFrameBytes: number) {
    this.#output = output;
    const nowMs = output.clock.now();
    this.decoder = new FrameDecoder({ maxFrameBytes });
    this.createdAtMs = nowMs;
    this.lastReceivedMs = nowMs;
    this.lastSentMs = nowMs;
  }

  /** Whether the connection is closed. */
  get closed(): boolean {
    return this.state === "closed";
  }

  /** The peer's link address once known, else the connection's remote address. */
  get remote(): string {
    return this.peerAddress || formatAddress(this.conn.remote);
  }

  /** Writes one frame: its header, then the payload pieces, none of them copied when large. */
  write(frame: Frame): void {
    if (this.state === "closed") return;
    this.framesOut++;
    this.#output.stats.framesOut++;
    if (frame.length + FRAME_HEADER_BYTES <= BATCH_BYTES) {
      // Small: header and payload are copied into the turn's batch buffer.
      const at = this.#reserve(FRAME_HEADER_BYTES + frame.length);
      const out = this.outBuffer!;
      out[at] = frame.length;
      out[at + 1] = frame.length >>> 8;
      out[at + 2] = frame.length >>> 16;
      out[at + 3] = frame.length >>> 24;
      let offset = at + FRAME_HEADER_BYTES;
      for (const part of frame.parts) {
        out.set(part, offset);
        offset += part.length;
      }
      return;
    }
    this.flush();
    this.bytesOut += FRAME_HEADER_BYTES + frame.length;
    this.lastSentMs = this.#output.clock.now();
    // Large: the header and the small leading pieces in one write, then the data as it is.
    const parts = frame.parts;
    const last = parts[parts.length - 1];
    const prefix = new Uint8Array(FRAME_HEADER_BYTES + frame.length - last.length);
    prefix.set(encodeFrameHeader(frame.length), 0);
    let offset = FRAME_HEADER_BYTES;
    for (let i = 0; i < parts.length - 1; i++) {
      prefix.set(parts[i], offset);
      offset += parts[i].length;
    }
    this.conn.write(prefix);
    this.conn.write(last);
  }

  /** Writes bytes that are already a whole frame (hello, keepalive). */
  writeRaw(bytes: Uint8Array): void {
    if (this.state === "closed") return;
    if (this.outLength === 0 && !this.#output.waiting(this)) {
      // Alone in its turn so far: written as it is (a keepalive stays one recognisable chunk).
      this.bytesOut += bytes.length;
      this.lastSentMs = this.#output.clock.now();
      this.conn.write(bytes);
      return;
    }
    const at = this.#reserve(bytes.length);
    this.outBuffer!.set(bytes, at);
  }

  /**
   * Room for `bytes` in the batch buffer, flushing first if it is full. The batch goes out as
   * one write after the turn.
   */
  #reserve(bytes: number): number {
    if (this.outLength + bytes > BATCH_BYTES) this.flush();
    const need = this.outLength + bytes;
    const buffer = this.outBuffer;
    if (buffer === undefined || buffer.length < need) {
      // Sized to the last batch (zeroing 64 KiB for a lone frame is not free): grows by doubling.
      let size = buffer?.length ?? Math.min(BATCH_BYTES, Math.max(512, this.lastBatchBytes));
      while (size < need) size *= 2;
      const grown = new Uint8Array(Math.min(BATCH_BYTES, size));
      if (buffer !== undefined) grown.set(buffer.subarray(0, this.outLength));
      this.outBuffer = grown;
    }
    const at = this.outLength;
    this.outLength += bytes;
    this.bytesOut += bytes;
    this.lastSentMs = this.#output.clock.now();
    this.#output.markWaiting(this);
    return at;
  }

  /** Writes the batch now, if there is one. */
  flush(): void {
    const length = this.outLength;
    if (length === 0 || this.outBuffer === undefined) return;
    // The write takes the buffer: the next batch gets a fresh one.
    const out = this.outBuffer.subarray(0, length);
    this.outBuffer = undefined;
    this.outLength = 0;
    this.lastBatchBytes = length;
    this.conn.write(out);
  }

  /** Drops the batch unwritten (the connection is being destroyed). */
  discardOutput(): void {
    this.outBuffer = undefined;
    this.outLength = 0;
  }
}
