import { test } from "node:test";
import assert from "node:assert/strict";
import { Simulation } from "../../sim/simulation.ts";
import { runAsync, SimDisk } from "../../sim/storage.ts";
import { RecordingWorker } from "../../sim/cluster.ts";
import { AutoMpiNode } from "../node.ts";
import type { MapMessage } from "../message.ts";
import { MemoryStorage, type Storage, type StorageEntry, type StorageOp } from "../storage.ts";
import { KeyValueStoreWorker } from "./kv.ts";

const BROADCAST = "10.0.255.255";
const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);
const bytes = (value: string) => new TextEncoder().encode(value);

/** Lets promise callbacks run: the storages here settle within a few microtask turns. */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

/** Runs the simulation for `ms` in small steps, letting storage callbacks run between them. */
async function advance(sim: Simulation, ms: number, stepMs = 5): Promise<void> {
  for (let doneMs = 0; doneMs < ms; doneMs += stepMs) {
    sim.run(Math.min(stepMs, ms - doneMs));
    await settle();
  }
}

/**
 * Two nodes: "S" hosts the store (on `storage`, surviving restarts of S), "C" hosts a client
 * worker "Client" that records the answers.
 */
async function world(storage: Storage, seed = 1) {
  const sim = new Simulation({ seed });
  const stores: KeyValueStoreWorker[] = [];
  const serverHost = sim.addHost("S", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "S",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
      storage,
    });
    node.start();
    const store = new KeyValueStoreWorker("Store0001", { maxValueBytes: 1000, maxKeyLength: 20 });
    stores.push(store);
    node.attachWorker(store);
    return node;
  });
  const client = new RecordingWorker("Client");
  const clientHost = sim.addHost("C", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "C",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
    });
    node.start();
    node.attachWorker(client);
    return node;
  });
  await advance(sim, 1500, 50);
  assert.equal(clientHost.app!.locate("Store0001"), "S", "the client's node knows the store");
  const request = (fields: Record<string, string>, data?: Uint8Array) =>
    clientHost.app!.send({
      destination: "Store0001",
      source: "Client",
      message: fields,
      ...(data ? { data } : {}),
    });
  const answers = () => client.received.map((m) => ({ ...m.message }));
  return { sim, serverHost, clientHost, client, stores, request, answers };
}

test("set then get from another node answers getReturn with the key and data, as the original", async () => {
  const { sim, request, client } = await world(new MemoryStorage());
  request({ command: "set", key: "image-1" }, new Uint8Array([0xff, 0xd8, 0x00, 0xd9]));
  request({ command: "get", key: "image-1" });
  request({ command: "get", key: "nothing" });
  await advance(sim, 100);
  assert.equal(client.received.length, 2);
  const [found, missing] = client.received;
  assert.equal(found.source, "Store0001");
  assert.equal(found.message.command, "getReturn");
  assert.equal(found.message.key, "image-1");
  assert.equal(found.message.found, "true");
  assert.deepEqual(found.data, new Uint8Array([0xff, 0xd8, 0x00, 0xd9]));
  assert.equal(found.message.value, undefined, "binary that is not UTF-8 travels only as data");
  assert.equal(missing.message.command, "getReturn");
  assert.equal(missing.message.key, "nothing");
  assert.equal(missing.message.found, "false");
  assert.equal(missing.data, undefined);
});

test("a value given as text in the value field comes back as data and as value", async () => {
  const { sim, request, client } = await world(new MemoryStorage());
  request({ command: "set", key: "color", value: "blue" });
  request({ command: "get", key: "color", id: "q1" });
  await advance(sim, 100);
  const [answer] = client.received;
  assert.equal(answer.message.value, "blue");
  assert.equal(text(answer.data), "blue");
  assert.equal(answer.message.id, "q1", "answers carry the request's id");
});

test("ack=true is answered with setReturn once the write is durable, and delete with deleteReturn", async () => {
  const storage = new MemoryStorage();
  const { sim, request, answers } = await world(storage);
  request({ command: "set", key: "k", ack: "true" }, bytes("v1"));
  request({ command: "set", key: "quiet" }, bytes("no answer"));
  request({ command: "delete", key: "k", ack: "true" });
  request({ command: "delete", key: "never-there", ack: "true" });
  request({ command: "get", key: "k" });
  await advance(sim, 100);
  // The get is answered at once (it sees the delete, applied in memory in message order); the
  // acknowledgements follow once storage has the writes.
  assert.deepEqual(answers(), [
    { command: "getReturn", key: "k", found: "false" },
    { command: "setReturn", key: "k", ok: "true" },
    { command: "deleteReturn", key: "k", found: "true", ok: "true" },
    { command: "deleteReturn", key: "never-there", found: "false", ok: "true" },
  ]);
  assert.deepEqual(
    (await storage.list("")).map((e) => e.key),
    ["workers/Store0001/v/quiet"],
    "the store keeps its values under its own key space",
  );
});

