/**
 * Property tests of the wire stack: MapMessage → codec → frame → any chunking → FrameDecoder
 * → codec → MapMessage.
 *
 * Every `fc.assert` runs with a fixed seed, so a run is the same every time. To replay a
 * failure, fast-check prints a line such as
 * `{ seed: 42, path: "0:1:0:5:0", endOnFailure: true }` above the counterexample: copy it into
 * that property's options (keep its `numRuns`) and run the one file,
 * `deno test tests/property/codec_properties_test.ts` or `bun test ./tests/property/codec_properties_test.ts`;
 * it goes straight to the shrunk case. Changing SEED to explore new cases is fine; commit a
 * new seed only once it passes.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encode as referenceEncode } from "@msgpack/msgpack";
import { type Codec, jsonCodec, msgpackCodec } from "../../src/codec.ts";
import { ProtocolError } from "../../src/errors.ts";
import { encodeFrame, FrameDecoder, FrameTooLargeError } from "../../src/framing.ts";
import { createMessage, type MapMessage, messagesEqual } from "../../src/message.ts";

const SEED = 42;
const codecs: Codec[] = [msgpackCodec, jsonCodec];

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** Well-formed strings: any code point (never half a surrogate pair), or whole graphemes. */
const wellFormedString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 24 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.string({ unit: "binary-ascii", maxLength: 40 }),
  fc.constantFrom(
    "",
    "__proto__",
    "constructor",
    "toString",
    "AutoMPI_System_Message",
    "<&>",
    "\u2028",
  ),
);

const dataArb = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 3 },
  { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 6 },
  { arbitrary: fc.uint8Array({ minLength: 250, maxLength: 70_000 }), weight: 1 },
);

const messageArb: fc.Arbitrary<MapMessage> = fc
  .record({
    destination: wellFormedString,
    source: wellFormedString,
    entries: fc.array(fc.tuple(wellFormedString, wellFormedString), { maxLength: 8 }),
    data: dataArb,
  })
  .map(({ destination, source, entries, data }) => {
    const map: Record<string, string> = Object.create(null);
    for (const [k, v] of entries) map[k] = v;
    return createMessage(destination, map, { source, data });
  });

const codecArb = fc.constantFrom(...codecs);

/** How to cut a stream into chunks: at points (each taken modulo length + 1), or every byte. */
type Cuts = number[] | "every byte";

const cutsArb: fc.Arbitrary<Cuts> = fc.oneof(
  fc.constant<Cuts>([]),
  fc.array(fc.nat(), { maxLength: 40 }),
  fc.constant<Cuts>("every byte"),
);

/** Splits `stream` at the cut points (duplicates give empty chunks, which are allowed). */
function split(stream: Uint8Array, cuts: Cuts): Uint8Array[] {
  if (cuts === "every byte") {
    return Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
  }
  const points = cuts.map((c) => c % (stream.length + 1)).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const p of points) {
    chunks.push(stream.subarray(start, p));
    start = p;
  }
  chunks.push(stream.subarray(start));
  return chunks;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Feeds chunks to a decoder and decodes each frame with `codec`, the way a link would. Returns
 * the messages decoded before the first error and that error. Anything thrown that is not a
 * ProtocolError escapes and fails the property.
 */
function receive(
  chunks: Uint8Array[],
  codec: Codec,
  maxFrameBytes?: number,
): { messages: MapMessage[]; error?: ProtocolError } {
  const decoder = new FrameDecoder({ maxFrameBytes });
  const messages: MapMessage[] = [];
  try {
    for (const chunk of chunks) {
      let frames: Uint8Array[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        if (error instanceof FrameTooLargeError) {
          for (const frame of error.precedingFrames) messages.push(codec.decode(frame));
        }
        throw error;
      }
      for (const frame of frames) messages.push(codec.decode(frame));
    }
    decoder.end();
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return { messages, error };
  }
  assert.equal(decoder.bufferedBytes, 0);
  return { messages };
}

// ---------------------------------------------------------------------------------------------

test("round trip through codec, framing and arbitrary chunking: every message comes back equal, in order, under any chunk split", () => {
  fc.assert(
    fc.property(
      fc.array(messageArb, { minLength: 1, maxLength: 5 }),
      codecArb,
      cutsArb,
      (msgs, codec, cuts) => {
        const stream = concat(msgs.map((m) => encodeFrame(codec.encode(m))));
        const { messages, error } = receive(split(stream, cuts), codec);
        assert.equal(error, undefined);
        assert.equal(messages.length, msgs.length);
        msgs.forEach((m, i) => assert.ok(messagesEqual(messages[i], m), `message ${i} differs`));
        for (const m of messages) assert.equal(Object.getPrototypeOf(m.message), null);
      },
    ),
    { seed: SEED, numRuns: 1000 },
  );
});

