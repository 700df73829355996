import { test } from "node:test";
import assert from "node:assert/strict";
import { decode as referenceDecode, encode as referenceEncode } from "@msgpack/msgpack";
import { type Codec, codecByName, jsonCodec, MessageDecodeError, msgpackCodec } from "./codec.ts";
import { ProtocolError } from "./errors.ts";
import { createMessage, type MapMessage, messagesEqual } from "./message.ts";

const utf8 = new TextEncoder();
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const codecs: Codec[] = [msgpackCodec, jsonCodec];

/** Asserts that decoding `bytes` fails with a MessageDecodeError of `codec`. */
function assertRejects(codec: Codec, bytes: Uint8Array, message?: RegExp): void {
  assert.throws(
    () => codec.decode(bytes),
    (error: unknown) => {
      assert.ok(error instanceof MessageDecodeError, `got ${error}`);
      assert.ok(error instanceof ProtocolError);
      assert.equal(error.name, "MessageDecodeError");
      assert.equal(error.codec, codec.name);
      assert.match(error.message, new RegExp(`^Cannot decode ${codec.name} message: `));
      if (message) assert.match(error.message, message);
      return true;
    },
  );
}

function roundTrip(codec: Codec, msg: MapMessage): MapMessage {
  const back = codec.decode(codec.encode(msg));
  assert.ok(messagesEqual(back, msg), `${codec.name} round trip changed the message`);
  return back;
}

const NODE_LOCATION =
  '{"DestinationGUID":"","SourceGUID":"","Message":{"AutoMPI_SMDP_GUID_Node":"GoNodeA","AutoMPI_SMDP_HOST_IPEP":"10.88.0.1:8888","AutoMPI_System_Message":"AutoMPI_SKD_NodeLocation"},"Data":null}';
const WORKER_LOCATION =
  '{"DestinationGUID":"","SourceGUID":"","Message":{"AutoMPI_SMDP_GUID_Node":"GoNodeA","AutoMPI_SMDP_GUID_Worker":"GoStore0001","AutoMPI_System_Message":"AutoMPI_SKD_WorkerLocation"},"Data":null}';

test("jsonCodec and frames captured from the Go original: decodes a NodeLocation broadcast", () => {
  const msg = jsonCodec.decode(utf8.encode(NODE_LOCATION));
  assert.equal(msg.destination, "");
  assert.equal(msg.source, "");
  assert.equal(msg.data, undefined);
  assert.equal("data" in msg, false);
  assert.deepEqual({ ...msg.message }, {
    AutoMPI_SMDP_GUID_Node: "GoNodeA",
    AutoMPI_SMDP_HOST_IPEP: "10.88.0.1:8888",
    AutoMPI_System_Message: "AutoMPI_SKD_NodeLocation",
  });
});

test("jsonCodec and frames captured from the Go original: re-encodes both captured frames to the same bytes", () => {
  for (const frame of [NODE_LOCATION, WORKER_LOCATION]) {
    assert.equal(text(jsonCodec.encode(jsonCodec.decode(utf8.encode(frame)))), frame);
  }
});

test("jsonCodec and frames captured from the Go original: encodes a message built in any key order to the captured bytes", () => {
  const msg = createMessage("", {
    AutoMPI_System_Message: "AutoMPI_SKD_WorkerLocation",
    AutoMPI_SMDP_GUID_Worker: "GoStore0001",
    AutoMPI_SMDP_GUID_Node: "GoNodeA",
  });
  assert.equal(text(jsonCodec.encode(msg)), WORKER_LOCATION);
});

/** jsonCodec.encode as text, for the "jsonCodec encodes as Go" tests. */
const encodeText = (msg: MapMessage) => text(jsonCodec.encode(msg));

test("jsonCodec encodes as Go >= 1.22 encoding/json: escapes HTML-sensitive characters, quotes and backslashes", () => {
  const msg = createMessage('a<b>&c"d\\e/f', {}, { source: "\u2028|\u2029" });
  assert.equal(
    encodeText(msg),
    '{"DestinationGUID":"a\\u003cb\\u003e\\u0026c\\"d\\\\e/f","SourceGUID":"\\u2028|\\u2029","Message":{},"Data":null}',
  );
});

