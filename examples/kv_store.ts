/**
 * A key-value store worker written from scratch, and the promise it makes: **a write it has
 * acknowledged is never lost**, whatever crashes, however often its node restarts. The store
 * keeps nothing in memory: a `set` writes to the worker's storage and is acknowledged only once
 * that write is durable; a `get` reads storage. The scenario gives every node a simulated disk
 * (`nodeOptions: ({ disk, host }) => ({ storage: disk.open(host) })`), so a restarted node finds
 * what was durable and loses what was not.
 *
 * Why it runs with `runScenarioAsync` (through {@link runKvScenario}): `runScenario` and
 * `checkScenarios` run the simulation synchronously, and a worker that awaits its storage goes on
 * in a Promise continuation, which JavaScript runs only once the synchronous run has returned.
 * Inside them the store would never acknowledge anything, and a check of acknowledged writes
 * would pass having checked nothing. The async runners play the same scenario with `runAsync`,
 * which lets continuations run at the virtual instant their write became durable.
 *
 * @example
 * ```ts
 * import { kvScenario, kvStores, runKvScenario } from "./kv_store.ts";
 *
 * const result = await runKvScenario(kvStores, kvScenario({ nodes: 3, crashNode: 1 }));
 * if (result.violations.length !== 0) throw new Error(result.violations.join("\n"));
 * if (result.acknowledged === 0) throw new Error("nothing was acknowledged");
 * ```
 *
 * @module
 */
import { type MapMessage, WorkerBase } from "../mod.ts";
import {
  defineScenario,
  runScenarioAsync,
  type Scenario,
  type ScenarioDefinition,
  type ScenarioResult,
  type SimClient,
  type SimCluster,
} from "../sim/mod.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();

/**
 * The store: `command=set`, `key`, `value` is answered `command=setAck` (same `id`, `key` and
 * `value`) once the value is durable; `command=get`, `key` is answered `command=getReply` with
 * `found` and `value`. Everything lives in the worker's storage (`this.context.storage`, its own
 * key space in the node's storage).
 *
 * @example
 * ```ts
 * import { KvStoreWorker } from "./kv_store.ts";
 * import { runAsync, SimCluster } from "../sim/mod.ts";
 *
 * const cluster = new SimCluster({
 *   nodes: 2,
 *   seed: 1,
 *   nodeOptions: ({ disk, host }) => ({ storage: disk.open(host) }),
 *   setup: ({ node, index }) => {
 *     if (index === 1) node.attachWorker(new KvStoreWorker("store")); // a GUID lives on one node
 *   },
 * });
 * const app = cluster.client(0, "app");
 * cluster.settle();
 * app.send("store", { command: "set", id: "1", key: "colour", value: "teal" });
 * // runAsync, not run: the ack is sent once the storage's Promise has resolved.
 * await runAsync(cluster.sim, 100, { until: () => app.received.length === 1 });
 * cluster.crash(1);
 * cluster.restart(1);
 * await runAsync(cluster.sim, 5000, { until: () => cluster.converged() });
 * app.send("store", { command: "get", id: "2", key: "colour" });
 * await runAsync(cluster.sim, 100, { until: () => app.received.length === 2 });
 * if (app.received[1]?.message.value !== "teal") throw new Error("lost an acknowledged write");
 * ```
 */
export class KvStoreWorker extends WorkerBase {
  protected override onMessage(message: MapMessage): void {
    const { command, id = "", key, value = "" } = message.message;
    if (message.source === "" || key === undefined || key === "") return;
    if (command === "set") void this.#set(message.source, id, key, value);
    else if (command === "get") void this.#get(message.source, id, key);
  }

