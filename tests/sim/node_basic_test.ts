import { test } from "node:test";
import assert from "node:assert/strict";
import { Simulation } from "../../sim/simulation.ts";
import { createSimCluster, RecordingWorker, workerGuid } from "../../sim/cluster.ts";
import { AutoMpiNode, type NodeEvents, type NodeOptions } from "../../src/node.ts";
import { ALL_NODES, ALL_WORKERS, createMessage, type MapMessage } from "../../src/message.ts";
import { encodeFrame } from "../../src/framing.ts";

const BROADCAST = "10.0.255.255";

/** A simulation with named nodes, each recording its events and external messages. */
function world(seed = 1, simOptions: ConstructorParameters<typeof Simulation>[0] = {}) {
  const sim = new Simulation({ seed, ...simOptions });
  const events: Array<{ node: string; type: keyof NodeEvents; event: unknown; atMs: number }> = [];
  const inbox = new Map<string, MapMessage[]>();
  const add = (guid: string, options: Partial<NodeOptions> = {}, hostOptions = {}) =>
    sim.addHost(guid, (platform, host) => {
      const node = new AutoMpiNode(platform, {
        guid,
        listen: { host: host.address, port: 8888 },
        discovery: { broadcastAddress: BROADCAST },
        ...options,
      });
      const types: Array<keyof NodeEvents> = [
        "link-up",
        "link-down",
        "peer-discovered",
        "peer-lost",
        "undeliverable",
        "duplicate-guid",
        "protocol-error",
        "location-added",
        "location-removed",
      ];
      for (const type of types) {
        node.on(type, (event) => events.push({ node: guid, type, event, atMs: sim.now }));
      }
      inbox.set(guid, []);
      node.onMessage((message) => inbox.get(guid)!.push(message));
      node.start();
      return node;
    }, hostOptions);
  const of = (node: string, type: keyof NodeEvents) =>
    events.filter((e) => e.node === node && e.type === type).map((e) =>
      e.event as Record<string, unknown>
    );
  return { sim, add, events, inbox, of };
}

test("two nodes discover each other, link once and exchange worker locations", () => {
  const { sim, add, of } = world(1);
  const a = add("A");
  const b = add("B");
  sim.run(100);
  a.app!.attachWorker(new RecordingWorker("WA"));
  sim.run(1500);
  assert.deepEqual(a.app!.linkedPeers(), ["B"]);
  assert.deepEqual(b.app!.linkedPeers(), ["A"]);
  assert.equal(of("A", "link-up").length, 1);
  assert.equal(of("B", "link-up").length, 1);
  // A has the lower GUID, so A dialled.
  assert.equal(of("A", "link-up")[0].direction, "out");
  assert.equal(b.app!.locate("WA"), "A");
  assert.equal(a.app!.locate("WA"), "A");
});

test("a message reaches a worker on another node, and its reply reaches the sender's worker", () => {
  const { sim, add } = world(2);
  const a = add("A");
  const b = add("B");
  class Echo extends RecordingWorker {
    protected override onMessage(message: MapMessage): void {
      super.onMessage(message);
      this.send(createMessage(message.source, { reply: message.message.n }, { source: this.guid }));
    }
  }
  const echo = new Echo("Echo");
  const asker = new RecordingWorker("Asker");
  b.app!.attachWorker(echo);
  a.app!.attachWorker(asker);
  sim.run(1000);
  for (let n = 0; n < 5; n++) {
    assert.equal(a.app!.send(createMessage("Echo", { n: String(n) }, { source: "Asker" })), true);
  }
  sim.run(100);
  assert.deepEqual(echo.received.map((m) => m.message.n), ["0", "1", "2", "3", "4"]);
  assert.deepEqual(asker.received.map((m) => m.message.reply), ["0", "1", "2", "3", "4"]);
});

