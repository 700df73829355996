/**
 * Sessions: what one node incarnation sends another across links that come and go, so that
 * while both incarnations live a message is delivered exactly once, in order, and its outcome is
 * never reported wrongly.
 *
 * Messages are numbered implicitly: the n-th message a session writes is number n, and the
 * receiver counts the messages it takes. When a link comes up, each side first tells the other
 * what it has taken (`Resume`: the session id it last saw and its count); the sender answers
 * with where its numbering goes on (`Align`), resends what the peer has not taken, and only then
 * sends anything new. Messages the peer confirms (acks, resumes, goodbyes) leave the window;
 * those that stay unconfirmed past the window's time are reported `uncertain` and kept (bounded)
 * so that their outcome can be reported when it becomes known.
 *
 * Pure bookkeeping: no I/O, no clock of its own; the node drives it.
 *
 * @module
 */
import type { MapMessage } from "./message.ts";

/** A message a session wrote and the peer has not confirmed yet. */
export interface SessionEntry {
  readonly seq: number;
  readonly message: MapMessage;
  /** When it was first written. */
  readonly sentAtMs: number;
  readonly bytes: number;
}

/** What a peer's `Resume` settles. */
export interface ResumeResult {
  /** Messages reported `uncertain` earlier that the peer did take: delivered after all. */
  readonly delivered: readonly MapMessage[];
  /** Messages reported `uncertain` earlier that the peer never took (no longer resendable). */
  readonly notDelivered: readonly MapMessage[];
  /** Where the numbering goes on: the receiver sets its count to this. */
  readonly alignTo: number;
  /** What to write again, in order, before anything new. */
  readonly resend: readonly SessionEntry[];
}

/** Most `uncertain` messages a session keeps for a later outcome; older ones are dropped. */
export const MAX_UNCERTAIN = 4096;

/** What {@link OutboundSession.expire} returns when nothing expired (no array per call). */
const NO_ENTRIES: readonly SessionEntry[] = Object.freeze([]);

/**
 * The sending half of a session, with one peer incarnation.
 *
 * @example
 * ```ts
 * import { OutboundSession } from "./_session.ts";
 * import { createMessage } from "./message.ts";
 * const session = new OutboundSession("peer-incarnation", "s1");
 * session.write(createMessage("w", { n: "1" }), 0, 10);
 * session.write(createMessage("w", { n: "2" }), 0, 10);
 * session.confirm(1); // the peer acknowledged the first
 * // The link flapped; the peer's Resume says it took 1: the second is written again.
 * const { resend, alignTo } = session.resume("s1", 1);
 * if (alignTo !== 1 || resend.length !== 1 || resend[0].message.message.n !== "2") {
 *   throw new Error("unexpected");
 * }
 * ```
 */
export class OutboundSession {
  /** The number of the last message written. */
  sentSeq = 0;
  /** Unconfirmed messages, ascending. */
  readonly window: SessionEntry[] = [];
  windowBytes = 0;
  /** Reported `uncertain`, awaiting an outcome: number → message, ascending. */
  readonly uncertain = new Map<number, MapMessage>();
  /** Whether the current link has been resumed (new messages may go out). */
  resumed = false;
  /** When a link of this session was last up (for clean-up). */
  lastLinkedMs = 0;

  /** A session with the peer incarnation `peerIncarnation`, numbered under `id`. */
  constructor(readonly peerIncarnation: string, readonly id: string) {}

  /** Numbers a message written now and keeps it until confirmed. */
  write(message: MapMessage, nowMs: number, bytes: number): SessionEntry {
    const entry = { seq: ++this.sentSeq, message, sentAtMs: nowMs, bytes };
    this.window.push(entry);
    this.windowBytes += bytes;
    return entry;
  }

  /**
   * The peer took every message up to `upTo`; returns the `uncertain` ones among them (they were
   * delivered after all). Throws a `RangeError` for a count past what was written.
   */
  confirm(upTo: number): MapMessage[] {
    if (!Number.isSafeInteger(upTo) || upTo < 0 || upTo > this.sentSeq) {
      throw new RangeError(`Cannot confirm ${upTo}: expected 0..${this.sentSeq}`);
    }
    let drop = 0;
    while (drop < this.window.length && this.window[drop].seq <= upTo) {
      this.windowBytes -= this.window[drop].bytes;
      drop++;
    }
    if (drop > 0) this.window.splice(0, drop);
    const delivered: MapMessage[] = [];
    for (const [seq, message] of this.uncertain) {
      if (seq > upTo) break;
      delivered.push(message);
      this.uncertain.delete(seq);
    }
    return delivered;
  }

  /**
   * Moves the messages written before `beforeMs` out of the window, as `uncertain`; returns
   * them (to be reported). Keeps at most {@link MAX_UNCERTAIN}.
   */
  expire(beforeMs: number): readonly SessionEntry[] {
    let count = 0;
    while (count < this.window.length && this.window[count].sentAtMs < beforeMs) count++;
    return count === 0 ? NO_ENTRIES : this.#toUncertain(count);
  }

  /** Moves the oldest `count` window entries to `uncertain`; returns them. */
  #toUncertain(count: number): SessionEntry[] {
    const moved = this.window.splice(0, count);
    for (const entry of moved) {
      this.windowBytes -= entry.bytes;
      this.uncertain.set(entry.seq, entry.message);
    }
    while (this.uncertain.size > MAX_UNCERTAIN) {
      this.uncertain.delete(this.uncertain.keys().next().value!);
    }
    return moved;
  }

  /**
   * The peer's `Resume`: it last saw session `sessionId` and took `received` of its messages.
   * A count for another session id (one this node no longer has) confirms nothing.
   */
  resume(sessionId: string, received: number): ResumeResult {
    const taken = sessionId === this.id && Number.isSafeInteger(received) &&
        received >= 0 && received <= this.sentSeq
      ? received
      : 0;
    const delivered = this.confirm(taken);
    // What expired out of the window and the peer never took: definitely not delivered.
    const notDelivered = [...this.uncertain.values()];
    this.uncertain.clear();
    const alignTo = this.window.length > 0 ? this.window[0].seq - 1 : this.sentSeq;
    return { delivered, notDelivered, alignTo, resend: [...this.window] };
  }

  /** Everything unconfirmed, window and uncertain alike, emptied: the session is over. */
  end(): { window: SessionEntry[]; uncertain: MapMessage[] } {
    const window = this.window.splice(0);
    const uncertain = [...this.uncertain.values()];
    this.uncertain.clear();
    this.windowBytes = 0;
    return { window, uncertain };
  }
}

/** The receiving half: which session of the peer's it follows, and how many messages it took. */
export interface InboundSession {
  readonly peerIncarnation: string;
  /** The sender's session id (from its `Align`), or "" before the first. */
  id: string;
  received: number;
  lastLinkedMs: number;
}