test("round trip through codec, framing and arbitrary chunking: encoding is deterministic and re-encoding a decoded message gives the same bytes", () => {
  fc.assert(
    fc.property(messageArb, codecArb, (msg, codec) => {
      const bytes = codec.encode(msg);
      assert.deepEqual(codec.encode(codec.decode(bytes)), bytes);
    }),
    { seed: SEED, numRuns: 500 },
  );
});

test("round trip through codec, framing and arbitrary chunking: strings with a lone surrogate are refused by encode with TypeError, never sent mangled", () => {
  // A lone surrogate has no UTF-8 form. TextEncoder would write U+FFFD and could make two
  // keys collide, so both codecs refuse the message instead. It cannot round trip.
  const loneSurrogateString = fc
    .tuple(
      fc.string({ unit: "binary", maxLength: 6 }),
      fc.integer({ min: 0xd800, max: 0xdfff }),
      fc.string({ unit: "binary", maxLength: 6 }),
    )
    .map(([before, unit, after]) => before + String.fromCharCode(unit) + after);
  fc.assert(
    fc.property(loneSurrogateString, fc.nat({ max: 3 }), codecArb, (bad, where, codec) => {
      assert.equal(bad.isWellFormed(), false);
      const msg = where === 0
        ? createMessage(bad)
        : where === 1
        ? createMessage("d", {}, { source: bad })
        : where === 2
        ? createMessage("d", { [bad]: "v" })
        : createMessage("d", { k: bad });
      assert.throws(() => codec.encode(msg), { name: "TypeError", message: /lone surrogate/ });
    }),
    { seed: SEED, numRuns: 300 },
  );
});

// ---------------------------------------------------------------------------------------------

/** One edit of a byte stream. */
type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "insert"; at: number; byte: number }
  | { kind: "delete"; at: number; count: number }
  | { kind: "truncate"; at: number }
  | { kind: "overwrite"; at: number; bytes: Uint8Array };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), byte: fc.nat({ max: 255 }) }),
  fc.record({
    kind: fc.constant("delete" as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 8 }),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("overwrite" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }),
  }),
);

function mutate(stream: Uint8Array, m: Mutation): Uint8Array {
  const at = m.at % (stream.length + 1);
  switch (m.kind) {
    case "flip": {
      const out = stream.slice();
      if (at < out.length) out[at] ^= 1 << m.bit;
      return out;
    }
    case "insert":
      return concat([stream.subarray(0, at), Uint8Array.of(m.byte), stream.subarray(at)]);
    case "delete":
      return concat([stream.subarray(0, at), stream.subarray(at + m.count)]);
    case "truncate":
      return stream.slice(0, at);
    case "overwrite": {
      const out = stream.slice();
      out.set(m.bytes.subarray(0, Math.max(0, out.length - at)), at);
      return out;
    }
  }
}

test("hostile input only ever raises ProtocolError: random byte streams in random chunks", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 2000 }),
      codecArb,
      cutsArb,
      fc.nat({ max: 5000 }),
      (stream, codec, cuts, max) => {
        receive(split(stream, cuts), codec, max);
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
});

test("hostile input only ever raises ProtocolError: well-framed random payloads, decoded by either codec", () => {
  const stream = fc
    .array(fc.uint8Array({ maxLength: 200 }), { maxLength: 6 })
    .map((payloads) => concat(payloads.map((p) => encodeFrame(p))));
  fc.assert(
    fc.property(stream, codecArb, cutsArb, (bytes, codec, cuts) => {
      receive(split(bytes, cuts), codec);
    }),
    { seed: SEED, numRuns: 500 },
  );
});

test("hostile input only ever raises ProtocolError: mutated valid streams (flip, insert, delete, truncate, overwrite)", () => {
  fc.assert(
    fc.property(
      fc.array(messageArb, { minLength: 1, maxLength: 3 }),
      fc.constantFrom(...codecs),
      fc.constantFrom(...codecs),
      fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
      cutsArb,
      (msgs, writer, reader, mutations, cuts) => {
        let stream = concat(msgs.map((m) => encodeFrame(writer.encode(m))));
        for (const m of mutations) stream = mutate(stream, m);
        receive(split(stream, cuts), reader, 1 << 20);
      },
    ),
    { seed: SEED, numRuns: 1000 },
  );
});

