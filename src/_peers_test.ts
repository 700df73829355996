import { test } from "node:test";
import assert from "node:assert/strict";
import { type Peer, PeerTable, type PeerTableOptions, type Seed } from "./_peers.ts";
import type { Address } from "./platform.ts";

function world(options: Partial<PeerTableOptions> = {}, draws: number[] = []) {
  let nowMs = 0;
  const dials: Array<{ address: string; peer?: string; seed?: boolean }> = [];
  const seeds: Seed[] = [];
  const events: string[] = [];
  const linked = new Map<string, string>(); // guid → link incarnation
  let connections = 0;
  let running = true;
  const table = new PeerTable({
    clock: { now: () => nowMs } as never,
    random: { next: () => draws.shift() ?? 0.5 } as never,
    log: { log: () => {} } as never,
    running: () => running,
    connectionCount: () => connections,
    isLinked: (guid) => linked.has(guid),
    linkIncarnation: (guid) => linked.get(guid),
    probe: (guid) => events.push(`probe ${guid}`),
    dial: (address: Address, peer: Peer | undefined, seed: Seed | undefined) => {
      if (seed) seeds.push(seed);
      dials.push({
        address: `${address.host}:${address.port}`,
        ...(peer ? { peer: peer.guid } : {}),
        ...(seed ? { seed: true } : {}),
      });
      return {};
    },
    onDiscovered: (peer) => events.push(`discovered ${peer.guid} via ${peer.via}`),
    onLost: (peer) => events.push(`lost ${peer.guid}`),
  }, {
    guid: "M",
    maxLinks: 10,
    dialGraceMs: 2000,
    reconnectMinMs: 250,
    reconnectMaxMs: 8000,
    silenceMs: 3000,
    sharedConnection: true,
    seeds: [],
    ...options,
  });
  return {
    table,
    dials,
    seeds,
    events,
    linked,
    at: (ms: number) => nowMs = ms,
    setConnections: (n: number) => connections = n,
    stop: () => running = false,
  };
}

test("a new peer is discovered once and the lower GUID dials it at once", () => {
  const w = world();
  const peer = w.table.learn("Z", "10.0.0.26:8888", "z1", "heartbeat");
  w.table.learn("Z", "10.0.0.26:8888", "z1", "heartbeat");
  assert.deepEqual(w.events, ["discovered Z via heartbeat"]);
  assert.deepEqual(w.dials, [{ address: "10.0.0.26:8888", peer: "Z" }]);
  assert.ok(peer.pending !== undefined, "one dial in flight, no second");
});

test("the higher GUID waits the dial grace before dialling", () => {
  const w = world();
  const peer = w.table.learn("A", "10.0.0.1:8888", "a1", "heartbeat");
  assert.equal(w.dials.length, 0);
  w.at(1999);
  w.table.maybeDial(peer);
  assert.equal(w.dials.length, 0);
  w.at(2000);
  w.table.maybeDial(peer);
  assert.deepEqual(w.dials, [{ address: "10.0.0.1:8888", peer: "A" }]);
});

test("where each side sends on its own connection both sides dial at once", () => {
  const w = world({ sharedConnection: false });
  w.table.learn("A", "10.0.0.1:8888", "a1", "heartbeat");
  assert.equal(w.dials.length, 1);
});

test("no dials at the link limit, when stopped, or over a link", () => {
  const w = world({ maxLinks: 2 });
  w.setConnections(2);
  w.table.learn("Z", "10.0.0.26:8888", "z1", "heartbeat");
  w.setConnections(0);
  w.table.learn("Y", "10.0.0.25:8888", "y1", "link");
  w.stop();
  w.table.learn("X", "10.0.0.24:8888", "x1", "gossip");
  assert.equal(w.dials.length, 0);
});

