import { test } from "node:test";
import assert from "node:assert/strict";
import { Simulation } from "../sim/simulation.ts";
import { RecordingWorker } from "../sim/cluster.ts";
import { AutoMpiNode, type NodeOptions } from "../src/node.ts";
import { createMessage } from "../src/message.ts";
import { jsonCodec } from "../src/codec.ts";
import { goJson, GoPeer } from "./_go_peer.ts";

const BROADCAST = "10.0.255.255";

function mixedCluster(seed: number, options: Partial<NodeOptions> = {}) {
  const sim = new Simulation({ seed });
  const ours = sim.addHost("ours", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "TsNode",
      codec: "json",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
      ...options,
    });
    node.start();
    return node;
  });
  const go = sim.addHost(
    "go",
    (platform, host) =>
      new GoPeer(platform, { guid: "GoNodeA", address: host.address, broadcastAddress: BROADCAST }),
  );
  return { sim, ours, go };
}

test("the fake Go peer's heartbeat is byte for byte the one in the reference", () => {
  const sim = new Simulation({ seed: 1 });
  const go = sim.addHost(
    "go",
    (platform) =>
      new GoPeer(platform, { guid: "GoNodeA", address: "10.88.0.1", broadcastAddress: BROADCAST }),
    {
      address: "10.0.0.7",
    },
  );
  sim.run(10);
  assert.equal(
    go.app!.sentHeartbeats[0],
    '{"DestinationGUID":"","SourceGUID":"","Message":{"AutoMPI_SMDP_GUID_Node":"GoNodeA","AutoMPI_SMDP_HOST_IPEP":"10.88.0.1:8888","AutoMPI_System_Message":"AutoMPI_SKD_NodeLocation"},"Data":null}',
  );
  // Our JSON codec reads it and writes the same bytes back.
  const bytes = new TextEncoder().encode(go.app!.sentHeartbeats[0]);
  assert.deepEqual(jsonCodec.encode(jsonCodec.decode(bytes)), bytes);
});

test("with --codec json a node and an original node discover each other and link", () => {
  const { sim, ours, go } = mixedCluster(2);
  sim.run(3000);
  const node = ours.app!;
  assert.deepEqual(node.linkedPeers(), ["GoNodeA"]);
  // As the original: one connection each way, each side sending on the one it dialled.
  assert.ok(go.app!.outgoing.has("TsNode"));
  assert.ok(go.app!.incoming.has("TsNode"));
  sim.run(10_000);
  assert.deepEqual(node.linkedPeers(), ["GoNodeA"], "no keepalives from Go, yet the link stays");
  assert.equal(node.state().stats.linksDown, 0);
  assert.equal(node.state().stats.protocolErrors, 0);
});

test("messages reach each other's workers across the two implementations", () => {
  const { sim, ours, go } = mixedCluster(3);
  const store = go.app!.attachWorker("GoStore0001");
  const mine = new RecordingWorker("TsWorker");
  ours.app!.attachWorker(mine);
  sim.run(4000);
  assert.equal(ours.app!.locate("GoStore0001"), "GoNodeA");
  assert.equal(go.app!.locations.get("TsWorker"), "TsNode");
  const data = new Uint8Array([0xff, 0xd8, 0xff, 0x00, 0x10]);
  assert.equal(
    ours.app!.send(
      createMessage("GoStore0001", { command: "set", key: "image-1" }, {
        source: "TsWorker",
        data,
      }),
    ),
    true,
  );
  assert.equal(
    go.app!.send({
      DestinationGUID: "TsWorker",
      SourceGUID: "GoStore0001",
      Message: { command: "getReturn", key: "image-1" },
      Data: "AQID",
    }),
    true,
  );
  sim.run(100);
  assert.equal(store.received.length, 1);
  assert.deepEqual(store.received[0].Message, { command: "set", key: "image-1" });
  assert.equal(store.received[0].Data, "/9j/ABA=");
  assert.equal(mine.received.length, 1);
  assert.equal(mine.received[0].message.command, "getReturn");
  assert.deepEqual([...mine.received[0].data!], [1, 2, 3]);
});

test("ALLNodes from the original (by UDP) reaches our handlers; ALLWorkers from us reaches its workers", () => {
  const { sim, ours, go } = mixedCluster(4);
  const store = go.app!.attachWorker("GoStore0001");
  const heard: string[] = [];
  ours.app!.onMessage((message) => heard.push(message.message.hello));
  sim.run(3000);
  go.app!.send({
    DestinationGUID: "ALLNodes",
    SourceGUID: "",
    Message: { hello: "from go" },
    Data: null,
  });
  ours.app!.send(createMessage("ALLWorkers", { command: "stop" }));
  sim.run(100);
  assert.deepEqual(heard, ["from go"]);
  assert.deepEqual(store.received.map((m) => m.Message?.command), ["stop"]);
});

test("a worker attached later is learned from the original's datagram announcements", () => {
  const { sim, ours, go } = mixedCluster(5);
  sim.run(3000);
  // A worker nobody announced stays unknown; one announced by datagram (the original's way for
  // links already up) becomes known.
  go.app!.workers.set("GoLate", { guid: "GoLate", received: [] });
  sim.run(100);
  assert.equal(ours.app!.locate("GoLate"), undefined);
  go.app!.attachWorker("GoLate2");
  sim.run(3000);
  assert.equal(ours.app!.locate("GoLate2"), "GoNodeA");
});

test("when the original node dies, its link and workers are dropped after the silence bound", () => {
  const { sim, ours, go } = mixedCluster(6);
  go.app!.attachWorker("GoStore0001");
  sim.run(3000);
  assert.equal(ours.app!.locate("GoStore0001"), "GoNodeA");
  sim.crash(go);
  sim.run(4500);
  assert.deepEqual(ours.app!.linkedPeers(), []);
  assert.equal(ours.app!.locate("GoStore0001"), undefined);
});

test("a msgpack node refuses an original node with a clear handshake error", () => {
  const { sim, ours } = mixedCluster(7, { codec: "msgpack" });
  const errors: string[] = [];
  ours.app!.on("protocol-error", ({ error }) => errors.push(error));
  sim.run(3000);
  assert.deepEqual(ours.app!.linkedPeers(), []);
  assert.ok(errors.length > 0);
  assert.match(errors[0], /handshake|hello/i);
});

test("goJson writes Go's layout: sorted keys, null Message and Data", () => {
  assert.equal(
    goJson({ DestinationGUID: "a", SourceGUID: "b", Message: { z: "1", a: "2" }, Data: null }),
    '{"DestinationGUID":"a","SourceGUID":"b","Message":{"a":"2","z":"1"},"Data":null}',
  );
});
