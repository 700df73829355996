/**
 * Workers: agents hosted by a node, each owning its private state, reached by GUID from
 * anywhere in the cluster.
 *
 * {@link Worker} is the contract (in the spirit of the original's `IWorker`); {@link WorkerBase}
 * implements the plumbing (a bounded, ordered queue; the context; the age) so that a worker
 * only says what it does with a message and on each tick. {@link TemplateWorker} is the
 * skeleton to copy.
 *
 * @module
 */
import type { MapMessage } from "./message.ts";
import type { Clock, Logger, Random } from "./platform.ts";
import type { Storage } from "./storage.ts";

/** What a node gives each worker it hosts. */
export interface WorkerContext {
  /** GUID of the hosting node. */
  readonly nodeGuid: string;
  /**
   * Sends a message anywhere in the cluster (to a worker, a node, `ALLNodes`, `ALLWorkers`).
   * Returns `false` if it could not be handed on; the node also reports it as undeliverable.
   */
  send(message: MapMessage): boolean;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  /**
   * The worker's own durable key space: the node's storage under `workers/<guid>/`. A worker
   * placed again on a node that shares the storage finds what it kept.
   */
  readonly storage: Storage;
  /**
   * Present when the node traces (see `NodeOptions.tracerProvider`): runs `handle(message)`
   * within a `process` span of the message's trace, so that what the handler sends belongs to
   * it. {@link WorkerBase} calls it around each `onMessage`; a worker of its own should too.
   */
  readonly traceHandling?: (message: MapMessage, handle: (message: MapMessage) => void) => void;
}

/**
 * The contract between a node and a worker. The node calls these from its own event loop, never
 * concurrently; a worker that does I/O of its own (a fetch, say) must not block in them.
 */
export interface Worker {
  /** The worker's GUID: unique in the cluster. */
  readonly guid: string;
  /** Called once when a node attaches the worker (the original's `Attach*` methods). */
  attach(context: WorkerContext): void;
  /**
   * Queues a message for the worker; returns `false` when the queue is full and the message is
   * rejected (the node then reports it undeliverable with reason `"worker-queue-full"`).
   */
  queueMessage(message: MapMessage): boolean;
  /** Handles the queued messages, in arrival order. */
  processMessages(): void;
  /** Periodic work; `elapsedMs` is the time since the previous call (or since attach). */
  doWork(elapsedMs: number): void;
  /**
   * Whether `doWork` does anything. `false` lets the node skip this worker's ticks altogether
   * (a large cluster of workers that only answer messages then spends no timer on them). Read
   * once, when the worker is attached. Default `true`; {@link WorkerBase} says `false` unless
   * its subclass overrides `onWork`.
   */
  readonly periodic?: boolean;
  /** Called once when the worker is detached or its node closes. */
  close(): void;
  /** Milliseconds since the worker was attached. */
  age(): number;
}

/** Options of {@link WorkerBase}. */
export interface WorkerBaseOptions {
  /** Most messages waiting at once; further ones are rejected. Default 10000. */
  readonly queueLimit?: number;
}

/**
 * The base to extend: override {@link WorkerBase.onMessage} and, if the worker does something
 * over time, {@link WorkerBase.onWork}.
 *
 * Overflow policy: the queue holds at most `queueLimit` messages; a message arriving at a full
 * queue is rejected (never an older one dropped), so the sender's node reports it undeliverable
 * and the order of what is accepted is preserved.
 *
 * @example
 * ```ts
 * import { WorkerBase } from "./worker.ts";
 * import type { MapMessage } from "./message.ts";
 *
 * class Counter extends WorkerBase {
 *   #count = 0; // private state: only this worker touches it
 *   protected override onMessage(message: MapMessage): void {
 *     if (message.message.command === "add") this.#count += Number(message.message.n ?? 1);
 *     if (message.message.command === "get") {
 *       this.send({ destination: message.source, source: this.guid, message: { count: String(this.#count) } });
 *     }
 *   }
 * }
 * const counter = new Counter("Counter0001");
 * console.assert(counter.guid === "Counter0001");
 * ```
 */