test("hostile input only ever raises ProtocolError: msgpack values of the wrong shape, as a general msgpack writer makes them", () => {
  const leaf = fc.oneof(
    fc.string({ maxLength: 8 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ maxLength: 8 }),
  );
  const value = fc.oneof(
    leaf,
    fc.array(leaf, { maxLength: 6 }),
    fc.dictionary(fc.string({ maxLength: 4 }), leaf, { maxKeys: 3 }),
  );
  fc.assert(
    fc.property(fc.array(value, { maxLength: 6 }), (shape) => {
      const bytes = referenceEncode(shape);
      try {
        const msg = msgpackCodec.decode(bytes);
        // Accepted only if it really is [str, str, [str…], bin|nil]: re-encoding must read back.
        assert.ok(messagesEqual(msgpackCodec.decode(msgpackCodec.encode(msg)), msg));
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
      }
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

test("hostile input only ever raises ProtocolError: random and mutated JSON documents", () => {
  const jsonDoc = fc.oneof(
    fc.json({ maxDepth: 3 }),
    messageArb.map((m) => new TextDecoder().decode(jsonCodec.encode(m))),
  );
  fc.assert(
    fc.property(jsonDoc, fc.array(mutationArb, { maxLength: 2 }), (doc, mutations) => {
      let bytes: Uint8Array = new TextEncoder().encode(doc);
      for (const m of mutations) bytes = mutate(bytes, m);
      try {
        const msg = jsonCodec.decode(bytes);
        assert.ok(messagesEqual(jsonCodec.decode(jsonCodec.encode(msg)), msg));
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
      }
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

/** The outcome of decoding: the message, or the error's class name. */
function outcome(bytes: Uint8Array): MapMessage | string {
  try {
    return jsonCodec.decode(bytes);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return error.name;
  }
}

test("the JSON codec's two readers agree: Go's layout (fast path) and the same bytes plus a space (general path) decode alike", () => {
  // A trailing space never changes what a JSON document means, but it takes the decoder off
  // the fast path for `…,"Data":"<base64>"}`; both must reach the same verdict.
  const goFrameWithData = messageArb
    .filter((m) => m.data !== undefined)
    .map((m) => jsonCodec.encode(m));
  fc.assert(
    fc.property(goFrameWithData, fc.array(mutationArb, { maxLength: 2 }), (frame, mutations) => {
      let bytes = frame;
      for (const m of mutations) bytes = mutate(bytes, m);
      const fast = outcome(bytes);
      const general = outcome(concat([bytes, Uint8Array.of(0x20)]));
      if (typeof fast === "string" || typeof general === "string") {
        assert.equal(fast, general);
      } else {
        assert.ok(messagesEqual(fast, general));
      }
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

// ---------------------------------------------------------------------------------------------

test("claimed lengths never make the decoder allocate: a length over the limit (up to 4 GiB) fails on its header, holding at most 3 bytes", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 16 * 1024 * 1024 }),
      fc.nat(),
      fc.integer({ min: 1, max: 4 }),
      fc.uint8Array({ maxLength: 64 }),
      (maxFrameBytes, claimSeed, firstPart, trailing) => {
        const claim = maxFrameBytes + 1 + (claimSeed % (0xffff_ffff - maxFrameBytes));
        const header = Uint8Array.of(claim, claim >>> 8, claim >>> 16, claim >>> 24);
        const decoder = new FrameDecoder({ maxFrameBytes });
        let error: unknown;
        try {
          assert.deepEqual(decoder.push(header.subarray(0, firstPart)), []);
          assert.ok(decoder.bufferedBytes <= 3);
          decoder.push(concat([header.subarray(firstPart), trailing]));
        } catch (e) {
          error = e;
        }
        assert.ok(error instanceof FrameTooLargeError, `got ${error}`);
        assert.equal(error.lengthBytes, claim);
        assert.equal(error.maxFrameBytes, maxFrameBytes);
        assert.equal(decoder.bufferedBytes, 0);
      },
    ),
    { seed: SEED, numRuns: 1000 },
  );
});

test("claimed lengths never make the decoder allocate: an allowed huge length holds only the bytes that arrived", () => {
  // With the limit at 4 GiB, a decoder that allocated the claimed size up front would fail
  // (or take seconds) here; this one holds what was received.
  fc.assert(
    fc.property(
      fc.integer({ min: 1 << 30, max: 0xffff_ffff }),
      fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 8 }),
      (claim, parts) => {
        const decoder = new FrameDecoder({ maxFrameBytes: 0xffff_ffff });
        assert.deepEqual(
          decoder.push(Uint8Array.of(claim, claim >>> 8, claim >>> 16, claim >>> 24)),
          [],
        );
        let received = 0;
        for (const part of parts) {
          assert.deepEqual(decoder.push(part), []);
          received += part.length;
          assert.equal(decoder.bufferedBytes, 4 + received);
        }
        assert.throws(() => decoder.end(), { name: "TruncatedFrameError" });
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});
