/**
 * The cluster key in the simulator: keyed nodes link and talk; a node with a wrong key or
 * none can neither link nor get a message in; replayed heartbeats and handshakes are refused.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Simulation } from "../../sim/simulation.ts";
import { createSimCluster, RecordingWorker, workerGuid } from "../../sim/cluster.ts";
import { echoRing } from "./_ring_cluster.ts";
import { AutoMpiNode, type NodeEvents, type NodeOptions } from "../../src/node.ts";
import { ALL_WORKERS, createMessage, type MapMessage } from "../../src/message.ts";
import { msgpackCodec } from "../../src/codec.ts";
import { encodeFrame } from "../../src/framing.ts";
import {
  decodeHello,
  decodeProof,
  encodeHello,
  encodeProof,
  HandshakeError,
  SystemField,
} from "../../src/system.ts";
import type { Platform } from "../../src/platform.ts";
import { encodeMembership } from "../../src/_membership_codec.ts";
import { SEAL_BYTES } from "../../src/_auth.ts";

const BROADCAST = "10.0.255.255";
const KEY = "correct horse battery staple";

type Recorded = { node: string; type: keyof NodeEvents; event: Record<string, unknown> };

/** A simulation whose nodes record their events, each with one RecordingWorker `W<guid>`. */
function world(seed: number, simOptions: ConstructorParameters<typeof Simulation>[0] = {}) {
  const sim = new Simulation({ seed, ...simOptions });
  const events: Recorded[] = [];
  const inbox = new Map<string, MapMessage[]>();
  const add = (guid: string, options: Partial<NodeOptions> = {}) =>
    sim.addHost(guid, (platform, host) => {
      const node = new AutoMpiNode(platform, {
        guid,
        listen: { host: host.address, port: 8888 },
        discovery: { broadcastAddress: BROADCAST },
        ...options,
      });
      for (
        const type of [
          "link-up",
          "link-down",
          "peer-discovered",
          "peer-lost",
          "protocol-error",
        ] as const
      ) {
        node.on(type, (event) => events.push({ node: guid, type, event }));
      }
      inbox.set(guid, []);
      node.onMessage((message) => inbox.get(guid)!.push(message));
      node.start();
      node.attachWorker(new RecordingWorker(`W${guid}`));
      return node;
    });
  const of = (node: string, type: keyof NodeEvents) =>
    events.filter((e) => e.node === node && e.type === type).map((e) => e.event);
  /** A host with no node: its platform, to send raw bytes from. */
  const raw = (name: string) => sim.addHost(name, (platform: Platform) => platform);
  return { sim, add, raw, events, inbox, of };
}

function workerOf(node: AutoMpiNode, guid: string): RecordingWorker {
  return node.worker(guid) as RecordingWorker;
}

test("nodes with the same cluster key form a mesh and a message reaches a worker on another node", () => {
  const cluster = createSimCluster({ nodes: 5, seed: 41, node: { clusterKey: KEY } });
  assert.ok(cluster.sim.runUntil(() => cluster.converged(), 10_000), "the keyed mesh formed");
  const [first, , , , last] = cluster.liveNodes();
  assert.equal(first.state().authenticated, true);
  assert.ok(first.send(createMessage(workerGuid(4), { n: "1" }, { source: "test" })));
  cluster.sim.run(100);
  const worker = last.worker(workerGuid(4)) as RecordingWorker;
  assert.deepEqual(worker.received.map((m) => m.message.n), ["1"]);
  for (const node of cluster.liveNodes()) {
    const stats = node.state().stats;
    assert.equal(stats.authFailures, 0);
    assert.equal(stats.protocolErrors, 0);
    assert.ok(stats.heartbeatsReceived > 0);
  }
});