export abstract class WorkerBase implements Worker {
  readonly guid: string;
  readonly #queueLimit: number;
  #queue: MapMessage[] = [];
  #head = 0;
  #context: WorkerContext | undefined;
  #attachedAtMs = 0;
  #closed = false;
  /** `onMessage` as a function, for the node's tracing to call. */
  readonly #handle = (message: MapMessage) => this.onMessage(message);

  constructor(guid: string, options: WorkerBaseOptions = {}) {
    if (typeof guid !== "string" || guid === "") {
      throw new TypeError("Cannot create worker: guid must be a non-empty string");
    }
    const queueLimit = options.queueLimit ?? 10_000;
    if (!Number.isInteger(queueLimit) || queueLimit < 1) {
      throw new RangeError(
        `Cannot create worker: queueLimit ${queueLimit} is not a positive integer`,
      );
    }
    this.guid = guid;
    this.#queueLimit = queueLimit;
  }

  /** The hosting node's context; throws if the worker is not attached. */
  protected get context(): WorkerContext {
    if (this.#context === undefined) {
      throw new Error(`Cannot use worker "${this.guid}": it is not attached to a node`);
    }
    return this.#context;
  }

  /** Whether a node has attached the worker (and it is not closed). */
  get attached(): boolean {
    return this.#context !== undefined && !this.#closed;
  }

  /** Messages waiting. */
  get queuedMessages(): number {
    return this.#queue.length - this.#head;
  }

  attach(context: WorkerContext): void {
    if (this.#context !== undefined) {
      throw new Error(`Cannot attach worker "${this.guid}": it is already attached`);
    }
    this.#context = context;
    this.#attachedAtMs = context.clock.now();
    this.onAttach();
  }

