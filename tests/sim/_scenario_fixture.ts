/**
 * A user's scenario module as the replay tests import it: one exported definition, which a
 * replay file names by module and name (`tests/sim/sim_cli_test.ts`).
 *
 * @module
 */
import { EchoWorker } from "../../src/worker.ts";
import { defineScenario, type TrafficItem } from "../../sim/scenario.ts";

/** Echo workers on every node; each traffic item asks one of them from its node. */
export const echoes = defineScenario({
  name: "fixture echoes",
  module: import.meta.url,
  cluster: { setup: ({ node, index }) => node.attachWorker(new EchoWorker(`echo${index}`)) },
  traffic: (cluster, item: TrafficItem<number>) => {
    cluster.send(item.from, {
      destination: `echo${item.value % cluster.size}`,
      source: `asker${item.from}`,
    });
  },
  // Planted: "fails" whenever a node crashed, so a replay has a violation to reproduce.
  check: (cluster) => cluster.hosts.some((h) => h.incarnation > 1) ? "a node was restarted" : [],
});
