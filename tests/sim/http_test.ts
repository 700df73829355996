import { test } from "node:test";
import assert from "node:assert/strict";
import { createSimCluster, type RecordingWorker, workerGuid } from "../../sim/cluster.ts";
import { createStateApp, fromBase64, parseMessageJson, toBase64 } from "../../adapters/http.ts";
import { ALL_NODES, createMessage } from "../../src/message.ts";
import { EchoWorker } from "../../src/worker.ts";

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

/** A 3-node cluster whose nodes 1 and 2 host echo workers for placement; the app on node 0. */
function placementCluster(token?: string) {
  const cluster = createSimCluster({
    nodes: 3,
    seed: 33,
    nodeOptions: ({ index }) =>
      index === 0 ? {} : { placement: { kinds: { echo: (guid) => new EchoWorker(guid) } } },
  });
  assert.equal(cluster.sim.runUntil(() => cluster.converged(), 3000), true);
  cluster.sim.run(500);
  const node = cluster.hosts[0].app!;
  const state = createStateApp(node, { clock: cluster.hosts[0].platform!.clock, token });
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    state.app.request(path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
  return { cluster, node, post, ...state };
}

test("POST /spawn places a worker on a node that hosts its kind and GET /state shows where", async () => {
  const { app, cluster, post, close } = placementCluster();
  const response = await post("/spawn", JSON.stringify({ kind: "echo", guid: "E9" }));
  assert.equal(response.status, 201);
  const { node } = await response.json();
  assert.ok(node === "N0001" || node === "N0002", String(node));
  cluster.sim.run(200);
  const host = cluster.hosts[Number(node.slice(-1))].app!;
  assert.ok(host.worker("E9") instanceof EchoWorker, "the chosen node runs it");
  const state = await (await app.request("/state")).json();
  assert.deepEqual(state.placement.kinds, []);
  assert.deepEqual(
    state.placement.members.map((m: { node: string; load: number; self: boolean }) => [
      m.node,
      m.load,
      m.self,
    ]).sort(),
    [["N0000", 0, true], ["N0001", node === "N0001" ? 1 : 0, false], [
      "N0002",
      node === "N0002" ? 1 : 0,
      false,
    ]],
  );
  assert.deepEqual(state.placement.workers, [{
    guid: "E9",
    kind: "echo",
    params: {},
    host: node,
    version: 1,
    strategy: "least-loaded",
    removed: false,
    running: true,
  }]);
  // With a strategy and parameters of its own.
  const hashed = await post(
    "/spawn",
    JSON.stringify({ kind: "echo", guid: "E10", params: {}, strategy: "hashed" }),
  );
  assert.equal(hashed.status, 201);
  cluster.sim.run(200);
  const entry = cluster.hosts[0].app!.placement.entry("E10");
  assert.equal(entry?.strategy, "hashed");
  close();
});

test("POST /spawn answers bad input with 400 and what the cluster refuses with 409", async () => {
  const { post, close } = placementCluster();
  const cases: Array<[string, number, RegExp]> = [
    ["{not json", 400, /^Cannot read spawn: invalid JSON/],
    ["[]", 400, /^Cannot read spawn: the body must be a JSON object/],
    [JSON.stringify({ guid: "X" }), 400, /^Cannot read spawn: kind/],
    [JSON.stringify({ kind: "echo" }), 400, /^Cannot read spawn: guid/],
    [JSON.stringify({ kind: "echo", guid: "X", params: { n: 1 } }), 400, /params\["n"\]/],
    [JSON.stringify({ kind: "echo", guid: "X", params: [] }), 400, /params must be an object/],
    [JSON.stringify({ kind: "echo", guid: "X", strategy: 3 }), 400, /strategy/],
    [
      JSON.stringify({ kind: "echo", guid: "X", strategy: "random" }),
      400,
      /^Cannot spawn "X": unknown strategy "random"/,
    ],
    [
      JSON.stringify({ kind: "unicorn", guid: "U1" }),
      409,
      /^Cannot spawn "U1": no linked node hosts kind "unicorn"/,
    ],
  ];
  for (const [body, status, error] of cases) {
    const response = await post("/spawn", body);
    assert.equal(response.status, status, body);
    assert.match((await response.json()).error, error, body);
  }
  assert.equal((await post("/spawn", JSON.stringify({ kind: "echo", guid: "E1" }))).status, 201);
  const again = await post("/spawn", JSON.stringify({ kind: "echo", guid: "E1" }));
  assert.equal(again.status, 409);
  assert.match((await again.json()).error, /^Cannot spawn "E1": it is already placed on node N000/);
  const huge = await post("/spawn", JSON.stringify({ kind: "echo", guid: "x".repeat(70_000) }));
  assert.equal(huge.status, 413);
  close();
});

test("POST /stop stops a spawned worker wherever it runs, and says when there was none", async () => {
  const { cluster, post, close } = placementCluster();
  const { node } = await (await post("/spawn", JSON.stringify({ kind: "echo", guid: "E1" })))
    .json();
  cluster.sim.run(200);
  const host = cluster.hosts[Number(node.slice(-1))].app!;
  assert.ok(host.worker("E1"));
  const stopped = await post("/stop", JSON.stringify({ guid: "E1" }));
  assert.equal(stopped.status, 200);
  assert.deepEqual(await stopped.json(), { stopped: true });
  cluster.sim.run(200);
  assert.equal(host.worker("E1"), undefined, "its host stopped it");
  assert.deepEqual(await (await post("/stop", JSON.stringify({ guid: "E1" }))).json(), {
    stopped: false,
  });
  for (const body of ["{", "{}", JSON.stringify({ guid: 7 }), JSON.stringify({ guid: "" })]) {
    const response = await post("/stop", body);
    assert.equal(response.status, 400, body);
    assert.match((await response.json()).error, /^Cannot read stop/);
  }
  close();
});

test("POST /spawn and POST /stop need the bearer token when one is set", async () => {
  const { post, close } = placementCluster("s3cret");
  const spawn = JSON.stringify({ kind: "echo", guid: "E1" });
  for (const path of ["/spawn", "/stop"]) {
    const denied = await post(path, spawn);
    assert.equal(denied.status, 401, path);
    assert.match((await denied.json()).error, /bearer token/);
    const wrong = await post(path, spawn, { authorization: "Bearer nope" });
    assert.equal(wrong.status, 401, path);
  }
  const auth = { authorization: "Bearer s3cret" };
  assert.equal((await post("/spawn", spawn, auth)).status, 201);
  assert.equal((await post("/stop", JSON.stringify({ guid: "E1" }), auth)).status, 200);
  close();
});

test("GET /events streams placement events, and the page has a Placement card listening for them", async () => {
  const { app, post, close } = placementCluster();
  const html = await (await app.request("/")).text();
  assert.match(html, /<h2>Placement<\/h2>/);
  assert.match(html, /"worker-placed",\s*"spawn-failed"/);
  // The page's script is JavaScript that parses.
  const script = /<script>([\s\S]*)<\/script>/.exec(html)![1];
  assert.doesNotThrow(() => new Function(script));
  const response = await app.request("/events");
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
  assert.equal((await post("/spawn", JSON.stringify({ kind: "echo", guid: "E1" }))).status, 201);
  await readUntil(/event: worker-placed/);
  assert.match(text, /event: worker-placed\ndata: \{"type":"worker-placed","worker":"E1"/);
  close();
  await reader.cancel();
});
