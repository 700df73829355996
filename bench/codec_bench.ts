/**
 * Codec speed: the msgpack and JSON codecs of `src/codec.ts`, encode and decode, on
 * MapMessages with 100 B, 10 KiB and 1 MiB of data, each beside a general-purpose baseline run
 * on an equivalent object in the same run:
 *
 * - msgpack: the `@msgpack/msgpack` library (a reused `Encoder` / `Decoder`) on the same
 *   four-element array our codec writes (`[destination, source, [k0, v0, …], data]`), so both
 *   produce the same bytes;
 * - JSON: `JSON.stringify` / `JSON.parse` of the object the Go-compatible codec writes
 *   (`{DestinationGUID, SourceGUID, Message, Data}` with `Data` as padded base64), including
 *   the base64 step (`Uint8Array.prototype.toBase64` / `Uint8Array.fromBase64` where the
 *   runtime has them, else `Buffer`) and the UTF-8 step, so that both sides go from a message
 *   with bytes to bytes and back.
 *
 * Figures: messages per second for 100 B data; MB/s of data for 10 KiB and 1 MiB. Each is the
 * best of five timed batches, taken in turn with the baseline's.
 *
 * Run: `deno run -A bench/codec_bench.ts [--json]`, `bun run bench/codec_bench.ts [--json]`
 * (also part of `deno task bench`).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Decoder, Encoder } from "@msgpack/msgpack";
import { type Codec, jsonCodec, msgpackCodec } from "../src/codec.ts";
import { createMessage, type MapMessage } from "../src/message.ts";
import { type BenchRow, report, runtimeName } from "./_harness.ts";

/** Wall time each timed batch aims at, and how many batches count (the best one is kept). */
const BATCH_MS = 60;
const BATCHES = 5;

interface Size {
  readonly label: string;
  readonly bytes: number;
  /** `msg/s` for small data, `MB/s` (of data) where the data dominates. */
  readonly unit: "msg/s" | "MB/s";
}

const SIZES: readonly Size[] = [
  { label: "100b", bytes: 100, unit: "msg/s" },
  { label: "10kib", bytes: 10 * 1024, unit: "MB/s" },
  { label: "1mib", bytes: 1 << 20, unit: "MB/s" },
];

/** A message as workers send them: a command, two more fields and data. */
function benchMessage(dataBytes: number): MapMessage {
  const data = new Uint8Array(dataBytes);
  for (let i = 0; i < dataBytes; i++) data[i] = (i * 31 + 7) & 255;
  return createMessage(
    "Worker0001",
    { command: "store", key: "user/1234/profile", seq: "123456" },
    { source: "Sender0001", data },
  );
}

/**
 * Batch size for `op`: run it (warming it up) with doubling counts until a batch takes a tenth
 * of `BATCH_MS`, then scale to `BATCH_MS`.
 */
function calibrate(op: () => unknown, touch: (value: unknown) => void): number {
  let count = 1;
  for (;;) {
    const start = performance.now();
    for (let i = 0; i < count; i++) touch(op());
    const ms = performance.now() - start;
    if (ms >= BATCH_MS / 10 || count >= 1 << 24) {
      return Math.max(1, Math.round((count * BATCH_MS) / Math.max(ms, 0.001)));
    }
    count *= 2;
  }
}

/**
 * Operations per second of `ours` and of `baseline`: calibrated batches of about `BATCH_MS`,
 * taken in turn (ours, baseline, ours, …) so that a noisy moment hits both alike, the best of
 * `BATCHES` each. The sink keeps the work from being optimised away.
 */
