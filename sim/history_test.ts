import { test } from "node:test";
import assert from "node:assert/strict";
import {
  History,
  noDeliveryAfterReport,
  noDuplicateDelivery,
  nothingSilentlyLost,
  perSenderOrder,
  type WatchedNode,
} from "./history.ts";
import { SimCluster } from "./cluster.ts";
import { Emitter } from "../src/events.ts";
import type { NodeEvents } from "../src/node.ts";
import { createMessage, type MapMessage } from "../src/message.ts";
import { EchoWorker } from "../src/worker.ts";

/** A stand-in node whose events a test fires by hand, to plant what a real node never does. */
function fakeNode(guid: string, locations: Record<string, string> = {}) {
  const events = new Emitter<NodeEvents>();
  const node: WatchedNode = {
    guid,
    locate: (worker) => locations[worker],
    on:
      ((type: keyof NodeEvents, listener: (event: unknown) => void) =>
        events.on(type, listener as (event: unknown) => void)) as WatchedNode["on"],
  };
  return {
    node,
    sent: (message: MapMessage) => events.emit("message-sent", { message }),
    delivered: (worker: string, message: MapMessage) =>
      events.emit("message-delivered", { worker, message }),
    reported: (message: MapMessage, reason: "link-lost" | "no-link") =>
      events.emit("undeliverable", { message, reason }),
  };
}

function harness() {
  let now = 0;
  const history = new History(() => now);
  const a = fakeNode("A", { w: "B" });
  const b = fakeNode("B");
  history.watch(a.node);
  history.watch(b.node);
  return { history, a, b, at: (ms: number) => void (now = ms) };
}

const msg = (n: number, destination = "w") =>
  createMessage(destination, { n: String(n) }, { source: "A" });

test("a message is recorded sent, then delivered, with virtual times and the host it was for", () => {
  const { history, a, b, at } = harness();
  at(10);
  a.sent(msg(1));
  at(15);
  b.delivered("w", msg(1));
  const [record] = history.records;
  assert.equal(record.sentAtMs, 10);
  assert.equal(record.hostNode, "B");
  assert.deepEqual(record.deliveries.map((d) => [d.worker, d.node, d.atMs]), [["w", "B", 15]]);
  for (const check of [noDuplicateDelivery, perSenderOrder, nothingSilentlyLost]) {
    assert.deepEqual(check(history), []);
  }
});

test("a worker that gets one message twice is a duplicate; identical messages sent twice are not", () => {
  const { history, a, b } = harness();
  a.sent(msg(1));
  a.sent(msg(1));
  b.delivered("w", msg(1));
  b.delivered("w", msg(1));
  assert.deepEqual(noDuplicateDelivery(history), [], "two sends, two deliveries");
  b.delivered("w", msg(1));
  assert.match(noDuplicateDelivery(history).join("\n"), /message #1 .* delivered 2 times to w/);
});

test("a delivery nobody sent is reported as never sent", () => {
  const { history, b } = harness();
  b.delivered("w", msg(7));
  assert.match(noDuplicateDelivery(history)[0], /A -> w delivered to w at 0 ms was never sent/);
});

test("deliveries out of sending order break per-sender order", () => {
  const { history, a, b } = harness();
  a.sent(msg(1));
  a.sent(msg(2));
  b.delivered("w", msg(2));
  b.delivered("w", msg(1));
  assert.match(perSenderOrder(history)[0], /order: w got message #1 .* before #0/);
});

test("a message neither delivered nor reported is silently lost, unless a crash explains it", () => {
  const { history, a, at } = harness();
  a.sent(msg(1));
  a.sent(msg(2));
  a.reported(msg(2), "no-link");
  a.sent(msg(3, "B")); // to a node's handlers: no delivery event to expect
  assert.equal(nothingSilentlyLost(history).length, 1);
  assert.match(nothingSilentlyLost(history)[0], /message #0 .* neither delivered nor reported/);
  at(50);
  history.noteCrash("B");
  assert.deepEqual(nothingSilentlyLost(history), [], "the host of w crashed after the send");
});

test("reported lost and then delivered is caught by noDeliveryAfterReport", () => {
  const { history, a, b, at } = harness();
  a.sent(msg(1));
  at(20);
  a.reported(msg(1), "link-lost");
  at(30);
  b.delivered("w", msg(1));
  assert.match(
    noDeliveryAfterReport(history)[0],
    /reported link-lost at 20 ms, then delivered to w at 30 ms/,
  );
  assert.deepEqual(nothingSilentlyLost(history), []);
});

test("in a real cluster, a message across a partition is reported and one after heal delivered", () => {
  const cluster = new SimCluster({
    nodes: 3,
    seed: 21,
    setup: ({ node, index }) => node.attachWorker(new EchoWorker(`e${index}`)),
  });
  const client = cluster.client(0, "c");
  cluster.settle();
  cluster.partition(0, [1, 2]);
  cluster.run(5000); // past the silence bound: the links are gone
  client.send("e2", { n: "lost" });
  cluster.settle();
  client.send("e2", { n: "after" });
  cluster.run(200);
  const [lost, after] = cluster.history.records.filter((r) => r.source === "c");
  // The peer and its workers are forgotten by then: nobody knows where e2 is.
  assert.equal(lost.reports[0].reason, "unknown-destination");
  assert.equal(lost.deliveries.length, 0);
  assert.equal(after.deliveries[0].worker, "e2");
  // The echo's answer to the client is in the history too.
  const answer = cluster.history.records.find((r) => r.source === "e2");
  assert.equal(answer?.deliveries[0].worker, "c");
  assert.deepEqual(cluster.violations(), []);
});
