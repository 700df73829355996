/**
 * Fuzzing of everything that reads bytes from a peer before any trust exists: the
 * {@link FrameDecoder}, both codecs' `decode`, `decodeHello` (and `decodeProof` when the build
 * has one), with 100,000 seeded cases of random, structure-aware and mutated byte streams cut
 * into random chunks.
 *
 * For each case it checks:
 * - only {@link ProtocolError} subclasses are ever thrown (a `TypeError` or `RangeError` from
 *   hostile bytes would escape a link handler that rightly rethrows non-protocol errors);
 * - the decoder gives exactly the frames, and the error, of a plain reference reader of the
 *   whole stream, whatever the chunking;
 * - `bufferedBytes` is always exactly what arrived minus what was handed out as frames, so
 *   never more than what arrived;
 * - a poisoned decoder keeps throwing the same class.
 *
 * Every case draws from its own generator, seeded from (SEED, case number), so one case can be
 * replayed alone: a failure prints `reproduce with FUZZ_SEED=… FUZZ_CASE=…`, and those two
 * environment variables run just that case. `FUZZ_CASES` changes the count (default 100,000).
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { encode as msgpackEncode } from "@msgpack/msgpack";
import { jsonCodec, msgpackCodec } from "../../src/codec.ts";
import { ProtocolError } from "../../src/errors.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  FrameDecoder,
  FrameTooLargeError,
  TruncatedFrameError,
} from "../../src/framing.ts";
import type { MapMessage } from "../../src/message.ts";
import * as system from "../../src/system.ts";
import { Prng } from "../_hostile.ts";
import { currentRuntime, findRuntime, REPO_ROOT, runAsync } from "../_processes.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
const CASES = Number(process.env.FUZZ_CASES ?? 100_000);
const ONLY_CASE = process.env.FUZZ_CASE === undefined ? undefined : Number(process.env.FUZZ_CASE);
const MAX_UINT32 = 0xffff_ffff;

/** `decodeProof` exists only in builds with cluster keys; fuzz it when it is there. */
const decodeProof = (system as unknown as Record<string, unknown>).decodeProof as
  | ((bytes: Uint8Array) => unknown)
  | undefined;

/** Prints a measured figure where both runners show it. */
function figure(text: string): void {
  console.log(`[figure] ${currentRuntime()}: ${text}`);
}

// ---- inputs ----------------------------------------------------------------------------------

const utf8 = new TextEncoder();

/** Strings a hostile peer would try: prototype keys, reserved names, odd Unicode. */
const NASTY_STRINGS = [
  "",
  "__proto__",
  "constructor",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "toJSON",
  "AutoMPI",
  "AutoMPI_System_Message",
  "AutoMPI_SKD_Ack",
  "ALLNodes",
  "ALLWorkers",
  "msgpack",
  "json",
  "127.0.0.1:1",
  "\u0000",
  "\u2028",
  "<&>",
  "😀",
  "\ufeff",
  "é",
];

function randomString(rng: Prng): string {
  switch (rng.int(0, 4)) {
    case 0:
      return rng.pick(NASTY_STRINGS);
    case 1: {
      let s = "";
      for (let i = rng.size(40); i > 0; i--) s += String.fromCharCode(rng.int(0x20, 0x7e));
      return s;
    }
    case 2: {
      let s = "";
      for (let i = rng.size(12); i > 0; i--) {
        const c = rng.int(0x80, 0x2ffff);
        s += String.fromCodePoint(c >= 0xd800 && c <= 0xdfff ? c + 0x800 : c); // no lone surrogates
      }
      return s;
    }
    case 3:
      return "x".repeat(rng.pick([255, 256, 257, 300, 301]));
    default:
      return rng.pick(NASTY_STRINGS) + String(rng.int(0, 9));
  }
}