test("nodes with a wrong key or none never link to keyed nodes, and both sides say why", () => {
  const { sim, add, events, of } = world(42);
  const a = add("A", { clusterKey: KEY });
  const b = add("B", { clusterKey: KEY });
  // C and D hear A's heartbeats, and dial A by seed too: every way in is tried.
  const c = add("C", { clusterKey: "a different key", seeds: ["10.0.0.1:8888"] });
  const d = add("D", { seeds: ["10.0.0.1:8888"] });
  sim.run(8000);
  assert.deepEqual(a.app!.linkedPeers(), ["B"]);
  assert.deepEqual(b.app!.linkedPeers(), ["A"]);
  assert.deepEqual(c.app!.linkedPeers(), []);
  assert.deepEqual(d.app!.linkedPeers(), []);
  const ups = events.filter((e) => e.type === "link-up");
  assert.deepEqual(ups.map((e) => `${e.node}->${e.event.peer}`).sort(), ["A->B", "B->A"]);
  // A refuses C's proof and D's keyless hello; C refuses A's proof; D refuses A's key challenge.
  const aErrors = of("A", "protocol-error").map((e) => String(e.error));
  assert.ok(aErrors.some((e) => /did not prove the cluster key \(wrong key/.test(e)), aErrors[0]);
  assert.ok(aErrors.some((e) => /did not prove the cluster key \(its hello has no key/.test(e)));
  assert.ok(
    of("C", "protocol-error").some((e) => /did not prove the cluster key/.test(String(e.error))),
  );
  assert.ok(
    of("D", "protocol-error").some((e) =>
      /peer requires a cluster key, and this node has none/.test(String(e.error))
    ),
  );
  // Keyed nodes do not even learn of C (its heartbeats are not signed with their key); C does
  // not learn of them either. D (no key) hears them, so it dials and is refused.
  assert.equal(of("A", "peer-discovered").some((e) => e.peer === "C"), false);
  assert.equal(of("C", "peer-discovered").some((e) => e.peer === "A"), false);
  assert.ok(a.app!.state().stats.authFailures > 0);
  assert.ok(d.app!.state().stats.authFailures > 0);
  // Nothing crashed: A and B still talk, and C and D still run.
  assert.ok(c.app!.running && d.app!.running);
  assert.ok(a.app!.send(createMessage("WB", { n: "1" })));
  sim.run(100);
  assert.equal(workerOf(b.app!, "WB").received.length, 1);
  // The keyless and wrong-key nodes cannot reach B's worker: they do not know where it is.
  assert.equal(d.app!.send(createMessage("WB", { n: "2" })), false);
  assert.equal(c.app!.send(createMessage("WB", { n: "3" })), false);
  sim.run(100);
  assert.equal(workerOf(b.app!, "WB").received.length, 1);
});

test("without the key no message gets to a keyed node's worker: not by datagram, not by link", () => {
  const { sim, add, raw, inbox, of } = world(43);
  const a = add("A", { clusterKey: KEY });
  const evil = raw("evil");
  sim.run(500);
  const net = evil.app!.net;
  const socket = net.bindDatagram({ host: "0.0.0.0", port: 9999, broadcast: true }, {
    onMessage() {},
  });
  const toWorker = msgpackCodec.encode(createMessage("WA", { n: "datagram" }));
  const toAll = msgpackCodec.encode(createMessage(ALL_WORKERS, { n: "all" }));
  socket.send(toWorker, { host: "10.0.0.1", port: 9999 });
  socket.send(toAll, { host: BROADCAST, port: 9999 });
  // Over TCP: a keyless hello, then a message; and a keyed-looking hello with a made-up proof.
  const message = encodeFrame(msgpackCodec.encode(createMessage("WA", { n: "link" })));
  const keyless = encodeFrame(encodeHello({
    version: 1,
    guid: "Evil1",
    incarnation: "0",
    codec: "msgpack",
    address: `${evil.address}:8888`,
  }));
  const forged = encodeFrame(encodeHello({
    version: 1,
    guid: "Evil2",
    incarnation: "0",
    codec: "msgpack",
    address: `${evil.address}:8888`,
    nonce: new Uint8Array(16).fill(9),
  }));
  const proof = encodeFrame(encodeProof(new Uint8Array(32).fill(1)));
  const heard: Uint8Array[] = [];
  for (const bytes of [[keyless, message], [forged, proof, message], [forged, message]]) {
    net.connect({ host: "10.0.0.1", port: 8888 }, {
      onOpen(conn) {
        for (const chunk of bytes) conn.write(chunk);
      },
      onData(_conn, data) {
        heard.push(data);
      },
      onClose() {},
    });
  }
  sim.run(3000);
  assert.equal(workerOf(a.app!, "WA").received.length, 0);
  assert.deepEqual(inbox.get("A"), []);
  assert.deepEqual(a.app!.linkedPeers(), []);
  assert.equal(of("A", "link-up").length, 0);
  const errors = of("A", "protocol-error").map((e) => `${e.stage}: ${e.error}`);
  assert.equal(errors.filter((e) => e.startsWith("datagram: ")).length, 1, "rate-limited");
  assert.match(errors.find((e) => e.startsWith("datagram: "))!, /only signed heartbeats/);
  const handshakes = errors.filter((e) => e.startsWith("handshake: "));
  assert.equal(handshakes.length, 3, errors.join("\n"));
  assert.ok(handshakes.every((e) => /did not prove the cluster key/.test(e)), errors.join("\n"));
  assert.equal(a.app!.state().stats.authFailures, 5);
  // All A ever said on those connections: its hello (with a nonce), and for the two keyed
  // hellos its proof, which is of no use on any other connection.
  assert.ok(heard.length > 0);
});

test("a replayed heartbeat is dropped: captured heartbeats do not bring back a crashed node", () => {
  const { sim, add, raw, of } = world(44);
  const a = add("A", { clusterKey: KEY });
  add("B", { clusterKey: KEY });
  const captured: Uint8Array[] = [];
  sim.setPacketRule((packet) => {
    if (packet.kind === "datagram" && packet.from === "B" && packet.to === "A") {
      captured.push(packet.data!.slice());
    }
  });
  sim.run(3000);
  sim.setPacketRule(undefined);
  assert.deepEqual(a.app!.linkedPeers(), ["B"]);
  assert.ok(captured.length >= 2);
  sim.crash("B");
  sim.run(6000);
  assert.equal(of("A", "peer-lost").filter((e) => e.peer === "B").length, 1, "A lost B");
  const discovered = of("A", "peer-discovered").length;
  const evil = raw("evil");
  const socket = evil.app!.net.bindDatagram(
    { host: "0.0.0.0", port: 9999, broadcast: true },
    { onMessage() {} },
  );
  const before = a.app!.state().stats;
  for (const bytes of captured) socket.send(bytes, { host: BROADCAST, port: 9999 });
  sim.run(500);
  let after = a.app!.state().stats;
  assert.equal(after.replaysDropped - before.replaysDropped, captured.length);
  assert.equal(of("A", "peer-discovered").length, discovered, "B was not rediscovered");
  assert.equal(a.app!.state().peers.some((p) => p.guid === "B"), false);
  // A captured heartbeat with its address changed (say, to lure dials elsewhere) or its
  // number raised no longer matches its tag.
  const original = msgpackCodec.decode(captured.at(-1)!);
  const changes: Array<Record<string, string>> = [
    { [SystemField.HostEndpoint]: "10.0.0.66:8888" },
    { [SystemField.Sequence]: "999999" },
  ];
  for (const change of changes) {
    const tampered = { ...original, message: { ...original.message, ...change } };
    socket.send(msgpackCodec.encode(tampered), { host: BROADCAST, port: 9999 });
  }
  sim.run(500);
  after = a.app!.state().stats;
  assert.equal(after.authFailures - before.authFailures, 2);
  assert.equal(of("A", "peer-discovered").length, discovered);
});

test("heartbeats the network duplicates or reorders are dropped, and the keyed mesh still forms", () => {
  const cluster = createSimCluster({
    nodes: 4,
    seed: 45,
    duplicateProbability: 0.3,
    latencyMsMin: 1,
    latencyMsMax: 40,
    node: { clusterKey: KEY, heartbeatIntervalMs: 20, silenceIntervals: 5 },
  });
  assert.ok(cluster.sim.runUntil(() => cluster.converged(), 10_000));
  cluster.sim.run(2000);
  assert.ok(cluster.converged());
  const dropped = cluster.liveNodes().reduce((n, node) => n + node.state().stats.replaysDropped, 0);
  assert.ok(dropped > 0, "some duplicates were dropped");
  for (const node of cluster.liveNodes()) assert.equal(node.state().stats.authFailures, 0);
});

test("a recorded handshake replayed on a new connection fails its proof, and the real link stays", () => {
  const { sim, add, raw, of } = world(46);
  add("A", { clusterKey: KEY });
  const b = add("B", { clusterKey: KEY });
  // A has the lower GUID, so A dials B: record what A sends on that connection.
  let port: number | undefined;
  const stream: Uint8Array[] = [];
  sim.setPacketRule((packet) => {
    if (packet.kind !== "data" || packet.from !== "A" || packet.to !== "B") return;
    port ??= packet.fromAddress.port;
    if (packet.fromAddress.port === port && packet.attempt === 0) stream.push(packet.data!.slice());
  });
  sim.run(2000);
  sim.setPacketRule(undefined);
  assert.deepEqual(b.app!.linkedPeers(), ["A"]);
  // The recording starts with A's hello (with A's nonce for that connection) and A's proof.
  const recorded = new Uint8Array(stream.reduce((n, s) => n + s.length, 0));
  stream.reduce((offset, s) => (recorded.set(s, offset), offset + s.length), 0);
  const helloBytes = recorded.subarray(4, 4 + new DataView(recorded.buffer).getUint32(0, true));
  assert.equal(decodeHello(helloBytes).guid, "A");
  assert.ok(decodeHello(helloBytes).nonce);
  const evil = raw("evil");
  evil.app!.net.connect({ host: b.address, port: 8888 }, {
    onOpen: (conn) => void conn.write(recorded),
    onData() {},
    onClose() {},
  });
  sim.run(2000);
  const errors = of("B", "protocol-error").map((e) => String(e.error));
  assert.equal(errors.length, 1);
  assert.match(errors[0], /did not prove the cluster key \(wrong key, or a replayed proof\)/);
  assert.deepEqual(b.app!.linkedPeers(), ["A"]);
  assert.equal(of("B", "link-up").length, 1);
  assert.equal(of("B", "link-down").length, 0, "the real link to A was not touched");
  assert.equal(workerOf(b.app!, "WB").received.length, 0);
});

test("a signed heartbeat of an old incarnation, never seen before, does not take a link down", () => {
  const { sim, add, raw, of } = world(47);
  add("A", { clusterKey: KEY });
  const b = add("B", { clusterKey: KEY });
  const captured: Uint8Array[] = [];
  sim.setPacketRule((packet) => {
    if (packet.kind === "datagram" && packet.from === "B" && packet.to === "A") {
      captured.push(packet.data!.slice());
    }
  });
  sim.run(2000);
  sim.setPacketRule(undefined);
  // B restarts: a new incarnation, and A links to it again.
  sim.crash("B");
  sim.restart("B");
  const a = sim.host<AutoMpiNode>("A").app!;
  assert.ok(
    sim.runUntil(() => b.app!.linkedPeers().includes("A") && of("A", "link-up").length === 2, 5000),
    "A and the new B linked",
  );
  assert.equal(a.state().links[0].incarnation, b.app!.incarnation);
  // C joins later and links to both; then it is fed the heartbeats of B's first life.
  const c = add("C", { clusterKey: KEY });
  assert.ok(sim.runUntil(() => c.app!.linkedPeers().length === 2, 10_000), "C linked");
  const socket = raw("evil").app!.net.bindDatagram(
    { host: "0.0.0.0", port: 9999, broadcast: true },
    { onMessage() {} },
  );
  for (const bytes of captured) socket.send(bytes, { host: c.address, port: 9999 });
  sim.run(1000);
  assert.equal(of("C", "link-down").length, 0, "C kept its link to B");
  assert.deepEqual(c.app!.linkedPeers().sort(), ["A", "B"]);
});

test("the hello carries a key challenge only when keyed; proofs decode strictly", () => {
  const base = {
    version: 1,
    guid: "A",
    incarnation: "1",
    codec: "msgpack" as const,
    address: "10.0.0.1:8888",
  };
  assert.equal(decodeHello(encodeHello(base)).nonce, undefined);
  const nonce = new Uint8Array(16).fill(3);
  assert.deepEqual(decodeHello(encodeHello({ ...base, nonce })).nonce, nonce);
  assert.ok(encodeHello({ ...base, nonce }).length > encodeHello(base).length);
  assert.throws(
    () => decodeHello(encodeHello({ ...base, nonce: new Uint8Array(4) })),
    HandshakeError,
  );
  const tag = new Uint8Array(32).fill(5);
  assert.deepEqual(decodeProof(encodeProof(tag)), tag);
  assert.throws(() => decodeProof(encodeProof(new Uint8Array(31))), HandshakeError);
  assert.throws(
    () => decodeProof(msgpackCodec.encode(createMessage("WA", { n: "1" }))),
    /did not prove the cluster key/,
  );
});

test("a cluster key with the original protocol, or an empty one, is a TypeError", () => {
  const sim = new Simulation({ seed: 48 });
  const host = sim.addHost("h", (platform) => platform);
  const listen = { host: host.address, port: 8888 };
  assert.throws(
    () => new AutoMpiNode(host.app!, { guid: "A", listen, codec: "json", clusterKey: KEY }),
    (error: unknown) =>
      error instanceof TypeError && /original protocol .* cannot carry a cluster key/.test(
        error.message,
      ),
  );
  assert.throws(() => new AutoMpiNode(host.app!, { guid: "A", listen, clusterKey: "" }), TypeError);
  assert.throws(
    () => new AutoMpiNode(host.app!, { guid: "A", listen, clusterKey: 42 as unknown as string }),
    TypeError,
  );
  assert.equal(new AutoMpiNode(host.app!, { guid: "A", listen }).state().authenticated, false);
  const bytes = new AutoMpiNode(host.app!, {
    guid: "A",
    listen,
    clusterKey: new Uint8Array([1, 2, 3]),
  });
  assert.equal(bytes.state().authenticated, true);
});

test("a keyed cluster is as deterministic as a keyless one: the same seed, the same trace", () => {
  const run = () => {
    const cluster = createSimCluster({ nodes: 4, seed: 49, node: { clusterKey: KEY } });
    cluster.sim.run(3000);
    return cluster.sim.traceHash;
  };
  assert.equal(run(), run());
});

/** A ring cluster of `n` nodes under the key, each with an echo worker `echo<i>`. */
const keyedRing = (n: number, seed: number, more = {}) =>
  echoRing(n, seed, more, { clusterKey: KEY });

test("ring nodes with the same cluster key converge across subnets and reach every worker", () => {
  const cluster = keyedRing(12, 51, { subnets: 2 });
  assert.ok(cluster.runUntil(() => cluster.converged(), 20_000), "the keyed ring converged");
  const clients = Array.from({ length: 12 }, (_, i) => cluster.client(i, `app${i}`));
  for (let i = 0; i < 12; i++) assert.ok(clients[i].send(`echo${(i + 5) % 12}`, { n: `${i}` }));
  cluster.run(3000);
  assert.deepEqual(clients.map((c) => c.received.length), new Array(12).fill(1));
  for (const node of cluster.liveNodes()) {
    assert.equal(node.state().authenticated, true);
    assert.equal(node.membership().alive, 12);
    assert.equal(node.state().stats.authFailures, 0);
    assert.equal(node.state().stats.datagramErrors, 0);
  }
  assert.deepEqual(cluster.violations(), []);
});

test("a ring node with a wrong key or none never becomes a member of a keyed ring", () => {
  const { sim, add, of } = world(52);
  const ring = { membership: "ring" as const };
  const seeds = ["10.0.0.1:8888"];
  const a = add("A", { ...ring, clusterKey: KEY });
  const b = add("B", { ...ring, clusterKey: KEY, seeds });
  const c = add("C", { ...ring, clusterKey: "a different key", seeds });
  const d = add("D", { ...ring, seeds });
  sim.run(15_000);
  assert.equal(a.app!.membership().alive, 2);
  assert.equal(b.app!.membership().alive, 2);
  for (const keyed of ["A", "B"]) {
    const members = of(keyed, "peer-discovered").map((e) => e.peer);
    assert.ok(!members.includes("C") && !members.includes("D"), `${keyed}: ${members}`);
  }
  // C's sealed joins fail A's check, and so do D's plain ones: both are counted and said.
  assert.ok(a.app!.state().stats.authFailures > 0);
  const errors = of("A", "protocol-error").map((e) => String(e.error));
  assert.ok(errors.some((e) => /Cannot read ring datagram: it is not sealed with/.test(e)));
  // The keyed pair still works, and the others still run.
  assert.ok(c.app!.running && d.app!.running);
  assert.ok(a.app!.send(createMessage("WB", { n: "1" })));
  sim.run(500);
  assert.equal(workerOf(b.app!, "WB").received.length, 1);
});

test("unsealed membership datagrams sent to a keyed ring node are refused and counted, reported once per source per 10 s; the node goes on", () => {
  const { sim, add, raw, of } = world(53);
  const a = add("A", { membership: "ring", clusterKey: KEY });
  const evil = raw("evil");
  const other = raw("other");
  sim.run(500);
  const socket = evil.app!.net.bindDatagram({ host: "0.0.0.0", port: 0 }, { onMessage() {} });
  // A made-up member, and one that claims A itself is dead: neither may be taken.
  const forged = encodeMembership({
    kind: "gossip",
    from: "Evil",
    updates: [
      { guid: "Evil", address: `${evil.address}:8888`, version: 1, status: "alive" },
      { guid: "A", address: "10.0.0.1:8888", version: 10 ** 15, status: "dead" },
    ],
  });
  socket.send(forged, { host: "10.0.0.1", port: 8888 });
  const sealedLooking = new Uint8Array(forged.length + SEAL_BYTES);
  sealedLooking.set(forged);
  socket.send(sealedLooking, { host: "10.0.0.1", port: 8888 });
  socket.send(new Uint8Array(3), { host: "10.0.0.1", port: 8888 });
  sim.run(1000);
  assert.equal(a.app!.membership().alive, 1);
  assert.equal(a.app!.membership().dead, 0);
  assert.equal(a.app!.state().stats.authFailures, 3);
  const reported = () =>
    of("A", "protocol-error").map((e) => String(e.error)).filter((e) =>
      /^Cannot read ring datagram/.test(e)
    );
  // All three counted; one said (the first), the others held back for this source's window.
  assert.deepEqual(reported(), [
    "Cannot read ring datagram: it is not sealed with the cluster key",
  ]);
  // A spray from the same source: every datagram counted, none said within the window…
  for (let i = 0; i < 500; i++) socket.send(sealedLooking, { host: "10.0.0.1", port: 8888 });
  sim.run(1000);
  assert.equal(a.app!.state().stats.authFailures, 503);
  assert.equal(reported().length, 1);
  // …while another source is said at once.
  const otherSocket = other.app!.net.bindDatagram({ host: "0.0.0.0", port: 0 }, {
    onMessage() {},
  });
  otherSocket.send(sealedLooking, { host: "10.0.0.1", port: 8888 });
  sim.run(500);
  assert.equal(reported().length, 2);
  assert.equal(
    of("A", "protocol-error").at(-1)!.address,
    `${other.address}:${otherSocket.local.port}`,
  );
  // The first source's next datagram after its window is said, with how many were held back.
  sim.run(10_000);
  socket.send(new Uint8Array(3), { host: "10.0.0.1", port: 8888 });
  sim.run(500);
  assert.equal(reported().length, 3);
  assert.equal(
    reported()[2],
    "Cannot read ring datagram: too short to be sealed with the cluster key (502 more from this source since the last report)",
  );
  assert.equal(a.app!.state().stats.authFailures, 505);
  assert.ok(a.app!.running);
  assert.equal(a.app!.membership().alive, 1);
});

test("ring datagrams the network duplicates are dropped as seen before, and the keyed ring still converges", () => {
  const cluster = keyedRing(8, 54, { duplicateProbability: 0.3 });
  assert.ok(cluster.runUntil(() => cluster.converged(), 20_000), "the keyed ring converged");
  cluster.run(5000);
  const stats = cluster.liveNodes().map((node) => node.state().stats);
  assert.ok(stats.reduce((sum, s) => sum + s.replaysDropped, 0) > 0);
  assert.equal(stats.reduce((sum, s) => sum + s.authFailures, 0), 0);
  assert.ok(cluster.converged());
});

test("captured ring beats sent again are dropped as replays: they do not keep a crashed node alive", () => {
  const { sim, add, raw } = world(56);
  const ring = { membership: "ring" as const, clusterKey: KEY };
  const a = add("A", ring);
  const b = add("B", ring);
  const evil = raw("evil");
  // The network is tapped: every datagram B sends to A's ring port is recorded.
  const captured: Uint8Array[] = [];
  sim.setPacketRule((packet) => {
    if (
      packet.kind === "datagram" && packet.from === "B" && packet.to === "A" &&
      packet.toAddress.port === 8888 && packet.data !== undefined
    ) captured.push(packet.data.slice());
  });
  sim.run(6000);
  assert.equal(a.app!.membership().alive, 2);
  assert.ok(captured.length >= 3, `captured ${captured.length}`);
  const before = a.app!.state().stats.replaysDropped;
  sim.crash(b);
  // Every 200 ms for 6 s, the captured datagrams again, in order: none may pass for B.
  const socket = evil.app!.net.bindDatagram({ host: "0.0.0.0", port: 0 }, { onMessage() {} });
  let sent = 0;
  for (let i = 0; i < 30; i++) {
    for (const bytes of captured) {
      socket.send(bytes, { host: "10.0.0.1", port: 8888 });
      sent++;
    }
    sim.run(200);
  }
  assert.equal(a.app!.state().stats.replaysDropped - before, sent);
  assert.equal(a.app!.state().stats.authFailures, 0);
  assert.equal(a.app!.membership().alive, 1, "B is known dead all the same");
});

test("a keyed ring is deterministic: the same seed, the same trace", () => {
  const run = () => {
    const cluster = keyedRing(6, 55);
    cluster.run(4000);
    cluster.crash(2);
    cluster.run(4000);
    return cluster.sim.traceHash;
  };
  assert.equal(run(), run());
});
