/**
 * The cluster key on real loopback sockets, with the platform adapter of the runtime running
 * the test (Deno, Bun or Node): keyed nodes link and talk; a node with a wrong key or none
 * never links; a replayed or forged heartbeat, an unsigned datagram and a forged hello are
 * refused. Random ports, heartbeats every 100 ms, every wait bounded, everything closed.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRuntimePlatform } from "../../adapters/runtime.ts";
import { RecordingWorker } from "../../sim/cluster.ts";
import { AutoMpiNode, type NodeEvents, type NodeOptions } from "../../src/node.ts";
import { createMessage } from "../../src/message.ts";
import { msgpackCodec } from "../../src/codec.ts";
import { encodeFrame } from "../../src/framing.ts";
import { encodeHello, encodeProof, SystemField } from "../../src/system.ts";
import type { DatagramSocket, Platform } from "../../src/platform.ts";

const KEY = "correct horse battery staple";
const BROADCAST = "127.255.255.255";
const WAIT_MS = 8000;

type Recorded = { node: string; type: keyof NodeEvents; event: Record<string, unknown> };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting: ${what}`);
    await sleep(20);
  }
}

/** Real nodes on loopback sharing a random discovery port; `close()` releases everything. */
function realWorld() {
  const discoveryPort = 20_000 + Math.floor(Math.random() * 10_000);
  const linkPort = 10_000 + Math.floor(Math.random() * 9000);
  const platforms: Array<Platform & { close(): Promise<void> }> = [];
  const nodes: AutoMpiNode[] = [];
  const events: Recorded[] = [];
  const of = (node: string, type: keyof NodeEvents) =>
    events.filter((e) => e.node === node && e.type === type).map((e) => e.event);
  const platform = async () => {
    const made = await createRuntimePlatform(undefined, { log: { level: "error" } });
    platforms.push(made);
    return made;
  };
  const start = async (guid: string, options: Partial<NodeOptions> = {}) => {
    const node = new AutoMpiNode(await platform(), {
      guid,
      listen: { host: "127.0.0.1", port: linkPort },
      portSearch: 200,
      discovery: { port: discoveryPort, broadcastAddress: BROADCAST, bindHost: BROADCAST },
      heartbeatIntervalMs: 100,
      ...options,
    });
    nodes.push(node);
    for (const type of ["link-up", "link-down", "protocol-error"] as const) {
      node.on(type, (event) => events.push({ node: guid, type, event }));
    }
    const started = new Promise<void>((resolve, reject) => {
      node.on("started", () => resolve());
      node.on("closed", () => reject(new Error(`node ${guid} could not start`)));
    });
    node.start();
    await started;
    node.attachWorker(new RecordingWorker(`W${guid}`));
    return node;
  };
  /** A socket on the discovery port, as a node's: hears every heartbeat, can send any datagram. */
  const tap = async (onMessage: (data: Uint8Array) => void): Promise<DatagramSocket> => {
    const made = await platform();
    return await new Promise((resolve, reject) => {
      made.net.bindDatagram(
        { host: BROADCAST, port: discoveryPort, reuseAddress: true, broadcast: true },
        { onMessage, onReady: resolve, onError: reject },
      );
    });
  };
  const close = async () => {
    for (const node of nodes) node.close();
    await Promise.all(platforms.map((p) => p.close()));
  };
  return { start, tap, platform, events, of, close, discoveryPort };
}

const worker = (node: AutoMpiNode, guid: string) => node.worker(guid) as RecordingWorker;

