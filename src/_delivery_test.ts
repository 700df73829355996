import { test } from "node:test";
import assert from "node:assert/strict";
import { checkMessage, Delivery, type DeliveryLink, SERVICE_FIELD } from "./_delivery.ts";
import { createMessage, type MapMessage } from "./message.ts";
import type { Worker } from "./worker.ts";

type Link = DeliveryLink & { outLength: number };

const link = (peerGuid: string): Link => ({ peerGuid, conn: { bufferedBytes: 0 }, outLength: 0 });

function world() {
  const events: string[] = [];
  const links = new Map<string, Link>();
  const workers = new Map<string, Worker>();
  const locations = new Map<string, string>();
  const known = new Set<string>();
  const stats = {
    messagesSent: 0,
    messagesReceived: 0,
    undeliverable: 0,
    unknownService: 0,
    listenerErrors: 0,
  };
  const delivery = new Delivery<Link>({
    log: { log: () => {} } as never,
    stats,
    workers: {
      get: (guid: string) => workers.get(guid),
      queue: (worker: Worker, message: MapMessage) => (
        events.push(`queue ${worker.guid} ${message.destination}`), true
      ),
      queueAll: (message: MapMessage) => events.push(`queue all ${message.destination}`),
    } as never,
    links: () => links,
    locate: (worker) => locations.get(worker),
    knowsNode: (guid) => known.has(guid),
    frame: (message) => ({ parts: [], length: message.data?.length ?? 10 }),
    write: (l, message) => (events.push(`write ${l.peerGuid} ${message.destination}`), true),
    onUndeliverable: (message, reason, detail) =>
      events.push(`undeliverable ${message.destination} ${reason}${detail ? `: ${detail}` : ""}`),
    onOutcome: (message, outcome) => events.push(`outcome ${message.destination} ${outcome}`),
  }, { guid: "N", maxFrameBytes: 100, maxLinkBufferBytes: 1000 });
  return { delivery, events, links, workers, locations, known, stats };
}

test("a message goes to a local worker, over the link to its host, or is reported", () => {
  const w = world();
  w.workers.set("local", { guid: "local" } as Worker);
  w.links.set("B", link("B"));
  w.locations.set("remote", "B");
  w.known.add("C");
  w.delivery.route(createMessage("local", {}));
  w.delivery.route(createMessage("remote", {}));
  w.delivery.route(createMessage("B", {}));
  assert.equal(w.delivery.route(createMessage("C", {})), false);
  assert.equal(w.delivery.route(createMessage("nobody", {})), false);
  assert.deepEqual(w.events, [
    "queue local local",
    "write B remote",
    "write B B",
    "undeliverable C no-link: no link to node C",
    'undeliverable nobody unknown-destination: no worker or node "nobody" is known',
  ]);
  assert.equal(w.stats.messagesSent, 5);
  assert.deepEqual([...w.delivery.undeliverableByReason], [
    ["no-link", 1],
    ["unknown-destination", 1],
  ]);
});

test("a broadcast goes over every link but full ones, and locally", () => {
  const w = world();
  w.links.set("B", link("B"));
  const full = link("C");
  full.outLength = 1001;
  w.links.set("C", full);
  const handled: string[] = [];
  w.delivery.addHandler((message, info) => handled.push(`${message.destination} ${info.via}`));
  w.delivery.route(createMessage("ALLNodes", {}));
  w.delivery.route(createMessage("ALLWorkers", {}));
  assert.deepEqual(w.events, [
    "write B ALLNodes",
    "undeliverable ALLNodes link-buffer-full: link to C has a full buffer",
    "write B ALLWorkers",
    "undeliverable ALLWorkers link-buffer-full: link to C has a full buffer",
    "queue all ALLWorkers",
  ]);
  assert.deepEqual(handled, ["ALLNodes local"]);
});

test("a frame over the limit is reported too large and not written", () => {
  const w = world();
  w.links.set("B", link("B"));
  const big = createMessage("B", {}, { data: new Uint8Array(101) });
  assert.equal(w.delivery.route(big), false);
  assert.deepEqual(w.events, [
    "undeliverable B too-large: its frame of 101 bytes exceeds maxFrameBytes 100",
  ]);
});

test("received messages reach workers or handlers; others are not here", () => {
  const w = world();
  const from: string[] = [];
  w.delivery.addHandler((_message, info) => from.push(`${info.fromNode} ${info.via}`));
  w.delivery.receive(createMessage("N", {}), link("B"));
  w.delivery.receive(createMessage("ALLNodes", {}), undefined);
  w.delivery.receive(createMessage("ALLWorkers", {}), undefined);
  w.delivery.receive(createMessage("elsewhere", {}), link("B"));
  assert.deepEqual(from, ["B link", "undefined datagram"]);
  assert.deepEqual(w.events, [
    "queue all ALLWorkers",
    'undeliverable elsewhere not-here: no worker "elsewhere" on node N',
  ]);
  assert.equal(w.stats.messagesReceived, 4);
});

test("a service gets its own messages and misses; nobody else hears of them", () => {
  const w = world();
  const heard: string[] = [];
  w.delivery.addHandler(() => heard.push("handler"));
  const stop = w.delivery.addService(
    "svc",
    () => heard.push("service"),
    (_message, reason) => heard.push(`miss ${reason}`),
  );
  assert.throws(() => w.delivery.addService("svc", () => {}), /already registered/);
  const mine = createMessage("N", { [SERVICE_FIELD]: "svc" });
  w.delivery.route(mine);
  w.delivery.route(createMessage("nowhere", { [SERVICE_FIELD]: "svc" }));
  w.delivery.outcome(mine, "delivered");
  assert.deepEqual(heard, ["service", "miss unknown-destination"]);
  assert.deepEqual(w.events, [], "no undeliverable or outcome events for a service's traffic");
  stop();
  w.delivery.route(mine);
  assert.equal(w.stats.unknownService, 1);
});

test("a throwing handler is counted and the others still run", () => {
  const w = world();
  const heard: string[] = [];
  w.delivery.addHandler(() => {
    throw new Error("boom");
  });
  const remove = w.delivery.addHandler(() => heard.push("second"));
  w.delivery.route(createMessage("N", {}));
  assert.deepEqual(heard, ["second"]);
  assert.equal(w.stats.listenerErrors, 1);
  remove();
  w.delivery.route(createMessage("N", {}));
  assert.deepEqual(heard, ["second"]);
});

test("a message to send is checked, and the first problem named", () => {
  assert.throws(() => checkMessage(null as never), /the message is not an object/);
  assert.throws(() => checkMessage(createMessage("", {})), /destination must be a non-empty/);
  assert.throws(
    () => checkMessage({ destination: "w", source: "", message: { k: 1 as never } }),
    /message\["k"\] is not a string/,
  );
  assert.throws(
    () => checkMessage(createMessage("w", { AutoMPI_System_Message: "x" })),
    /is reserved for the nodes' own messages/,
  );
  checkMessage(createMessage("w", { k: "v" }));
});
