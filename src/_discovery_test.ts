import { test } from "node:test";
import assert from "node:assert/strict";
import { Discovery, type DiscoveryHost, type HeardPeer, LIMITED_BROADCAST } from "./_discovery.ts";
import { type ClusterAuth, keyedClusterAuth, NO_CLUSTER_AUTH } from "./_auth.ts";
import { ClusterKey } from "./_cluster_key.ts";
import { NATIVE_PROTOCOL, ORIGINAL_PROTOCOL, type WireProtocol } from "./_wire.ts";
import { type Codec, jsonCodec, msgpackCodec } from "./codec.ts";
import { createMessage, type MapMessage } from "./message.ts";
import type { Address, DatagramBindOptions, DatagramHandlers, Net } from "./platform.ts";
import { SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";

const FROM: Address = { host: "10.0.0.2", port: 9999 };
const SELF = { guid: "A", incarnation: "a1", codec: "msgpack" as const, address: "10.0.0.1:8888" };

function world(options: {
  auth?: ClusterAuth;
  protocol?: WireProtocol;
  codec?: Codec;
  bindHost?: string;
} = {}) {
  const sockets: Array<{ options: DatagramBindOptions; handlers: DatagramHandlers }> = [];
  const sent: Array<{ bytes: Uint8Array; to: Address }> = [];
  const calls: string[] = [];
  let nowMs = 0;
  let running = true;
  const peer: HeardPeer = {
    linked: false,
    forgotten: false,
    address: "10.0.0.2:8888",
    incarnation: "b1",
    lastHeardMs: -1,
  };
  const net = {
    bindDatagram: (bind: DatagramBindOptions, handlers: DatagramHandlers) => {
      sockets.push({ options: bind, handlers });
      return { send: (bytes: Uint8Array, to: Address) => sent.push({ bytes, to }), close() {} };
    },
  } as unknown as Net;
  const host: DiscoveryHost = {
    net,
    clock: { now: () => nowMs } as DiscoveryHost["clock"],
    log: { log: () => {} } as unknown as DiscoveryHost["log"],
    stats: {
      heartbeatsSent: 0,
      heartbeatsReceived: 0,
      datagramErrors: 0,
      authFailures: 0,
      replaysDropped: 0,
    },
    running: () => running,
    onHeartbeat: (guid, address, incarnation) => {
      calls.push(`heartbeat ${guid} ${address} ${incarnation}`);
      return peer;
    },
    onSystem: (message) => calls.push(`system ${message.message[SYSTEM_KEY]}`),
    onMessage: (message) => calls.push(`message ${message.destination}`),
    onBadDatagram: (source, error) => calls.push(`bad ${source} ${error}`),
  };
  const discovery = new Discovery(host, {
    config: { broadcastAddress: "10.255.255.255", bindHost: options.bindHost },
    protocol: options.protocol ?? NATIVE_PROTOCOL,
    auth: options.auth ?? NO_CLUSTER_AUTH,
    codec: options.codec ?? msgpackCodec,
    maxDatagramBytes: 1024,
  });
  return {
    discovery,
    host,
    sockets,
    sent,
    calls,
    peer,
    advance: (ms: number) => nowMs += ms,
    stop: () => running = false,
  };
}

const heartbeatOf = (guid: string, incarnation = "b1") =>
  msgpackCodec.encode({
    destination: "",
    source: "",
    message: {
      [SYSTEM_KEY]: SystemKind.NodeLocation,
      [SystemField.NodeGuid]: guid,
      [SystemField.HostEndpoint]: "10.0.0.2:8888",
      [SystemField.Version]: "1",
      [SystemField.Incarnation]: incarnation,
    },
  });

test("a heartbeat goes out once the socket is ready and at each tick", () => {
  const w = world();
  w.discovery.start(SELF);
  assert.equal(w.sockets.length, 1);
  assert.deepEqual(w.sockets[0].options, {
    host: "0.0.0.0",
    port: 9999,
    reuseAddress: true,
    broadcast: true,
  });
  w.sockets[0].handlers.onReady!({} as never);
  w.discovery.sendHeartbeat();
  assert.equal(w.sent.length, 2);
  assert.equal(w.host.stats.heartbeatsSent, 2);
  assert.deepEqual(w.sent[0].to, { host: "10.255.255.255", port: 9999 });
  const fields = msgpackCodec.decode(w.sent[0].bytes).message;
  assert.equal(fields[SystemField.NodeGuid], "A");
  w.stop();
  w.discovery.sendHeartbeat();
  assert.equal(w.sent.length, 2, "nothing is sent once the node stopped");
});

test("a new worker is announced on the next heartbeats as many times as asked, then no more", () => {
  const w = world({ protocol: ORIGINAL_PROTOCOL, codec: jsonCodec });
  w.discovery.start({ ...SELF, codec: "json" });
  w.discovery.announce("w1", 2);
  w.discovery.announce("w2", 3);
  w.discovery.announce("none", 0);
  for (let i = 0; i < 4; i++) w.discovery.sendHeartbeat();
  const announced = w.sent
    .map((s) => jsonCodec.decode(s.bytes))
    .filter((m) => m.message[SYSTEM_KEY] === SystemKind.WorkerLocation)
    .map((m) =>
      `${m.source}:${m.message[SystemField.NodeGuid]}:${m.message[SystemField.WorkerGuid]}`
    );
  assert.deepEqual(announced, [":A:w1", ":A:w2", ":A:w1", ":A:w2", ":A:w2"]);
  w.discovery.announce("w3", 3);
  w.discovery.forget("w3");
  w.discovery.sendHeartbeat();
  assert.equal(w.sent.length, 4 + 5 + 1);
});

test("the original protocol also listens on the limited broadcast address on a LAN", () => {
  const w = world({ protocol: ORIGINAL_PROTOCOL, codec: jsonCodec, bindHost: "192.168.1.255" });
  w.discovery.start(SELF);
  assert.deepEqual(w.sockets.map((s) => s.options.host), ["192.168.1.255", LIMITED_BROADCAST]);
  const native = world({ bindHost: "192.168.1.255" });
  native.discovery.start(SELF);
  assert.equal(native.sockets.length, 1);
});

test("a linked peer's unchanged heartbeat only notes the time; a changed one is read again", () => {
  const w = world();
  w.discovery.receive(heartbeatOf("B"), FROM);
  assert.deepEqual(w.calls, ["heartbeat B 10.0.0.2:8888 b1"]);
  (w.peer as { linked: boolean }).linked = true;
  w.advance(500);
  w.discovery.receive(heartbeatOf("B"), FROM);
  assert.equal(w.calls.length, 1, "the fast path does not call the node");
  assert.equal(w.peer.lastHeardMs, 500);
  assert.equal(w.host.stats.heartbeatsReceived, 1);
  w.discovery.receive(heartbeatOf("B", "b2"), FROM);
  assert.deepEqual(w.calls.slice(1), ["heartbeat B 10.0.0.2:8888 b2"]);
  (w.peer as { linked: boolean }).linked = false;
  w.discovery.receive(heartbeatOf("B", "b2"), FROM);
  assert.equal(w.calls.length, 3, "an unlinked peer's heartbeat goes to the node each time");
});

test("user messages and other system datagrams are handed on, in either codec", () => {
  const w = world();
  w.discovery.receive(msgpackCodec.encode(createMessage("w1", { k: "v" })), FROM);
  w.discovery.receive(jsonCodec.encode(createMessage("w2", { k: "v" })), FROM);
  const location: MapMessage = {
    destination: "",
    source: "",
    message: { [SYSTEM_KEY]: SystemKind.WorkerLocation, [SystemField.NodeGuid]: "B" },
  };
  w.discovery.receive(jsonCodec.encode(location), FROM);
  w.discovery.receive(jsonCodec.encode(location), FROM); // from the cache, the same again
  assert.deepEqual(w.calls, [
    "message w1",
    "message w2",
    `system ${SystemKind.WorkerLocation}`,
    `system ${SystemKind.WorkerLocation}`,
  ]);
});

test("junk is counted every time and reported once per source per 10 s", () => {
  const w = world();
  w.discovery.receive(new Uint8Array(2000), FROM);
  w.discovery.receive(new Uint8Array([0x7b, 1]), FROM);
  const nameless = msgpackCodec.encode({
    destination: "",
    source: "",
    message: { [SYSTEM_KEY]: SystemKind.NodeLocation },
  });
  w.discovery.receive(nameless, FROM);
  assert.equal(w.host.stats.datagramErrors, 3);
  assert.equal(w.calls.length, 1);
  assert.match(
    w.calls[0],
    /^bad 10\.0\.0\.2:9999 Cannot use datagram: 2000 bytes, over maxDatagramBytes 1024/,
  );
  w.advance(10_000);
  w.discovery.receive(nameless, FROM);
  assert.match(w.calls[1], /Cannot use heartbeat: no node GUID or address/);
  w.stop();
  w.discovery.receive(nameless, FROM);
  assert.equal(w.host.stats.datagramErrors, 4, "a stopped node reads nothing");
});

test("with a cluster key only signed, fresh heartbeats count", () => {
  const key = new ClusterKey("k");
  const w = world({ auth: keyedClusterAuth(key) });
  const next = keyedClusterAuth(key).heartbeats(msgpackCodec, { ...SELF, guid: "B" });
  const first = next();
  const second = next();
  w.discovery.receive(second, FROM);
  w.discovery.receive(second, FROM);
  w.discovery.receive(first, FROM);
  w.discovery.receive(heartbeatOf("C"), FROM);
  w.discovery.receive(msgpackCodec.encode(createMessage("w1", { k: "v" })), FROM);
  assert.deepEqual(w.calls.filter((c) => c.startsWith("heartbeat")), [
    "heartbeat B 10.0.0.1:8888 a1",
  ]);
  assert.equal(w.host.stats.replaysDropped, 2);
  assert.equal(w.host.stats.authFailures, 2);
  assert.equal(w.calls.filter((c) => c.startsWith("message")).length, 0);
});