function randomMessage(rng: Prng): MapMessage {
  const message: Record<string, string> = Object.create(null);
  for (let i = rng.size(6); i > 0; i--) message[randomString(rng)] = randomString(rng);
  const msg: MapMessage = { destination: randomString(rng), source: randomString(rng), message };
  if (rng.chance(0.5)) msg.data = rng.bytes(rng.chance(0.02) ? rng.int(1024, 5000) : rng.size(64));
  return msg;
}

/** Any value @msgpack/msgpack can encode, with the shapes and keys a decoder trips on. */
function randomValue(rng: Prng, depth: number): unknown {
  const kind = rng.int(0, depth > 2 ? 6 : 9);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, 1, -1, 2, 255, 65536, 2 ** 32, 2 ** 53 - 1, -(2 ** 53), 0.5, NaN]);
    case 3:
    case 4:
      return randomString(rng);
    case 5:
      return rng.bytes(rng.pick([0, 1, 15, 16, 17, 32, 64, 65, rng.size(100)]));
    case 6:
      return new Date(rng.pick([0, -1, 1e15, 2 ** 34 * 1000 + 1]));
    case 7: {
      const items: unknown[] = [];
      for (let i = rng.size(8); i > 0; i--) items.push(randomValue(rng, depth + 1));
      return items;
    }
    default: {
      // Own keys only; `__proto__` as an own key, as JSON.parse makes it.
      const object: Record<string, unknown> = JSON.parse("{}");
      for (let i = rng.size(5); i > 0; i--) {
        const key = rng.chance(0.5) ? rng.pick(NASTY_STRINGS) : randomString(rng);
        Object.defineProperty(object, key, {
          value: randomValue(rng, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return object;
    }
  }
}

/** A hello, with each field sometimes swapped for something hostile. */
function randomHello(rng: Prng): Uint8Array {
  const fields: unknown[] = [
    rng.chance(0.9) ? "AutoMPI" : randomValue(rng, 1),
    rng.chance(0.8) ? 1 : randomValue(rng, 1),
    rng.chance(0.7) ? "guid-" + rng.int(0, 999) : randomValue(rng, 1),
    rng.chance(0.8) ? "0123456789abcdef" : randomValue(rng, 1),
    rng.chance(0.7) ? rng.pick(["msgpack", "json"]) : randomValue(rng, 1),
    rng.chance(0.7) ? "127.0.0.1:" + rng.int(1, 65535) : randomValue(rng, 1),
  ];
  if (rng.chance(0.4)) fields.push(rng.bytes(rng.pick([0, 15, 16, 40, 64, 65])));
  for (let i = rng.size(3); i > 0; i--) fields.push(randomValue(rng, 1));
  if (rng.chance(0.1)) fields.length = rng.int(0, fields.length);
  if (rng.chance(0.05)) return encodeSafe(["AutoMPI", "proof", rng.bytes(rng.pick([31, 32, 33]))]);
  return encodeSafe(fields);
}

function encodeSafe(value: unknown): Uint8Array {
  try {
    return msgpackEncode(value);
  } catch {
    return msgpackEncode(null);
  }
}

/** Raw msgpack built byte by byte: non-minimal headers, claims past the end, bad UTF-8. */
function rawMsgpack(rng: Prng): Uint8Array {
  const out: number[] = [];
  const u = (value: number, size: number) => {
    for (let i = size - 1; i >= 0; i--) out.push(Math.floor(value / 2 ** (8 * i)) & 0xff);
  };
  const claim = () =>
    rng.pick([0, 1, 2, 3, 4, 15, 16, 255, 256, 65535, 65536, 2 ** 24, 2 ** 31, MAX_UINT32]);
  const str = () => {
    const body = rng.chance(0.2) ? rng.bytes(rng.size(8)) : utf8.encode(randomString(rng));
    const form = rng.int(0, 4);
    const n = rng.chance(0.1) ? claim() : body.length;
    if (form === 0 && n < 32) out.push(0xa0 | n);
    else if (form <= 1 && n < 256) out.push(0xd9, n);
    else if (form <= 2 && n < 65536) out.push(0xda), u(n, 2);
    else out.push(0xdb), u(n, 4);
    out.push(...body);
  };
  const array = (n: number) => {
    const form = rng.int(0, 2);
    if (form === 0 && n < 16) out.push(0x90 | n);
    else if (form <= 1 && n < 65536) out.push(0xdc), u(n, 2);
    else out.push(0xdd), u(n, 4);
  };
  const element = () => {
    switch (rng.int(0, 9)) {
      case 0:
        return out.push(0xc0);
      case 1: {
        const n = rng.chance(0.1) ? claim() : rng.size(40);
        const form = rng.int(0, 2);
        if (form === 0 && n < 256) out.push(0xc4, n);
        else if (form <= 1 && n < 65536) out.push(0xc5), u(n, 2);
        else out.push(0xc6), u(n, 4);
        return out.push(...rng.bytes(Math.min(n, 64)));
      }
      case 2:
        return out.push(rng.pick([0xc1, 0xc2, 0xc3, 0xca, 0xcb, 0xcc, 0xd0, 0x7f, 0xe0]));
      case 3:
        // ext and fixext, timestamp (-1) or not, with plausible and implausible lengths
        out.push(rng.pick([0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7]));
        if (out[out.length - 1] === 0xc7) out.push(rng.pick([0, 4, 8, 12, 13]));
        out.push(rng.pick([0xff, 0x00, 0x7f]));
        return out.push(...rng.bytes(rng.size(16)));
      case 4:
        return array(rng.chance(0.1) ? claim() : rng.size(6));
      case 5:
        out.push(rng.pick([0x80, 0x81, 0xde, 0xdf]));
        if (out[out.length - 1] === 0xde) u(rng.pick([1, 65535]), 2);
        if (out[out.length - 1] === 0xdf) u(claim(), 4);
        return;
      default:
        return str();
    }
  };
  // Mostly the codec's shape: [dest, source, [k, v, …], data], with deviations.
  array(rng.chance(0.8) ? 4 : rng.size(8));
  if (rng.chance(0.8)) str();
  else element();
  if (rng.chance(0.8)) str();
  else element();
  const items = rng.chance(0.8) ? 2 * rng.size(4) : rng.size(9);
  array(rng.chance(0.05) ? claim() : items);
  for (let i = 0; i < items; i++) rng.chance(0.9) ? str() : element();
  element();
  if (rng.chance(0.1)) out.push(...rng.bytes(rng.size(8)));
  return Uint8Array.from(out);
}

/** JSON in and around the Go shape: wrong types, duplicate keys, odd base64, deep nesting. */
function randomJson(rng: Prng): Uint8Array {
  const base64 = () =>
    rng.pick([
      "",
      "QQ==",
      "QR==",
      "QUI=",
      "QUJ=",
      "QUJD",
      "Q",
      "QQ=",
      "QQ===",
      "====",
      "QU\\u004aD",
    ]);
  const value = () =>
    rng.pick([
      "null",
      "1",
      "-0",
      "1e999",
      "true",
      "[]",
      "{}",
      '"x"',
      `"${base64()}"`,
      '{"a":1}',
      '{"a":"b","__proto__":"c"}',
      '{"toString":"x","valueOf":"y"}',
      JSON.stringify(randomString(rng)),
    ]);
  let text: string;
  switch (rng.int(0, 4)) {
    case 0: {
      text = new TextDecoder().decode(jsonCodec.encode(randomMessage(rng)));
      break;
    }
    case 1: {
      const keys = ["DestinationGUID", "SourceGUID", "Message", "Data"];
      const parts: string[] = [];
      for (const key of keys) {
        if (rng.chance(0.9)) {
          parts.push(`"${rng.chance(0.95) ? key : key.toLowerCase()}":${value()}`);
        }
      }
      if (rng.chance(0.2)) parts.push(`"${rng.pick(keys)}":${value()}`);
      if (rng.chance(0.1)) parts.push(`"__proto__":${value()}`);
      text = `{${parts.join(",")}}`;
      break;
    }
    case 2: {
      // The Go-shaped fast path: a head, then ,"Data":"…"}.
      const head = rng.chance(0.7)
        ? `{"DestinationGUID":"a","SourceGUID":"b","Message":${
          rng.pick(["{}", "null", '{"k":"v"}', "[]", '{"k":1}'])
        }`
        : rng.pick(['{"DestinationGUID":"a"', "[", '{"Data":null', "{", '"x"']);
      text = `${head},"Data":"${base64()}"}`;
      break;
    }
    case 3: {
      const depth = rng.pick([10, 300, 3000]);
      const open = rng.chance(0.5) ? "[" : '{"a":';
      text = open.repeat(depth) + (rng.chance(0.5) ? "1" : "");
      break;
    }
    default:
      text = value();
  }
  let bytes: Uint8Array = utf8.encode(text);
  if (rng.chance(0.3)) bytes = mutate(rng, bytes, []);
  return bytes;
}

/** One frame payload of a random kind. */
function randomPayload(rng: Prng): Uint8Array {
  switch (rng.int(0, 6)) {
    case 0:
      return msgpackCodec.encode(randomMessage(rng));
    case 1:
      return randomHello(rng);
    case 2:
      return rawMsgpack(rng);
    case 3:
      return randomJson(rng);
    case 4:
      return encodeSafe(randomValue(rng, 0));
    default:
      return rng.bytes(rng.size(300));
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Length prefixes that stress the decoder: around the limit, and up to 4 GiB. */
function hostileLength(rng: Prng, maxFrameBytes: number): number {
  return rng.pick([
    0,
    1,
    Math.max(0, maxFrameBytes - 1),
    maxFrameBytes,
    Math.min(MAX_UINT32, maxFrameBytes + 1),
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_FRAME_BYTES + 1,
    0x7fff_ffff,
    0x8000_0000,
    MAX_UINT32 - 1,
    MAX_UINT32,
    rng.u32(),
  ]);
}

/** Edits a stream: bit flips, inserted, deleted or repeated bytes, a cut, new length prefixes. */
function mutate(rng: Prng, stream: Uint8Array, frameStarts: readonly number[]): Uint8Array {
  let s = stream;
  for (let edits = rng.int(1, 4); edits > 0; edits--) {
    const at = rng.int(0, s.length);
    switch (rng.int(0, 6)) {
      case 0:
        if (s.length > 0) {
          s = s.slice();
          s[Math.min(at, s.length - 1)] ^= 1 << rng.int(0, 7);
        }
        break;
      case 1:
        s = concat([s.subarray(0, at), rng.bytes(rng.int(1, 8)), s.subarray(at)]);
        break;
      case 2:
        s = concat([s.subarray(0, at), s.subarray(Math.min(s.length, at + rng.int(1, 8)))]);
        break;
      case 3:
        s = s.subarray(0, at);
        break;
      case 4: {
        const from = rng.int(0, s.length);
        s = concat([s.subarray(0, at), s.subarray(from, from + rng.int(1, 32)), s.subarray(at)]);
        break;
      }
      default: {
        // A new length prefix where a frame starts (or anywhere, if none is left).
        const start = frameStarts.length > 0 && rng.chance(0.8) ? rng.pick(frameStarts) : at;
        if (start + 4 <= s.length) {
          s = s.slice();
          const n = hostileLength(rng, DEFAULT_MAX_FRAME_BYTES);
          s[start] = n;
          s[start + 1] = n >>> 8;
          s[start + 2] = n >>> 16;
          s[start + 3] = n >>> 24;
        }
      }
    }
  }
  return s;
}

interface FuzzCase {
  readonly stream: Uint8Array;
  readonly chunks: Uint8Array[];
  readonly maxFrameBytes: number;
}

function makeCase(index: number): FuzzCase {
  const rng = new Prng(SEED, index);
  const maxFrameBytes = rng.chance(0.6)
    ? DEFAULT_MAX_FRAME_BYTES
    : rng.chance(0.4)
    ? MAX_UINT32
    : rng.size(600);
  let stream: Uint8Array;
  if (rng.chance(0.1)) {
    stream = rng.bytes(rng.size(400));
  } else {
    const frames: Uint8Array[] = [];
    const starts: number[] = [];
    let at = 0;
    for (let n = rng.int(1, 3); n > 0; n--) {
      const frame = encodeFrame(randomPayload(rng), { maxFrameBytes: MAX_UINT32 });
      starts.push(at);
      at += frame.length;
      frames.push(frame);
    }
    stream = concat(frames);
    if (rng.chance(0.6)) stream = mutate(rng, stream, starts);
  }
  // Chunking: all at once, byte by byte, or random cuts (empty chunks included).
  const chunks: Uint8Array[] = [];
  const style = rng.int(0, 5);
  if (style === 0) {
    chunks.push(stream);
  } else if (style === 1 && stream.length <= 200) {
    for (let i = 0; i < stream.length; i++) chunks.push(stream.subarray(i, i + 1));
  } else {
    for (let pos = 0; pos < stream.length;) {
      const n = rng.chance(0.05) ? 0 : rng.chance(0.5) ? rng.int(1, 5) : rng.int(1, 300);
      chunks.push(stream.subarray(pos, pos + n));
      pos += n;
    }
  }
  if (rng.chance(0.05)) chunks.push(new Uint8Array(0));
  return { stream, chunks, maxFrameBytes };
}

// ---- the reference reader and the checks -----------------------------------------------------

type Outcome =
  | { kind: "ok" }
  | { kind: "too-large"; lengthBytes: number }
  | { kind: "truncated"; expectedBytes: number | undefined; receivedBytes: number };

/** Reads a whole stream the obvious way: what the decoder must agree with. */
function referenceRead(stream: Uint8Array, maxFrameBytes: number) {
  const frames: Uint8Array[] = [];
  let pos = 0;
  for (;;) {
    const left = stream.length - pos;
    if (left === 0) return { frames, outcome: { kind: "ok" } as Outcome };
    if (left < 4) {
      return {
        frames,
        outcome: { kind: "truncated", expectedBytes: undefined, receivedBytes: left } as Outcome,
      };
    }
    const n = (stream[pos] | (stream[pos + 1] << 8) | (stream[pos + 2] << 16) |
      (stream[pos + 3] << 24)) >>> 0;
    if (n > maxFrameBytes) {
      return { frames, outcome: { kind: "too-large", lengthBytes: n } as Outcome };
    }
    if (left - 4 < n) {
      return {
        frames,
        outcome: { kind: "truncated", expectedBytes: n, receivedBytes: left - 4 } as Outcome,
      };
    }
    frames.push(stream.subarray(pos + 4, pos + 4 + n));
    pos += 4 + n;
  }
}

interface Tally {
  cases: number;
  pushes: number;
  bytes: number;
  frames: number;
  tooLarge: number;
  truncated: number;
  fourGiBClaims: number;
  accepted: Record<string, number>;
  rejected: Record<string, number>;
  violations: string[];
}

function hex(bytes: Uint8Array, max = 48): string {
  let s = "";
  for (let i = 0; i < Math.min(bytes.length, max); i++) s += bytes[i].toString(16).padStart(2, "0");
  return bytes.length > max ? `${s}… (${bytes.length} bytes)` : s;
}

function startsWithArray(frame: Uint8Array): boolean {
  return frame.length > 0 && ((frame[0] & 0xf0) === 0x90 || frame[0] === 0xdc || frame[0] === 0xdd);
}

const DECODERS: ReadonlyArray<readonly [string, (bytes: Uint8Array) => unknown]> = [
  ["msgpack", (b) => msgpackCodec.decode(b)],
  ["json", (b) => jsonCodec.decode(b)],
  ["hello", (b) => system.decodeHello(b)],
  ...(decodeProof ? [["proof", decodeProof] as const] : []),
];

function runCase(index: number, tally: Tally): void {
  const { stream, chunks, maxFrameBytes } = makeCase(index);
  const violation = (what: string) => {
    if (tally.violations.length < 20) {
      tally.violations.push(
        `${what} (reproduce with FUZZ_SEED=${SEED} FUZZ_CASE=${index}; max ${maxFrameBytes}, stream ${
          hex(stream)
        })`,
      );
    } else tally.violations.length++;
  };
  const reference = referenceRead(stream, maxFrameBytes);
  const decoder = new FrameDecoder({ maxFrameBytes });
  const got: Uint8Array[] = [];
  let arrived = 0;
  let consumed = 0;
  let error: unknown;
  tally.cases++;
  tally.bytes += stream.length;
  for (const chunk of chunks) {
    tally.pushes++;
    arrived += chunk.length;
    let frames: Uint8Array[];
    try {
      frames = decoder.push(chunk);
    } catch (caught) {
      error = caught;
      if (caught instanceof FrameTooLargeError) got.push(...caught.precedingFrames);
      break;
    }
    for (const frame of frames) {
      got.push(frame);
      consumed += 4 + frame.length;
    }
    if (decoder.bufferedBytes !== arrived - consumed) {
      violation(
        `bufferedBytes ${decoder.bufferedBytes} after ${arrived} bytes arrived and ${consumed} left as frames`,
      );
      return;
    }
  }
  if (error === undefined) {
    try {
      decoder.end();
    } catch (caught) {
      error = caught;
    }
  }
  if (error !== undefined && !(error instanceof ProtocolError)) {
    violation(`the frame decoder threw ${(error as Error)?.name}: ${(error as Error)?.message}`);
    return;
  }
  if (decoder.bufferedBytes > arrived) {
    violation(`bufferedBytes ${decoder.bufferedBytes} exceeds the ${arrived} bytes that arrived`);
  }
  // The same frames and the same verdict as the reference reader, however it was cut.
  const outcome = reference.outcome;
  if (got.length !== reference.frames.length) {
    violation(`decoder gave ${got.length} frames, the reference ${reference.frames.length}`);
    return;
  }
  for (let i = 0; i < got.length; i++) {
    const a = got[i];
    const b = reference.frames[i];
    let same = a.length === b.length;
    for (let j = 0; same && j < a.length; j++) same = a[j] === b[j];
    if (!same) return violation(`frame ${i} differs from the reference`);
  }
  if (outcome.kind === "ok" && error !== undefined) {
    violation(`decoder threw ${(error as Error).name} on a stream of whole frames`);
  } else if (outcome.kind === "too-large") {
    tally.tooLarge++;
    if (outcome.lengthBytes === MAX_UINT32) tally.fourGiBClaims++;
    if (!(error instanceof FrameTooLargeError) || error.lengthBytes !== outcome.lengthBytes) {
      violation(`expected FrameTooLargeError(${outcome.lengthBytes}), got ${String(error)}`);
    }
  } else if (outcome.kind === "truncated") {
    tally.truncated++;
    if (outcome.expectedBytes === MAX_UINT32) tally.fourGiBClaims++;
    if (
      !(error instanceof TruncatedFrameError) || error.expectedBytes !== outcome.expectedBytes ||
      error.receivedBytes !== outcome.receivedBytes
    ) {
      violation(
        `expected TruncatedFrameError(${outcome.expectedBytes}, ${outcome.receivedBytes}), got ${
          String(error)
        }`,
      );
    }
  }
  // A poisoned decoder stays poisoned (checked on every 8th case: it is cheap but not free).
  if (error !== undefined && index % 8 === 0) {
    for (const again of [() => decoder.push(new Uint8Array(1)), () => decoder.end()]) {
      try {
        again();
        violation("a poisoned decoder accepted more input");
      } catch (caught) {
        if ((caught as Error).constructor !== (error as Error).constructor) {
          violation(`a poisoned decoder threw ${String(caught)} after ${String(error)}`);
        }
      }
    }
  }
  // Every frame through every decoder: a value, or a ProtocolError.
  for (const frame of got) {
    tally.frames++;
    for (const [name, decode] of DECODERS) {
      // Per-case work is kept down where a decoder's verdict is shallow: proofs share the
      // hello's decoder; the JSON decoder rejects a frame that does not start with `{` at its
      // first step (UTF-8 or JSON.parse), and the message codec one that does not start with an
      // array header at its first byte, so a quarter of those cases is enough for each.
      if (name === "proof" && index % 4 !== 0) continue;
      if (name === "json" && frame[0] !== 0x7b && index % 4 !== 1) continue;
      if (name === "msgpack" && !startsWithArray(frame) && index % 4 !== 2) continue;
      try {
        decode(frame);
        tally.accepted[name] = (tally.accepted[name] ?? 0) + 1;
      } catch (caught) {
        if (caught instanceof ProtocolError) {
          tally.rejected[name] = (tally.rejected[name] ?? 0) + 1;
        } else {
          violation(
            `${name} decoder threw ${(caught as Error)?.name} (${
              (caught as Error)?.message
            }) for frame ${hex(frame)}`,
          );
        }
      }
    }
  }
}

// ---- tests -----------------------------------------------------------------------------------

test(
  "100,000 hostile byte streams in random chunks: only ProtocolErrors, exact frames, bufferedBytes never above what arrived",
  {
    // Bun's default is 5 s per test; this takes ~7 s there and ~12 s on Deno.
    timeout: 120_000,
  },
  () => {
    const tally: Tally = {
      cases: 0,
      pushes: 0,
      bytes: 0,
      frames: 0,
      tooLarge: 0,
      truncated: 0,
      fourGiBClaims: 0,
      accepted: {},
      rejected: {},
      violations: [],
    };
    const startMs = performance.now();
    if (ONLY_CASE !== undefined) runCase(ONLY_CASE, tally);
    else for (let i = 0; i < CASES; i++) runCase(i, tally);
    const elapsedMs = performance.now() - startMs;
    figure(
      `decoder fuzz: ${tally.cases} cases (seed ${SEED}), ${tally.pushes} pushes, ${
        (tally.bytes / 1048576).toFixed(1)
      } MiB, ${tally.frames} frames, ${tally.tooLarge} FrameTooLarge (${tally.fourGiBClaims} 4 GiB claims), ${tally.truncated} truncated; accepted ${
        JSON.stringify(tally.accepted)
      }, rejected ${JSON.stringify(tally.rejected)}; ${elapsedMs.toFixed(0)} ms`,
    );
    assert.deepEqual(
      tally.violations,
      [],
      `${tally.violations.length} violations; the first ones are listed`,
    );
    if (ONLY_CASE === undefined) {
      assert.equal(tally.cases, CASES);
      // The generator must reach past the first check of each decoder, or the fuzz is shallow.
      for (const name of ["msgpack", "json", "hello"]) {
        assert.ok(
          (tally.accepted[name] ?? 0) > 100,
          `${name} accepted only ${tally.accepted[name]}`,
        );
      }
    }
  },
);

test("a 4 GiB length claim allocates nothing: held bytes follow arrivals, not the claim", () => {
  const memoryBefore = process.memoryUsage();
  // Refused at once under the default limit, holding nothing.
  const strict = new FrameDecoder();
  assert.throws(() => strict.push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3])), {
    name: "FrameTooLargeError",
    message: "Cannot decode frame: length 4294967295 exceeds the limit of 16777216 bytes",
  });
  assert.equal(strict.bufferedBytes, 0);
  // Accepted under the largest limit a decoder allows: 1000 decoders each waiting for 4 GiB.
  const decoders: FrameDecoder[] = [];
  for (let i = 0; i < 1000; i++) {
    const decoder = new FrameDecoder({ maxFrameBytes: MAX_UINT32 });
    const header = new Uint8Array([0xff, 0xff, 0xff, 0xff]);
    // Half get the header byte by byte, then trickle: the staging path.
    if (i % 2 === 0) {
      for (const byte of header) assert.deepEqual(decoder.push(new Uint8Array([byte])), []);
      for (let j = 0; j < 100; j++) decoder.push(new Uint8Array([j]));
    } else {
      assert.deepEqual(decoder.push(concat([header, new Uint8Array(2000)])), []);
    }
    assert.equal(decoder.bufferedBytes, i % 2 === 0 ? 104 : 2004);
    decoders.push(decoder);
  }
  const memoryAfter = process.memoryUsage();
  const grewBytes = Math.max(
    memoryAfter.rss - memoryBefore.rss,
    memoryAfter.heapUsed + memoryAfter.external - memoryBefore.heapUsed - memoryBefore.external,
  );
  figure(
    `1000 decoders holding a 4 GiB claim: memory grew ${(grewBytes / 1048576).toFixed(1)} MiB`,
  );
  // 1000 × (a 16 KiB staging buffer or a 2 KiB chunk) is ~10 MiB; a claim honoured would be 4 TiB.
  assert.ok(grewBytes < 64 * 1048576, `memory grew ${grewBytes} bytes`);
  for (const [i, decoder] of decoders.entries()) {
    assert.throws(() => decoder.end(), {
      name: "TruncatedFrameError",
      message: `Cannot decode frame: stream ended after ${
        i % 2 === 0 ? 100 : 2000
      } of 4294967295 payload bytes`,
    });
    assert.equal(decoder.bufferedBytes, 0);
  }
});

test("decodeHello refuses a 200-byte hello of nested array claims without allocating for them", async () => {
  // Measured in a fresh process, where resident-set growth is the allocation and nothing else.
  const runtime = currentRuntime();
  const executable = findRuntime(runtime)!;
  const script = `${REPO_ROOT}/tests/property/_hostile_hello_child.ts`;
  // Deno gets a heap cap so that the unfixed decoder fails fast instead of eating the machine.
  const args = runtime === "deno"
    ? [
      "run",
      "-A",
      `--config=${REPO_ROOT}/deno.json`,
      "--v8-flags=--max-old-space-size=1024",
      script,
      "40",
      "1000000",
    ]
    : ["run", script, "40", "1000000"];
  const result = await runAsync(executable, args, { timeoutMs: 60_000 });
  const line = result.stdout.trim().split("\n").pop() ?? "";
  let report: { rssGrowthBytes: number; errorName: string; errorMessage: string } | undefined;
  try {
    report = JSON.parse(line);
  } catch {
    report = undefined;
  }
  assert.ok(
    report !== undefined,
    `the child died (status ${result.status}): ${result.stderr.slice(-600)}`,
  );
  figure(
    `decodeHello of 40 nested 1M-element array claims (200 bytes): RSS +${
      (report.rssGrowthBytes / 1048576).toFixed(0)
    } MiB, ${report.errorName}: ${report.errorMessage}`,
  );
  assert.equal(report.errorName, "HandshakeError");
  assert.ok(
    report.rssGrowthBytes < 32 * 1048576,
    `decoding 200 hostile bytes grew the resident set by ${report.rssGrowthBytes} bytes`,
  );
});

test("decodeHello turns a hello field no string conversion accepts into a HandshakeError, not a TypeError", () => {
  // A version that is a map with a non-callable `toString`: `String(version)` in the error
  // message throws "Cannot convert object to primitive value".
  const hostile = msgpackEncode(["AutoMPI", { toString: 1 }, "guid", "i", "msgpack", "h:1"]);
  assert.throws(() => system.decodeHello(hostile), { name: "HandshakeError" });
  const nested = msgpackEncode(["AutoMPI", [{ toString: 1 }], "guid", "i", "msgpack", "h:1"]);
  assert.throws(() => system.decodeHello(nested), { name: "HandshakeError" });
});
