/**
 * Worker locations: which node hosts each worker on other nodes, as those nodes said.
 *
 * Only a node may say where its own workers are (the node checks that before calling here).
 * Every claim is kept per node, so when two nodes run the same worker for a while (a placement
 * settling after a partition) and one stops, or its link goes down, messages route to the
 * other: the location moves rather than disappears.
 *
 * @module
 */
import type { Logger } from "./platform.ts";

/** What the location table needs from its node. */
export interface LocationsHost {
  readonly log: Logger;
  /** Whether this node hosts `worker` itself (a remote claim on it is a conflict). */
  hostsLocally(worker: string): boolean;
  onAdded(worker: string, node: string): void;
  onRemoved(worker: string, node: string): void;
}

/**
 * Where remote workers are.
 *
 * @example
 * ```ts
 * import { WorkerLocations } from "./_locations.ts";
 * const events: string[] = [];
 * const locations = new WorkerLocations({
 *   log: { log: () => {} } as never,
 *   hostsLocally: () => false,
 *   onAdded: (worker, node) => events.push(`+${worker}@${node}`),
 *   onRemoved: (worker, node) => events.push(`-${worker}@${node}`),
 * });
 * locations.learn("B", "w1");
 * locations.learn("C", "w1"); // C runs it too (the latest claim routes); B's claim is kept
 * locations.forget("C"); // C is gone: w1 moves back to B
 * if (locations.get("w1") !== "B" || events.join() !== "+w1@B,+w1@C,-w1@C,+w1@B") {
 *   throw new Error(events.join());
 * }
 * ```
 */
export class WorkerLocations {
  readonly #host: LocationsHost;
  /** Worker → the node messages for it go to. */
  readonly #locations = new Map<string, string>();
  /** Node → the workers it said it hosts. */
  readonly #hosted = new Map<string, Set<string>>();

  /** An empty table. */
  constructor(host: LocationsHost) {
    this.#host = host;
  }

  /** How many remote workers have a location. */
  get size(): number {
    return this.#locations.size;
  }

  /** The node hosting `worker`, if known. */
  get(worker: string): string | undefined {
    return this.#locations.get(worker);
  }

  /** Worker → node, in the order locations were first learnt. */
  entries(): IterableIterator<[string, string]> {
    return this.#locations.entries();
  }

  /** `node` says it hosts `worker`. */
  learn(node: string, worker: string): void {
    if (this.#host.hostsLocally(worker)) {
      this.#host.log.log("warn", "worker.guid-conflict", { worker, node });
    }
    // The previous host keeps its claim: two nodes can run the same worker for a while (a
    // placement settling after a partition), and when one stops, the other is still there.
    let hosted = this.#hosted.get(node);
    if (hosted === undefined) this.#hosted.set(node, hosted = new Set());
    hosted.add(worker);
    if (this.#locations.get(worker) === node) return;
    this.#locations.set(worker, node);
    this.#host.onAdded(worker, node);
  }

  /** `node`'s whole worker set: what it no longer names is gone from it. */
  replace(node: string, workers: ReadonlySet<string>): void {
    let hosted = this.#hosted.get(node);
    if (hosted === undefined) this.#hosted.set(node, hosted = new Set());
    for (const worker of [...hosted]) {
      if (workers.has(worker)) continue;
      hosted.delete(worker);
      if (this.#locations.get(worker) === node) this.#relocate(worker, node);
    }
    for (const worker of workers) this.learn(node, worker);
  }

  /** `node` no longer hosts `worker`. */
  removed(node: string, worker: string): void {
    this.#hosted.get(node)?.delete(worker);
    if (this.#locations.get(worker) === node) this.#relocate(worker, node);
  }

  /** Forgets every claim of `node` (it is gone, or no longer linked). */
  forget(node: string): void {
    const hosted = this.#hosted.get(node);
    if (hosted === undefined) return;
    this.#hosted.delete(node);
    for (const worker of hosted) {
      if (this.#locations.get(worker) === node) this.#relocate(worker, node);
    }
  }

  /** `gone` no longer hosts `worker`: route to another node that said it does, if any. */
  #relocate(worker: string, gone: string): void {
    for (const [node, hosted] of this.#hosted) {
      if (node !== gone && hosted.has(worker)) {
        this.#locations.set(worker, node);
        this.#host.onRemoved(worker, gone);
        this.#host.onAdded(worker, node);
        return;
      }
    }
    this.#locations.delete(worker);
    this.#host.onRemoved(worker, gone);
  }
}