test("real sockets: keyed nodes link and deliver; wrong-key and keyless nodes never link", async () => {
  const w = realWorld();
  try {
    const a = await w.start("A", { clusterKey: KEY });
    const b = await w.start("B", { clusterKey: KEY });
    const seeds = [a.address, b.address];
    const c = await w.start("C", { clusterKey: "not the key", seeds });
    const d = await w.start("D", { seeds });
    // The worker set comes in a frame of its own after the link is up: wait for it too.
    await waitFor(
      "A and B linked, A knowing WB",
      () => a.linkCount === 1 && b.linkCount === 1 && a.locate("WB") === "B",
    );
    assert.ok(a.send(createMessage("WB", { n: "1" }, { source: "test" })));
    await waitFor("WB got the message", () => worker(b, "WB").received.length === 1);
    const refusals = (node: string, pattern: RegExp, from?: string) =>
      w.of(node, "protocol-error").filter((e) =>
        e.stage === "handshake" && pattern.test(String(e.error)) &&
        (from === undefined || e.address === from)
      ).length;
    // Each outsider dials A by seed: A refuses C's proof and D's keyless hello; C refuses A's
    // proof; D refuses A's key challenge.
    await waitFor(
      "every refusal reported",
      () =>
        refusals("A", /did not prove the cluster key \(wrong key/) > 0 &&
        refusals("A", /did not prove the cluster key \(its hello has no key/) > 0 &&
        refusals("C", /did not prove the cluster key/, a.address) > 0 &&
        refusals("D", /peer requires a cluster key, and this node has none/, a.address) > 0,
    );
    // A few more heartbeats and redials: still nobody else linked.
    await sleep(500);
    const ups = w.events.filter((e) => e.type === "link-up");
    assert.deepEqual(ups.map((e) => `${e.node}->${e.event.peer}`).sort(), ["A->B", "B->A"]);
    assert.deepEqual(c.linkedPeers(), []);
    assert.deepEqual(d.linkedPeers(), []);
    const errorsOf = (node: string, stage: string) =>
      w.of(node, "protocol-error").filter((e) => e.stage === stage).map((e) => String(e.error));
    assert.ok(
      errorsOf("A", "handshake").every((e) => /did not prove the cluster key/.test(e)),
      errorsOf("A", "handshake").join("\n"),
    );
    // C's and D's heartbeats are not signed with A's key: refused, and said so.
    assert.ok(errorsOf("A", "datagram").some((e) => /not signed with the cluster key/.test(e)));
    assert.equal(d.send(createMessage("WB", { n: "2" })), false);
    assert.equal(worker(b, "WB").received.length, 1);
    assert.ok(a.state().stats.authFailures > 0);
  } finally {
    await w.close();
  }
});

test("real sockets: replayed and forged heartbeats, unsigned datagrams and forged hellos are refused", async () => {
  const w = realWorld();
  try {
    const a = await w.start("A", { clusterKey: KEY });
    const b = await w.start("B", { clusterKey: KEY });
    const heartbeatsOfB: Uint8Array[] = [];
    const tap = await w.tap((data) => {
      try {
        if (msgpackCodec.decode(data).message[SystemField.NodeGuid] === "B") {
          heartbeatsOfB.push(data.slice());
        }
      } catch {
        // Not ours to judge here.
      }
    });
    await waitFor("A and B linked", () => a.linkCount === 1 && b.linkCount === 1);
    await waitFor("a heartbeat of B heard", () => heartbeatsOfB.length > 0);
    const to = { host: BROADCAST, port: w.discoveryPort };
    // A replay: the same bytes again.
    const replays = a.state().stats.replaysDropped;
    tap.send(heartbeatsOfB[0], to);
    await waitFor("A dropped the replay", () => a.state().stats.replaysDropped > replays);
    // A forgery: B's heartbeat pointing elsewhere, its tag kept; and an unsigned message.
    const failures = a.state().stats.authFailures;
    const original = msgpackCodec.decode(heartbeatsOfB[0]);
    tap.send(
      msgpackCodec.encode({
        ...original,
        message: { ...original.message, [SystemField.HostEndpoint]: "127.0.0.1:1" },
      }),
      to,
    );
    tap.send(msgpackCodec.encode(createMessage("WA", { n: "datagram" })), to);
    await waitFor("A refused both", () => a.state().stats.authFailures >= failures + 2);
    // Forged hellos over TCP, each followed by a message for A's worker.
    const message = encodeFrame(msgpackCodec.encode(createMessage("WA", { n: "link" })));
    const hello = {
      version: 1,
      guid: "Mallory",
      incarnation: "0",
      codec: "msgpack" as const,
      address: "127.0.0.1:1",
    };
    const attempts = [
      [encodeFrame(encodeHello(hello)), message],
      [
        encodeFrame(encodeHello({ ...hello, nonce: new Uint8Array(16).fill(7) })),
        encodeFrame(encodeProof(new Uint8Array(32))),
        message,
      ],
    ];
    const raw = await w.platform();
    const [host, port] = a.address.split(":");
    for (const frames of attempts) {
      raw.net.connect({ host, port: Number(port) }, {
        onOpen(conn) {
          for (const frame of frames) conn.write(frame);
        },
        onData() {},
        onClose() {},
      });
    }
    await waitFor(
      "A refused both hellos",
      () => w.of("A", "protocol-error").filter((e) => e.stage === "handshake").length >= 2,
    );
    await sleep(200);
    assert.equal(worker(a, "WA").received.length, 0);
    assert.deepEqual(a.linkedPeers(), ["B"]);
    assert.equal(w.events.filter((e) => e.type === "link-up").length, 2);
    assert.equal(w.events.filter((e) => e.type === "link-down").length, 0);
    const handshakeErrors = w.of("A", "protocol-error")
      .filter((e) => e.stage === "handshake")
      .map((e) => String(e.error));
    assert.ok(handshakeErrors.every((e) => /did not prove the cluster key/.test(e)));
    tap.close();
  } finally {
    await w.close();
  }
});

test("real sockets: a keyed ring converges and delivers; a wrong-key ring node never becomes a member", async () => {
  const w = realWorld();
  try {
    const ring = { membership: "ring" as const };
    const a = await w.start("A", { ...ring, clusterKey: KEY });
    const b = await w.start("B", { ...ring, clusterKey: KEY, seeds: [a.address] });
    const c = await w.start("C", { ...ring, clusterKey: "not the key", seeds: [a.address] });
    await waitFor(
      "A and B members of each other",
      () => a.membership().alive === 2 && b.membership().alive === 2,
    );
    assert.ok(a.send(createMessage("WB", { n: "1" }, { source: "test" })));
    await waitFor("WB got the message", () => worker(b, "WB").received.length === 1);
    await waitFor(
      "A refused C's sealed datagrams",
      () =>
        w.of("A", "protocol-error").some((e) =>
          /Cannot read ring datagram: it is not sealed with the cluster key/.test(String(e.error))
        ),
    );
    await sleep(500);
    assert.equal(a.membership().alive, 2);
    assert.equal(b.membership().alive, 2);
    assert.equal(c.membership().alive, 1, "C knows no one");
    assert.ok(a.state().stats.authFailures > 0);
  } finally {
    await w.close();
  }
});