test("a node restarted with the same storage recovers what its store held", async () => {
  const storage = new MemoryStorage();
  const { sim, serverHost, clientHost, stores, request, client } = await world(storage, 2);
  request({ command: "set", key: "a", ack: "true" }, bytes("alpha"));
  request({ command: "set", key: "b", ack: "true" }, bytes("beta"));
  request({ command: "delete", key: "b", ack: "true" });
  request({ command: "set", key: "c", ack: "true" }, bytes("gamma"));
  await advance(sim, 100);
  assert.equal(client.received.filter((m) => m.message.ok === "true").length, 4);
  sim.restart(serverHost);
  await advance(sim, 3000, 50);
  assert.equal(stores.length, 2, "the factory made a new store");
  assert.equal(stores[1].ready, true);
  assert.deepEqual(stores[1].keys(), ["a", "c"]);
  assert.equal(clientHost.app!.locate("Store0001"), "S");
  client.received.length = 0;
  request({ command: "get", key: "a" });
  request({ command: "get", key: "b" });
  request({ command: "get", key: "c" });
  await advance(sim, 100);
  assert.deepEqual(client.received.map((m) => [m.message.key, m.message.found, text(m.data)]), [
    ["a", "true", "alpha"],
    ["b", "false", ""],
    ["c", "true", "gamma"],
  ]);
});

/** A storage whose `list` waits until the test releases it. */
class SlowLoadStorage extends MemoryStorage {
  release: () => void = () => {};
  override list(prefix: string): Promise<StorageEntry[]> {
    return new Promise<void>((resolve) => (this.release = resolve)).then(() => super.list(prefix));
  }
}

test("messages that arrive while the store loads wait, then are handled in arrival order", async () => {
  const storage = new SlowLoadStorage();
  await storage.put("workers/Store0001/v/k", bytes("from before"));
  const { sim, request, stores, answers } = await world(storage, 3);
  request({ command: "get", key: "k" });
  request({ command: "set", key: "k", ack: "true" }, bytes("one"));
  request({ command: "get", key: "k" });
  request({ command: "set", key: "k" }, bytes("two"));
  request({ command: "get", key: "k" });
  await advance(sim, 500);
  assert.equal(stores[0].ready, false);
  assert.equal(stores[0].queuedMessages, 5);
  assert.deepEqual(answers(), [], "nothing is answered before the load");
  storage.release();
  await advance(sim, 100);
  assert.equal(stores[0].ready, true);
  assert.deepEqual(
    answers().filter((a) => a.command === "getReturn").map((a) => a.value),
    ["from before", "one", "two"],
  );
  assert.ok(answers().some((a) => a.command === "setReturn" && a.ok === "true"));
});

/** A storage whose writes fail while `failing` is set. */
class FlakyStorage extends MemoryStorage {
  failing = false;
  override batch(ops: readonly StorageOp[]): Promise<void> {
    if (this.failing) return Promise.reject(new Error("Cannot write: disk full"));
    return super.batch(ops);
  }
  override delete(key: string): Promise<boolean> {
    if (this.failing) return Promise.reject(new Error("Cannot write: disk full"));
    return super.delete(key);
  }
}

test("a failed write is logged, answered ok=false when acknowledged, and the key read back", async () => {
  const storage = new FlakyStorage();
  const { sim, request, stores, answers, serverHost } = await world(storage, 4);
  request({ command: "set", key: "k", ack: "true" }, bytes("durable"));
  await advance(sim, 100);
  storage.failing = true;
  request({ command: "set", key: "k", ack: "true" }, bytes("lost"));
  request({ command: "set", key: "new" }, bytes("lost too"));
  await advance(sim, 100);
  storage.failing = false;
  request({ command: "get", key: "k" });
  request({ command: "get", key: "new" });
  await advance(sim, 100);
  const got = answers();
  assert.deepEqual(got.slice(0, 2), [
    { command: "setReturn", key: "k", ok: "true" },
    { command: "setReturn", key: "k", ok: "false", error: "Cannot write: disk full" },
  ]);
  assert.equal(got[2].value, "durable", "after the failure it serves what storage holds");
  assert.equal(got[3].found, "false");
  assert.equal(stores[0].stats.writeFailures, 2);
  const logged = sim.logs.filter((e) => e.event === "kv.write-failed");
  assert.equal(logged.length, 2);
  assert.equal(logged[0].level, "error");
  assert.equal(serverHost.app!.state().stats.workerErrors, 0);
});

