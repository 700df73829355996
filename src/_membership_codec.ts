/**
 * The membership protocol's datagrams in a compact binary form.
 *
 * At scale every node sends and receives a few membership datagrams per second, so their cost
 * is per datagram: a general codec (msgpack) spends more time on each ping than the membership
 * logic does. This form writes each field in a fixed order, with no field names:
 *
 * - a marker byte `0xC1` (a byte msgpack never uses, so a receiver can tell this form from a
 *   msgpack value on the same socket), then the kind: 1 ping, 2 ack, 3 ping-req, 4 gossip, 5 sync,
 *   6 beat;
 * - the sender's GUID, then the kind's fields, then the updates;
 * - strings as a varint byte length and UTF-8; whole numbers as unsigned varints (7 bits a byte,
 *   up to 2^53 - 1); the sync digest as a 32-bit signed integer; a version as a float64;
 * - an update as GUID, address, version, status (0 alive, 1 suspect, 2 dead).
 *
 * Decoding checks everything a datagram from the network could get wrong (the marker, the kind,
 * lengths that overrun, bad UTF-8, an unknown status, bytes left over) and throws a
 * `ProtocolError` saying what; the node counts and logs it and goes on.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";
import type { MembershipMessage, MemberStatus, MemberUpdate } from "./_membership.ts";

/** The first byte of every membership datagram in this form. */
export const MEMBERSHIP_MARKER = 0xc1;

const KIND_CODES = { ping: 1, ack: 2, "ping-req": 3, gossip: 4, sync: 5, beat: 6 } as const;
const STATUS_CODES: Readonly<Record<MemberStatus, number>> = { alive: 0, suspect: 1, dead: 2 };
const STATUSES: readonly MemberStatus[] = ["alive", "suspect", "dead"];
/** Most updates one datagram may claim to carry (a sync page is 200 by default). */
const MAX_UPDATES = 4096;

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** One growing scratch buffer: encoding writes here, then copies out exactly what it wrote. */
class Writer {
  bytes = new Uint8Array(512);
  view = new DataView(this.bytes.buffer);
  at = 0;

  reset(): void {
    this.at = 0;
  }

  #room(n: number): void {
    if (this.at + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.at + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.at));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }

  byte(value: number): void {
    this.#room(1);
    this.bytes[this.at++] = value;
  }

  uint(value: number): void {
    if (!(Number.isSafeInteger(value) && value >= 0)) {
      throw new RangeError(`Cannot encode membership datagram: ${value} is not a whole number`);
    }
    this.#room(8);
    while (value >= 0x80) {
      this.bytes[this.at++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.bytes[this.at++] = value;
  }

  int32(value: number): void {
    this.#room(4);
    this.view.setInt32(this.at, value);
    this.at += 4;
  }

  float64(value: number): void {
    this.#room(8);
    this.view.setFloat64(this.at, value);
    this.at += 8;
  }

  string(text: string): void {
    const length = text.length;
    // ASCII, the usual case (GUIDs, addresses), byte by byte; anything else through UTF-8.
    let ascii = length < 0x80;
    for (let i = 0; ascii && i < length; i++) ascii = text.charCodeAt(i) < 0x80;
    if (ascii) {
      this.#room(1 + length);
      this.bytes[this.at++] = length;
      for (let i = 0; i < length; i++) this.bytes[this.at++] = text.charCodeAt(i);
      return;
    }
    const encoded = utf8.encode(text);
    this.uint(encoded.length);
    this.#room(encoded.length);
    this.bytes.set(encoded, this.at);
    this.at += encoded.length;
  }

  updates(updates: readonly MemberUpdate[]): void {
    this.uint(updates.length);
    for (const update of updates) {
      this.string(update.guid);
      this.string(update.address);
      this.float64(update.version);
      const status = STATUS_CODES[update.status];
      if (status === undefined) {
        throw new RangeError(`Cannot encode membership datagram: status "${update.status}"`);
      }
      this.byte(status);
    }
  }

  take(): Uint8Array {
    return this.bytes.slice(0, this.at);
  }
}

const writer = new Writer();

/**
 * A membership datagram's bytes.
 *
 * @example
 * ```ts
 * import { decodeMembership, encodeMembership } from "./_membership_codec.ts";
 * const bytes = encodeMembership({ kind: "ping", from: "A", seq: 7, updates: [] });
 * const back = decodeMembership(bytes);
 * if (back.kind !== "ping" || back.seq !== 7 || bytes.length !== 7) throw new Error("unexpected");
 * ```
 */
export function encodeMembership(message: MembershipMessage): Uint8Array {
  const w = writer;
  w.reset();
  w.byte(MEMBERSHIP_MARKER);
  const kind = KIND_CODES[message.kind];
  if (kind === undefined) {
    throw new RangeError(`Cannot encode membership datagram: kind "${message.kind}"`);
  }
  w.byte(kind);
  w.string(message.from);
  switch (message.kind) {
    case "ping":
      w.uint(message.seq);
      if (message.onBehalfOf === undefined) w.byte(0);
      else {
        w.byte(1);
        w.string(message.onBehalfOf.guid);
        w.string(message.onBehalfOf.address);
        w.uint(message.onBehalfOf.seq);
      }
      break;
    case "ack":
      w.string(message.subject);
      w.uint(message.seq);
      break;
    case "ping-req":
      w.uint(message.seq);
      w.string(message.target);
      w.string(message.targetAddress);
      break;
    case "beat":
    case "gossip":
      break;
    case "sync":
      w.int32(message.digest);
      w.byte(message.reply ? 1 : 0);
      w.uint(message.page);
      w.uint(message.pages);
      break;
  }
  w.updates(message.updates);
  return w.take();
}

/** Reads one datagram; every overrun or bad value is a `ProtocolError`. */
class Reader {
  at = 0;
  #dataView: DataView | undefined;

  constructor(readonly bytes: Uint8Array) {}

  /** Made on first use: most datagrams (beats, pings) carry no fixed-width numbers. */
  get #view(): DataView {
    return this.#dataView ??= new DataView(
      this.bytes.buffer,
      this.bytes.byteOffset,
      this.bytes.byteLength,
    );
  }

  fail(what: string): never {
    throw new ProtocolError(`Cannot decode membership datagram: ${what} (at byte ${this.at})`);
  }

  byte(): number {
    if (this.at >= this.bytes.length) this.fail("it ends early");
    return this.bytes[this.at++];
  }

  uint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(value)) this.fail("a number is too large");
        return value;
      }
      scale *= 0x80;
    }
    return this.fail("a number is too long");
  }

  int32(): number {
    if (this.at + 4 > this.bytes.length) this.fail("it ends early");
    const value = this.#view.getInt32(this.at);
    this.at += 4;
    return value;
  }

  float64(): number {
    if (this.at + 8 > this.bytes.length) this.fail("it ends early");
    const value = this.#view.getFloat64(this.at);
    this.at += 8;
    if (!Number.isFinite(value)) this.fail("a version is not a finite number");
    return value;
  }

  string(): string {
    const length = this.uint();
    const end = this.at + length;
    if (end > this.bytes.length) this.fail("a string overruns it");
    const bytes = this.bytes;
    let ascii = true;
    for (let i = this.at; ascii && i < end; i++) ascii = bytes[i] < 0x80;
    let text: string;
    if (ascii) {
      text = String.fromCharCode.apply(null, bytes.subarray(this.at, end) as unknown as number[]);
    } else {
      try {
        text = utf8Strict.decode(bytes.subarray(this.at, end));
      } catch {
        this.fail("a string is not UTF-8");
      }
    }
    this.at = end;
    return text;
  }

  guid(what: string): string {
    const text = this.string();
    if (text === "") this.fail(`${what} is empty`);
    return text;
  }

  updates(): MemberUpdate[] {
    const count = this.uint();
    // Each update takes at least 11 bytes: a count past what is left is a lie.
    if (count > MAX_UPDATES || count * 11 > this.bytes.length - this.at) {
      this.fail(`${count} updates cannot fit`);
    }
    const updates: MemberUpdate[] = [];
    for (let i = 0; i < count; i++) {
      const guid = this.guid("a member's GUID");
      const address = this.string();
      const version = this.float64();
      const status = STATUSES[this.byte()];
      if (status === undefined) this.fail("a status is not 0, 1 or 2");
      updates.push({ guid, address, version, status });
    }
    return updates;
  }
}

