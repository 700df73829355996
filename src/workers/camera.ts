/**
 * An IP camera worker, the original's `WorkerExampleIPCamera` done properly: every `intervalMs`
 * it fetches an image from a URL and sends it as `data` to a store worker with `command=set`,
 * `key=image-<epoch ms>`, so a key-value store worker (`./kv.ts`) keeps every picture.
 *
 * The original fetched inside `DoWork`, blocking its node for the whole download, and ended the
 * process (`log.Fatal`) when the camera did not answer. Here the fetch runs beside the node (at
 * most one at a time), a failing, slow or oversize camera is reported and never fatal, and the
 * worker keeps trying on its cadence.
 *
 * The fetch itself comes in as an option ({@link FetchImage}): `src/` uses no runtime API. The
 * node program passes one built on the runtime's `fetch` (`adapters/example_workers.ts`); tests
 * pass fakes.
 *
 * Wire format: it sends `command=set`, `key=image-<ms>`, `camera=<its GUID>` with the image as
 * `data` to `store`. It answers `command=status` with `command=statusReturn` and its counters
 * (`state` = `starting`, `ok` or `failing`, `captures`, `failures`, `timeouts`, `oversize`,
 * `busyTicks`, `undelivered`, `consecutiveFailures`, `lastError`, `lastKey`, `url`, `store`).
 * With `reportTo` set it also sends `command=cameraStatus` there when it starts failing (again
 * after 2, 4, 8… failures in a row) and when it recovers.
 *
 * @module
 */
import type { MapMessage } from "../message.ts";
import type { Timer } from "../platform.ts";
import { WorkerBase, type WorkerBaseOptions } from "../worker.ts";
import { errorText, isReplyCommand, replyTo } from "./_common.ts";

/** What a {@link FetchImage} is told. */
export interface FetchImageOptions {
  /** Give up (reject) after this long; the worker reports a timeout then in any case. */
  readonly timeoutMs: number;
  /**
   * The largest image the worker accepts. A fetcher may stop reading once it has more than
   * this and resolve with what it has: the worker refuses anything larger.
   */
  readonly maxBytes: number;
}

/**
 * Fetches one image; resolves with its bytes, rejects when the camera fails (an error whose
 * `name` is `"TimeoutError"` or `"AbortError"` counts as a timeout). It should honour
 * `timeoutMs`: the worker starts no new fetch until the previous one has settled.
 */
export type FetchImage = (url: string, options: FetchImageOptions) => Promise<Uint8Array>;

/** Options of {@link IPCameraWorker}. */
export interface IPCameraOptions extends WorkerBaseOptions {
  /** How images are fetched (the runtime's `fetch` in the node program, a fake in tests). */
  readonly fetchImage: FetchImage;
  /** Where the camera serves its current image. */
  readonly url: string;
  /** GUID of the store worker images go to. Default `"Store0001"`, as in the original. */
  readonly store?: string;
  /** Time between fetches. Default 2000, as in the original. */
  readonly intervalMs?: number;
  /** A fetch not done in this time is reported as a timeout. Default `intervalMs`. */
  readonly timeoutMs?: number;
  /** Larger images are refused and reported. Default 4 MiB. */
  readonly maxImageBytes?: number;
  /** GUID to send `command=cameraStatus` reports to when the camera fails or recovers. */
  readonly reportTo?: string;
}

/** Counters of an {@link IPCameraWorker}. */
export interface IPCameraStats {
  /** Images fetched and sent to the store. */
  captures: number;
  /** Failed fetches, whatever the reason (timeouts and oversize images included). */
  failures: number;
  /** Fetches that took longer than `timeoutMs`. */
  timeouts: number;
  /** Images over `maxImageBytes`. */
  oversize: number;
  /** Fetches skipped because the previous one had not settled yet. */
  busyTicks: number;
  /** Images the node could not hand on to the store (unknown or unreachable store). */
  undelivered: number;
  /** Failures since the last success. */
  consecutiveFailures: number;
  /** What the last failure said, or `""`. */
  lastError: string;
  /** Key of the last image sent, or `""`. */
  lastKey: string;
}

/** Why a fetch failed. */
type FailureReason = "error" | "timeout" | "oversize";

/**
 * The IP camera worker: see the module documentation for what it sends and answers. The first
 * fetch starts as soon as it is attached, the next ones every `intervalMs` after that (a fixed
 * cadence: a slow fetch does not shift the following ones; a tick that finds the previous
 * fetch still running is skipped and counted in `busyTicks`).
 *
 * @example
 * ```ts
 * import { IPCameraWorker } from "./camera.ts";
 * const camera = new IPCameraWorker("Camera01", {
 *   url: "http://127.0.0.1:8080/snapshot.jpg",
 *   fetchImage: () => Promise.resolve(new Uint8Array([0xff, 0xd8, 0xff, 0xd9])),
 * });
 * console.assert(camera.stats.captures === 0);
 * ```
 */
