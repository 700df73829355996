import { test } from "node:test";
import assert from "node:assert/strict";
import { ProtocolError } from "./errors.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  encodeFrameHeader,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameTooLargeError,
  TruncatedFrameError,
} from "./framing.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
};
const pattern = (n: number, seed = 1) => new Uint8Array(n).map((_, i) => (i * 7 + seed) & 0xff);

/** Feeds `stream` to a fresh decoder in chunks of the given sizes (cycled); returns the frames. */
function decodeInChunks(stream: Uint8Array, sizes: number[], maxFrameBytes?: number): Uint8Array[] {
  const decoder = new FrameDecoder({ maxFrameBytes });
  const frames: Uint8Array[] = [];
  for (let pos = 0, i = 0; pos < stream.length; i++) {
    const size = sizes[i % sizes.length];
    frames.push(...decoder.push(stream.subarray(pos, pos + size)));
    pos += size;
  }
  decoder.end();
  assert.equal(decoder.bufferedBytes, 0);
  return frames;
}

test("encodeFrame: prefixes the payload with its length, little-endian", () => {
  assert.deepEqual(encodeFrame(bytes(7, 8, 9)), bytes(3, 0, 0, 0, 7, 8, 9));
  assert.deepEqual(encodeFrame(new Uint8Array(0)), bytes(0, 0, 0, 0));
  const frame = encodeFrame(new Uint8Array(0x010203));
  assert.deepEqual(frame.subarray(0, 4), bytes(3, 2, 1, 0));
  assert.equal(frame.length, 0x010203 + FRAME_HEADER_BYTES);
});

test("encodeFrame: copies only the viewed part of a payload subarray", () => {
  const backing = bytes(1, 2, 3, 4, 5);
  assert.deepEqual(encodeFrame(backing.subarray(1, 3)), bytes(2, 0, 0, 0, 2, 3));
});

test("encodeFrame: refuses a payload over the limit with FrameTooLargeError", () => {
  assert.throws(
    () => encodeFrame(new Uint8Array(11), { maxFrameBytes: 10 }),
    (error: unknown) => {
      assert.ok(error instanceof FrameTooLargeError);
      assert.equal(error.lengthBytes, 11);
      assert.equal(error.maxFrameBytes, 10);
      assert.deepEqual(error.precedingFrames, []);
      return true;
    },
  );
  assert.equal(encodeFrame(new Uint8Array(10), { maxFrameBytes: 10 }).length, 14);
});

test("encodeFrame: rejects bad arguments with TypeError and RangeError", () => {
  assert.throws(() => encodeFrame([1] as unknown as Uint8Array), TypeError);
  assert.throws(() => encodeFrame(bytes(), { maxFrameBytes: -1 }), RangeError);
  assert.throws(() => encodeFrame(bytes(), { maxFrameBytes: 1.5 }), RangeError);
  assert.throws(
    () => encodeFrame(bytes(), { maxFrameBytes: "1" as unknown as number }),
    TypeError,
  );
});

test("encodeFrameHeader: writes the length little-endian across all four bytes", () => {
  assert.deepEqual(encodeFrameHeader(0), bytes(0, 0, 0, 0));
  assert.deepEqual(encodeFrameHeader(258), bytes(2, 1, 0, 0));
  assert.deepEqual(encodeFrameHeader(0x12345678), bytes(0x78, 0x56, 0x34, 0x12));
  assert.deepEqual(encodeFrameHeader(0xffffffff), bytes(0xff, 0xff, 0xff, 0xff));
});

test("encodeFrameHeader: header then payload equals encodeFrame", () => {
  const payload = pattern(300);
  assert.deepEqual(concat(encodeFrameHeader(payload.length), payload), encodeFrame(payload));
});

test("encodeFrameHeader: rejects lengths a 4-byte prefix cannot hold", () => {
  for (const n of [-1, 2 ** 32, 0.5, NaN, Infinity]) {
    assert.throws(() => encodeFrameHeader(n), RangeError);
  }
  assert.throws(() => encodeFrameHeader(1n as unknown as number), TypeError);
});

/** Frames of assorted sizes, empty ones included, as one stream: for the "FrameDecoder" tests. */
const payloads = [
  pattern(5),
  new Uint8Array(0),
  pattern(3000, 2),
  pattern(1, 3),
  pattern(40000, 4),
  new Uint8Array(0),
];
const stream = concat(...payloads.map((p) => encodeFrame(p)));

