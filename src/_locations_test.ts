import { test } from "node:test";
import assert from "node:assert/strict";
import { WorkerLocations } from "./_locations.ts";

function world(local: string[] = []) {
  const events: string[] = [];
  const logs: string[] = [];
  const locations = new WorkerLocations({
    log: { log: (_level: string, event: string) => logs.push(event) } as never,
    hostsLocally: (worker) => local.includes(worker),
    onAdded: (worker, node) => events.push(`+${worker}@${node}`),
    onRemoved: (worker, node) => events.push(`-${worker}@${node}`),
  });
  return { locations, events, logs };
}

test("a location is added once however often a node repeats it", () => {
  const w = world();
  w.locations.learn("B", "w1");
  w.locations.learn("B", "w1");
  assert.deepEqual(w.events, ["+w1@B"]);
  assert.equal(w.locations.get("w1"), "B");
  assert.equal(w.locations.size, 1);
});

test("a second host takes over the route; when it stops the first one is used again", () => {
  const w = world();
  w.locations.learn("B", "w1");
  w.locations.learn("C", "w1");
  assert.equal(w.locations.get("w1"), "C");
  w.locations.removed("C", "w1");
  assert.equal(w.locations.get("w1"), "B");
  w.locations.removed("B", "w1");
  assert.equal(w.locations.get("w1"), undefined);
  assert.deepEqual(w.events, ["+w1@B", "+w1@C", "-w1@C", "+w1@B", "-w1@B"]);
});

test("a whole worker set replaces what the node said before", () => {
  const w = world();
  w.locations.learn("B", "w1");
  w.locations.learn("B", "w2");
  w.locations.replace("B", new Set(["w2", "w3"]));
  assert.deepEqual([...w.locations.entries()], [["w2", "B"], ["w3", "B"]]);
  assert.deepEqual(w.events, ["+w1@B", "+w2@B", "-w1@B", "+w3@B"]);
});

test("forgetting a node removes its workers, or routes them to another host", () => {
  const w = world();
  w.locations.learn("B", "w1");
  w.locations.learn("B", "w2");
  w.locations.learn("C", "w2");
  w.locations.learn("B", "w3");
  w.locations.forget("C");
  w.locations.forget("B");
  w.locations.forget("nobody");
  assert.equal(w.locations.size, 0);
  assert.deepEqual(w.events.slice(4), ["-w2@C", "+w2@B", "-w1@B", "-w2@B", "-w3@B"]);
});

test("a remote claim on a worker hosted here is logged as a conflict", () => {
  const w = world(["w1"]);
  w.locations.learn("B", "w1");
  assert.deepEqual(w.logs, ["worker.guid-conflict"]);
});
