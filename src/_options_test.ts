import { test } from "node:test";
import assert from "node:assert/strict";
import { limitsOf, randomHex, resolveOptions } from "./_options.ts";
import type { Random } from "./platform.ts";

/** A Random that records what was drawn. */
function recording(): Random & { draws: string[] } {
  const draws: string[] = [];
  let n = 0;
  return {
    draws,
    next: () => (draws.push("next"), 0.5),
    int: (min, max) => (draws.push(`int ${min}..${max}`), min + (n++ % (max - min + 1))),
    fill: (bytes) => (draws.push(`fill ${bytes.length}`), bytes),
  };
}

const LISTEN = { host: "127.0.0.1", port: 0 };

test("the GUID (when none is given) and then the incarnation are the only draws", () => {
  const random = recording();
  const resolved = resolveOptions(random, { listen: LISTEN });
  assert.equal(random.draws.length, 32 + 16);
  assert.ok(random.draws.every((draw) => draw === "int 0..15"));
  assert.match(resolved.guid, /^[0-9a-f]{32}$/);
  assert.match(resolved.incarnation, /^[0-9a-f]{16}$/);
  const given = recording();
  assert.equal(resolveOptions(given, { guid: "A", listen: LISTEN }).guid, "A");
  assert.equal(given.draws.length, 16);
});

test("defaults and derived bounds follow the heartbeat interval", () => {
  const o = resolveOptions(recording(), { guid: "A", listen: LISTEN, heartbeatIntervalMs: 100 });
  assert.equal(o.silenceMs, 300);
  assert.equal(o.peerSilenceMs, 300);
  assert.equal(o.keepAliveMs, 120); // max(75, 150 - 30)
  assert.equal(o.holderAliveMs, 230); // min(300, 120 + 110)
  assert.equal(o.dialGraceMs, 200);
  assert.equal(o.resendWindowBytes, 8 * o.maxLinkBufferBytes);
  assert.equal(o.portSearch, 1);
  assert.equal(o.advertiseHost, "127.0.0.1");
  assert.equal(o.discovery, undefined);
  assert.equal(o.protocol.name, "native");
  assert.equal(o.auth.authenticated, false);
});

test("the original protocol's peers get at least three of its 1 s heartbeats of silence", () => {
  const o = resolveOptions(recording(), {
    guid: "A",
    listen: LISTEN,
    codec: "json",
    heartbeatIntervalMs: 100,
  });
  assert.equal(o.protocol.name, "original");
  assert.equal(o.silenceMs, 300);
  assert.equal(o.peerSilenceMs, 3000);
});

test("a cluster key chooses the keyed auth, and the original protocol refuses one", () => {
  const keyed = resolveOptions(recording(), { guid: "A", listen: LISTEN, clusterKey: "k" });
  assert.equal(keyed.auth.authenticated, true);
  assert.throws(
    () =>
      resolveOptions(recording(), { guid: "A", listen: LISTEN, clusterKey: "k", codec: "json" }),
    /Cannot create node: the original protocol \(codec "json"\) cannot carry a cluster key/,
  );
  assert.throws(
    () => resolveOptions(recording(), { guid: "A", listen: LISTEN, clusterKey: "" }),
    TypeError,
  );
});

test("bad options are refused with the first one named", () => {
  const bad: Array<[object, RegExp]> = [
    [{ guid: "" }, /guid must be a string of 1\.\.256 characters/],
    [{ guid: "ALLNodes" }, /"ALLNodes" is a reserved destination/],
    [{ heartbeatIntervalMs: 0, maxLinks: -1 }, /heartbeatIntervalMs 0 is not a positive number/],
    [{ heartbeatJitter: 1 }, /heartbeatJitter 1 is not in \[0, 1\)/],
    [{ maxLinks: Infinity }, /maxLinks Infinity is not a positive number/],
    [{ storage: {} }, /storage must be a Storage object/],
    [{ tracerProvider: {} }, /tracerProvider must be a TracerProvider or false/],
    [{ discovery: {} }, /discovery.broadcastAddress must be a string/],
    [{ listen: { host: "0.0.0.0", port: 1 } }, /listening on 0.0.0.0 needs advertiseHost/],
  ];
  for (const [options, message] of bad) {
    assert.throws(
      () => resolveOptions(recording(), { guid: "A", listen: LISTEN, ...options }),
      message,
    );
  }
});

test("seeds are parsed once, as addresses", () => {
  const o = resolveOptions(recording(), {
    guid: "A",
    listen: LISTEN,
    seeds: ["10.0.0.1:8888", { host: "10.0.0.2", port: 9 }],
  });
  assert.deepEqual(o.seeds, [{ host: "10.0.0.1", port: 8888 }, { host: "10.0.0.2", port: 9 }]);
});

test("random hex has the digits asked for", () => {
  assert.equal(randomHex(recording(), 8), "01234567");
});

test("the limits shown in the state are the resolved ones, silence as peers get it", () => {
  const o = resolveOptions(recording(), { guid: "A", listen: LISTEN, codec: "json", maxLinks: 7 });
  const limits = limitsOf(o);
  assert.equal(limits.maxLinks, 7);
  assert.equal(limits.silenceMs, o.peerSilenceMs);
  assert.deepEqual(Object.keys(limits), [
    "maxFrameBytes",
    "maxLinkBufferBytes",
    "resendWindowMs",
    "resendWindowBytes",
    "maxLinks",
    "maxPendingHandshakes",
    "maxDatagramBytes",
    "handshakeTimeoutMs",
    "silenceMs",
  ]);
});
