/**
 * The deterministic network simulator, and the toolkit to test your own workers on it.
 *
 * - {@link SimCluster}: N real nodes with your workers, fault verbs by node index or GUID, a
 *   message history with checkers, your invariants, `settle()`.
 * - {@link faultSchedule}, {@link checkScenarios}, {@link runScenario}, {@link replayScenario}:
 *   property-based fault campaigns of your own, shrunk to a short schedule and replayed exactly.
 * - {@link Simulation}: the network underneath (hosts, datagrams, streams, faults), from one seed.
 *
 * The example below drives the bare network; see `SimCluster` and `checkScenarios` for clusters.
 *
 * @example
 * ```ts
 * import { Simulation } from "./mod.ts";
 * const sim = new Simulation({ seed: 7, latencyMsMin: 1, latencyMsMax: 3 });
 * const server = sim.addHost("server", (platform) => {
 *   platform.net.listen({ host: "0.0.0.0", port: 8888 }, {
 *     onConnection: () => ({ onData: (conn, data) => conn.write(data), onClose() {} }),
 *   });
 * });
 * let echoed = 0;
 * sim.addHost("client", (platform) => {
 *   platform.net.connect({ host: server.address, port: 8888 }, {
 *     onOpen: (conn) => conn.write(new Uint8Array([1, 2, 3])),
 *     onData: (_conn, data) => void (echoed += data.length),
 *     onClose() {},
 *   });
 * });
 * sim.run(50);
 * console.assert(echoed === 3);
 * ```
 *
 * @module
 */
export {
  type ClockSkew,
  type HostFactory,
  type HostOptions,
  type HostSet,
  type NetworkConditions,
  type PacketInfo,
  type PacketRule,
  type PacketVerdict,
  type SimHost,
  type SimHostError,
  type SimLogEntry,
  type SimStats,
  Simulation,
  type SimulationOptions,
} from "./simulation.ts";
export { deriveSeed, SeededRandom } from "./_random.ts";
export { runAsync, type RunAsyncOptions, SimDisk, type SimDiskOptions } from "./storage.ts";
export {
  createSimCluster,
  type CreateSimClusterOptions,
  type Invariant,
  type NodeContext,
  type NodeOptionsContext,
  type NodeRef,
  type NodeRefs,
  RecordingWorker,
  type RunStep,
  type SettleOptions,
  type SettleReport,
  SimCheckError,
  SimClient,
  SimCluster,
  type SimClusterOptions,
  workerGuid,
} from "./cluster.ts";
export {
  DEFAULT_CHECKS,
  type Delivery,
  History,
  type HistoryCheck,
  type MessageRecord,
  noDeliveryAfterReport,
  noDuplicateDelivery,
  nothingSilentlyLost,
  type OrphanDelivery,
  perSenderOrder,
  type Report,
  type WatchedNode,
} from "./history.ts";
export {
  applyFault,
  checkScenario,
  checkScenarios,
  checkScenariosAsync,
  defineScenario,
  type Fault,
  FAULT_KINDS,
  type FaultKind,
  faultSchedule,
  type FaultScheduleOptions,
  findDefinition,
  type ReplayFile,
  replayFile,
  replayScenario,
  replayScenarioAsync,
  runScenario,
  runScenarioAsync,
  type RunScenarioOptions,
  type Scenario,
  type ScenarioDefinition,
  ScenarioFailure,
  type ScenarioReport,
  type ScenarioResult,
  type SearchOptions,
  searchScenarios,
  type TrafficItem,
} from "./scenario.ts";