test("failed dials back off, doubling with jitter up to the maximum", () => {
  const w = world({}, [0, 0.999, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
  const target = { backoffMs: 0, nextDialAtMs: 0 };
  w.table.backoff(target);
  assert.deepEqual(target, { backoffMs: 250, nextDialAtMs: 125 });
  w.table.backoff(target);
  assert.equal(target.backoffMs, 500);
  assert.ok(Math.abs(target.nextDialAtMs - 749.5) < 1e-9);
  for (let i = 0; i < 6; i++) w.table.backoff(target);
  assert.equal(target.backoffMs, 8000);
});

test("another incarnation while linked probes the link and changes nothing", () => {
  const w = world();
  const peer = w.table.learn("B", "10.0.0.2:8888", "b1", "link");
  w.linked.set("B", "b1");
  w.table.learn("B", "10.0.0.99:8888", "b2", "heartbeat");
  assert.deepEqual(w.events, ["discovered B via link", "probe B"]);
  assert.equal(peer.incarnation, "b1");
  assert.equal(peer.address, "10.0.0.2:8888", "a heartbeat cannot redirect a linked peer");
  w.linked.delete("B");
  w.table.learn("B", "10.0.0.99:8888", "b2", "heartbeat");
  assert.equal(peer.incarnation, "b2");
  assert.equal(peer.address, "10.0.0.99:8888");
});

test("a peer list cannot change a peer's incarnation", () => {
  const w = world();
  const peer = w.table.learn("B", "10.0.0.2:8888", "b1", "heartbeat");
  w.table.learn("B", "10.0.0.2:8888", "b9", "gossip");
  assert.equal(peer.incarnation, "b1");
});

test("an unlinked peer silent past the bound is lost; a linked one is kept", () => {
  const w = world();
  const b = w.table.learn("B", "10.0.0.2:8888", "b1", "link");
  w.table.learn("C", "10.0.0.3:8888", "c1", "link");
  w.linked.set("C", "c1");
  w.at(3001);
  w.table.tick(3001);
  assert.deepEqual(w.events.slice(2), ["lost B"]);
  assert.equal(b.forgotten, true);
  assert.equal(w.table.has("B"), false);
  assert.equal(w.table.has("C"), true);
});

test("a peer that said goodbye is forgotten; one lost otherwise backs off", () => {
  const w = world();
  const b = w.table.learn("B", "10.0.0.2:8888", "b1", "link");
  const c = w.table.learn("C", "10.0.0.3:8888", "c1", "link");
  assert.equal(w.table.unlinked("B", "goodbye"), b);
  assert.equal(b.forgotten, true);
  w.table.unlinked("C", "reset");
  assert.equal(c.backoffMs, 250);
  assert.equal(w.table.unlinked("Q", "reset"), undefined);
});

test("twin refusals back off on their own count, reset after a long quiet", () => {
  const w = world();
  const b = w.table.learn("B", "10.0.0.2:8888", "b1", "link");
  w.table.refusedBy(b, 0);
  w.table.refusedBy(b, 100);
  w.table.linked(b, undefined); // a link does not reset the refusal count
  w.table.refusedBy(b, 200);
  assert.equal(b.refusalBackoffMs, 1000);
  w.table.refusedBy(b, 200 + 16_001);
  assert.equal(b.refusalBackoffMs, 250);
  assert.equal(b.backoffMs, 250);
});

test("seeds are dialled until linked, and never once found to be this node", () => {
  const w = world({ seeds: [{ host: "10.0.0.7", port: 1 }, { host: "10.0.0.8", port: 2 }] });
  w.table.dialSeeds();
  assert.deepEqual(w.dials, [
    { address: "10.0.0.7:1", seed: true },
    { address: "10.0.0.8:2", seed: true },
  ]);
  w.table.dialSeeds();
  assert.equal(w.dials.length, 2, "dials in flight are not repeated");
  const [self, other] = w.seeds;
  self.pending = undefined;
  self.self = true;
  other.pending = undefined;
  other.guid = "B";
  w.linked.set("B", "b1");
  w.table.dialSeeds();
  assert.equal(w.dials.length, 2, "neither this node nor a linked seed is dialled");
  w.linked.delete("B");
  w.table.dialSeeds();
  assert.deepEqual(w.dials.slice(2), [{ address: "10.0.0.8:2", seed: true }]);
});
