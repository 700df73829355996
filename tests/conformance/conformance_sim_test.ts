/**
 * The conformance suite against the simulator: two simulated hosts on 10.0.0.0/16, virtual
 * time. The simulator is the reference the real adapters are held to, and it is held to the
 * same cases.
 *
 * @module
 */
import { runConformance, type World } from "./_platform_suite.ts";
import { Simulation } from "../../sim/simulation.ts";

let seed = 0;

function makeSimWorld(): World {
  const sim = new Simulation({ seed: ++seed, latencyMsMin: 1, latencyMsMax: 5 });
  const a = sim.addHost("a", (platform) => platform);
  const b = sim.addHost("b", (platform) => platform);
  return {
    a: { platform: a.app!, host: a.address },
    b: { platform: b.app!, host: b.address },
    broadcastHost: "10.0.255.255",
    waitFor: (predicate, maxMs) => Promise.resolve(sim.runUntil(predicate, maxMs)),
    close: () => Promise.resolve(),
  };
}

runConformance("sim", makeSimWorld);