test("FrameDecoder: returns every frame of a chunk, in order", () => {
  assert.deepEqual(decodeInChunks(stream, [stream.length]), payloads);
});

test("FrameDecoder: reassembles frames fed one byte at a time", () => {
  assert.deepEqual(decodeInChunks(stream, [1]), payloads);
});

test("FrameDecoder: reassembles frames under any mix of chunk sizes", () => {
  for (
    const sizes of [[2], [3], [5], [4, 1], [1023, 1], [1024], [1025, 3, 7], [17000], [
      2,
      5000,
      1,
      1,
      3,
    ]]
  ) {
    assert.deepEqual(decodeInChunks(stream, sizes), payloads, `sizes ${sizes}`);
  }
});

test("FrameDecoder: returns a frame within one chunk as a view, without copying", () => {
  const chunk = concat(encodeFrame(bytes(1, 2)), encodeFrame(bytes(3)));
  const [a, b] = new FrameDecoder().push(chunk);
  assert.equal(a.buffer, chunk.buffer);
  assert.equal(a.byteOffset, 4);
  assert.equal(b.buffer, chunk.buffer);
  assert.deepEqual(b, bytes(3));
});

test("FrameDecoder: joins a frame spread over chunks into a new array", () => {
  const frame = encodeFrame(pattern(2000));
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(frame.subarray(0, 1000)), []);
  const [payload] = decoder.push(frame.subarray(1000));
  assert.notEqual(payload.buffer, frame.buffer);
  assert.deepEqual(payload, pattern(2000));
});

test("FrameDecoder: an empty chunk changes nothing", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(new Uint8Array(0)), []);
  decoder.push(bytes(5, 0));
  assert.deepEqual(decoder.push(new Uint8Array(0)), []);
  assert.equal(decoder.bufferedBytes, 2);
});

test("FrameDecoder: counts buffered header and payload bytes", () => {
  const decoder = new FrameDecoder();
  decoder.push(bytes(10, 0, 0));
  assert.equal(decoder.bufferedBytes, 3);
  decoder.push(bytes(0, 1, 2));
  assert.equal(decoder.bufferedBytes, 6);
  decoder.push(pattern(7));
  assert.equal(decoder.bufferedBytes, 13);
  assert.equal(decoder.push(bytes(9, 4, 0, 0, 0)).length, 1);
  assert.equal(decoder.bufferedBytes, 4);
});

test("FrameDecoder: keeps what a trickling peer sent compact and correct", () => {
  // A large frame arriving in tiny pieces goes through the staging buffers.
  const payload = pattern(100_000, 9);
  const frames = decodeInChunks(encodeFrame(payload), [
    1,
    2,
    3,
    5,
    8,
    13,
    21,
    34,
    55,
    89,
    144,
    233,
    377,
    610,
    987,
    1597,
  ]);
  assert.deepEqual(frames, [payload]);
});

test("FrameDecoder: accepts a frame exactly at the limit", () => {
  assert.deepEqual(decodeInChunks(encodeFrame(pattern(100)), [7], 100), [pattern(100)]);
  assert.deepEqual(decodeInChunks(encodeFrame(new Uint8Array(0)), [1], 0), [new Uint8Array(0)]);
});

test("FrameDecoder: defaults to a 16 MiB limit", () => {
  assert.equal(DEFAULT_MAX_FRAME_BYTES, 16 * 1024 * 1024);
  assert.equal(new FrameDecoder().maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
  assert.throws(
    () => new FrameDecoder().push(encodeFrameHeader(DEFAULT_MAX_FRAME_BYTES + 1)),
    FrameTooLargeError,
  );
  assert.deepEqual(new FrameDecoder().push(encodeFrameHeader(DEFAULT_MAX_FRAME_BYTES)), []);
});

test("FrameDecoder: rejects a length over the limit as soon as the header is complete", () => {
  const decoder = new FrameDecoder({ maxFrameBytes: 100 });
  assert.deepEqual(decoder.push(bytes(101, 0)), []);
  assert.deepEqual(decoder.push(bytes(0)), []);
  assert.equal(decoder.bufferedBytes, 3);
  // The fourth header byte alone triggers the error: no payload byte is waited for.
  assert.throws(() => decoder.push(bytes(0)), FrameTooLargeError);
  assert.equal(decoder.bufferedBytes, 0);
});

test("FrameDecoder: FrameTooLargeError names the length and the limit", () => {
  const decoder = new FrameDecoder({ maxFrameBytes: 16777216 });
  assert.throws(() => decoder.push(bytes(0xff, 0xff, 0xff, 0xff)), (error: unknown) => {
    assert.ok(error instanceof FrameTooLargeError);
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.name, "FrameTooLargeError");
    assert.equal(
      error.message,
      "Cannot decode frame: length 4294967295 exceeds the limit of 16777216 bytes",
    );
    assert.equal(error.lengthBytes, 4294967295);
    assert.equal(error.maxFrameBytes, 16777216);
    return true;
  });
  assert.equal(decoder.bufferedBytes, 0);
});