test("external handlers get ALLNodes on every node, ALLWorkers reaches every worker", () => {
  const { sim, add, inbox } = world(3);
  const nodes = ["A", "B", "C"].map((guid) => add(guid));
  const workers = nodes.map((host, i) => {
    const worker = new RecordingWorker(`W${i}`);
    host.app!.attachWorker(worker);
    return worker;
  });
  sim.run(1500);
  const big = new Uint8Array(200_000).fill(7); // far over a datagram: links carry it
  nodes[0].app!.send(createMessage(ALL_NODES, { hello: "all" }, { data: big }));
  nodes[1].app!.send(createMessage(ALL_WORKERS, { command: "stop" }));
  sim.run(200);
  for (const guid of ["A", "B", "C"]) {
    const got = inbox.get(guid)!;
    assert.equal(got.length, 1, `node ${guid}`);
    assert.equal(got[0].message.hello, "all");
    assert.equal(got[0].data!.length, 200_000);
  }
  for (const worker of workers) {
    assert.deepEqual(worker.received.map((m) => m.message.command), ["stop"]);
  }
});

test("a message addressed to a node goes to its external handlers", () => {
  const { sim, add, inbox } = world(4);
  const a = add("A");
  add("B");
  sim.run(1500);
  a.app!.send(createMessage("B", { to: "node" }));
  sim.run(50);
  assert.deepEqual(inbox.get("B")!.map((m) => m.message.to), ["node"]);
});

test("a message to an unknown GUID raises undeliverable and send returns false", () => {
  const { sim, add, of } = world(5);
  const a = add("A");
  sim.run(100);
  assert.equal(a.app!.send(createMessage("Nobody", { x: "1" })), false);
  const [event] = of("A", "undeliverable");
  assert.equal(event.reason, "unknown-destination");
  assert.equal((event.message as MapMessage).destination, "Nobody");
});

test("sending a malformed or system message is a TypeError", () => {
  const { sim, add } = world(6);
  const a = add("A");
  sim.run(10);
  const node = a.app!;
  assert.throws(() => node.send({ destination: "", source: "", message: {} }), TypeError);
  assert.throws(
    () => node.send({ destination: "X", source: "", message: { n: 1 as unknown as string } }),
    TypeError,
  );
  assert.throws(
    () =>
      node.send({
        destination: "X",
        source: "",
        message: { AutoMPI_System_Message: "AutoMPI_SKD_Goodbye" },
      }),
    /reserved/,
  );
});

test("two nodes that dial each other at once end with exactly one link", () => {
  // Seeds make both sides dial at start, without waiting for heartbeats.
  const { sim, add, of } = world(7);
  const a = add("A", { discovery: false, seeds: ["10.0.0.2:8888"] });
  const b = add("B", { discovery: false, seeds: ["10.0.0.1:8888"] });
  sim.run(3000);
  assert.deepEqual(a.app!.linkedPeers(), ["B"]);
  assert.deepEqual(b.app!.linkedPeers(), ["A"]);
  assert.equal(of("A", "link-up").length, 1);
  assert.equal(of("B", "link-up").length, 1);
  assert.equal(of("A", "link-down").length, 0);
  assert.equal(of("B", "link-down").length, 0);
  sim.run(10_000);
  assert.equal(a.app!.state().links.length, 1);
});

test("a node joins nodes it cannot hear through a seed's peer list", () => {
  const { sim, add } = world(8);
  // A and B share a subnet; C is on another one and knows only A's address.
  const a = add("A");
  const b = add("B");
  const c = add(
    "C",
    { discovery: { broadcastAddress: "10.1.255.255" }, seeds: ["10.0.0.1:8888"] },
    {
      subnet: "10.1.0.0/16",
    },
  );
  sim.run(5000);
  assert.deepEqual(c.app!.linkedPeers().sort(), ["A", "B"]);
  assert.deepEqual(b.app!.linkedPeers().sort(), ["A", "C"]);
  assert.deepEqual(a.app!.linkedPeers().sort(), ["B", "C"]);
});

