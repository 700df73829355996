/**
 * The ring-membership cluster the simulated tests share: `n` nodes, each with an echo worker
 * `echo<i>`.
 *
 * @module
 */
import { SimCluster } from "../../sim/cluster.ts";
import type { NodeOptions } from "../../src/node.ts";
import { EchoWorker } from "../../src/worker.ts";

/** `n` ring nodes (with `node` options on top), each with an echo worker `echo<i>`. */
export function echoRing(
  n: number,
  seed: number,
  more: Partial<ConstructorParameters<typeof SimCluster>[0]> = {},
  node: Partial<NodeOptions> = {},
): SimCluster {
  return new SimCluster({
    nodes: n,
    seed,
    node: { membership: "ring", ...node },
    setup: ({ node, index }) => node.attachWorker(new EchoWorker(`echo${index}`)),
    ...more,
  });
}