  async #set(to: string, id: string, key: string, value: string): Promise<void> {
    try {
      await this.context.storage.put(key, utf8.encode(value));
    } catch (error) {
      this.#answer(to, { command: "error", id, key, error: String(error) });
      return;
    }
    // Only now is the write durable: an ack sent earlier is a promise a crash could break.
    this.#answer(to, { command: "setAck", id, key, value });
  }

  async #get(to: string, id: string, key: string): Promise<void> {
    let stored: Uint8Array | undefined;
    try {
      stored = await this.context.storage.get(key);
    } catch (error) {
      this.#answer(to, { command: "error", id, key, error: String(error) });
      return;
    }
    this.#answer(to, {
      command: "getReply",
      id,
      key,
      found: String(stored !== undefined),
      value: stored === undefined ? "" : text.decode(stored),
    });
  }

  #answer(to: string, fields: Record<string, string>): void {
    // A continuation may run after the worker was detached (its node closed): say nothing then.
    if (this.attached) this.send({ destination: to, source: this.guid, message: fields });
  }
}

/** A write of the traffic: client of node `from` sets `key` on the store of node `to`. */
export interface KvWrite {
  readonly atMs: number;
  readonly from: number;
  readonly to: number;
  readonly key: number;
}

/** GUID of the store on node `index`. */
export const storeGuid = (index: number): string => `store${index}`;
/** GUID of the client on node `index`. */
export const kvClientGuid = (index: number): string => `kvclient${index}`;

/** Each run's clients, for the check. */
const clientsOf = new WeakMap<SimCluster, SimClient[]>();

/**
 * The acknowledgements the clients of a cluster received: which store acknowledged which
 * write (`id`, `key`, `value`).
 *
 * @example
 * ```ts
 * import { acknowledgedWrites } from "./kv_store.ts";
 * import { SimCluster } from "../sim/mod.ts";
 * if (acknowledgedWrites(new SimCluster({ nodes: 1 })).length !== 0) throw new Error();
 * ```
 */
export function acknowledgedWrites(
  cluster: SimCluster,
): { store: string; id: string; key: string; value: string }[] {
  return (clientsOf.get(cluster) ?? []).flatMap((client) =>
    client.received
      .filter((reply) => reply.message.command === "setAck")
      .map(({ source, message }) => ({
        store: source,
        id: message.id,
        key: message.key,
        value: message.value,
      }))
  );
}

/**
 * Every acknowledged write is still there: the store's disk holds the acknowledged value, or
 * the value of a write to that key the store took after it. The check reads the disk directly,
 * which is what a restarted store finds and what its `get` reads.
 */
function lostWrites(cluster: SimCluster): string[] {
  const sets = cluster.history.records.filter((r) => r.message.command === "set");
  const takenAt = (id: string) => sets.find((r) => r.message.id === id)?.deliveries[0]?.order ?? -1;
  const problems: string[] = [];
  for (const { store, id, key, value } of acknowledgedWrites(cluster)) {
    const index = Number(store.slice("store".length));
    const onDisk = cluster.disks[index].durableEntries(`workers/${store}/`)
      .find((entry) => entry.key === `workers/${store}/${key}`);
    const found = onDisk === undefined ? undefined : text.decode(onDisk.value);
    if (found === value) continue;
    const overwritten = sets.some((r) =>
      r.destination === store && r.message.key === key && r.message.value === found &&
      takenAt(r.message.id) > takenAt(id)
    );
    if (!overwritten) {
      problems.push(
        `${store} acknowledged ${key}=${value} (write ${id}) but holds ${found ?? "nothing"}`,
      );
    }
  }
  return problems;
}

/**
 * Stores with disks on every node; each traffic item is one write from a node's client to a
 * store, of a value no other write uses. Checks after the settle that no acknowledged write
 * was lost. Run it with {@link runKvScenario}.
 *
 * @example
 * ```ts
 * import { kvStores } from "./kv_store.ts";
 * if (kvStores.name !== "acknowledged writes survive crashes") throw new Error("renamed");
 * ```
 */
export const kvStores: ScenarioDefinition<KvWrite> = kvStoreScenario(
  "acknowledged writes survive crashes",
  (guid) => new KvStoreWorker(guid),
);