export class IPCameraWorker extends WorkerBase {
  readonly #fetchImage: FetchImage;
  readonly #url: string;
  readonly #store: string;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #maxImageBytes: number;
  readonly #reportTo: string | undefined;
  readonly #stats: IPCameraStats = {
    captures: 0,
    failures: 0,
    timeouts: 0,
    oversize: 0,
    busyTicks: 0,
    undelivered: 0,
    consecutiveFailures: 0,
    lastError: "",
    lastKey: "",
  };
  #tickTimer: Timer | undefined;
  #nextTickMs = 0;
  /** The fetch in flight: its number, and whether it was already reported as timed out. */
  #inFlight: { attempt: number; timedOut: boolean; timer: Timer } | undefined;
  #attempts = 0;
  #lastKeyMs = -Infinity;

  constructor(guid: string, options: IPCameraOptions) {
    super(guid, options ?? {});
    if (options === null || typeof options !== "object") {
      throw new TypeError("Cannot create camera: options are required");
    }
    if (typeof options.fetchImage !== "function") {
      throw new TypeError("Cannot create camera: fetchImage must be a function");
    }
    if (typeof options.url !== "string" || options.url === "") {
      throw new TypeError("Cannot create camera: url must be a non-empty string");
    }
    const store = options.store ?? "Store0001";
    if (typeof store !== "string" || store === "") {
      throw new TypeError("Cannot create camera: store must be a non-empty GUID");
    }
    const intervalMs = options.intervalMs ?? 2000;
    if (!(intervalMs >= 1 && intervalMs <= 86_400_000)) {
      throw new RangeError(`Cannot create camera: intervalMs ${intervalMs} is not in 1..86400000`);
    }
    const timeoutMs = options.timeoutMs ?? intervalMs;
    if (!(timeoutMs >= 1 && timeoutMs <= 86_400_000)) {
      throw new RangeError(`Cannot create camera: timeoutMs ${timeoutMs} is not in 1..86400000`);
    }
    const maxImageBytes = options.maxImageBytes ?? 4 << 20;
    if (!Number.isInteger(maxImageBytes) || maxImageBytes < 1) {
      throw new RangeError(
        `Cannot create camera: maxImageBytes ${maxImageBytes} is not a positive integer`,
      );
    }
    if (
      options.reportTo !== undefined && (typeof options.reportTo !== "string" || !options.reportTo)
    ) {
      throw new TypeError("Cannot create camera: reportTo must be a non-empty GUID");
    }
    this.#fetchImage = options.fetchImage;
    this.#url = options.url;
    this.#store = store;
    this.#intervalMs = intervalMs;
    this.#timeoutMs = timeoutMs;
    this.#maxImageBytes = maxImageBytes;
    this.#reportTo = options.reportTo;
  }

  /** Counters since creation (a copy). */
  get stats(): IPCameraStats {
    return { ...this.#stats };
  }

  /** Whether a fetch is in flight. */
  get busy(): boolean {
    return this.#inFlight !== undefined;
  }

  /** The URL it fetches from. */
  get url(): string {
    return this.#url;
  }

  /** The GUID of the store it sends images to. */
  get store(): string {
    return this.#store;
  }

  protected override onAttach(): void {
    this.#nextTickMs = this.context.clock.now();
    this.#tickTimer = this.context.clock.schedule(0, () => this.#tick());
  }

  protected override onClose(): void {
    this.#tickTimer?.cancel();
    this.#tickTimer = undefined;
    this.#inFlight?.timer.cancel();
  }

  protected override onMessage(message: MapMessage): void {
    const command = message.message.command;
    if (command === "status") {
      replyTo(this.context, this.guid, message, this.#statusFields("statusReturn"));
      return;
    }
    if (isReplyCommand(command)) return; // e.g. a store's answer: nothing to do with it
    this.context.log.log("warn", "camera.bad-message", {
      worker: this.guid,
      from: message.source,
      command: command ?? "",
    });
    replyTo(this.context, this.guid, message, {
      command: "error",
      errorOf: command ?? "",
      error: command === undefined
        ? "Cannot handle message: no command"
        : `Cannot ${command}: unknown command (a camera answers only "status")`,
    });
  }

  #tick(): void {
    this.#tickTimer = undefined;
    if (!this.attached) return;
    const clock = this.context.clock;
    if (this.#inFlight === undefined) this.#capture();
    else {
      this.#stats.busyTicks++;
      this.context.log.log("debug", "camera.busy", { worker: this.guid, url: this.#url });
    }
    // A fixed cadence from the first tick; after a stall (a paused process) it restarts from now.
    const now = clock.now();
    this.#nextTickMs += this.#intervalMs;
    if (this.#nextTickMs < now) this.#nextTickMs = now + this.#intervalMs;
    this.#tickTimer = clock.schedule(this.#nextTickMs - now, () => this.#tick());
  }

  #capture(): void {
    const attempt = ++this.#attempts;
    const timer = this.context.clock.schedule(this.#timeoutMs, () => {
      const current = this.#inFlight;
      if (current?.attempt !== attempt || current.timedOut) return;
      current.timedOut = true;
      this.#fail("timeout", `no image after ${this.#timeoutMs} ms`);
    });
    const flight = { attempt, timedOut: false, timer };
    this.#inFlight = flight;
    let fetching: Promise<Uint8Array>;
    try {
      fetching = this.#fetchImage(this.#url, {
        timeoutMs: this.#timeoutMs,
        maxBytes: this.#maxImageBytes,
      });
      if (typeof fetching?.then !== "function") {
        throw new TypeError("fetchImage did not return a Promise");
      }
    } catch (error) {
      fetching = Promise.reject(error);
    }
    fetching.then(
      (image) => this.#settled(flight, image, undefined),
      (error) => this.#settled(flight, undefined, error ?? new Error("fetch failed")),
    );
  }

  #settled(
    flight: { attempt: number; timedOut: boolean; timer: Timer },
    image: Uint8Array | undefined,
    error: unknown,
  ): void {
    if (this.#inFlight !== flight) return; // closed meanwhile
    this.#inFlight = undefined;
    flight.timer.cancel();
    if (!this.attached || flight.timedOut) return; // already reported; a late image is stale
    try {
      if (error !== undefined) {
        const name = (error as { name?: unknown }).name;
        const timedOut = name === "TimeoutError" || name === "AbortError";
        return this.#fail(timedOut ? "timeout" : "error", errorText(error));
      }
      if (!(image instanceof Uint8Array)) {
        return this.#fail("error", "fetchImage resolved with something other than bytes");
      }
      if (image.length > this.#maxImageBytes) {
        return this.#fail(
          "oversize",
          `image of ${image.length}+ bytes exceeds maxImageBytes ${this.#maxImageBytes}`,
        );
      }
      this.#deliver(image);
    } catch (caught) {
      this.context.log.log("error", "worker.error", {
        worker: this.guid,
        error: errorText(caught),
      });
    }
  }

  #deliver(image: Uint8Array): void {
    // Keys are the wall-clock time in ms, as the original's `image-<time>`, kept increasing so
    // that two images never share a key even if the wall clock steps back.
    let keyMs = Math.floor(this.context.clock.wallNow());
    if (keyMs <= this.#lastKeyMs) keyMs = this.#lastKeyMs + 1;
    this.#lastKeyMs = keyMs;
    const key = `image-${keyMs}`;
    const recovered = this.#stats.consecutiveFailures;
    this.#stats.consecutiveFailures = 0;
    if (recovered > 0) {
      this.context.log.log("info", "camera.recovered", {
        worker: this.guid,
        url: this.#url,
        afterFailures: recovered,
      });
      this.#report({ state: "ok", afterFailures: String(recovered) });
    }
    const sent = this.send({
      destination: this.#store,
      source: this.guid,
      message: { command: "set", key, camera: this.guid },
      data: image,
    });
    if (sent) {
      this.#stats.captures++;
      this.#stats.lastKey = key;
    } else {
      this.#stats.undelivered++;
      this.context.log.log("warn", "camera.undelivered", {
        worker: this.guid,
        store: this.#store,
        key,
      });
    }
  }

  #fail(reason: FailureReason, text: string): void {
    const stats = this.#stats;
    stats.failures++;
    if (reason === "timeout") stats.timeouts++;
    if (reason === "oversize") stats.oversize++;
    const consecutive = ++stats.consecutiveFailures;
    stats.lastError = text;
    // A dead camera fails every interval, for hours: report the 1st, 2nd, 4th, 8th… in a row.
    if ((consecutive & (consecutive - 1)) !== 0) return;
    this.context.log.log("warn", "camera.failure", {
      worker: this.guid,
      url: this.#url,
      reason,
      error: text,
      consecutive,
    });
    this.#report({ state: "failing", reason, error: text, consecutive: String(consecutive) });
  }

  #report(fields: Record<string, string>): void {
    if (this.#reportTo === undefined) return;
    this.send({
      destination: this.#reportTo,
      source: this.guid,
      message: { command: "cameraStatus", camera: this.guid, url: this.#url, ...fields },
    });
  }

  #statusFields(command: string): Record<string, string> {
    const stats = this.#stats;
    const state = stats.consecutiveFailures > 0
      ? "failing"
      : stats.captures > 0
      ? "ok"
      : "starting";
    return {
      command,
      state,
      url: this.#url,
      store: this.#store,
      busy: String(this.#inFlight !== undefined),
      captures: String(stats.captures),
      failures: String(stats.failures),
      timeouts: String(stats.timeouts),
      oversize: String(stats.oversize),
      busyTicks: String(stats.busyTicks),
      undelivered: String(stats.undelivered),
      consecutiveFailures: String(stats.consecutiveFailures),
      lastError: stats.lastError,
      lastKey: stats.lastKey,
    };
  }
}
