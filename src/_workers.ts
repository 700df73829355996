/**
 * The worker host: the workers attached to a node, their queues and their time.
 *
 * A message for a worker goes into its queue at once; the worker handles what arrived as soon
 * as the current callback returns (a reply costs no timer turn), while messages workers send
 * each other during that pass wait for a timer turn, so workers chatting among themselves
 * cannot starve the node's I/O. Every `workerTickMs` each worker's `doWork` runs with the time
 * since its last. A worker that throws is counted and logged; the node goes on.
 *
 * @module
 */
import { ALL_NODES, ALL_WORKERS, type MapMessage } from "./message.ts";
import type { Clock, Logger, Random, Timer } from "./platform.ts";
import { scopedStorage, type Storage } from "./storage.ts";
import type { Worker, WorkerContext } from "./worker.ts";

/** What the worker host needs from its node. */
export interface WorkerHostHost {
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  /** Where workers keep durable state, each under `workers/<guid>/`. */
  readonly storage: Storage;
  readonly stats: { workerErrors: number };
  /** The node's GUID (no worker may take it). */
  readonly nodeGuid: string;
  /** Whether the node is closed. */
  closed(): boolean;
  /** Sends a message for a worker (its context's `send`). */
  send(message: MapMessage): boolean;
  /** A worker was attached (after it got its context). */
  attached(guid: string): void;
  /** A worker is being detached (before it is closed). */
  detaching(guid: string): void;
  /** A worker was detached and closed. */
  detached(guid: string): void;
  /** A worker refused a message (its queue is full); returns false. */
  refused(message: MapMessage, worker: Worker): false;
  /** A worker accepted a message into its queue. */
  delivered(worker: Worker, message: MapMessage): void;
  /** What a worker's context offers as `traceHandling` (none when the node does not trace). */
  readonly traceHandling?: (worker: string) => WorkerContext["traceHandling"];
  /** The work tick fired `ms` late (the event loop's lag). */
  readonly late?: (ms: number) => void;
}

/**
 * A node's workers.
 *
 * @example
 * ```ts
 * import { WorkerHost } from "./_workers.ts";
 * import { MemoryStorage } from "./storage.ts";
 * import { EchoWorker } from "./worker.ts";
 * const deferred: Array<() => void> = [];
 * const host = new WorkerHost({
 *   clock: { now: () => 0, defer: (fn: () => void) => deferred.push(fn), schedule: () => ({ cancel() {} }) } as never,
 *   random: { next: () => 0 } as never,
 *   log: { log: () => {} } as never,
 *   storage: new MemoryStorage(),
 *   stats: { workerErrors: 0 },
 *   nodeGuid: "A",
 *   closed: () => false,
 *   send: () => true,
 *   attached: () => {},
 *   detaching: () => {},
 *   detached: () => {},
 *   refused: () => false,
 *   delivered: () => {},
 * }, 100);
 * host.attach(new EchoWorker("echo"));
 * if (!host.has("echo") || host.size !== 1) throw new Error("unexpected");
 * ```
 */
export class WorkerHost {
  readonly #host: WorkerHostHost;
  readonly #workTickMs: number;
  readonly #workers = new Map<string, { worker: Worker; lastWorkMs: number }>();
  /** The attached workers whose `doWork` does something (see `Worker.periodic`). */
  readonly #periodic = new Set<Worker>();
  /** Workers with messages queued since the last pass, in the order they got them. */
  readonly #pending = new Set<Worker>();
  #inPass = false;
  #passScheduled = false;
  #workTimer: Timer | undefined;

  /** No workers yet; `doWork` runs every `workTickMs`. */
  constructor(host: WorkerHostHost, workTickMs: number) {
    this.#host = host;
    this.#workTickMs = workTickMs;
  }

  /** How many workers are attached. */
  get size(): number {
    return this.#workers.size;
  }

  /** Whether a worker with this GUID is attached. */
  has(guid: string): boolean {
    return this.#workers.has(guid);
  }

  /** The worker attached with this GUID, if any. */
  get(guid: string): Worker | undefined {
    return this.#workers.get(guid)?.worker;
  }

  /** The GUIDs of the attached workers, in attach order. */
  guids(): IterableIterator<string> {
    return this.#workers.keys();
  }