test("jsonCodec encodes as Go >= 1.22 encoding/json: writes \\b \\f \\n \\r \\t short, other controls as lowercase \\u00xx, DEL raw", () => {
  const msg = createMessage("\b\f\n\r\t\u0000\u001b\u001f\u007f");
  assert.equal(
    encodeText(msg),
    '{"DestinationGUID":"\\b\\f\\n\\r\\t\\u0000\\u001b\\u001f\u007f","SourceGUID":"","Message":{},"Data":null}',
  );
});

test("jsonCodec encodes as Go >= 1.22 encoding/json: writes non-ASCII characters as raw UTF-8", () => {
  const bytes = jsonCodec.encode(createMessage("é€😀"));
  assert.deepEqual(
    [...bytes.subarray(19, 30)],
    [0x22, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0x22],
  );
});

test("jsonCodec encodes as Go >= 1.22 encoding/json: sorts message keys by UTF-8 bytes, not UTF-16 code units", () => {
  // UTF-16 order would put U+1F600 (a surrogate pair, 0xD83D…) before U+FF61.
  const msg = createMessage("d", { "\u{1F600}": "4", "\uFF61": "3", a: "2", B: "1", "": "0" });
  assert.equal(
    encodeText(msg),
    '{"DestinationGUID":"d","SourceGUID":"","Message":{"":"0","B":"1","a":"2","\uFF61":"3","\u{1F600}":"4"},"Data":null}',
  );
});

test("jsonCodec encodes as Go >= 1.22 encoding/json: escapes message keys like values", () => {
  const msg = createMessage("d", { "<k>": "&" });
  assert.match(encodeText(msg), /"Message":\{"\\u003ck\\u003e":"\\u0026"\}/);
});

test("jsonCodec encodes as Go >= 1.22 encoding/json: writes absent data as null and empty data as an empty string", () => {
  assert.match(encodeText(createMessage("d")), /"Data":null\}$/);
  assert.match(encodeText(createMessage("d", {}, { data: new Uint8Array(0) })), /"Data":""\}$/);
});

test("jsonCodec encodes as Go >= 1.22 encoding/json: writes data as padded standard base64 (RFC 4648 vectors)", () => {
  const vectors: Array<[string, string]> = [
    ["f", "Zg=="],
    ["fo", "Zm8="],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg=="],
    ["fooba", "Zm9vYmE="],
    ["foobar", "Zm9vYmFy"],
  ];
  for (const [plain, encoded] of vectors) {
    const msg = createMessage("d", {}, { data: utf8.encode(plain) });
    assert.match(encodeText(msg), new RegExp(`"Data":"${encoded}"\\}$`));
  }
  const all = new Uint8Array(256).map((_, i) => i);
  const encoded = encodeText(createMessage("d", {}, { data: all })).match(/"Data":"(.*)"\}$/)![1];
  assert.match(encoded, /^AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g/);
  assert.match(encoded, /\+\/w==$/);
  assert.ok(encoded.includes("+") && encoded.includes("/"));
});

/** A JSON frame, defaults filling the fields `parts` omits: for the "jsonCodec decoding" tests. */
const frame = (parts: Record<string, string>): Uint8Array => {
  const fields = {
    DestinationGUID: '"d"',
    SourceGUID: '"s"',
    Message: "{}",
    Data: "null",
    ...parts,
  };
  return utf8.encode(`{${Object.entries(fields).map(([k, v]) => `"${k}":${v}`).join(",")}}`);
};

test("jsonCodec decoding: reads a null Message as an empty map", () => {
  const msg = jsonCodec.decode(frame({ Message: "null" }));
  assert.deepEqual(Object.keys(msg.message), []);
  assert.equal(Object.getPrototypeOf(msg.message), null);
});

