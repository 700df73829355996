/**
 * The deterministic network simulator: drive a whole cluster on virtual time from one seed.
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