  /** The attached workers, in attach order. */
  *workers(): IterableIterator<Worker> {
    for (const { worker } of this.#workers.values()) yield worker;
  }

  /** Attaches a worker: it gets its context and starts getting messages and time. */
  attach(worker: Worker): void {
    const host = this.#host;
    if (
      worker === null || typeof worker !== "object" || typeof worker.guid !== "string" ||
      !worker.guid
    ) {
      throw new TypeError("Cannot attach worker: it needs a non-empty string guid");
    }
    if (
      worker.guid === ALL_NODES || worker.guid === ALL_WORKERS || worker.guid === host.nodeGuid
    ) {
      throw new TypeError(`Cannot attach worker "${worker.guid}": the GUID is reserved`);
    }
    if (this.#workers.has(worker.guid)) {
      throw new Error(`Cannot attach worker "${worker.guid}": one with that GUID is attached`);
    }
    if (host.closed()) {
      throw new Error(`Cannot attach worker: node ${host.nodeGuid} is closed`);
    }
    const traceHandling = host.traceHandling?.(worker.guid);
    const context: WorkerContext = {
      nodeGuid: host.nodeGuid,
      send: (message) => host.send(message),
      clock: host.clock,
      random: host.random,
      log: host.log,
      storage: scopedStorage(host.storage, `workers/${worker.guid}/`),
      ...(traceHandling === undefined ? {} : { traceHandling }),
    };
    worker.attach(context);
    this.#workers.set(worker.guid, { worker, lastWorkMs: host.clock.now() });
    host.attached(worker.guid);
    if (worker.periodic !== false) {
      this.#periodic.add(worker);
      this.#ensureWorkTick();
    }
  }

  /** Detaches and closes a worker; returns whether it was here. */
  detach(guid: string): boolean {
    const entry = this.#workers.get(guid);
    if (!entry) return false;
    this.#workers.delete(guid);
    this.#host.detaching(guid);
    this.#pending.delete(entry.worker);
    this.#periodic.delete(entry.worker);
    this.#safely(entry.worker, () => entry.worker.close());
    this.#host.detached(guid);
    return true;
  }

  /** Stops giving workers time (the node is closing). */
  stopWork(): void {
    this.#workTimer?.cancel();
  }

  /** Closes every worker (the node closed). */
  closeAll(): void {
    for (const { worker } of this.#workers.values()) this.#safely(worker, () => worker.close());
    this.#workers.clear();
    this.#pending.clear();
    this.#periodic.clear();
  }

  /** Puts a message in a worker's queue; returns false (reported) if it refused it. */
  queue(worker: Worker, message: MapMessage): boolean {
    let accepted = false;
    this.#safely(worker, () => accepted = worker.queueMessage(message));
    if (!accepted) return this.#host.refused(message, worker);
    this.#host.delivered(worker, message);
    this.#pending.add(worker);
    if (!this.#passScheduled) {
      this.#passScheduled = true;
      // Workers handle what arrived as soon as the current callback returns (a reply costs no
      // timer turn); messages workers send each other during a pass wait for a timer turn, so
      // workers chatting among themselves cannot starve the node's I/O.
      if (this.#inPass) this.#host.clock.schedule(0, () => this.#pass());
      else this.#host.clock.defer(() => this.#pass());
    }
    return true;
  }

  /** Puts a message in every worker's queue, in attach order. */
  queueAll(message: MapMessage): void {
    for (const { worker } of this.#workers.values()) this.queue(worker, message);
  }

  #pass(): void {
    this.#passScheduled = false;
    const pending = [...this.#pending];
    this.#pending.clear();
    this.#inPass = true;
    try {
      for (const worker of pending) {
        if (this.#workers.get(worker.guid)?.worker !== worker) continue;
        this.#safely(worker, () => worker.processMessages());
      }
    } finally {
      this.#inPass = false;
    }
  }

  #ensureWorkTick(): void {
    const host = this.#host;
    if (this.#workTimer !== undefined || host.closed()) return;
    const dueMs = host.clock.now() + this.#workTickMs;
    this.#workTimer = host.clock.schedule(this.#workTickMs, () => {
      this.#workTimer = undefined;
      if (host.closed() || this.#periodic.size === 0) return;
      const now = host.clock.now();
      host.late?.(Math.max(0, now - dueMs));
      for (const entry of [...this.#workers.values()]) {
        if (!this.#periodic.has(entry.worker)) continue;
        const elapsedMs = now - entry.lastWorkMs;
        entry.lastWorkMs = now;
        this.#safely(entry.worker, () => entry.worker.doWork(elapsedMs));
      }
      this.#ensureWorkTick();
    });
  }

  #safely(worker: Worker, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#host.stats.workerErrors++;
      this.#host.log.log("error", "worker.error", { worker: worker.guid, error: String(error) });
    }
  }
}
