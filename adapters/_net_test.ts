import { test } from "node:test";
import assert from "node:assert/strict";
import { NetError } from "../src/platform.ts";
import {
  ByteQueue,
  checkSend,
  codeOf,
  connectError,
  normalizeHost,
  reasonOf,
  settingsOf,
  toNetError,
} from "./_net.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

test("net: the byte queue joins small chunks and survives partial writes", () => {
  const queue = new ByteQueue();
  queue.push(bytes(1, 2));
  queue.push(bytes(3));
  queue.push(bytes(4, 5, 6));
  assert.equal(queue.bytes, 6);
  assert.deepEqual(queue.peek(), bytes(1, 2, 3, 4, 5, 6));
  queue.consume(3);
  assert.deepEqual(queue.peek(), bytes(4, 5, 6));
  queue.consume(1);
  assert.deepEqual(queue.peek(), bytes(5, 6));
  queue.consume(2);
  assert.equal(queue.peek(), undefined);
  assert.equal(queue.bytes, 0);
});

test("net: the byte queue hands a large chunk over without copying, and clears", () => {
  const queue = new ByteQueue();
  const large = new Uint8Array(100_000);
  queue.push(large);
  queue.push(bytes(1));
  const first = queue.peek()!;
  assert.equal(first.buffer, large.buffer);
  queue.consume(99_999);
  assert.deepEqual(queue.peek(), bytes(0, 1));
  queue.clear();
  assert.equal(queue.bytes, 0);
  assert.equal(queue.peek(), undefined);
});

test("net: runtime errors map to NetError codes and close reasons", () => {
  const named = (name: string) => Object.assign(new Error("x"), { name });
  const coded = (code: string) => Object.assign(new Error("x"), { code });
  assert.equal(codeOf(named("AddrInUse")), "EADDRINUSE");
  assert.equal(codeOf(named("ConnectionRefused")), "ECONNREFUSED");
  assert.equal(codeOf(named("BrokenPipe")), "ECONNRESET");
  assert.equal(codeOf(named("TimedOut")), "ETIMEDOUT");
  assert.equal(codeOf(coded("EPIPE")), "ECONNRESET");
  assert.equal(codeOf(coded("EADDRNOTAVAIL")), "EADDRNOTAVAIL");
  assert.equal(codeOf(new Error("Message too long (os error 90)")), "EMSGSIZE");
  assert.equal(codeOf(new URIError("invalid host")), "EINVAL");
  assert.equal(codeOf("weird"), "EIO");
  assert.equal(reasonOf("ECONNREFUSED"), "refused");
  assert.equal(reasonOf("ECONNRESET"), "reset");
  assert.equal(reasonOf("ETIMEDOUT"), "timeout");
  assert.equal(reasonOf("EIO"), "error");
  const wrapped = toNetError(coded("ECONNRESET"), "read from 127.0.0.1:1");
  assert.ok(wrapped instanceof NetError);
  assert.equal(wrapped.message, "Cannot read from 127.0.0.1:1: x");
});

test("net: a reset before a connection opens counts as a refusal", () => {
  const error = connectError(Object.assign(new Error("reset"), { code: "ECONNRESET" }), {
    host: "127.0.0.1",
    port: 5,
  });
  assert.equal(error.code, "ECONNREFUSED");
  assert.match(error.message, /^Cannot connect to 127\.0\.0\.1:5: reset during the handshake/);
});

test("net: datagram sends are checked as the simulator checks them", () => {
  const to = { host: "127.0.0.1", port: 9 };
  assert.throws(() => checkSend(new Uint8Array(65508), to, false), RangeError);
  assert.throws(() => checkSend("x" as unknown as Uint8Array, to, false), TypeError);
  assert.throws(() => checkSend(new Uint8Array(1), to, true), NetError);
  assert.throws(
    () => checkSend(new Uint8Array(1), { host: "127.0.0.1", port: 0 }, false),
    NetError,
  );
  checkSend(new Uint8Array(65507), to, false);
});

test("net: IPv4-mapped IPv6 hosts read as IPv4", () => {
  assert.equal(normalizeHost("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(normalizeHost("::1"), "::1");
  assert.equal(normalizeHost("10.0.0.1"), "10.0.0.1");
});

test("net: platform options are checked", () => {
  assert.equal(settingsOf("Test").highWaterBytes, 1024 * 1024);
  assert.throws(() => settingsOf("Test", { streamHighWaterBytes: 0 }), RangeError);
  assert.throws(() => settingsOf("Test", { endLingerMs: -1 }), RangeError);
  const custom = { log() {} };
  assert.equal(settingsOf("Test", { log: custom }).log, custom);
});