test("bad messages are logged and answered with an error; answers and sourceless ones get none", async () => {
  const { sim, request, stores, answers, serverHost, clientHost } = await world(
    new MemoryStorage(),
    5,
  );
  request({ command: "get" });
  request({ command: "set", key: "" });
  request({ command: "frobnicate", key: "k" });
  request({});
  request({ command: "get", key: "k".repeat(21) });
  request({ command: "set", key: "big" }, new Uint8Array(1001));
  request({ command: "getReturn", key: "k" }); // an answer sent by mistake: never answered
  clientHost.app!.send({ destination: "Store0001", source: "", message: { command: "nope" } });
  await advance(sim, 100);
  const got = answers();
  assert.deepEqual(got.map((a) => a.command), Array(6).fill("error"));
  assert.deepEqual(got.map((a) => a.errorOf), ["get", "set", "frobnicate", "", "get", "set"]);
  assert.match(got[0].error, /^Cannot get: no key$/);
  assert.match(got[2].error, /unknown command "frobnicate"/);
  assert.match(got[3].error, /no command/);
  assert.match(got[4].error, /exceeds 20/);
  assert.match(got[5].error, /1001 bytes exceeds 1000/);
  assert.equal(got[2].key, "k");
  const stats = stores[0].stats;
  assert.equal(stats.badMessages, 7);
  assert.equal(stats.repliesIgnored, 1);
  assert.equal(stores[0].size, 0);
  assert.equal(sim.logs.filter((e) => e.event === "kv.bad-message").length, 7);
  assert.equal(serverHost.app!.state().stats.workerErrors, 0);
});

test("a failed load is logged and retried; messages wait for it", async () => {
  let failures = 2;
  class FailingLoad extends MemoryStorage {
    override list(prefix: string): Promise<StorageEntry[]> {
      if (failures-- > 0) return Promise.reject(new Error("Cannot read: medium error"));
      return super.list(prefix);
    }
  }
  const storage = new FailingLoad();
  await storage.put("workers/Store0001/v/k", bytes("kept"));
  const { sim, request, stores, answers } = await world(storage, 6);
  request({ command: "get", key: "k" });
  await advance(sim, 3500, 50);
  assert.equal(stores[0].loadFailures, 2);
  assert.equal(stores[0].ready, true);
  assert.deepEqual(answers().map((a) => a.value), ["kept"]);
  assert.equal(sim.logs.filter((e) => e.event === "worker.load-failed").length, 2);
});

test("get answers carry a copy: changing the answer's bytes does not change the store", async () => {
  const sent: MapMessage[] = [];
  const store = new KeyValueStoreWorker("S1");
  store.attach({
    nodeGuid: "N",
    send: (message) => sent.push(message) > 0,
    clock: { now: () => 0, wallNow: () => 0, schedule: () => ({ cancel() {} }), defer() {} },
    random: { next: () => 0, int: (min) => min, fill: (b) => b },
    log: { log() {} },
    storage: new MemoryStorage(),
  });
  const data = bytes("abc");
  store.queueMessage({
    destination: "S1",
    source: "me",
    message: { command: "set", key: "k" },
    data,
  });
  store.queueMessage({ destination: "S1", source: "me", message: { command: "get", key: "k" } });
  await settle();
  sent[0].data![1] = 0x7a;
  assert.equal(text(store.value("k")), "abc");
});

test("on the simulated disk, acknowledged sets survive a crash of the store's host and unacknowledged ones may not", async () => {
  const sim = new Simulation({ seed: 11 });
  const disk = new SimDisk(sim, { fsyncMsMin: 2, fsyncMsMax: 4 });
  const stores: KeyValueStoreWorker[] = [];
  const server = sim.addHost("S", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "S",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
      storage: disk.open(host), // each incarnation its own handle on the same disk
    });
    node.start();
    const store = new KeyValueStoreWorker("Store0001");
    stores.push(store);
    node.attachWorker(store);
    return node;
  });
  const client = new RecordingWorker("Client");
  const clientHost = sim.addHost("C", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "C",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
    });
    node.start();
    node.attachWorker(client);
    return node;
  });
  const request = (fields: Record<string, string>, data?: Uint8Array) =>
    clientHost.app!.send({
      destination: "Store0001",
      source: "Client",
      message: fields,
      ...(data ? { data } : {}),
    });
  assert.ok(
    await runAsync(sim, 5000, { until: () => clientHost.app!.locate("Store0001") === "S" }),
  );
  request({ command: "set", key: "a", ack: "true" }, bytes("kept"));
  assert.ok(await runAsync(sim, 1000, { until: () => client.received.length === 1 }));
  assert.equal(client.received[0].message.ok, "true");
  request({ command: "set", key: "b", ack: "true" }, bytes("in flight"));
  // The store has b in memory, its write not yet durable: the power goes now.
  assert.ok(sim.runUntil(() => stores[0].has("b"), 1000));
  sim.crash(server);
  await runAsync(sim, 100);
  assert.equal(client.received.length, 1, "b was never acknowledged");
  sim.restart(server);
  assert.ok(await runAsync(sim, 5000, { until: () => stores[1]?.ready === true }));
  assert.deepEqual(stores[1].keys(), ["a"]);
  assert.deepEqual(disk.durableEntries().map((e) => e.key), ["workers/Store0001/v/a"]);
});