test("jsonCodec decoding: reads empty Data as an empty array and null Data as absent", () => {
  assert.equal(jsonCodec.decode(frame({ Data: '""' })).data?.length, 0);
  assert.equal("data" in jsonCodec.decode(frame({ Data: "null" })), false);
});

test("jsonCodec decoding: decodes every base64 tail length", () => {
  assert.deepEqual([...jsonCodec.decode(frame({ Data: '"Zm9vYmE="' })).data!], [
    ...utf8.encode("fooba"),
  ]);
  assert.deepEqual([...jsonCodec.decode(frame({ Data: '"Zm9vYg=="' })).data!], [
    ...utf8.encode("foob"),
  ]);
  assert.deepEqual([...jsonCodec.decode(frame({ Data: '"Zm9vYmFy"' })).data!], [
    ...utf8.encode("foobar"),
  ]);
  assert.deepEqual([...jsonCodec.decode(frame({ Data: '"+/+/"' })).data!], [0xfb, 0xff, 0xbf]);
});

test("jsonCodec decoding: reads escapes, whitespace and key order that Go would not write", () => {
  const msg = jsonCodec.decode(utf8.encode(
    ' { "Data" : null , "Message" : { "k" : "\\u00e9\\n\\ud83d\\ude00" } , "SourceGUID" : "" , "DestinationGUID" : "\\/" } ',
  ));
  assert.equal(msg.destination, "/");
  assert.equal(msg.message.k, "é\n😀");
});

test("jsonCodec decoding: keeps the last value of a duplicate key, as Go does", () => {
  const msg = jsonCodec.decode(frame({ Message: '{"k":"1","k":"2"}' }));
  assert.equal(msg.message.k, "2");
});

test("jsonCodec decoding: hostile keys in Message stay ordinary entries", () => {
  const msg = jsonCodec.decode(frame({ Message: '{"__proto__":"p","constructor":"c"}' }));
  assert.equal(Object.getPrototypeOf(msg.message), null);
  assert.equal(msg.message["__proto__"], "p");
  assert.equal(msg.message.constructor, "c");
  assert.equal(jsonCodec.decode(frame({})).message.constructor, undefined);
  assert.equal(({} as Record<string, unknown>).p, undefined);
});

test("jsonCodec decoding: reads Data the same whether or not the frame has Go's exact layout", () => {
  const go = jsonCodec.encode(createMessage("d", { k: "v" }, { data: utf8.encode("foobar!") }));
  const goText = text(go);
  assert.match(goText, /,"Data":"Zm9vYmFyIQ=="\}$/);
  const variants = [
    goText.replace(/\}$/, " }"),
    `${goText} `,
    goText.replace('"Data":', '"Data": '),
    goText.replace(',"Data":"Zm9vYmFyIQ=="', "").replace("{", '{"Data":"Zm9vYmFyIQ==",'),
  ];
  const expected = jsonCodec.decode(go);
  assert.deepEqual([...expected.data!], [...utf8.encode("foobar!")]);
  for (const variant of variants) {
    assert.ok(messagesEqual(jsonCodec.decode(utf8.encode(variant)), expected), variant);
  }
});

test("jsonCodec decoding: a Message key named Data does not confuse the reading of Data", () => {
  const msg = createMessage("d", { Command: "x", Data: '","Data":"QQ=="}' }, {
    data: utf8.encode("hi"),
  });
  const bytes = jsonCodec.encode(msg);
  assert.ok(messagesEqual(jsonCodec.decode(bytes), msg));
});

test("jsonCodec decoding: a later duplicate Data key wins, in Go's layout too", () => {
  const doc = '{"DestinationGUID":"d","SourceGUID":"","Message":null,"Data":"Zm9v","Data":"YmFy"}';
  assert.deepEqual([...jsonCodec.decode(utf8.encode(doc)).data!], [...utf8.encode("bar")]);
  const nullLast =
    '{"DestinationGUID":"d","SourceGUID":"","Message":null,"Data":"Zm9v","Data":null}';
  assert.equal(jsonCodec.decode(utf8.encode(nullLast)).data, undefined);
});