/**
 * The message in a membership datagram. Throws a `ProtocolError` naming what is wrong with
 * bytes that are not one.
 */
export function decodeMembership(bytes: Uint8Array): MembershipMessage {
  const r = new Reader(bytes);
  if (r.byte() !== MEMBERSHIP_MARKER) r.fail("not a membership datagram");
  const kind = r.byte();
  const from = r.guid("the sender's GUID");
  let message: MembershipMessage;
  switch (kind) {
    case 1: {
      const seq = r.uint();
      const relayed = r.byte();
      if (relayed > 1) r.fail("the relay flag is not 0 or 1");
      const onBehalfOf = relayed === 1
        ? { guid: r.guid("the relay's GUID"), address: r.string(), seq: r.uint() }
        : undefined;
      const updates = r.updates();
      message = onBehalfOf === undefined
        ? { kind: "ping", from, seq, updates }
        : { kind: "ping", from, seq, onBehalfOf, updates };
      break;
    }
    case 2: {
      const subject = r.guid("the subject's GUID");
      const seq = r.uint();
      message = { kind: "ack", from, subject, seq, updates: r.updates() };
      break;
    }
    case 3: {
      const seq = r.uint();
      const target = r.guid("the target's GUID");
      const targetAddress = r.string();
      message = { kind: "ping-req", from, seq, target, targetAddress, updates: r.updates() };
      break;
    }
    case 4:
      message = { kind: "gossip", from, updates: r.updates() };
      break;
    case 6:
      message = { kind: "beat", from, updates: r.updates() };
      break;
    case 5: {
      const digest = r.int32();
      const reply = r.byte();
      if (reply > 1) r.fail("the reply flag is not 0 or 1");
      const page = r.uint();
      const pages = r.uint();
      if (page >= pages) r.fail(`page ${page} of ${pages}`);
      message = {
        kind: "sync",
        from,
        digest,
        reply: reply === 1,
        page,
        pages,
        updates: r.updates(),
      };
      break;
    }
    default:
      return r.fail(`kind ${kind} is not a membership message`);
  }
  if (r.at !== bytes.length) r.fail(`${bytes.length - r.at} bytes are left over`);
  return message;
}
