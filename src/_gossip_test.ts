import { test } from "node:test";
import assert from "node:assert/strict";
import { Gossip, type GossipLink, type GossipOptions, workerLocation } from "./_gossip.ts";
import type { ProtocolError } from "./errors.ts";
import { SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";

const link = (guid: string): GossipLink => ({
  peerGuid: guid,
  peerAddress: `${guid}:1`,
  peerIncarnation: `${guid}-1`,
  gossipVersion: -1,
});

function world(options: Partial<GossipOptions> = {}, picks: number[] = []) {
  const links = new Map<string, GossipLink>();
  const written: Array<
    { to: string; kind: string; fields: Record<string, string>; transient: boolean }
  > = [];
  const learnt: string[] = [];
  const malformed: string[] = [];
  const sets: string[] = [];
  const workers: string[] = [];
  const gossip = new Gossip({
    random: { int: (min: number) => picks.shift() ?? min } as never,
    links: () => links,
    workers: () => workers,
    write: (to, message, transient) =>
      written.push({
        to: to.peerGuid,
        kind: message.message[SYSTEM_KEY],
        fields: message.message,
        transient,
      }),
    learn: (guid, address, incarnation) => learnt.push(`${guid} ${address} ${incarnation}`),
    malformed: (to, error: ProtocolError) => malformed.push(`${to.peerGuid}: ${error.message}`),
    workerSet: (node, set) => sets.push(`${node}: ${[...set].join(",")}`),
  }, { guid: "A", peerLists: true, workerSets: true, gossipIntervals: 5, ...options });
  const up = (guid: string) => {
    const l = link(guid);
    links.set(guid, l);
    gossip.linked();
    return l;
  };
  return { gossip, links, written, learnt, malformed, sets, workers, up };
}

test("a peer list names our other links, and none goes to a lone link", () => {
  const w = world();
  const b = w.up("B");
  w.gossip.sendPeerList(b);
  assert.equal(w.written.length, 0);
  w.up("C");
  w.gossip.sendPeerList(b);
  assert.equal(w.written[0].kind, SystemKind.PeerList);
  assert.deepEqual(JSON.parse(w.written[0].fields[SystemField.Peers]), [["C", "C:1", "C-1"]]);
});

test("every few ticks one random stale link gets a peer list; a quiet cluster gets none", () => {
  const w = world({}, [1]);
  w.up("B");
  w.up("C");
  w.up("D");
  for (let tick = 1; tick < 5; tick++) w.gossip.tick(tick);
  assert.equal(w.written.length, 0, "only every fifth tick");
  w.gossip.tick(5);
  assert.deepEqual(w.written.map((x) => x.to), ["C"], "the random pick among B, C, D");
  for (let tick = 10; tick <= 20; tick += 5) w.gossip.tick(tick);
  assert.deepEqual(w.written.map((x) => x.to), ["C", "B", "D"]);
  w.gossip.tick(25);
  assert.equal(w.written.length, 3, "all have our current set: nothing more");
  w.up("E");
  w.gossip.tick(30);
  assert.equal(w.written.length, 4, "a change makes every link stale again");
});

test("without peer lists in the protocol none is sent", () => {
  const w = world({ peerLists: false });
  const b = w.up("B");
  w.up("C");
  w.gossip.sendPeerList(b);
  w.gossip.tick(5);
  assert.equal(w.written.length, 0);
});

test("a received peer list teaches the peers in it and the sender's links", () => {
  const w = world();
  const b = w.up("B");
  w.up("C");
  w.gossip.onPeerList(
    b,
    JSON.stringify([["C", "C:1", "C-1"], ["D", "D:1", "D-1"], ["A", "A:1", "A-1"], [1, 2, 3], []]),
  );
  assert.deepEqual(w.learnt, ["D D:1 D-1"]);
  const nodes = ["A", "B", "C", "D"].map((guid) => ({
    guid,
    address: "",
    self: guid === "A",
    linked: false,
  }));
  assert.deepEqual(w.gossip.clusterLinks(nodes), [
    ["A", "B"],
    ["A", "C"],
    ["B", "C"],
    ["B", "D"],
  ]);
  w.links.delete("B");
  w.gossip.unlinked("B");
  assert.deepEqual(w.gossip.clusterLinks(nodes), [["A", "C"]]);
  w.gossip.onPeerList(b, "{not json");
  assert.deepEqual(w.malformed, ["B: Cannot use peer list: not a JSON array"]);
});

test("a new link gets the worker set in one message, or one location each on the original", () => {
  const native = world();
  native.workers.push("w1", "w2");
  native.gossip.sendWorkerSet(native.up("B"));
  assert.equal(native.written.length, 1);
  assert.equal(native.written[0].kind, SystemKind.WorkerSet);
  assert.equal(native.written[0].fields[SystemField.Workers], '["w1","w2"]');
  assert.equal(native.written[0].transient, true);
  const original = world({ workerSets: false, peerLists: false });
  original.workers.push("w1", "w2");
  original.gossip.sendWorkerSet(original.up("B"));
  assert.deepEqual(
    original.written.map((x) => x.fields),
    [workerLocation("A", "w1").message, workerLocation("A", "w2").message],
  );
});

test("a worker set is taken only from the node it describes, and only if well formed", () => {
  const w = world();
  const b = w.up("B");
  const set = (node: string, workers: string) => ({
    [SYSTEM_KEY]: SystemKind.WorkerSet,
    [SystemField.NodeGuid]: node,
    [SystemField.Workers]: workers,
  });
  w.gossip.onWorkerSet(b, set("B", '["w1","w2"]'));
  w.gossip.onWorkerSet(b, set("C", '["w3"]'));
  w.gossip.onWorkerSet(b, set("B", '["w1",""]'));
  assert.deepEqual(w.sets, ["B: w1,w2"]);
  assert.deepEqual(w.malformed, ["B: Cannot use worker set: not a JSON array of GUIDs"]);
});