test("jsonCodec decoding: rejects documents that only look like Go's layout at the end", () => {
  const cases = [
    '{"DestinationGUID":"x,"Data":"Zm9v"}', // the "Data" text is inside a string
    '{"DestinationGUID":"d","SourceGUID":"","Message":{},"Data":"Zm9\\v"}',
    '{"DestinationGUID":"d","SourceGUID":"","Message":{},"Data":"Zm9v\\"}',
    '{"DestinationGUID":"d","SourceGUID":"","Message":{,"Data":"Zm9v"}',
    '["DestinationGUID","Data":"Zm9v"}',
    ',"Data":"Zm9v"}',
    '{"DestinationGUID":"d","SourceGUID":"","Message":{},"Data":"Zm9v","Data":"Zm9v"}}',
  ];
  for (const doc of cases) assertRejects(jsonCodec, utf8.encode(doc));
});

test("jsonCodec decoding: rejects bytes that are not UTF-8 JSON", () => {
  assertRejects(jsonCodec, new Uint8Array([0x7b, 0xff, 0x7d]), /not valid UTF-8/);
  assertRejects(jsonCodec, utf8.encode("{"), /not JSON/);
  assertRejects(jsonCodec, new Uint8Array(0), /not JSON/);
  assertRejects(jsonCodec, utf8.encode(`\uFEFF${NODE_LOCATION}`), /not JSON/);
});

test("jsonCodec decoding: rejects a document that is not a MapMessage object", () => {
  for (const doc of ["[]", "null", '"x"', "1", "true"]) {
    assertRejects(jsonCodec, utf8.encode(doc), /expected a JSON object/);
  }
  assertRejects(jsonCodec, frame({ Extra: "1" }), /unknown key "Extra"/);
  assertRejects(
    jsonCodec,
    utf8.encode('{"DestinationGUID":"d","SourceGUID":"","Message":{}}'),
    /"Data" is missing/,
  );
  assertRejects(
    jsonCodec,
    utf8.encode(NODE_LOCATION.replace("DestinationGUID", "destinationguid")),
    /unknown key/,
  );
  assertRejects(
    jsonCodec,
    utf8.encode(NODE_LOCATION.replace("{", '{"__proto__":{},')),
    /unknown key "__proto__"/,
  );
});

test("jsonCodec decoding: rejects fields of the wrong type", () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ DestinationGUID: "null" }, /DestinationGUID is null, expected a string/],
    [{ DestinationGUID: "1" }, /DestinationGUID is a number/],
    [{ SourceGUID: "[]" }, /SourceGUID is an array/],
    [{ Message: "[]" }, /Message is an array, expected an object or null/],
    [{ Message: '"x"' }, /Message is a string/],
    [{ Message: '{"k":1}' }, /Message key "k" holds a number/],
    [{ Message: '{"k":null}' }, /Message key "k" holds null/],
    [{ Message: '{"k":{"a":"b"}}' }, /Message key "k" holds an object/],
    [{ Data: "[1,2]" }, /Data is an array, expected a string or null/],
    [{ Data: "false" }, /Data is a boolean/],
  ];
  for (const [parts, message] of cases) assertRejects(jsonCodec, frame(parts), message);
});

test("jsonCodec decoding: rejects base64 that is not canonical and padded", () => {
  for (
    const data of [
      "Zg",
      "Zg=",
      "Zm9",
      "Z===",
      "====",
      "Zg==Zg==",
      "Zm=v",
      "Zh==",
      "Zm9=",
      "Zm 9v",
      "Zm9v\\n",
      "Zm-v",
      "Zm_v",
      "Zm\\u00e9v",
    ]
  ) {
    assertRejects(jsonCodec, frame({ Data: `"${data}"` }), /Data is not valid base64/);
  }
});