  queueMessage(message: MapMessage): boolean {
    if (this.#closed || this.queuedMessages >= this.#queueLimit) return false;
    this.#queue.push(message);
    return true;
  }

  processMessages(): void {
    // Messages queued while handling these wait for the next pass: a worker messaging itself
    // cannot starve the node.
    const end = this.#queue.length;
    const traceHandling = this.#context?.traceHandling;
    while (this.#head < end && !this.#closed) {
      const message = this.#queue[this.#head];
      this.#queue[this.#head++] = undefined as unknown as MapMessage;
      if (traceHandling === undefined) this.onMessage(message);
      else traceHandling(message, this.#handle);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  doWork(elapsedMs: number): void {
    if (!this.#closed) this.onWork(elapsedMs);
  }

  /** Whether this worker's class overrides `onWork`: only then does the node give it ticks. */
  get periodic(): boolean {
    return this.onWork !== WorkerBase.prototype.onWork;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#head = 0;
    this.onClose();
  }

  age(): number {
    return this.#context === undefined ? 0 : this.#context.clock.now() - this.#attachedAtMs;
  }

  /** Sends a message through the hosting node. */
  protected send(message: MapMessage): boolean {
    return this.context.send(message);
  }

  /** Handles one message; messages come in arrival order. */
  protected abstract onMessage(message: MapMessage): void;

  /** Periodic work; does nothing unless overridden. */
  protected onWork(_elapsedMs: number): void {}

  /** Called once attached; does nothing unless overridden. */
  protected onAttach(): void {}

  /** Called once on close; does nothing unless overridden. */
  protected onClose(): void {}
}

/** Options of {@link TemplateWorker}. */
export interface TemplateWorkerOptions extends WorkerBaseOptions {
  /** How often it logs its tick. Default 5000, as the original's `WorkerTemplate`. */
  readonly intervalMs?: number;
}

/**
 * The skeleton worker to copy, like the original's `WorkerTemplate`: it logs a line every
 * `intervalMs` (default 5 s) and logs every message it gets. Copy this class, rename it, and
 * replace the bodies of `onMessage` and `onWork`; every line says why it is there.
 *
 * What a worker may rely on (the node guarantees it): `onMessage`, `onWork`, `onAttach` and
 * `onClose` are never called concurrently, so private fields need no locks; messages come in
 * arrival order; `this.context` (the node's send, clock, randomness, log and the worker's own
 * storage) is there from `onAttach` on. What it must do in return: return quickly (the node
 * runs every worker in turn) and never block; do slow work (I/O, a fetch) with Promises and
 * carry on when they settle.
 *
 * @example
 * ```ts
 * import { TemplateWorker } from "./worker.ts";
 * const worker = new TemplateWorker("Template0001");
 * console.assert(worker.guid === "Template0001" && worker.handled === 0);
 * ```
 */
export class TemplateWorker extends WorkerBase {
  // Private state: `#` fields cannot be reached from outside, so the only way to change them
  // is a message. That is the whole model: state private to one worker, changed by messages.
  readonly #intervalMs: number;
  // Time since the last tick: onWork is told the elapsed time, so a worker never reads the
  // clock to pace itself, and the simulator's virtual time paces it the same way.
  #sinceLastMs = 0;
  // What it has done, shown through the `handled` getter below.
  #handled = 0;

  constructor(guid: string, options: TemplateWorkerOptions = {}) {
    // WorkerBase checks the GUID and keeps the bounded message queue (queueLimit).
    super(guid, options);
    // Check options here, where the mistake is made, not later inside a tick: a bad value is
    // a RangeError naming the option.
    const intervalMs = options.intervalMs ?? 5000;
    if (!(intervalMs >= 0)) {
      throw new RangeError(`Cannot create worker: intervalMs ${intervalMs} is not a duration`);
    }
    this.#intervalMs = intervalMs;
  }

  /** How many messages it has handled. */
  get handled(): number {
    // Read-only views of the state, for tests and state pages; never a setter.
    return this.#handled;
  }

  protected override onMessage(message: MapMessage): void {
    // Your worker's reaction to a command goes here; its state stays in its own fields.
    // `message.message.command` names the command by convention (the original's workers use
    // `command=set`, `get`…); `message.source` is who to answer, `message.data` the payload.
    this.#handled++;
    // Structured logs: an event name plus fields, never a formatted sentence, so that the
    // simulator's log and the program's JSON lines can be searched.
    this.context.log.log("info", "worker.message", {
      worker: this.guid,
      from: message.source,
      command: message.message.command ?? "",
    });
    // To answer, send to the source (when there is one) with a `…Return` command, e.g.:
    //   this.send({ destination: message.source, source: this.guid,
    //     message: { command: "pingReturn" } });
    // Never answer a message whose command is itself an answer (`…Return`, `…Reply`, `error`):
    // two workers that do not understand each other would bounce errors forever.
    // Do not throw: the node would catch it and count a worker error, but the sender would get
    // no answer. Log bad input and answer it with an error instead.
  }

  protected override onWork(elapsedMs: number): void {
    // Periodic work goes here: keep it short, the node calls every worker in turn.
    // The node calls onWork every `workerTickMs` (100 ms by default); accumulate the elapsed
    // time and act once a period has passed. (For work at exact times, schedule it with
    // `this.context.clock.schedule`, as the scheduler worker does.)
    this.#sinceLastMs += elapsedMs;
    if (this.#sinceLastMs < this.#intervalMs) return;
    this.#sinceLastMs = 0;
    this.context.log.log("debug", "worker.tick", {
      worker: this.guid,
      ageMs: Math.round(this.age()),
    });
  }

  // Two more hooks exist, both optional: `onAttach()` runs once the node has attached the
  // worker (load state from `this.context.storage` there, start timers), and `onClose()` once
  // it is detached or its node closes (cancel timers there). Promises that settle after close
  // must check `this.attached` before touching the context.
}

/**
 * A worker that answers every message to its sender (the message's `source`) with
 * `command=echoReply`, the original command's fields, and the same data: handy to check that a
 * cluster routes both ways.
 *
 * @example
 * ```ts
 * import { EchoWorker } from "./worker.ts";
 * const echo = new EchoWorker("Echo0001");
 * console.assert(echo.guid === "Echo0001" && echo.answered === 0);
 * ```
 */
export class EchoWorker extends WorkerBase {
  #answered = 0;

  /** How many messages it has answered. */
  get answered(): number {
    return this.#answered;
  }

  protected override onMessage(message: MapMessage): void {
    if (message.source === "") return; // Nobody to answer.
    this.#answered++;
    this.send({
      destination: message.source,
      source: this.guid,
      message: { ...message.message, command: "echoReply", echoOf: message.message.command ?? "" },
      ...(message.data ? { data: message.data } : {}),
    });
  }
}
