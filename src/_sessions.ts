/**
 * The session table: the sending and receiving halves of each peer's session (see
 * `_session.ts` for one session's bookkeeping) and the link traffic that keeps them: `Resume`
 * and `Align` when a link comes up, `Ack` once per turn of data, a counted `Goodbye` on close.
 *
 * A message written on a link is numbered and kept until the peer confirms it; on a new link
 * nothing new goes out before the peer's `Resume` says where it is, and what it has not taken
 * is written again first. When a link goes down, what it held back is reported at once (never
 * written); what it wrote unconfirmed waits for the next link to the same peer incarnation, or
 * for the resend window to pass, when it is reported `uncertain` (and its outcome later, if it
 * becomes known).
 *
 * @module
 */
import type { Frame } from "./_link.ts";
import { randomHex } from "./_options.ts";
import { type InboundSession, OutboundSession } from "./_session.ts";
import { ProtocolError } from "./errors.ts";
import type { MapMessage } from "./message.ts";
import { Histogram, LATENCY_BUCKETS_SECONDS } from "./metrics.ts";
import type { Clock, Random } from "./platform.ts";
import { SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";

/** Most messages a new link holds until the peer's `Resume` arrives (one round trip). */
export const HELD_MESSAGES_MAX = 10_000;

/** What the session table sees of a link. */
export interface SessionLink {
  readonly peerGuid: string;
  readonly peerIncarnation: string;
  readonly state: string;
  /** When the link last wrote (set by `write`). */
  readonly lastSentMs: number;
  /** When bytes last arrived on the link. */
  readonly lastReceivedMs: number;
  session: OutboundSession | undefined;
  inbound: InboundSession | undefined;
  held: MapMessage[];
  aligned: boolean;
  expectSeq: number;
  ackScheduled: boolean;
  write(frame: Frame): void;
}

/** Why a message the session table gives up on was not delivered. */
export type SessionMissReason = "uncertain" | "link-lost" | "link-buffer-full";

/** What the session table needs from its node. */
export interface SessionsHost<L extends SessionLink> {
  readonly clock: Clock;
  readonly random: Random;
  readonly stats: { duplicatesDropped: number };
  /** A message's frame payload (`transient`: see `messageFrame`). */
  frame(message: MapMessage, transient?: boolean): Frame;
  /** Whether `link` is the link to its peer now (not one replaced or closing). */
  isCurrent(link: L): boolean;
  /** Whether there is a link to `guid`. */
  isLinked(guid: string): boolean;
  /** Reports a message undeliverable; returns false. */
  undeliverable(message: MapMessage, reason: SessionMissReason, detail: string): false;
  /** Reports a message whose frame is over the limit; returns false. */
  tooLarge(message: MapMessage, frame: Frame): false;
  /** The outcome of a message reported `uncertain` became known. */
  outcome(message: MapMessage, outcome: "delivered" | "not-delivered"): void;
  /** The peer broke the session protocol: the link is closed. */
  malformed(link: L, error: ProtocolError): void;
  /** The peer said goodbye: the link is closed gracefully. */
  closeGoodbye(link: L): void;
  /**
   * A message held on a link that went down before it was written: return true if it was
   * taken to go another way (ring membership routes it again: it never left this node, so
   * nothing can be delivered twice). Otherwise it is reported `link-lost`.
   */
  readonly unwritten?: (message: MapMessage, link: L) => boolean;
}

/** The session table's settings. */
export interface SessionsOptions {
  /** Whether links carry sessions at all (see `WireProtocol.sessions`). */
  readonly enabled: boolean;
  readonly resendWindowMs: number;
  readonly resendWindowBytes: number;
  readonly maxFrameBytes: number;
}

/**
 * A node's sessions with its peers.
 *
 * @example
 * ```ts
 * import { Sessions, type SessionLink } from "./_sessions.ts";
 * import { messageFrame } from "./_link.ts";
 * import { msgpackCodec } from "./codec.ts";
 * import { createMessage } from "./message.ts";
 * const frames: string[] = [];
 * const link: SessionLink = {
 *   peerGuid: "B", peerIncarnation: "b1", state: "active", lastSentMs: 0, lastReceivedMs: 0,
 *   session: undefined, inbound: undefined, held: [], aligned: false, expectSeq: 0,
 *   ackScheduled: false,
 *   write: (frame) => frames.push(msgpackCodec.decode(frame.parts[0]).message["AutoMPI_System_Message"] ?? "data"),
 * };
 * const sessions = new Sessions({
 *   clock: { now: () => 0, defer: () => {} } as never,
 *   random: { int: () => 0 } as never,
 *   stats: { duplicatesDropped: 0 },
 *   frame: (message) => messageFrame(msgpackCodec, message),
 *   isCurrent: () => true,
 *   isLinked: () => true,
 *   undeliverable: () => false,
 *   tooLarge: () => false,
 *   outcome: () => {},
 *   malformed: () => {},
 *   closeGoodbye: () => {},
 * }, { enabled: true, resendWindowMs: 30_000, resendWindowBytes: 1 << 20, maxFrameBytes: 1 << 20 });
 * sessions.start(link); // says Resume, holds new messages
 * const message = createMessage("w", { n: "1" });
 * sessions.write(link, message, messageFrame(msgpackCodec, message));
 * if (frames.length !== 1 || link.held.length !== 1) throw new Error("unexpected");
 * ```
 */
export class Sessions<L extends SessionLink> {
  readonly #host: SessionsHost<L>;
  readonly #o: SessionsOptions;
  /** Sending halves, by peer GUID (one peer incarnation each). */
  readonly #outbound = new Map<string, OutboundSession>();
  /** Receiving halves, by peer GUID. */
  readonly #inbound = new Map<string, InboundSession>();
  /** From writing a message on a link to the peer's acknowledgement of it. */
  readonly roundTripSeconds = new Histogram(LATENCY_BUCKETS_SECONDS);
  /**
   * Before this time {@link expire} has nothing to do: no unconfirmed message can be past the
   * resend window and no session without a link idle long enough to drop. Worked out by each
   * look; a link started or closed and a peer's resume make the next round look again (a session
   * whose link resumed is not looked at, so its new messages need nothing). A node that once
   * talked to a few peers would otherwise walk their sessions on every round for minutes: on a
   * quiet node of a large simulated cluster, cache misses every round.
   */
  #expireLookMs = -Infinity;

  /**
   * Before this time {@link expire} has nothing to do, unless a link starts or closes first
   * (`-Infinity`: it must look at the next call).
   */
  get nextLookMs(): number {
    return this.#expireLookMs;
  }

  /** An empty session table. */
  constructor(host: SessionsHost<L>, options: SessionsOptions) {
    this.#host = host;
    this.#o = options;
  }

  /** The sending halves, in the order they began. */
  outbound(): IterableIterator<OutboundSession> {
    return this.#outbound.values();
  }

  /**
   * Writes a message on a link as part of its session: numbered and kept until confirmed, or
   * held until the peer's `Resume` if the link is new. Returns false (reported) if the
   * session's resend window is full. Without sessions, just writes it.
   */
  write(link: L, message: MapMessage, frame: Frame): boolean {
    if (!this.#o.enabled) {
      link.write(frame);
      return true;
    }
    const session = link.session!;
    if (session.windowBytes + frame.length > this.#o.resendWindowBytes) {
      return this.#host.undeliverable(
        message,
        "link-buffer-full",
        `${session.window.length} unconfirmed messages to ${link.peerGuid} fill the resend window of ${this.#o.resendWindowBytes} bytes`,
      );
    }
    if (!session.resumed) {
      // Numbers go on from where the peer says it is: nothing new before its Resume.
      if (link.held.length >= HELD_MESSAGES_MAX) {
        return this.#host.undeliverable(
          message,
          "link-buffer-full",
          `${link.held.length} messages wait for the link to ${link.peerGuid} to resume`,
        );
      }
      link.held.push(message);
      return true;
    }
    link.write(frame);
    // write() noted the time: no second clock read per message.
    session.write(message, link.lastSentMs, frame.length);
    return true;
  }

  /** The sending half of the session with a peer incarnation, a new one if it changed. */
  #outboundFor(link: L): OutboundSession {
    const guid = link.peerGuid;
    let session = this.#outbound.get(guid);
    if (session !== undefined && session.peerIncarnation !== link.peerIncarnation) {
      this.#end(
        guid,
        "uncertain",
        `node ${guid} restarted (incarnation ${session.peerIncarnation} ended) before confirming it; the old incarnation may have handled it`,
      );
      session = undefined;
    }
    if (session === undefined) {
      session = new OutboundSession(link.peerIncarnation, randomHex(this.#host.random, 8));
      this.#outbound.set(guid, session);
    }
    return session;
  }

  /** The receiving half of the session with a peer incarnation, reset if it changed. */
  #inboundFor(link: L): InboundSession {
    const guid = link.peerGuid;
    let inbound = this.#inbound.get(guid);
    if (inbound === undefined || inbound.peerIncarnation !== link.peerIncarnation) {
      inbound = { peerIncarnation: link.peerIncarnation, id: "", received: 0, lastLinkedMs: 0 };
      this.#inbound.set(guid, inbound);
    }
    return inbound;
  }

  /** Ends the session with `guid`: every unconfirmed message is reported with `reason`. */
  #end(guid: string, reason: "uncertain" | "link-lost", detail: string): void {
    const session = this.#outbound.get(guid);
    if (session === undefined) return;
    this.#outbound.delete(guid);
    for (const { message } of session.end().window) {
      this.#host.undeliverable(message, reason, detail);
    }
  }

  /** Ends every session: this node closes. */
  endAll(): void {
    for (const guid of [...this.#outbound.keys()]) {
      this.#end(guid, "uncertain", "this node closed before the peer confirmed it");
    }
  }

  #writeSystem(link: L, fields: Record<string, string>): void {
    link.write(this.#host.frame({ destination: "", source: "", message: fields }, true));
  }

  /** A new link carries the session: tell the peer what we took from it, hold new messages. */
  start(link: L): void {
    const now = this.#host.clock.now();
    this.#expireLookMs = -Infinity;
    const session = this.#outboundFor(link);
    session.resumed = false;
    session.lastLinkedMs = now;
    link.session = session;
    const inbound = this.#inboundFor(link);
    inbound.lastLinkedMs = now;
    link.inbound = inbound;
    link.aligned = false;
    this.#writeSystem(link, {
      [SYSTEM_KEY]: SystemKind.Resume,
      [SystemField.Session]: inbound.id,
      [SystemField.Count]: String(inbound.received),
    });
  }

  /** Says goodbye on `link` from node `guid`, with how many of the peer's messages we took. */
  sayGoodbye(link: L, guid: string): void {
    this.#writeSystem(link, {
      [SYSTEM_KEY]: SystemKind.Goodbye,
      [SystemField.NodeGuid]: guid,
      [SystemField.Reason]: "closing",
      ...(link.inbound === undefined ? {} : {
        [SystemField.Session]: link.inbound.id,
        [SystemField.Count]: String(link.inbound.received),
      }),
    });
  }

  /** The peer's `Resume`: settle what it took, align, resend the rest, then what was held. */
  onResume(link: L, fields: Readonly<Record<string, string>>): void {
    const session = link.session;
    if (session === undefined || !this.#host.isCurrent(link)) return;
    const host = this.#host;
    const result = session.resume(
      fields[SystemField.Session] ?? "",
      Number(fields[SystemField.Count]),
    );
    for (const message of result.delivered) host.outcome(message, "delivered");
    for (const message of result.notDelivered) host.outcome(message, "not-delivered");
    this.#writeSystem(link, {
      [SYSTEM_KEY]: SystemKind.Align,
      [SystemField.Session]: session.id,
      [SystemField.Count]: String(result.alignTo),
    });
    for (const entry of result.resend) link.write(host.frame(entry.message));
    session.resumed = true;
    this.#expireLookMs = -Infinity;
    const held = link.held;
    link.held = [];
    for (const message of held) {
      const frame = host.frame(message);
      if (frame.length > this.#o.maxFrameBytes) host.tooLarge(message, frame);
      else this.write(link, message, frame);
    }
  }

  /** The peer's `Align`: its messages on this link are numbered from the count given. */
  onAlign(link: L, fields: Readonly<Record<string, string>>): void {
    const inbound = link.inbound;
    const count = Number(fields[SystemField.Count]);
    const id = fields[SystemField.Session] ?? "";
    if (inbound === undefined || !Number.isSafeInteger(count) || count < 0 || id === "") {
      this.#host.malformed(
        link,
        new ProtocolError(
          `Cannot align the session: id "${id}", count ${fields[SystemField.Count]}`,
        ),
      );
      return;
    }
    if (inbound.id !== id) {
      // A session of the peer's we have not seen: its numbering starts anew.
      inbound.id = id;
      inbound.received = 0;
    }
    link.expectSeq = count;
    link.aligned = true;
  }

  /**
   * A data message arrived: numbered, taken once (a resend of what was taken is dropped), and
   * acknowledged once this turn is over. Returns whether to deliver it.
   */
  take(link: L): boolean {
    if (!this.#o.enabled) return true;
    const inbound = link.inbound;
    if (inbound === undefined || !link.aligned) {
      this.#host.malformed(
        link,
        new ProtocolError("Cannot take a message before the session is aligned"),
      );
      return false;
    }
    const seq = ++link.expectSeq;
    if (seq <= inbound.received) {
      this.#host.stats.duplicatesDropped++;
      return false;
    }
    inbound.received = seq;
    this.#acknowledgeLater(link);
    return true;
  }

  /** Acknowledges what arrived on a link once this turn is over: one ack per burst. */
  #acknowledgeLater(link: L): void {
    if (link.ackScheduled) return;
    link.ackScheduled = true;
    this.#host.clock.defer(() => {
      link.ackScheduled = false;
      if (link.state !== "active" || link.inbound === undefined) return;
      this.#writeSystem(link, {
        [SYSTEM_KEY]: SystemKind.Ack,
        [SystemField.Count]: String(link.inbound.received),
      });
    });
  }

  /** The peer's `Ack`: it took every message up to the count. */
  onAck(link: L, text: string | undefined): void {
    const session = link.session;
    if (session === undefined) return;
    // The round trip of each message this acknowledges, timed by when its bytes arrived.
    const upTo = Number(text);
    for (const entry of session.window) {
      if (!(entry.seq <= upTo)) break;
      this.roundTripSeconds.observe((link.lastReceivedMs - entry.sentAtMs) / 1000);
    }
    let delivered: MapMessage[];
    try {
      delivered = session.confirm(upTo);
    } catch (error) {
      this.#host.malformed(
        link,
        new ProtocolError(`Cannot use acknowledgement ${text}: ${(error as Error).message}`),
      );
      return;
    }
    for (const message of delivered) this.#host.outcome(message, "delivered");
  }

  /**
   * The peer leaves on purpose, saying how many of our messages it took: those are delivered,
   * the rest certainly not (it reads no more). The link is closed first.
   */
  onGoodbye(link: L, fields: Readonly<Record<string, string>>): void {
    const host = this.#host;
    const session = link.session;
    const guid = link.peerGuid;
    host.closeGoodbye(link);
    if (session === undefined || this.#outbound.get(guid) !== session) return;
    const count = Number(fields[SystemField.Count]);
    if (
      fields[SystemField.Session] === session.id && Number.isSafeInteger(count) && count >= 0 &&
      count <= session.sentSeq
    ) {
      for (const message of session.confirm(count)) host.outcome(message, "delivered");
      const { window, uncertain } = session.end();
      this.#outbound.delete(guid);
      for (const message of uncertain) host.outcome(message, "not-delivered");
      for (const { message } of window) {
        host.undeliverable(
          message,
          "link-lost",
          `node ${guid} left (goodbye) without taking it; it was not delivered`,
        );
      }
      return;
    }
    this.#end(guid, "uncertain", `node ${guid} left before confirming it`);
  }

  /**
   * A link went down (`reason`): what it held back was never written (reported now, for
   * certain); what it wrote unconfirmed stays in the session, to be resent on the next link to
   * that peer incarnation or reported `uncertain` when the resend window passes.
   */
  linkClosed(link: L, reason: string): void {
    this.#expireLookMs = -Infinity;
    if (link.session?.resumed && this.#outbound.get(link.peerGuid) === link.session) {
      link.session.resumed = false;
      link.session.lastLinkedMs = this.#host.clock.now();
    }
    const held = link.held;
    link.held = [];
    for (const message of held) {
      if (this.#host.unwritten?.(message, link)) continue;
      this.#host.undeliverable(
        message,
        "link-lost",
        `the link to ${link.peerGuid} went down (${reason}) before it could be written; it was not delivered`,
      );
    }
  }

  /**
   * Sessions without a live link: messages past the resend window become `uncertain`; sessions
   * long idle are dropped (their uncertain messages keep no outcome).
   */
  expire(now: number): void {
    if (now < this.#expireLookMs) return;
    if (this.#outbound.size === 0 && this.#inbound.size === 0) {
      this.#expireLookMs = Infinity;
      return;
    }
    // What the reports below call may start or close a link: that look-again must stand, and a
    // report that throws leaves the next round to look again.
    this.#expireLookMs = Infinity;
    let lookMs = -Infinity;
    try {
      lookMs = this.#expireSessions(now);
    } finally {
      this.#expireLookMs = Math.min(this.#expireLookMs, lookMs);
    }
  }

  /** Expires and drops what is due (see {@link expire}); returns when the next look is due. */
  #expireSessions(now: number): number {
    const windowMs = this.#o.resendWindowMs;
    let lookMs = Infinity;
    for (const [guid, session] of this.#outbound) {
      if (session.resumed) continue;
      for (const { message } of session.expire(now - windowMs)) {
        this.#host.undeliverable(
          message,
          "uncertain",
          `no link to ${guid} confirmed it within the resend window of ${windowMs} ms; a "message-outcome" event follows if the outcome becomes known`,
        );
      }
      // Without a link, an empty session is dropped after a window (ten with uncertain messages).
      const linked = this.#host.isLinked(guid);
      const dropAtMs = session.lastLinkedMs +
        (session.uncertain.size === 0 ? 1 : 10) * windowMs;
      if (!linked && session.window.length === 0 && now > dropAtMs) {
        this.#outbound.delete(guid);
        continue;
      }
      // Due next: its oldest unconfirmed message, and (without a link) its drop.
      if (session.window.length > 0) {
        lookMs = Math.min(lookMs, session.window[0].sentAtMs + windowMs);
      }
      if (!linked) lookMs = Math.min(lookMs, dropAtMs);
    }
    for (const [guid, inbound] of this.#inbound) {
      // Kept well past any resend of the peer's, so a late resend is still recognised.
      if (this.#host.isLinked(guid)) continue;
      if (now - inbound.lastLinkedMs > 3 * windowMs) this.#inbound.delete(guid);
      else lookMs = Math.min(lookMs, inbound.lastLinkedMs + 3 * windowMs);
    }
    return lookMs;
  }
}