test("msgpackCodec wire shape: is a 4-element array with the map as flat key/value pairs", () => {
  const bytes = msgpackCodec.encode(createMessage("w1", { k: "v" }));
  assert.deepEqual([...bytes], [
    0x94,
    0xa2,
    0x77,
    0x31,
    0xa0,
    0x92,
    0xa1,
    0x6b,
    0xa1,
    0x76,
    0xc0,
  ]);
  assert.deepEqual(referenceDecode(bytes), ["w1", "", ["k", "v"], null]);
});

test("msgpackCodec wire shape: writes data as bin and empty data as a zero-length bin", () => {
  const bytes = msgpackCodec.encode(createMessage("", {}, { data: new Uint8Array(0) }));
  assert.deepEqual([...bytes], [0x94, 0xa0, 0xa0, 0x90, 0xc4, 0x00]);
});

test("msgpackCodec wire shape: uses the smallest header at every length boundary", () => {
  const sizes = [0, 31, 32, 255, 256, 65535, 65536];
  for (const n of sizes) {
    const s = "x".repeat(n);
    const data = new Uint8Array(n).fill(7);
    const msg = createMessage(s, { [s]: s }, { source: s, data });
    const bytes = msgpackCodec.encode(msg);
    // What a general msgpack library writes for the same shape, minimal headers included.
    const expected = referenceEncode([s, s, [s, s], data]);
    assert.deepEqual(bytes, expected, `length ${n}`);
    roundTrip(msgpackCodec, msg);
  }
});

test("msgpackCodec wire shape: sizes headers by UTF-8 bytes for multi-byte strings", () => {
  // 11 × "€" is 11 code units but 33 bytes: str 8, not fixstr.
  for (
    const s of [
      "€".repeat(10),
      "€".repeat(11),
      "😀".repeat(8),
      "é".repeat(16),
      "€".repeat(21846),
      "a€".repeat(40000),
    ]
  ) {
    const msg = createMessage(s, { [s]: s }, { source: s });
    assert.deepEqual(msgpackCodec.encode(msg), referenceEncode([s, s, [s, s], null]));
    roundTrip(msgpackCodec, msg);
  }
});

test("msgpackCodec wire shape: reads what a general msgpack writer produces, non-minimal headers included", () => {
  const fromLibrary = referenceEncode([
    "w1",
    "src",
    ["a", "1", "b", "2"],
    new Uint8Array([1, 2]),
  ]);
  const msg = msgpackCodec.decode(fromLibrary);
  assert.ok(
    messagesEqual(
      msg,
      createMessage("w1", { a: "1", b: "2" }, { source: "src", data: new Uint8Array([1, 2]) }),
    ),
  );
  // array 16 of 4; str 16 "w1"; str 32 ""; array 32 of 0; bin 32 of 1.
  const padded = new Uint8Array([
    0xdc,
    0,
    4,
    0xda,
    0,
    2,
    0x77,
    0x31,
    0xdb,
    0,
    0,
    0,
    0,
    0xdd,
    0,
    0,
    0,
    0,
    0xc6,
    0,
    0,
    0,
    1,
    9,
  ]);
  assert.ok(
    messagesEqual(
      msgpackCodec.decode(padded),
      createMessage("w1", {}, { data: new Uint8Array([9]) }),
    ),
  );
});

test("msgpackCodec wire shape: hostile keys survive as ordinary entries", () => {
  const entries: Record<string, string> = Object.create(null);
  entries["__proto__"] = "p";
  entries["constructor"] = "c";
  const back = roundTrip(msgpackCodec, createMessage("w1", entries));
  assert.equal(Object.getPrototypeOf(back.message), null);
  assert.equal(back.message["__proto__"], "p");
  assert.equal(
    msgpackCodec.decode(msgpackCodec.encode(createMessage("w1"))).message.toString,
    undefined,
  );
});

/** A valid msgpack payload, for the "msgpackCodec decoding rejects" tests. */
const valid = msgpackCodec.encode(
  createMessage("dest", { key: "value" }, { source: "src", data: new Uint8Array([1, 2, 3]) }),
);

test("msgpackCodec decoding rejects: every truncation of a valid payload", () => {
  for (let n = 0; n < valid.length; n++) assertRejects(msgpackCodec, valid.subarray(0, n));
});

