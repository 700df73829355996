/**
 * Simulated AutoMPI clusters: N hosts on one simulated subnet, each running the real node of
 * `src/` with (optionally) one worker, plus the checks the tests and the sim CLI share.
 *
 * @module
 */
import { AutoMpiNode, type NodeOptions } from "../src/node.ts";
import type { MapMessage } from "../src/message.ts";
import { WorkerBase } from "../src/worker.ts";
import { type SimHost, Simulation, type SimulationOptions } from "./simulation.ts";

/** A worker that records what it receives, for checks. */
export class RecordingWorker extends WorkerBase {
  /** Every message handled, in order. */
  readonly received: MapMessage[] = [];

  protected override onMessage(message: MapMessage): void {
    this.received.push(message);
  }
}

/** Options of {@link createSimCluster}. */
export interface SimClusterOptions extends SimulationOptions {
  /** How many nodes. */
  readonly nodes: number;
  /** Attach one {@link RecordingWorker} per node (GUID `W<index>`). Default true. */
  readonly workers?: boolean;
  /** Node options applied to every node (guid, listen and discovery are set per node). */
  readonly node?: Partial<NodeOptions>;
  /** Further node options per node (kinds to host, storage…), merged over `node`. */
  readonly nodeOptionsOf?: (
    guid: string,
    index: number,
    host: SimHost,
    sim: Simulation,
  ) => Partial<NodeOptions>;
  /** GUID of node `index`; default `N` + index padded to 4 digits. */
  readonly guidOf?: (index: number) => string;
}

/** A running simulated cluster. */
export interface SimCluster {
  readonly sim: Simulation;
  readonly hosts: ReadonlyArray<SimHost<AutoMpiNode>>;
  /** The live nodes (hosts that are up), in host order. */
  liveNodes(): AutoMpiNode[];
  /** Distinct pairs of live nodes linked to each other (both sides agree). */
  linkedPairs(): number;
  /** Sum over live nodes of the remote worker locations they know. */
  locationsKnown(): number;
  /** Every live node links every other live node and knows every other live worker. */
  converged(): boolean;
}

/** The GUID of the worker of node `index` in a {@link createSimCluster} cluster. */
export function workerGuid(index: number): string {
  return `W${String(index).padStart(4, "0")}`;
}

/**
 * Starts a simulated cluster of real nodes.
 *
 * @example
 * ```ts
 * import { createSimCluster } from "./cluster.ts";
 * const cluster = createSimCluster({ nodes: 5, seed: 3 });
 * cluster.sim.runUntil(() => cluster.converged(), 3000);
 * console.assert(cluster.linkedPairs() === 10);
 * ```
 */
export function createSimCluster(options: SimClusterOptions): SimCluster {
  const { nodes, workers = true, node: nodeOptions = {}, guidOf, nodeOptionsOf } = options;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 5000) {
    throw new RangeError(`Cannot create cluster of ${nodes} nodes: need an integer in 1..5000`);
  }
  const sim = new Simulation(options);
  const broadcastAddress = "10.0.255.255";
  const guid = guidOf ?? ((index: number) => `N${String(index).padStart(4, "0")}`);
  const hosts = Array.from(
    { length: nodes },
    (_, index) =>
      sim.addHost(`n${index}`, (platform, host) => {
        const node = new AutoMpiNode(platform, {
          ...nodeOptions,
          ...nodeOptionsOf?.(guid(index), index, host, sim),
          guid: guid(index),
          listen: { host: host.address, port: 8888 },
          discovery: nodeOptions.discovery === false ? false : { broadcastAddress },
        });
        node.start();
        if (workers) node.attachWorker(new RecordingWorker(workerGuid(index)));
        return node;
      }),
  );
  const live = () => hosts.filter((host) => host.state !== "down" && host.app !== undefined);
  const cluster: SimCluster = {
    sim,
    hosts,
    liveNodes: () => live().map((host) => host.app!),
    linkedPairs() {
      const nodesNow = cluster.liveNodes();
      const byGuid = new Map(nodesNow.map((n) => [n.guid, n]));
      let pairs = 0;
      for (const n of nodesNow) {
        for (const peer of n.linkedPeers()) {
          if (n.guid < peer && byGuid.get(peer)?.linkedPeers().includes(n.guid)) pairs++;
        }
      }
      return pairs;
    },
    locationsKnown: () => cluster.liveNodes().reduce((sum, n) => sum + n.knownLocations, 0),
    converged() {
      const nodesNow = cluster.liveNodes();
      const count = nodesNow.length;
      const workersPerNode = workers ? 1 : 0;
      // Cheap counts first: most instants fail here, before any list is copied.
      for (const n of nodesNow) {
        if (!n.running || n.linkCount !== count - 1) return false;
        if (n.knownLocations < (count - 1) * workersPerNode) return false;
      }
      return cluster.linkedPairs() === (count * (count - 1)) / 2;
    },
  };
  return cluster;
}
