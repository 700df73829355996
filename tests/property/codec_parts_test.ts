import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { msgpackCodec } from "../../src/codec.ts";
import { createMessage, messagesEqual } from "../../src/message.ts";

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
};

test("msgpack encodeParts and encodeTransient give exactly the bytes of encode", () => {
  fc.assert(
    fc.property(
      fc.string(),
      fc.dictionary(fc.string(), fc.string(), { maxKeys: 5 }),
      fc.option(fc.integer({ min: 0, max: 200_000 }), { nil: undefined }),
      (destination, fields, dataBytes) => {
        const data = dataBytes === undefined
          ? undefined
          : new Uint8Array(dataBytes).fill(dataBytes & 255);
        const message = createMessage(destination || "d", fields, { data });
        const whole = msgpackCodec.encode(message);
        assert.deepEqual(concat(msgpackCodec.encodeParts!(message)), whole);
        assert.deepEqual(new Uint8Array(msgpackCodec.encodeTransient!(message)), whole);
      },
    ),
    { seed: 7, numRuns: 200 },
  );
});

test("msgpack encodeParts hands large data over without copying it", () => {
  const data = new Uint8Array(1 << 20);
  const parts = msgpackCodec.encodeParts!(createMessage("d", {}, { data }));
  assert.equal(parts.length, 2);
  assert.equal(parts[1], data);
});

test("decoded small data from a shared pool never changes when later messages are decoded", () => {
  const first = msgpackCodec.decode(
    msgpackCodec.encode(createMessage("d", {}, { data: new Uint8Array([1, 2, 3]) })),
  );
  const later = [];
  for (let i = 0; i < 30_000; i++) {
    later.push(
      msgpackCodec.decode(
        msgpackCodec.encode(createMessage("d", {}, { data: new Uint8Array(7).fill(i & 255) })),
      ),
    );
  }
  assert.deepEqual([...first.data!], [1, 2, 3]);
  assert.deepEqual([...later[12_345].data!], new Array(7).fill(12_345 & 255));
  assert.ok(messagesEqual(later[0], createMessage("d", {}, { data: new Uint8Array(7) })));
});

test("a transient encoding is overwritten by the next one, as documented", () => {
  const a = msgpackCodec.encodeTransient!(createMessage("aaaa", {}));
  const copy = a.slice();
  msgpackCodec.encodeTransient!(createMessage("bbbb", {}));
  assert.notDeepEqual(new Uint8Array(a), copy);
});