test("msgpackCodec decoding rejects: trailing bytes", () => {
  assertRejects(msgpackCodec, Uint8Array.of(...valid, 0xc0), /1 bytes follow the message/);
});

test("msgpackCodec decoding rejects: a top level that is not a 4-element array", () => {
  assertRejects(msgpackCodec, referenceEncode(["d", "s", []]), /array of 3 elements, expected 4/);
  assertRejects(msgpackCodec, referenceEncode(["d", "s", [], null, null]), /array of 5 elements/);
  assertRejects(msgpackCodec, referenceEncode({ d: "s" }), /expected the message \(an array\)/);
  assertRejects(msgpackCodec, new Uint8Array([0xc1]), /found type byte 0xc1/);
});

test("msgpackCodec decoding rejects: elements of the wrong type", () => {
  const cases: Array<[unknown[], RegExp]> = [
    [[1, "s", [], null], /expected the destination \(a string\)/],
    [["d", null, [], null], /expected the source \(a string\)/],
    [["d", "s", { k: "v" }, null], /expected the message map \(an array\)/],
    [["d", "s", ["k"], null], /1 items, expected key\/value pairs/],
    [["d", "s", ["k", 1], null], /expected a message value \(a string\)/],
    [["d", "s", [new Uint8Array(1), "v"], null], /expected a message key \(a string\)/],
    [["d", "s", [], "data"], /expected the data \(bin or nil\)/],
    [["d", "s", [], false], /expected the data \(bin or nil\)/],
  ];
  for (const [value, message] of cases) {
    assertRejects(msgpackCodec, referenceEncode(value), message);
  }
});

test("msgpackCodec decoding rejects: a duplicate key", () => {
  assertRejects(
    msgpackCodec,
    referenceEncode(["d", "s", ["k", "1", "k", "2"], null]),
    /message key "k" at byte \d+ is a duplicate/,
  );
});

test("msgpackCodec decoding rejects: invalid UTF-8 in short and long strings", () => {
  const shortBad = new Uint8Array([0x94, 0xa2, 0xc3, 0x28, 0xa0, 0x90, 0xc0]);
  assertRejects(msgpackCodec, shortBad, /the destination at byte 1 is not valid UTF-8/);
  const long = referenceEncode(["d", "x".repeat(100), [], null]);
  long[50] = 0xff;
  assertRejects(msgpackCodec, long, /the source at byte 3 is not valid UTF-8/);
  // An encoded surrogate (ED A0 80) is not UTF-8 either.
  assertRejects(
    msgpackCodec,
    new Uint8Array([0x94, 0xa3, 0xed, 0xa0, 0x80, 0xa0, 0x90, 0xc0]),
    /not valid UTF-8/,
  );
});

test("msgpackCodec decoding rejects: lengths that claim more bytes than remain, without allocating them", () => {
  assertRejects(
    msgpackCodec,
    new Uint8Array([0x94, 0xdb, 0xff, 0xff, 0xff, 0xff]),
    /claims 4294967295 bytes but only 0 remain/,
  );
  assertRejects(
    msgpackCodec,
    new Uint8Array([0x94, 0xa0, 0xa0, 0x90, 0xc6, 0xff, 0xff, 0xff, 0xff]),
    /claims 4294967295 bytes/,
  );
  assertRejects(
    msgpackCodec,
    new Uint8Array([0x94, 0xa0, 0xa0, 0xdd, 0xff, 0xff, 0xff, 0xfe]),
    /payload ends/,
  );
});

test("both codecs: round trip absent, empty and large data exactly", () => {
  const big = new Uint8Array(1 << 20).map((_, i) => (i * 31) >>> 3);
  for (const codec of codecs) {
    assert.equal("data" in roundTrip(codec, createMessage("d")), false);
    assert.equal(
      roundTrip(codec, createMessage("d", {}, { data: new Uint8Array(0) })).data!.length,
      0,
    );
    roundTrip(codec, createMessage("d", { k: "v" }, { data: big }));
    for (let n = 1; n <= 7; n++) {
      roundTrip(codec, createMessage("d", {}, { data: big.subarray(0, n) }));
    }
  }
});

