/**
 * What the example workers share: the rule that keeps two workers from answering each other's
 * answers forever, the text of an error, and a worker that loads its state from storage before
 * it handles any message.
 *
 * @module
 */
import type { MapMessage } from "../message.ts";
import type { Storage } from "../storage.ts";
import type { Timer } from "../platform.ts";
import { WorkerBase, type WorkerBaseOptions, type WorkerContext } from "../worker.ts";

/**
 * Whether a command is itself an answer (`getReturn`, `setReturn`, `echoReply`, `error`…).
 * Workers never answer an answer, not even with an error: two workers that do not understand
 * each other's replies would otherwise bounce errors between them forever.
 */
export function isReplyCommand(command: string | undefined): boolean {
  return command !== undefined && (command === "error" || /(?:Return|Reply)$/.test(command));
}

/** The text of a thrown value, for logs and `error` fields. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}

/**
 * Sends `fields` back to the sender of `request` (its `source`), carrying the request's `id`
 * when it had one so that the sender can match answers to questions. Nothing is sent when the
 * request has no source. Returns whether a reply went out.
 */
export function replyTo(
  context: Pick<WorkerContext, "send">,
  from: string,
  request: MapMessage,
  fields: Record<string, string>,
  data?: Uint8Array,
): boolean {
  if (request.source === "") return false;
  const id = request.message.id;
  return context.send({
    destination: request.source,
    source: from,
    message: id === undefined ? fields : { ...fields, id },
    ...(data === undefined ? {} : { data }),
  });
}

/** Options of {@link LoadingWorker}. */
export interface LoadingWorkerOptions extends WorkerBaseOptions {
  /** First delay before retrying a failed load; doubles up to 30 s. Default 1000. */
  readonly loadRetryMs?: number;
}

/**
 * A worker whose state lives in its storage: on attach it loads it, and messages wait in the
 * queue (in order, within `queueLimit`) until the load is done. A failed load is logged and
 * retried with a doubling delay; the worker handles nothing meanwhile rather than answer from
 * an empty state that would then overwrite what storage holds.
 */
export abstract class LoadingWorker extends WorkerBase {
  readonly #loadRetryMs: number;
  #ready = false;
  #retryMs: number;
  #retryTimer: Timer | undefined;
  #loadFailures = 0;

  constructor(guid: string, options: LoadingWorkerOptions = {}) {
    super(guid, options);
    const loadRetryMs = options.loadRetryMs ?? 1000;
    if (!(loadRetryMs > 0 && loadRetryMs <= 3_600_000)) {
      throw new RangeError(`Cannot create worker: loadRetryMs ${loadRetryMs} is not in (0, 1 h]`);
    }
    this.#loadRetryMs = loadRetryMs;
    this.#retryMs = loadRetryMs;
  }

  /** Whether the state is loaded and messages are being handled. */
  get ready(): boolean {
    return this.#ready;
  }

  /** How many loads failed (each is retried). */
  get loadFailures(): number {
    return this.#loadFailures;
  }

  /** Reads the state from `storage`; a rejection is logged and the load retried. */
  protected abstract load(storage: Storage): Promise<void>;

  /** Called once the state is loaded, before the waiting messages are handled. */
  protected onReady(): void {}

  override processMessages(): void {
    // Until the state is loaded the messages stay queued, in order; the load's end handles them.
    if (this.#ready) super.processMessages();
  }

  protected override onAttach(): void {
    this.#load();
  }

  protected override onClose(): void {
    this.#retryTimer?.cancel();
    this.#retryTimer = undefined;
  }

  #load(): void {
    this.#retryTimer = undefined;
    let loading: Promise<void>;
    try {
      loading = this.load(this.context.storage);
    } catch (error) {
      loading = Promise.reject(error);
    }
    loading.then(
      () => {
        if (!this.attached) return; // closed while loading
        this.#ready = true;
        this.#guard("worker.ready", () => this.onReady());
        this.#guard("worker.error", () => super.processMessages());
      },
      (error) => {
        if (!this.attached) return;
        this.#loadFailures++;
        this.context.log.log("error", "worker.load-failed", {
          worker: this.guid,
          error: errorText(error),
          retryMs: this.#retryMs,
        });
        this.#retryTimer = this.context.clock.schedule(this.#retryMs, () => this.#load());
        this.#retryMs = Math.min(this.#retryMs * 2, Math.max(30_000, this.#loadRetryMs));
      },
    );
  }

  /** Runs `fn`, logging what it throws: these run outside the node, which would catch it. */
  #guard(event: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.context.log.log("error", event, { worker: this.guid, error: errorText(error) });
    }
  }
}