export function opsPerSecondPair(
  ours: () => unknown,
  baseline: () => unknown,
): { ours: number; baseline: number } {
  let sink = 0;
  const touch = (value: unknown) => {
    if (value !== undefined) sink++;
  };
  const ops = [ours, baseline];
  const counts = ops.map((op) => calibrate(op, touch));
  const bestMs = [Infinity, Infinity];
  for (let batch = 0; batch < BATCHES; batch++) {
    for (const [which, op] of ops.entries()) {
      const count = counts[which];
      const start = performance.now();
      for (let i = 0; i < count; i++) touch(op());
      bestMs[which] = Math.min(bestMs[which], performance.now() - start);
    }
  }
  if (sink < 0) throw new Error("unreachable");
  const rate = (which: number) => counts[which] / (Math.max(bestMs[which], 0.001) / 1000);
  return { ours: rate(0), baseline: rate(1) };
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

type Base64 = {
  encode(data: Uint8Array): string;
  decode(text: string): Uint8Array;
  name: string;
};

/** The runtime's fastest standard base64: the ES2026 Uint8Array methods, else Buffer. */
function runtimeBase64(): Base64 {
  const proto = Uint8Array.prototype as { toBase64?: () => string };
  const ctor = Uint8Array as unknown as { fromBase64?: (text: string) => Uint8Array };
  if (typeof proto.toBase64 === "function" && typeof ctor.fromBase64 === "function") {
    return {
      name: "Uint8Array.toBase64/fromBase64",
      encode: (data) => (data as unknown as { toBase64(): string }).toBase64(),
      decode: (text) => ctor.fromBase64!(text),
    };
  }
  return {
    name: "Buffer base64",
    encode: (data) => Buffer.from(data.buffer, data.byteOffset, data.length).toString("base64"),
    decode: (text) => new Uint8Array(Buffer.from(text, "base64")),
  };
}

/** The Go-shaped object the JSON codec writes, built from a message (keys sorted, as Go does). */
function goShape(msg: MapMessage, base64: Base64) {
  const sorted: Record<string, string> = {};
  for (const key of Object.keys(msg.message).sort()) sorted[key] = msg.message[key];
  return {
    DestinationGUID: msg.destination,
    SourceGUID: msg.source,
    Message: sorted,
    Data: msg.data === undefined ? null : base64.encode(msg.data),
  };
}

interface Pair {
  readonly ours: number;
  readonly baseline: number;
}

function measureCodec(
  codec: Codec,
  msg: MapMessage,
  baselineEncode: () => Uint8Array,
  baselineDecode: (bytes: Uint8Array) => unknown,
): { encode: Pair; decode: Pair } {
  const ourBytes = codec.encode(msg);
  const baseBytes = baselineEncode();
  // Both decoders read the same bytes again and again; neither writes to its input.
  return {
    encode: opsPerSecondPair(() => codec.encode(msg), baselineEncode),
    decode: opsPerSecondPair(() => codec.decode(ourBytes), () => baselineDecode(baseBytes)),
  };
}

/** The rows of this file: for each codec, size and direction, ours beside the baseline. */
export function codecRows(): BenchRow[] {
  const runtime = runtimeName();
  const rows: BenchRow[] = [];
  const base64 = runtimeBase64();
  const encoder = new Encoder();
  const decoder = new Decoder();
  for (const size of SIZES) {
    const msg = benchMessage(size.bytes);
    const flat: string[] = [];
    for (const [key, value] of Object.entries(msg.message)) flat.push(key, value);
    const asArray = [msg.destination, msg.source, flat, msg.data];
    const libBytes = encoder.encode(asArray);
    const ourBytes = msgpackCodec.encode(msg);
    if (libBytes.length !== ourBytes.length) {
      throw new Error(
        `Cannot compare msgpack: ${ourBytes.length} bytes from ours, ${libBytes.length} from the library`,
      );
    }
    const msgpack = measureCodec(
      msgpackCodec,
      msg,
      () => encoder.encode(asArray),
      (bytes) => decoder.decode(bytes),
    );
    const json = measureCodec(
      jsonCodec,
      msg,
      () => utf8Encoder.encode(JSON.stringify(goShape(msg, base64))),
      (bytes) => {
        const value = JSON.parse(utf8Decoder.decode(bytes));
        return value.Data === null ? value : { ...value, Data: base64.decode(value.Data) };
      },
    );
    const jsonBytes = jsonCodec.encode(msg).length;
    const perSecond = (ops: number) => size.unit === "msg/s" ? ops : (ops * size.bytes) / 1e6;
    const add = (
      codec: "msgpack" | "json",
      direction: "encode" | "decode",
      pair: Pair,
      baselineName: string,
      note: string,
    ) =>
      rows.push({
        name: `codec_${codec}_${direction}_${size.label}`,
        runtime,
        value: perSecond(pair.ours),
        unit: size.unit,
        baseline: perSecond(pair.baseline),
        baselineName,
        note,
      });
    const msgpackNote = `${ourBytes.length}-byte payload; baseline: the library on the same ` +
      "array shape (same bytes)";
    // Decoded data: the library's is always a view of the input; ours is a view from 64 KiB
    // and a copy below (pooled up to 4 KiB), so that small messages do not pin a whole chunk.
    const dataView = size.bytes >= 64 * 1024
      ? "data a view of the input on both sides"
      : "ours copies the data, the library returns a view of the input";
    add("msgpack", "encode", msgpack.encode, `@msgpack/msgpack_encode_${size.label}`, msgpackNote);
    add(
      "msgpack",
      "decode",
      msgpack.decode,
      `@msgpack/msgpack_decode_${size.label}`,
      `${msgpackNote}; ${dataView}`,
    );
    const jsonNote = `${jsonBytes}-byte payload; baseline: JSON.stringify/parse + ${base64.name}` +
      " + UTF-8; ours writes Go's exact bytes (sorted keys, HTML escapes)";
    add("json", "encode", json.encode, `json_stringify_${size.label}`, jsonNote);
    add("json", "decode", json.decode, `json_parse_${size.label}`, jsonNote);
  }
  return rows;
}

if (import.meta.main) report(codecRows());