test("both codecs: keep a leading byte order mark and other edge characters in strings", () => {
  const msg = createMessage("\uFEFFd", { "\uFEFF": "\u0000", "\u2028": "\uFFFF" }, {
    source: "\u{10FFFF}",
  });
  for (const codec of codecs) roundTrip(codec, msg);
});

test("both codecs: decode data into memory of its own", () => {
  for (const codec of codecs) {
    const bytes = codec.encode(createMessage("d", {}, { data: new Uint8Array([1, 2, 3]) }));
    const msg = codec.decode(bytes);
    bytes.fill(0);
    assert.deepEqual([...msg.data!], [1, 2, 3]);
  }
});

test("both codecs: refuse to encode lone surrogates, rather than merge keys as U+FFFD", () => {
  const cases: MapMessage[] = [
    createMessage("\uD800"),
    createMessage("d", {}, { source: "a\uDC00" }),
    // Two keys that would both become U+FFFD (built at run time: tools mangle them too).
    createMessage("d", Object.fromEntries([["\uD800", "1"], ["\uD801", "2"]])),
    createMessage("d", { k: "\uDFFF\uD800" }),
  ];
  for (const codec of codecs) {
    for (const msg of cases) {
      assert.throws(() => codec.encode(msg), { name: "TypeError", message: /lone surrogate/ });
    }
  }
});

test("both codecs: refuse to encode malformed messages with TypeError", () => {
  const bad = [
    null,
    { destination: 1, source: "", message: {} },
    { destination: "d", message: {} },
    { destination: "d", source: "", message: null },
    { destination: "d", source: "", message: { k: 1 } },
    { destination: "d", source: "", message: {}, data: [1] },
    { destination: "d", source: "", message: {}, data: null },
  ] as unknown as MapMessage[];
  for (const codec of codecs) {
    for (const msg of bad) assert.throws(() => codec.encode(msg), TypeError);
  }
});

test("both codecs: refuse to decode a non-Uint8Array with TypeError", () => {
  for (const codec of codecs) {
    assert.throws(() => codec.decode("{}" as unknown as Uint8Array), TypeError);
    assert.throws(() => codec.decode([0x94] as unknown as Uint8Array), TypeError);
  }
});

test("both codecs: decode a payload that is a view into a larger buffer", () => {
  const msg = createMessage("d", { k: "v" }, { data: new Uint8Array([4, 5]) });
  for (const codec of codecs) {
    const payload = codec.encode(msg);
    const buffer = new Uint8Array(payload.length + 20).fill(0x41);
    buffer.set(payload, 10);
    assert.ok(messagesEqual(codec.decode(buffer.subarray(10, 10 + payload.length)), msg));
  }
});

test("both codecs: wrap any failure in MessageDecodeError, deep nesting included", () => {
  const deep = utf8.encode("[".repeat(200_000) + "]".repeat(200_000));
  assertRejects(jsonCodec, deep);
  assertRejects(msgpackCodec, new Uint8Array(200_000).fill(0x91));
});

test("codecByName: finds each codec by its name", () => {
  assert.equal(codecByName("msgpack"), msgpackCodec);
  assert.equal(codecByName("json"), jsonCodec);
  assert.equal(msgpackCodec.name, "msgpack");
  assert.equal(jsonCodec.name, "json");
});

test("codecByName: rejects an unknown name with RangeError and a non-string with TypeError", () => {
  assert.throws(() => codecByName("xml"), {
    name: "RangeError",
    message: 'Cannot find codec: unknown name "xml" (expected "msgpack" or "json")',
  });
  assert.throws(() => codecByName(undefined as unknown as string), TypeError);
});

test("codecByName: codecs are frozen", () => {
  assert.ok(Object.isFrozen(msgpackCodec) && Object.isFrozen(jsonCodec));
});