test("a partitioned link is dropped on both sides after the silence bound and relinked after heal", () => {
  const { sim, add, events, of } = world(9);
  add("A");
  add("B");
  sim.run(2000);
  const cutAtMs = sim.now;
  sim.partition("A", "B");
  sim.run(5000);
  const downs = events.filter((e) => e.type === "link-down");
  assert.deepEqual(downs.map((e) => e.node).sort(), ["A", "B"]);
  for (const down of downs) {
    assert.equal((down.event as { reason: string }).reason, "silence");
    // 3 intervals of silence, detected at the next tick: within 4 intervals (+ jitter).
    assert.ok(down.atMs - cutAtMs <= 4400, `dropped ${down.atMs - cutAtMs} ms after the cut`);
  }
  sim.heal();
  sim.run(12_000);
  assert.equal(of("A", "link-up").length, 2);
  assert.equal(of("B", "link-up").length, 2);
});

test("a handshake that never finishes is dropped and counted", () => {
  const { sim, add, of } = world(10);
  const a = add("A");
  // A mute client: connects to A and never says hello.
  sim.addHost("mute", (platform) => {
    platform.net.connect({ host: "10.0.0.1", port: 8888 }, { onData() {}, onClose() {} });
  });
  sim.run(5000);
  const errors = of("A", "protocol-error");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].stage, "handshake");
  assert.match(String(errors[0].error), /timed out/);
  assert.equal(a.app!.state().stats.protocolErrors, 1);
});

test("garbage after the handshake closes that link only, and the node goes on", () => {
  const { sim, add, of } = world(11);
  const a = add("A");
  add("B");
  sim.run(1500);
  sim.addHost("evil", (platform) => {
    platform.net.connect({ host: "10.0.0.1", port: 8888 }, {
      onOpen(conn) {
        // A valid hello, then a frame that is not a message.
        conn.write(
          encodeFrame(
            new Uint8Array([
              0x96,
              0xa7,
              ...new TextEncoder().encode("AutoMPI"),
              1,
              0xa1,
              0x45,
              0xa1,
              0x31,
              0xa7,
              ...new TextEncoder().encode("msgpack"),
              0xa0,
            ]),
          ),
        );
        conn.write(encodeFrame(new Uint8Array([0xc1, 0xc1, 0xc1])));
      },
      onData() {},
      onClose() {},
    });
  });
  sim.run(500);
  const errors = of("A", "protocol-error");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].stage, "frame");
  assert.deepEqual(a.app!.linkedPeers(), ["B"], "the good link survives");
  assert.equal(a.app!.running, true);
});

test("two live nodes claiming one GUID are reported, not merged", () => {
  const { sim, add, of } = world(12);
  add("Same");
  sim.addHost("other", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "Same",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
    });
    node.start();
    return node;
  });
  sim.run(3000);
  assert.ok(of("Same", "duplicate-guid").length >= 1);
  assert.equal(sim.host<AutoMpiNode>("Same").app!.linkedPeers().length, 0);
});

test("closing a node says goodbye: its peers drop it at once and do not redial", () => {
  const { sim, add, of } = world(13);
  const a = add("A");
  add("B");
  sim.run(1500);
  a.app!.close();
  sim.run(50);
  const down = of("B", "link-down");
  assert.equal(down.length, 1);
  assert.equal(down[0].reason, "goodbye");
  assert.equal(of("B", "peer-lost").length, 1);
  sim.run(5000);
  assert.equal(of("B", "link-up").length, 1, "no redial to a node that left");
});

test("a full worker queue rejects the message as undeliverable", () => {
  const { sim, add, of } = world(14);
  const a = add("A");
  sim.run(10);
  const worker = new RecordingWorker("Tiny", { queueLimit: 2 });
  a.app!.attachWorker(worker);
  const results = [1, 2, 3].map((n) => a.app!.send(createMessage("Tiny", { n: String(n) })));
  assert.deepEqual(results, [true, true, false]);
  assert.equal(of("A", "undeliverable")[0].reason, "worker-queue-full");
  sim.run(10);
  assert.deepEqual(worker.received.map((m) => m.message.n), ["1", "2"]);
});

