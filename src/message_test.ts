import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ALL_NODES,
  ALL_WORKERS,
  cloneMessage,
  createMessage,
  isBroadcastDestination,
  type MapMessage,
  messagesEqual,
} from "./message.ts";

test("createMessage: fills in an empty source and no data by default", () => {
  const msg = createMessage("Store0001", { command: "get" });
  assert.equal(msg.destination, "Store0001");
  assert.equal(msg.source, "");
  assert.equal(msg.message.command, "get");
  assert.equal("data" in msg, false);
});

test("createMessage: an omitted message map becomes an empty map", () => {
  const msg = createMessage("w1");
  assert.deepEqual(Object.keys(msg.message), []);
});

test("createMessage: allows an empty destination, as system broadcasts use", () => {
  assert.equal(createMessage("").destination, "");
});

test("createMessage: copies the entries into a new null-prototype map", () => {
  const entries = { a: "1" };
  const msg = createMessage("w1", entries);
  entries.a = "changed";
  assert.equal(msg.message.a, "1");
  assert.equal(Object.getPrototypeOf(msg.message), null);
});

test("createMessage: keeps data by reference, without copying", () => {
  const data = new Uint8Array([1, 2, 3]);
  const msg = createMessage("w1", {}, { source: "me", data });
  assert.equal(msg.data, data);
  assert.equal(msg.source, "me");
});

test("createMessage: accepts a null-prototype map and a Uint8Array subclass", () => {
  const entries: Record<string, string> = Object.create(null);
  entries.k = "v";
  class Bytes extends Uint8Array {}
  const msg = createMessage("w1", entries, { data: new Bytes(2) });
  assert.equal(msg.message.k, "v");
  assert.equal(msg.data?.length, 2);
});

test("createMessage: rejects parts of the wrong type with TypeError", () => {
  const bad: Array<() => unknown> = [
    () => createMessage(42 as unknown as string),
    () => createMessage(undefined as unknown as string),
    () => createMessage("w1", null as unknown as Record<string, string>),
    () => createMessage("w1", ["a"] as unknown as Record<string, string>),
    () => createMessage("w1", new Map([["a", "b"]]) as unknown as Record<string, string>),
    () => createMessage("w1", { n: 1 } as unknown as Record<string, string>),
    () => createMessage("w1", { u: undefined } as unknown as Record<string, string>),
    () => createMessage("w1", {}, { source: 7 as unknown as string }),
    () => createMessage("w1", {}, { source: null as unknown as string }),
    () => createMessage("w1", {}, { data: null as unknown as Uint8Array }),
    () => createMessage("w1", {}, { data: [1, 2] as unknown as Uint8Array }),
    () => createMessage("w1", {}, { data: new Uint16Array(2) as unknown as Uint8Array }),
    () => createMessage("w1", {}, null as unknown as object),
  ];
  for (const fn of bad) assert.throws(fn, TypeError);
});

test("createMessage: names the offending key in the error message", () => {
  assert.throws(
    () => createMessage("w1", { count: 3 } as unknown as Record<string, string>),
    { name: "TypeError", message: /message key "count" holds a number, expected a string/ },
  );
});

/** Keys that name Object.prototype members, for the "prototype safety" tests. */
const hostileKeys = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"];

test("prototype safety: hostile keys are ordinary entries and pollute nothing", () => {
  // JSON.parse makes "__proto__" an own property, as a decoded network map would have.
  const fromNetwork = JSON.parse(
    '{"__proto__":{"polluted":"yes"},"constructor":"c","toString":"t"}',
  );
  fromNetwork.__proto__ = "p";
  const msg = createMessage("w1", fromNetwork);
  assert.deepEqual(Object.keys(msg.message).sort(), ["__proto__", "constructor", "toString"]);
  assert.equal(msg.message["__proto__"], "p");
  assert.equal(msg.message.constructor, "c");
  assert.equal(Object.getPrototypeOf(msg.message), null);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.prototype.toString.call({}), "[object Object]");
});

test("prototype safety: absent hostile keys look up as undefined", () => {
  const msg = createMessage("w1", { command: "get" });
  for (const key of hostileKeys) {
    assert.equal(msg.message[key], undefined, key);
    assert.equal(key in msg.message, false, key);
  }
});

test("prototype safety: cloning keeps hostile keys as entries", () => {
  const entries: Record<string, string> = Object.create(null);
  for (const key of hostileKeys) entries[key] = `v-${key}`;
  const copy = cloneMessage(createMessage("w1", entries));
  for (const key of hostileKeys) assert.equal(copy.message[key], `v-${key}`);
  assert.equal(Object.getPrototypeOf(copy.message), null);
});