/**
 * The {@link kvStores} scenario with another store worker: to check a store of your own, or a
 * broken one to see the check fail.
 *
 * @example
 * ```ts
 * import { KvStoreWorker, kvStoreScenario } from "./kv_store.ts";
 * const mine = kvStoreScenario("my stores", (guid) => new KvStoreWorker(guid));
 * if (mine.name !== "my stores") throw new Error("unexpected");
 * ```
 */
export function kvStoreScenario(
  name: string,
  makeStore: (guid: string) => WorkerBase,
): ScenarioDefinition<KvWrite> {
  return defineScenario<KvWrite>({
    name,
    module: import.meta.url,
    cluster: {
      // The node's storage is its disk: what was durable survives crash and restart.
      nodeOptions: ({ disk, host }) => ({ storage: disk.open(host) }),
      setup: ({ node, index }) => node.attachWorker(makeStore(storeGuid(index))),
    },
    prepare: (cluster) => {
      const clients: SimClient[] = [];
      for (let i = 0; i < cluster.size; i++) clients.push(cluster.client(i, kvClientGuid(i)));
      clientsOf.set(cluster, clients);
    },
    traffic: (cluster, write, scenario) => {
      const id = String(scenario.traffic.indexOf(write));
      cluster.send(write.from, {
        destination: storeGuid(write.to),
        source: kvClientGuid(write.from),
        message: { command: "set", id, key: `k${write.key}`, value: `v${id}` },
      });
    },
    check: lostWrites,
  });
}

/** What {@link runKvScenario} found. */
export interface KvScenarioResult extends ScenarioResult {
  /** Writes acknowledged to the clients (see {@link acknowledgedWrites}). */
  readonly acknowledged: number;
}

/**
 * Plays a scenario with the simulator's `runScenarioAsync` (workers awaiting storage go on at
 * the right virtual instant) and counts the writes acknowledged, so a test can tell that the
 * check had something to check.
 *
 * @example
 * ```ts
 * import { kvScenario, kvStores, runKvScenario } from "./kv_store.ts";
 * const scenario = kvScenario({ nodes: 2 });
 * const a = await runKvScenario(kvStores, scenario);
 * const b = await runKvScenario(kvStores, scenario);
 * if (a.traceHash !== b.traceHash) throw new Error("not deterministic");
 * ```
 */
export async function runKvScenario<I extends { readonly atMs: number }>(
  definition: ScenarioDefinition<I>,
  scenario: Scenario<I>,
): Promise<KvScenarioResult> {
  let acknowledged = 0;
  const result = await runScenarioAsync(definition, scenario, {
    inspect: (cluster) => void (acknowledged = acknowledgedWrites(cluster).length),
  });
  return { ...result, acknowledged };
}

/**
 * A hand-written scenario: every client writes key `k0` to the store of node `crashNode`
 * (default: the last node), which crashes in the middle and restarts.
 *
 * @example
 * ```ts
 * import { kvScenario } from "./kv_store.ts";
 * const scenario = kvScenario({ nodes: 3 });
 * if (scenario.faults[0].kind !== "crash") throw new Error("unexpected");
 * ```
 */
export function kvScenario(
  options: { nodes: number; crashNode?: number; seed?: number },
): Scenario<KvWrite> {
  const to = options.crashNode ?? options.nodes - 1;
  const writes = Array.from({ length: 6 }, (_, i) => i);
  return {
    version: 1,
    seed: options.seed ?? 1,
    nodes: options.nodes,
    durationMs: 2000,
    settleMs: 10_000,
    latencyMsMin: 1,
    latencyMsMax: 5,
    faults: [{ atMs: 503, kind: "crash", node: to }, { atMs: 1200, kind: "restart", node: to }],
    traffic: writes.map((i) => ({ atMs: 200 * i + 3, from: i % options.nodes, to, key: 0 })),
  };
}
