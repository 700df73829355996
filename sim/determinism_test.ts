import { test } from "node:test";
import assert from "node:assert/strict";
import { Simulation } from "./simulation.ts";
import { startChatter } from "./chatter.ts";

/**
 * A run that touches every source of nondeterminism the simulator controls: latency jitter,
 * loss, duplication, host randomness, broadcast, streams, partitions, crashes and restarts.
 */
function scenario(seed: number): { hash: string; events: number; links: number } {
  const sim = new Simulation({
    seed,
    latencyMsMin: 1,
    latencyMsMax: 15,
    lossProbability: 0.05,
    duplicateProbability: 0.02,
  });
  const hosts = Array.from({ length: 12 }, (_, i) =>
    sim.addHost(
      `h${i}`,
      (platform, host) =>
        startChatter(platform, { address: host.address, broadcastAddress: "10.0.255.255" }),
    ));
  sim.run(3000);
  sim.partition(hosts.slice(0, 6), hosts.slice(6));
  sim.run(2000);
  sim.crash("h3");
  sim.run(500);
  sim.restart("h3");
  sim.heal();
  sim.run(4000);
  const links = hosts.reduce((sum, host) => sum + (host.app?.linked.size ?? 0), 0);
  return { hash: sim.traceHash, events: sim.events, links };
}

// The same seed gives this hash on every runtime; Deno and Bun both run this file against it.
// If a deliberate change to the simulator or chatter alters it, update it in the same commit.
const STORED = { seed: 20261128, hash: "bbb0fe64dec83ad5" };

test("the same seed gives the same trace hash, run after run", () => {
  const first = scenario(99);
  const second = scenario(99);
  assert.equal(first.hash, second.hash);
  assert.equal(first.events, second.events);
  assert.ok(first.events > 1000, `only ${first.events} events`);
});

test("different seeds give different traces", () => {
  assert.notEqual(scenario(1).hash, scenario(2).hash);
});

test("the trace hash of the stored seed is the stored one on this runtime", () => {
  const run = scenario(STORED.seed);
  assert.equal(run.hash, STORED.hash);
});

test("every pair of chatter hosts is linked within 3 simulated seconds", () => {
  const sim = new Simulation({ seed: 7, latencyMsMin: 1, latencyMsMax: 15 });
  const hosts = Array.from({ length: 12 }, (_, i) =>
    sim.addHost(
      `h${i}`,
      (platform, host) =>
        startChatter(platform, { address: host.address, broadcastAddress: "10.0.255.255" }),
    ));
  sim.run(3000);
  assert.deepEqual(hosts.map((host) => host.app!.linked.size), hosts.map(() => 11));
});