test("isBroadcastDestination: is true only for ALLNodes and ALLWorkers", () => {
  assert.equal(ALL_NODES, "ALLNodes");
  assert.equal(ALL_WORKERS, "ALLWorkers");
  assert.equal(isBroadcastDestination(ALL_NODES), true);
  assert.equal(isBroadcastDestination(ALL_WORKERS), true);
  for (const d of ["", "allnodes", "ALLNodes ", "Store0001"]) {
    assert.equal(isBroadcastDestination(d), false, d);
  }
});

/** A fresh message with two keys, a source and data, for the "messagesEqual" tests. */
const base = (): MapMessage =>
  createMessage("w1", { a: "1", b: "2" }, { source: "s", data: new Uint8Array([1, 2]) });

test("messagesEqual: ignores key order and map prototypes", () => {
  const plain: MapMessage = {
    destination: "w1",
    source: "s",
    message: { b: "2", a: "1" },
    data: new Uint8Array([1, 2]),
  };
  assert.equal(messagesEqual(base(), plain), true);
  assert.equal(messagesEqual(plain, base()), true);
});

test("messagesEqual: compares data byte by byte, not by identity", () => {
  const a = base();
  const b = base();
  assert.notEqual(a.data, b.data);
  assert.equal(messagesEqual(a, b), true);
  b.data![1] = 3;
  assert.equal(messagesEqual(a, b), false);
});

test("messagesEqual: absent data differs from empty data", () => {
  const none = createMessage("w1");
  const empty = createMessage("w1", {}, { data: new Uint8Array(0) });
  assert.equal(messagesEqual(none, empty), false);
  assert.equal(messagesEqual(empty, createMessage("w1", {}, { data: new Uint8Array(0) })), true);
  assert.equal(
    messagesEqual(none, { destination: "w1", source: "", message: {}, data: undefined }),
    true,
  );
});

test("messagesEqual: differs on destination, source, a value, a missing or an extra key", () => {
  const variants: MapMessage[] = [
    { ...base(), destination: "w2" },
    { ...base(), source: "" },
    { ...base(), message: { a: "1", b: "x" } },
    { ...base(), message: { a: "1" } },
    { ...base(), message: { a: "1", b: "2", c: "3" } },
    { ...base(), message: { a: "1", c: "2" } },
    { ...base(), data: new Uint8Array([1, 2, 3]) },
  ];
  for (const v of variants) {
    assert.equal(messagesEqual(base(), v), false);
    assert.equal(messagesEqual(v, base()), false);
  }
});

test("messagesEqual: an inherited property does not count as a key", () => {
  const inheritsC = Object.assign(Object.create({ c: "3" }), { a: "1", b: "2" });
  assert.equal(messagesEqual(base(), { ...base(), message: inheritsC }), true);
  const ownC = { ...base(), message: { a: "1", c: "3" } };
  assert.equal(messagesEqual(ownC, { ...base(), message: inheritsC }), false);
});

test("cloneMessage: copies map and data deeply", () => {
  const original = createMessage("w1", { k: "v" }, { source: "s", data: new Uint8Array([5, 6]) });
  const copy = cloneMessage(original);
  assert.equal(messagesEqual(copy, original), true);
  assert.notEqual(copy.message, original.message);
  assert.notEqual(copy.data, original.data);
  copy.message.k = "changed";
  copy.data![0] = 0;
  assert.equal(original.message.k, "v");
  assert.equal(original.data![0], 5);
});

test("cloneMessage: copies only the viewed bytes of a data subarray", () => {
  const backing = new Uint8Array([1, 2, 3, 4, 5]);
  const copy = cloneMessage(createMessage("w1", {}, { data: backing.subarray(1, 3) }));
  assert.deepEqual([...copy.data!], [2, 3]);
  assert.equal(copy.data!.buffer.byteLength, 2);
});

test("cloneMessage: keeps data absent when absent", () => {
  assert.equal("data" in cloneMessage(createMessage("w1")), false);
});

test("cloneMessage: rejects what is not a MapMessage with TypeError", () => {
  assert.throws(() => cloneMessage(null as unknown as MapMessage), TypeError);
  assert.throws(
    () =>
      cloneMessage({ destination: "w1", source: "", message: { a: 1 } } as unknown as MapMessage),
    TypeError,
  );
  assert.throws(
    () => cloneMessage({ destination: "w1", message: {} } as unknown as MapMessage),
    TypeError,
  );
});
