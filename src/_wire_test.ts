import { test } from "node:test";
import assert from "node:assert/strict";
import { NATIVE_PROTOCOL, ORIGINAL_PROTOCOL, wireProtocol } from "./_wire.ts";
import { FrameDecoder } from "./framing.ts";
import { decodeHello, HandshakeError } from "./system.ts";

const SELF = { guid: "A", incarnation: "i1", codec: "msgpack" as const, address: "10.0.0.1:8888" };
const payload = (frame: Uint8Array) => new FrameDecoder().push(frame)[0];
const context = (direction: "in" | "out", known?: { incarnation: string; address: string }) => ({
  direction,
  dialled: "10.0.0.9:7",
  known: () => known,
});

test("the codec chooses the protocol: json is the original's", () => {
  assert.equal(wireProtocol("json"), ORIGINAL_PROTOCOL);
  assert.equal(wireProtocol("msgpack"), NATIVE_PROTOCOL);
});

test("a native hello carries the node's identity and reads back", () => {
  const hello = NATIVE_PROTOCOL.readHello(payload(NATIVE_PROTOCOL.helloFrame(SELF)), context("in"));
  assert.deepEqual(
    { ...hello },
    { version: 1, guid: "A", incarnation: "i1", codec: "msgpack", address: "10.0.0.1:8888" },
  );
  assert.deepEqual(decodeHello(payload(NATIVE_PROTOCOL.helloFrame(SELF))).guid, "A");
});

test("an original hello is the GUID alone; the rest comes from what is known", () => {
  const frame = payload(ORIGINAL_PROTOCOL.helloFrame(SELF));
  assert.equal(new TextDecoder().decode(frame), "A");
  const out = ORIGINAL_PROTOCOL.readHello(frame, context("out"));
  assert.equal(out.address, "10.0.0.9:7"); // the address dialled
  assert.equal(out.incarnation, "");
  const known = ORIGINAL_PROTOCOL.readHello(
    frame,
    context("in", { incarnation: "k", address: "10.0.0.3:1" }),
  );
  assert.equal(known.address, "10.0.0.3:1");
  assert.equal(known.incarnation, "k");
  assert.equal(known.codec, "json");
});

test("an original hello that is not a GUID is a handshake error", () => {
  for (const bad of [new Uint8Array([0xff, 0xfe]), new Uint8Array(0), new Uint8Array([65, 1])]) {
    assert.throws(() => ORIGINAL_PROTOCOL.readHello(bad, context("in")), HandshakeError);
  }
  assert.throws(
    () => ORIGINAL_PROTOCOL.readHello(new TextEncoder().encode("x".repeat(257)), context("in")),
    /1\.\.256 characters/,
  );
});

test("original peers are given at least three of their 1 s heartbeats of silence", () => {
  assert.equal(ORIGINAL_PROTOCOL.silenceMs(300, 3), 3000);
  assert.equal(ORIGINAL_PROTOCOL.silenceMs(9000, 3), 9000);
  assert.equal(NATIVE_PROTOCOL.silenceMs(300, 3), 300);
});

test("only the original hears the limited broadcast by default, and not on 0.0.0.0 or loopback", () => {
  assert.equal(ORIGINAL_PROTOCOL.limitedBroadcastByDefault("192.168.1.255"), true);
  for (const host of [undefined, "0.0.0.0", "127.255.255.255"]) {
    assert.equal(ORIGINAL_PROTOCOL.limitedBroadcastByDefault(host), false);
  }
  assert.equal(NATIVE_PROTOCOL.limitedBroadcastByDefault("192.168.1.255"), false);
});

test("the original protocol has none of the native link features", () => {
  for (
    const feature of [
      "carriesClusterKey",
      "sharedConnection",
      "keepAlives",
      "sessions",
      "refusals",
      "peerLists",
      "placement",
      "workerSets",
    ] as const
  ) {
    assert.equal(NATIVE_PROTOCOL[feature], true, feature);
    assert.equal(ORIGINAL_PROTOCOL[feature], false, feature);
  }
  assert.equal(ORIGINAL_PROTOCOL.workerAnnouncements, 3);
  assert.equal(NATIVE_PROTOCOL.workerAnnouncements, 0);
});