test("detaching a worker removes its location everywhere", () => {
  const { sim, add } = world(15);
  const a = add("A");
  const b = add("B");
  a.app!.attachWorker(new RecordingWorker("WA"));
  sim.run(1500);
  assert.equal(b.app!.locate("WA"), "A");
  assert.equal(a.app!.detachWorker("WA"), true);
  sim.run(50);
  assert.equal(b.app!.locate("WA"), undefined);
  assert.equal(a.app!.detachWorker("WA"), false);
});

test("a restarted peer is known by its new incarnation and relinked", () => {
  const { sim, add, of } = world(16);
  add("A");
  const b = add("B");
  b.app!.attachWorker(new RecordingWorker("WB"));
  sim.run(1500);
  const before = b.app!.incarnation;
  sim.crash("B");
  sim.run(100);
  sim.restart("B");
  sim.host<AutoMpiNode>("B").app!.attachWorker(new RecordingWorker("WB"));
  sim.run(3000);
  const after = sim.host<AutoMpiNode>("B").app!;
  assert.notEqual(after.incarnation, before);
  const a = sim.host<AutoMpiNode>("A").app!;
  assert.deepEqual(a.linkedPeers(), ["B"]);
  assert.equal(a.state().links[0].incarnation, after.incarnation);
  assert.equal(a.locate("WB"), "B");
  assert.ok(
    of("A", "link-down").some((e) => e.reason === "peer-restarted" || e.reason === "reset"),
  );
});

test("the cluster helper's converged() needs every link and location", () => {
  const cluster = createSimCluster({ nodes: 4, seed: 17 });
  assert.equal(cluster.converged(), false);
  assert.equal(cluster.sim.runUntil(() => cluster.converged(), 3000), true);
  assert.equal(cluster.linkedPairs(), 6);
  assert.equal(cluster.locationsKnown(), 12);
  assert.equal(cluster.hosts[0].app!.locate(workerGuid(3)), "N0003");
});

test("a node at its link limit neither dials nor accepts more, and counts the refusals", () => {
  const { sim, add } = world(18);
  const a = add("A", { maxLinks: 1 });
  add("B");
  add("C");
  sim.run(4000);
  assert.equal(a.app!.linkedPeers().length, 1);
  assert.ok(a.app!.state().stats.connectionsRefused >= 1);
  assert.equal(a.app!.state().limits.maxLinks, 1);
});

test("connections that never finish their handshake are capped, then timed out", () => {
  const { sim, add } = world(19);
  const a = add("A", { maxPendingHandshakes: 2, handshakeTimeoutMs: 1000 });
  for (let i = 0; i < 5; i++) {
    sim.addHost(`mute${i}`, (platform) => {
      platform.net.connect({ host: "10.0.0.1", port: 8888 }, { onData() {}, onClose() {} });
    });
  }
  sim.run(500);
  assert.equal(a.app!.state().stats.connectionsRefused, 3);
  sim.run(3000);
  assert.equal(a.app!.state().stats.protocolErrors, 2, "the two admitted ones timed out");
  assert.equal(a.app!.running, true);
});

test("a datagram over maxDatagramBytes is dropped and counted, and the node goes on", () => {
  const { sim, add } = world(20);
  const a = add("A", { maxDatagramBytes: 512 });
  add("B");
  sim.addHost("noisy", (platform) => {
    const socket = platform.net.bindDatagram({ host: "0.0.0.0", port: 0, broadcast: true }, {
      onMessage() {},
    });
    platform.clock.schedule(
      100,
      () => socket.send(new Uint8Array(2000), { host: "10.0.0.1", port: 9999 }),
    );
  });
  sim.run(2000);
  assert.equal(a.app!.state().stats.datagramErrors, 1);
  assert.equal(a.app!.state().limits.maxDatagramBytes, 512);
  assert.deepEqual(a.app!.linkedPeers(), ["B"]);
});
