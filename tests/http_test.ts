import { test } from "node:test";
import assert from "node:assert/strict";
import { createSimCluster, type RecordingWorker, workerGuid } from "../sim/cluster.ts";
import { createStateApp, fromBase64, parseMessageJson, toBase64 } from "../adapters/http.ts";
import { ALL_NODES, createMessage } from "../src/message.ts";

function cluster3() {
  const cluster = createSimCluster({ nodes: 3, seed: 31 });
  assert.equal(cluster.sim.runUntil(() => cluster.converged(), 3000), true);
  const node = cluster.hosts[0].app!;
  const state = createStateApp(node, {
    clock: cluster.hosts[0].platform!.clock,
    info: { runtime: "sim" },
  });
  return { cluster, node, ...state };
}

test("GET /state has the node, its links, workers and the worker locations it knows", async () => {
  const { app, close } = cluster3();
  const response = await app.request("/state");
  assert.equal(response.status, 200);
  const state = await response.json();
  assert.equal(state.guid, "N0000");
  assert.equal(typeof state.incarnation, "string");
  assert.deepEqual(state.links.map((l: { peer: string }) => l.peer).sort(), ["N0001", "N0002"]);
  assert.deepEqual(state.workers.map((w: { guid: string }) => w.guid), [workerGuid(0)]);
  assert.deepEqual(state.locations, { [workerGuid(1)]: "N0001", [workerGuid(2)]: "N0002" });
  assert.equal(state.info.runtime, "sim");
  assert.ok(state.cluster.nodes.length === 3);
  close();
});

test("the cluster picture learns its peers' links from their peer lists", async () => {
  const { app, cluster, close } = cluster3();
  cluster.sim.run(12_000);
  const state = await (await app.request("/state")).json();
  assert.equal(state.cluster.links.length, 3, JSON.stringify(state.cluster.links));
  close();
});

test("GET / serves the HTML page", async () => {
  const { app, close } = cluster3();
  const response = await app.request("/");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /text\/html/);
  const html = await response.text();
  assert.match(html, /AutoMPI node <code id="guid">N0000<\/code>/);
  assert.match(html, /new EventSource\("events"\)/);
  close();
});

test("POST /messages injects a message that reaches a worker on another node", async () => {
  const { app, cluster, close } = cluster3();
  const response = await app.request("/messages", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      destination: workerGuid(2),
      source: "curl",
      message: { command: "set", key: "a" },
      data: toBase64(new Uint8Array([1, 2, 3])),
    }),
  });
  assert.equal(response.status, 202);
  assert.deepEqual(await response.json(), { accepted: true });
  cluster.sim.run(50);
  const worker = cluster.hosts[2].app!.worker(workerGuid(2)) as RecordingWorker;
  assert.equal(worker.received.length, 1);
  assert.equal(worker.received[0].message.key, "a");
  assert.deepEqual([...worker.received[0].data!], [1, 2, 3]);
  close();
});

test("POST /messages answers bad input with 400 and an undeliverable message with 409", async () => {
  const { app, close } = cluster3();
  const post = (body: string) =>
    app.request("/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
  const bad = await post("{not json");
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /invalid JSON/);
  const noDestination = await post(JSON.stringify({ message: {} }));
  assert.equal(noDestination.status, 400);
  assert.match((await noDestination.json()).error, /destination/);
  const badData = await post(JSON.stringify({ destination: "x", data: "!!" }));
  assert.equal(badData.status, 400);
  const unknown = await post(JSON.stringify({ destination: "Nobody" }));
  assert.equal(unknown.status, 409);
  assert.deepEqual(await unknown.json(), { accepted: false, reason: "unknown-destination" });
  close();
});

test("POST /messages needs the bearer token when one is set", async () => {
  const cluster = createSimCluster({ nodes: 1, seed: 32 });
  cluster.sim.run(10);
  const { app } = createStateApp(cluster.hosts[0].app!, {
    clock: cluster.hosts[0].platform!.clock,
    token: "s3cret",
  });
  const body = JSON.stringify({ destination: workerGuid(0) });
  const denied = await app.request("/messages", { method: "POST", body });
  assert.equal(denied.status, 401);
  const allowed = await app.request("/messages", {
    method: "POST",
    body,
    headers: { authorization: "Bearer s3cret" },
  });
  assert.equal(allowed.status, 202);
});

test("GET /messages lists messages delivered to the node's external handlers", async () => {
  const { app, cluster, close } = cluster3();
  cluster.hosts[1].app!.send(createMessage(ALL_NODES, { hello: "everyone" }, { source: "N0001" }));
  cluster.sim.run(50);
  const list = await (await app.request("/messages")).json();
  assert.equal(list.length, 1);
  assert.equal(list[0].destination, ALL_NODES);
  assert.deepEqual(list[0].message, { hello: "everyone" });
  assert.equal(list[0].fromNode, "N0001");
  assert.equal(list[0].data, null);
  close();
});

test("GET /events streams lifecycle events", async () => {
  const { app, cluster, close } = cluster3();
  const response = await app.request("/events");
  assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const readUntil = async (pattern: RegExp) => {
    for (let i = 0; i < 20 && !pattern.test(text); i++) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
  };
  await readUntil(/event: hello/);
  cluster.sim.crash(cluster.hosts[2]);
  cluster.sim.run(5000);
  await readUntil(/event: link-down/);
  assert.match(text, /event: link-down\ndata: \{"type":"link-down","peer":"N0002"/);
  close();
  await reader.cancel();
});

test("message JSON helpers reject what is not a message and round-trip base64", () => {
  assert.throws(() => parseMessageJson([]), /JSON object/);
  assert.throws(() => parseMessageJson({ destination: "x", message: { n: 1 } }), /not a string/);
  const message = parseMessageJson({ destination: "x", message: { k: "v" }, data: "AQID" });
  assert.equal(message.source, "");
  assert.deepEqual([...message.data!], [1, 2, 3]);
  assert.equal(toBase64(fromBase64("AQID")), "AQID");
});