test("FrameDecoder: hands over the frames that preceded an oversized header in the same chunk", () => {
  const decoder = new FrameDecoder({ maxFrameBytes: 10 });
  const chunk = concat(
    encodeFrame(bytes(1)),
    encodeFrame(bytes(2, 2)),
    encodeFrameHeader(11),
    pattern(11),
  );
  assert.throws(() => decoder.push(chunk), (error: unknown) => {
    assert.ok(error instanceof FrameTooLargeError);
    assert.deepEqual(error.precedingFrames, [bytes(1), bytes(2, 2)]);
    return true;
  });
});

test("FrameDecoder: stays poisoned after FrameTooLargeError", () => {
  const decoder = new FrameDecoder({ maxFrameBytes: 10 });
  assert.throws(() => decoder.push(encodeFrameHeader(11)), FrameTooLargeError);
  for (
    const next of [
      () => decoder.push(encodeFrame(bytes(1))),
      () => decoder.push(bytes()),
      () => decoder.end(),
    ]
  ) {
    assert.throws(next, (error: unknown) => {
      assert.ok(error instanceof FrameTooLargeError);
      assert.equal(error.lengthBytes, 11);
      assert.equal(error.maxFrameBytes, 10);
      assert.deepEqual(error.precedingFrames, []);
      return true;
    });
  }
});

test("FrameDecoder: end between frames is fine, and the decoder goes on", () => {
  const decoder = new FrameDecoder();
  decoder.end();
  assert.equal(decoder.push(encodeFrame(bytes(1))).length, 1);
  decoder.end();
  assert.equal(decoder.push(encodeFrame(bytes(2))).length, 1);
});

test("FrameDecoder: end inside a header throws TruncatedFrameError", () => {
  const decoder = new FrameDecoder();
  decoder.push(bytes(1, 0, 0));
  assert.throws(() => decoder.end(), (error: unknown) => {
    assert.ok(error instanceof TruncatedFrameError);
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.name, "TruncatedFrameError");
    assert.equal(error.expectedBytes, undefined);
    assert.equal(error.receivedBytes, 3);
    assert.equal(error.message, "Cannot decode frame: stream ended after 3 of 4 header bytes");
    return true;
  });
  assert.equal(decoder.bufferedBytes, 0);
});

test("FrameDecoder: end inside a payload throws TruncatedFrameError, then stays poisoned", () => {
  const decoder = new FrameDecoder();
  decoder.push(concat(encodeFrame(bytes(1)), encodeFrameHeader(10), bytes(1, 2, 3)));
  const check = (error: unknown) => {
    assert.ok(error instanceof TruncatedFrameError);
    assert.equal(error.expectedBytes, 10);
    assert.equal(error.receivedBytes, 3);
    assert.equal(error.message, "Cannot decode frame: stream ended after 3 of 10 payload bytes");
    return true;
  };
  assert.throws(() => decoder.end(), check);
  assert.throws(() => decoder.push(bytes(4, 5, 6, 7, 8, 9, 10)), check);
  assert.throws(() => decoder.end(), check);
});

test("FrameDecoder: end right after a complete header with no payload is truncation", () => {
  const decoder = new FrameDecoder();
  decoder.push(encodeFrameHeader(2));
  assert.throws(() => decoder.end(), {
    name: "TruncatedFrameError",
    message: /after 0 of 2 payload bytes/,
  });
});

test("FrameDecoder: rejects bad arguments with TypeError and RangeError", () => {
  assert.throws(() => new FrameDecoder({ maxFrameBytes: 2 ** 32 }), RangeError);
  assert.throws(() => new FrameDecoder({ maxFrameBytes: -1 }), RangeError);
  assert.throws(() => new FrameDecoder({ maxFrameBytes: "1" as unknown as number }), TypeError);
  assert.throws(() => new FrameDecoder().push([1, 0, 0, 0] as unknown as Uint8Array), TypeError);
  assert.throws(() => new FrameDecoder().push("abcd" as unknown as Uint8Array), TypeError);
});
