/**
 * A scheduler worker, the original's `WorkerExampleScheduler` (listed there, never written):
 * it sends configured messages to destinations on intervals (`everyMs`) and at set wall-clock
 * times (`at`), and it survives restarts of its node.
 *
 * Entries come from the constructor (`entries`) and from messages:
 *
 * - `command=schedule`, `id`, `destination`, a `msg.<field>=<value>` for each field of the
 *   message to send (`msg.command=ping` sends `command=ping`), its `data` as the data to send,
 *   `everyMs` and/or `at` (epoch ms, or ISO 8601 with a zone such as `2026-01-01T08:00:00Z`),
 *   optional `sendAs` (the `source` of the sent messages; default the scheduler's GUID, so
 *   answers come back to it and are ignored). An entry with the same `id` is replaced. Answered
 *   with `command=scheduleReturn`, `id`, `ok=true`, `nextAt` (ISO) once the entry is durable;
 *   `ok=false` and `error` if it is refused or the write failed.
 * - `command=unschedule`, `id`. Answered with `command=unscheduleReturn`, `id`, `found`, `ok`
 *   (and `error`) once durable.
 * - `command=list`. Answered with `command=listReturn`, `count`, and `entries`: a JSON array of
 *   `{ id, destination, message, dataBytes, everyMs, at, nextAt, lastFiredAt, firings,
 *   configured, sendAs }` (times as ISO text, `null` when none).
 * - Anything else: answered with `command=error`, `errorOf`, `error`.
 *
 * Every answer carries the request's `id` field when it had one (for `schedule` and
 * `unschedule` that is the entry's id). Entries given to the constructor belong to the
 * program: `schedule` and `unschedule` refuse their ids.
 *
 * When entries fire:
 * - `at` only: once, at that time.
 * - `everyMs` only: every `everyMs`, the first one `everyMs` after it was scheduled.
 * - both: at `at`, then every `everyMs` after it.
 *
 * Across restarts (the entries and the last firing of each are kept in the worker's storage):
 * - a one-shot entry that fired does not fire again;
 * - **a one-shot entry whose time passed while the node was down fires once, as soon as the
 *   scheduler has loaded** (a reminder is better late than never);
 * - an interval entry resumes on its cadence (its first time plus multiples of `everyMs`): the
 *   firings it missed while the node was down are skipped, not replayed. (A configured entry
 *   without `at` that never fired starts its cadence afresh at each start.)
 *
 * A firing is recorded in storage before its message is sent, so a crash between the two
 * loses that one firing rather than sending it twice. A message the node cannot route yet (its
 * destination not known, as just after a restart, before the links are up) is handed on again
 * every 500 ms for up to `undeliveredRetryMs`. When the record cannot be written the
 * message is still sent (and the failure logged): after a restart it may then fire again.
 *
 * Time comes from the context's clock: `wallNow` for `at` and the cadence (so that it means
 * the same after a restart), `schedule` to wait. Waits are re-checked at least hourly, so a
 * wall clock that is set forwards or back is followed.
 *
 * @module
 */
import type { MapMessage } from "../message.ts";
import type { Timer } from "../platform.ts";
import type { Storage, StorageOp } from "../storage.ts";
import {
  errorText,
  isReplyCommand,
  LoadingWorker,
  type LoadingWorkerOptions,
  replyTo,
} from "./_common.ts";

/** One scheduled message, as given to the constructor. */
export interface ScheduleEntry {
  /** Names the entry; unique within the scheduler. */
  readonly id: string;
  /** GUID of the worker or node the message goes to (or `ALLNodes` / `ALLWorkers`). */
  readonly destination: string;
  /** The fields of the message to send. */
  readonly message: Readonly<Record<string, string>>;
  /** The data to send, if any. */
  readonly data?: Uint8Array;
  /** Repeat every this many milliseconds. */
  readonly everyMs?: number;
  /** When to fire (first): epoch milliseconds, or ISO 8601 text. */
  readonly at?: number | string;
  /** The `source` of the sent messages. Default: the scheduler's GUID. */
  readonly sendAs?: string;
}

/** An entry as {@link SchedulerWorker.list} shows it; times are epoch milliseconds. */
export interface ScheduledEntryInfo {
  readonly id: string;
  readonly destination: string;
  readonly message: Readonly<Record<string, string>>;
  readonly dataBytes: number;
  readonly everyMs: number | undefined;
  /** The one-shot time, or the first firing of an interval. */
  readonly atMs: number | undefined;
  /** When it fires next, if it does. */
  readonly nextMs: number | undefined;
  /** When it last fired, if it has. */
  readonly lastFiredMs: number | undefined;
  /** How many times it has fired, over restarts. */
  readonly firings: number;
  /** Whether it came from the constructor. */
  readonly configured: boolean;
  readonly sendAs: string | undefined;
}

/** Options of {@link SchedulerWorker}. */
export interface SchedulerOptions extends LoadingWorkerOptions {
  /** Entries the program schedules; installed at every start. */
  readonly entries?: readonly ScheduleEntry[];
  /** Most entries at once; further `schedule`s are refused. Default 1000. */
  readonly maxEntries?: number;
  /** Shortest `everyMs` accepted. Default 10. */
  readonly minEveryMs?: number;
  /**
   * How long to keep trying, every 500 ms, to hand on a message the node cannot route yet
   * (its destination not known, as just after a restart before the links are up); 0 never
   * retries. Default 10000.
   */
  readonly undeliveredRetryMs?: number;
}

/** Counters of a {@link SchedulerWorker}. */
export interface SchedulerStats {
  /** Messages sent by entries. */
  fired: number;
  /** Sent messages the node could not hand on, even after retrying. */
  undelivered: number;
  /** Attempts to hand on a message again (its destination was not known yet). */
  retries: number;
  /** Firing records or entries that storage refused; each is logged. */
  writeFailures: number;
  /** Requests refused (malformed, unknown, over a limit); each is logged. */
  badMessages: number;
}

interface Entry {
  readonly id: string;
  readonly destination: string;
  readonly message: Readonly<Record<string, string>>;
  readonly data: Uint8Array | undefined;
  readonly everyMs: number | undefined;
  readonly atMs: number | undefined;
  /** Where the cadence of an interval starts: `at`, or when it was scheduled plus `everyMs`. */
  readonly anchorMs: number;
  readonly sendAs: string | undefined;
  readonly configured: boolean;
  lastDueMs: number | undefined;
  lastFiredMs: number | undefined;
  firings: number;
  nextMs: number | undefined;
  timer: Timer | undefined;
  /** Unscheduled or replaced: messages of its last firing still waiting are dropped. */
  cancelled: boolean;
}

/** What is stored under `e/<id>`; the data is under `d/<id>`, the last firing under `f/<id>`. */
interface StoredEntry {
  readonly id: string;
  readonly destination: string;
  readonly message: Record<string, string>;
  readonly everyMs?: number;
  readonly atMs?: number;
  readonly anchorMs: number;
  readonly sendAs?: string;
  readonly hasData: boolean;
}

/** What is stored under `f/<id>`. */
interface FiringRecord {
  readonly dueMs: number;
  readonly firedMs: number;
  readonly firings: number;
}

const MAX_ID_LENGTH = 200;
/** The longest single wait: a far `at` is reached in steps, and a wall-clock change is noticed. */
const MAX_WAIT_MS = 3_600_000;
const MAX_EVERY_MS = 366 * 86_400_000;
const MESSAGE_FIELD_PREFIX = "msg.";
/** Delay between attempts to hand on a message the node could not route. */
const RETRY_MS = 500;
const SYSTEM_KEY = "AutoMPI_System_Message";

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * Reads an `at` time: epoch milliseconds (a number, or digits) or ISO 8601 text. Throws a
 * `TypeError` for anything else.
 *
 * @example
 * ```ts
 * import { parseScheduleTime } from "./scheduler.ts";
 * console.assert(parseScheduleTime("2026-01-01T00:00:00Z") === 1_767_225_600_000);
 * console.assert(parseScheduleTime("1767225600000") === 1_767_225_600_000);
 * ```
 */
export function parseScheduleTime(at: number | string): number {
  if (typeof at === "number") {
    if (!Number.isFinite(at) || at < 0) {
      throw new TypeError(`Cannot read time ${at}: expected epoch milliseconds`);
    }
    return Math.floor(at);
  }
  if (typeof at === "string" && /^\d{1,16}$/.test(at)) return Number(at);
  // Only ISO 8601 with a zone (or a bare date, which is UTC): Date.parse reads other formats
  // differently on each runtime, and a time without a zone in the host's local time.
  const ms = typeof at === "string" &&
      /^\d{4}-\d\d-\d\d(?:T\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?(?:Z|[+-]\d\d:\d\d))?$/.test(at)
    ? Date.parse(at)
    : NaN;
  if (!Number.isFinite(ms) || ms < 0) {
    throw new TypeError(
      `Cannot read time ${JSON.stringify(at)}: expected epoch milliseconds or ISO 8601 text`,
    );
  }
  return ms;
}

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

/**
 * The scheduler worker: see the module documentation for the wire format, when entries fire,
 * and what survives a restart. Until its storage is loaded nothing fires and messages wait.
 *
 * @example
 * ```ts
 * import { SchedulerWorker } from "./scheduler.ts";
 * const scheduler = new SchedulerWorker("Scheduler01", {
 *   entries: [
 *     { id: "snapshot", destination: "Camera01", message: { command: "status" }, everyMs: 60_000 },
 *     {
 *       id: "new-year",
 *       destination: "Store0001",
 *       message: { command: "set", key: "year", value: "2027" },
 *       at: "2027-01-01T00:00:00Z",
 *     },
 *   ],
 * });
 * console.assert(scheduler.list().length === 0); // entries are installed once attached and loaded
 * ```
 */
export class SchedulerWorker extends LoadingWorker {
  readonly #configured: readonly ScheduleEntry[];
  readonly #configuredIds: ReadonlySet<string>;
  readonly #maxEntries: number;
  readonly #minEveryMs: number;
  readonly #entries = new Map<string, Entry>();
  readonly #undeliveredRetryMs: number;
  /** Timers of messages waiting to be handed on again. */
  readonly #retries = new Set<Timer>();
  readonly #stats: SchedulerStats = {
    fired: 0,
    undelivered: 0,
    retries: 0,
    writeFailures: 0,
    badMessages: 0,
  };

  constructor(guid: string, options: SchedulerOptions = {}) {
    super(guid, options);
    const maxEntries = options.maxEntries ?? 1000;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`Cannot create scheduler: maxEntries ${maxEntries} is not positive`);
    }
    const minEveryMs = options.minEveryMs ?? 10;
    if (!(minEveryMs >= 1 && minEveryMs <= MAX_EVERY_MS)) {
      throw new RangeError(`Cannot create scheduler: minEveryMs ${minEveryMs} is out of range`);
    }
    const undeliveredRetryMs = options.undeliveredRetryMs ?? 10_000;
    if (!(undeliveredRetryMs >= 0 && undeliveredRetryMs <= 86_400_000)) {
      throw new RangeError(
        `Cannot create scheduler: undeliveredRetryMs ${undeliveredRetryMs} is out of range`,
      );
    }
    this.#maxEntries = maxEntries;
    this.#minEveryMs = minEveryMs;
    this.#undeliveredRetryMs = undeliveredRetryMs;
    const entries = options.entries ?? [];
    const ids = new Set<string>();
    for (const entry of entries) {
      // Checked now, so that a mistake in the program's configuration fails where it is made.
      this.#check(entry, "create scheduler");
      if (ids.has(entry.id)) {
        throw new TypeError(`Cannot create scheduler: entry id "${entry.id}" is used twice`);
      }
      ids.add(entry.id);
    }
    if (ids.size > maxEntries) {
      throw new RangeError(`Cannot create scheduler: ${ids.size} entries exceed ${maxEntries}`);
    }
    this.#configured = entries.map((entry) => ({
      ...entry,
      message: { ...entry.message },
      data: entry.data === undefined ? undefined : new Uint8Array(entry.data),
    }));
    this.#configuredIds = ids;
  }

  /** Counters since creation (a copy). */
  get stats(): SchedulerStats {
    return { ...this.#stats };
  }

  /** The entries, in the order they were installed. */
  list(): ScheduledEntryInfo[] {
    return [...this.#entries.values()].map((entry) => ({
      id: entry.id,
      destination: entry.destination,
      message: { ...entry.message },
      dataBytes: entry.data?.length ?? 0,
      everyMs: entry.everyMs,
      atMs: entry.atMs,
      nextMs: entry.nextMs,
      lastFiredMs: entry.lastFiredMs,
      firings: entry.firings,
      configured: entry.configured,
      sendAs: entry.sendAs,
    }));
  }

  // ---- loading -----------------------------------------------------------------------------

  protected override async load(storage: Storage): Promise<void> {
    const records = await storage.list("");
    const stored = new Map<string, StoredEntry>();
    const data = new Map<string, Uint8Array>();
    const firings = new Map<string, FiringRecord>();
    for (const { key, value } of records) {
      const id = key.slice(2);
      try {
        if (key.startsWith("e/")) stored.set(id, readStoredEntry(value));
        else if (key.startsWith("d/")) data.set(id, value);
        else if (key.startsWith("f/")) firings.set(id, readFiringRecord(value));
      } catch (error) {
        this.context.log.log("error", "scheduler.bad-record", {
          worker: this.guid,
          key,
          error: errorText(error),
        });
      }
    }
    const nowMs = Math.floor(this.context.clock.wallNow());
    this.#entries.clear();
    const cleanup: StorageOp[] = [];
    for (const entry of this.#configured) {
      const atMs = entry.at === undefined ? undefined : parseScheduleTime(entry.at);
      this.#entries.set(entry.id, {
        id: entry.id,
        destination: entry.destination,
        message: entry.message,
        data: entry.data,
        everyMs: entry.everyMs,
        atMs,
        anchorMs: atMs ?? nowMs + entry.everyMs!,
        sendAs: entry.sendAs,
        configured: true,
        ...noFirings(),
      });
      // A stored entry of the same id dates from before the program configured it.
      if (stored.delete(entry.id)) {
        cleanup.push({ type: "delete", key: `e/${entry.id}` }, {
          type: "delete",
          key: `d/${entry.id}`,
        });
      }
    }
    for (const [id, record] of stored) {
      if (record.hasData && !data.has(id)) {
        this.context.log.log("error", "scheduler.bad-record", {
          worker: this.guid,
          key: `d/${id}`,
          error: "the entry's data is missing; sending without it",
        });
      }
      this.#entries.set(id, {
        id,
        destination: record.destination,
        message: record.message,
        data: data.get(id),
        everyMs: record.everyMs,
        atMs: record.atMs,
        anchorMs: record.anchorMs,
        sendAs: record.sendAs,
        configured: false,
        ...noFirings(),
      });
    }
    for (const [id, record] of firings) {
      const entry = this.#entries.get(id);
      if (entry === undefined) {
        // The record of a one-shot entry that fired and is gone: nothing needs it any more.
        cleanup.push({ type: "delete", key: `f/${id}` });
        continue;
      }
      entry.lastDueMs = record.dueMs;
      entry.lastFiredMs = record.firedMs;
      entry.firings = record.firings;
    }
    if (cleanup.length > 0) {
      storage.batch(cleanup).catch((error) => this.#writeFailed("cleanup", "", error));
    }
  }

  protected override onReady(): void {
    const nowMs = Math.floor(this.context.clock.wallNow());
    for (const entry of [...this.#entries.values()]) {
      // A configured one-shot entry that fired before a restart: done.
      if (entry.everyMs === undefined && entry.lastDueMs === entry.atMs) {
        this.#entries.delete(entry.id);
        continue;
      }
      this.#arm(entry, nowMs);
    }
    this.context.log.log("info", "scheduler.loaded", {
      worker: this.guid,
      entries: this.#entries.size,
    });
  }

  protected override onClose(): void {
    super.onClose();
    for (const entry of this.#entries.values()) entry.timer?.cancel();
    for (const timer of this.#retries) timer.cancel();
    this.#retries.clear();
  }

  // ---- firing ------------------------------------------------------------------------------

  /** Sets the entry's next firing and its timer (none for a one-shot entry that fired). */
  #arm(entry: Entry, nowMs: number): void {
    entry.timer?.cancel();
    entry.timer = undefined;
    entry.nextMs = nextDue(entry, nowMs);
    if (entry.nextMs !== undefined) this.#wait(entry, entry.nextMs);
  }

  #wait(entry: Entry, dueMs: number): void {
    const clock = this.context.clock;
    const delayMs = Math.max(0, Math.min(dueMs - clock.wallNow(), MAX_WAIT_MS));
    entry.timer = clock.schedule(delayMs, () => {
      entry.timer = undefined;
      if (this.#entries.get(entry.id) !== entry || !this.attached) return;
      // Timers run on the monotonic clock, `at` on the wall clock: re-check before firing.
      if (clock.wallNow() < dueMs) this.#wait(entry, dueMs);
      else this.#fire(entry, dueMs);
    });
  }

  #fire(entry: Entry, dueMs: number): void {
    const firedMs = Math.floor(this.context.clock.wallNow());
    const oneShot = entry.everyMs === undefined;
    const record: FiringRecord = { dueMs, firedMs, firings: entry.firings + 1 };
    const ops: StorageOp[] = [{ type: "put", key: `f/${entry.id}`, value: json(record) }];
    if (oneShot && !entry.configured) {
      ops.push({ type: "delete", key: `e/${entry.id}` }, { type: "delete", key: `d/${entry.id}` });
    }
    entry.nextMs = undefined;
    const sendNow = (failure: unknown) => {
      // Unscheduled or replaced while the record was written: it no longer wants sending.
      if (!this.attached || entry.cancelled) return;
      if (failure !== undefined) this.#writeFailed("record firing of", entry.id, failure);
      entry.lastDueMs = dueMs;
      entry.lastFiredMs = firedMs;
      entry.firings = record.firings;
      this.#send(entry, dueMs);
      if (oneShot) this.#entries.delete(entry.id);
      else this.#arm(entry, this.context.clock.wallNow());
    };
    this.#batch(ops).then(() => sendNow(undefined), (error) => sendNow(error ?? "failed"));
  }

  #send(entry: Entry, dueMs: number): void {
    this.#stats.fired++;
    this.context.log.log("debug", "scheduler.fired", {
      worker: this.guid,
      id: entry.id,
      dueMs,
      destination: entry.destination,
    });
    const message: MapMessage = {
      destination: entry.destination,
      source: entry.sendAs ?? this.guid,
      message: { ...entry.message },
      ...(entry.data === undefined ? {} : { data: new Uint8Array(entry.data) }),
    };
    this.#deliver(entry, message, this.context.clock.now() + this.#undeliveredRetryMs);
  }

  /**
   * Hands the message to the node; while the node cannot (its destination not known yet, as
   * just after a restart, before the links are up), tries again every 500 ms until `untilMs`.
   */
  #deliver(entry: Entry, message: MapMessage, untilMs: number): void {
    let sent = false;
    try {
      sent = this.send(message);
    } catch (error) {
      this.context.log.log("error", "worker.error", { worker: this.guid, error: errorText(error) });
      untilMs = -Infinity; // a message the node refuses outright will not improve
    }
    if (sent) return;
    const clock = this.context.clock;
    if (clock.now() + RETRY_MS <= untilMs) {
      this.#stats.retries++;
      const timer = clock.schedule(RETRY_MS, () => {
        this.#retries.delete(timer);
        // Unscheduled meanwhile: it no longer wants sending. (A one-shot entry that fired is
        // gone from the entries, but its message still is to be delivered.)
        if (this.attached && !entry.cancelled) {
          this.#deliver(entry, message, untilMs);
        }
      });
      this.#retries.add(timer);
      return;
    }
    this.#stats.undelivered++;
    this.context.log.log("warn", "scheduler.undelivered", {
      worker: this.guid,
      id: entry.id,
      destination: entry.destination,
    });
  }

  // ---- messages ----------------------------------------------------------------------------

  protected override onMessage(message: MapMessage): void {
    try {
      this.#handle(message);
    } catch (error) {
      this.context.log.log("error", "worker.error", { worker: this.guid, error: errorText(error) });
    }
  }

  #handle(message: MapMessage): void {
    const command = message.message.command;
    switch (command) {
      case "schedule":
        return this.#schedule(message);
      case "unschedule":
        return this.#unschedule(message);
      case "list": {
        const entries = this.list().map((info) => ({
          id: info.id,
          destination: info.destination,
          message: info.message,
          dataBytes: info.dataBytes,
          everyMs: info.everyMs ?? null,
          at: iso(info.atMs),
          nextAt: iso(info.nextMs),
          lastFiredAt: iso(info.lastFiredMs),
          firings: info.firings,
          configured: info.configured,
          sendAs: info.sendAs ?? null,
        }));
        replyTo(this.context, this.guid, message, {
          command: "listReturn",
          count: String(entries.length),
          entries: JSON.stringify(entries),
        });
        return;
      }
      default:
        if (isReplyCommand(command)) return; // an answer to a message an entry sent
        return this.#refuse(
          message,
          "error",
          command === undefined ? "no command" : `unknown command "${command}"`,
        );
    }
  }

  #schedule(message: MapMessage): void {
    const fields = message.message;
    const answer = "scheduleReturn";
    // Null prototype: a field named `msg.__proto__` must stay an ordinary field.
    const sent: Record<string, string> = Object.create(null);
    for (const name of Object.keys(fields)) {
      if (name.startsWith(MESSAGE_FIELD_PREFIX)) {
        sent[name.slice(MESSAGE_FIELD_PREFIX.length)] = fields[name];
      }
    }
    let spec: ScheduleEntry;
    try {
      spec = {
        id: fields.id ?? "",
        destination: fields.destination ?? "",
        message: sent,
        data: message.data,
        everyMs: fields.everyMs === undefined ? undefined : Number(fields.everyMs),
        at: fields.at,
        sendAs: fields.sendAs,
      };
      this.#check(spec, "schedule");
      if (this.#configuredIds.has(spec.id)) {
        throw new TypeError(
          `Cannot schedule "${spec.id}": the program configures that entry`,
        );
      }
      if (!this.#entries.has(spec.id) && this.#entries.size >= this.#maxEntries) {
        throw new RangeError(`Cannot schedule "${spec.id}": ${this.#maxEntries} entries already`);
      }
    } catch (error) {
      return this.#refuse(message, answer, errorText(error));
    }
    const nowMs = Math.floor(this.context.clock.wallNow());
    const atMs = spec.at === undefined ? undefined : parseScheduleTime(spec.at);
    const entry: Entry = {
      id: spec.id,
      destination: spec.destination,
      message: sent,
      data: spec.data === undefined ? undefined : new Uint8Array(spec.data),
      everyMs: spec.everyMs,
      atMs,
      anchorMs: atMs ?? nowMs + spec.everyMs!,
      sendAs: spec.sendAs,
      configured: false,
      ...noFirings(),
    };
    this.#cancel(this.#entries.get(spec.id));
    // Replacing keeps the entry's place in the listing (a Map keeps its first insertion).
    this.#entries.set(spec.id, entry);
    this.#arm(entry, nowMs);
    const stored: StoredEntry = {
      id: entry.id,
      destination: entry.destination,
      message: entry.message as Record<string, string>,
      ...(entry.everyMs === undefined ? {} : { everyMs: entry.everyMs }),
      ...(entry.atMs === undefined ? {} : { atMs: entry.atMs }),
      anchorMs: entry.anchorMs,
      ...(entry.sendAs === undefined ? {} : { sendAs: entry.sendAs }),
      hasData: entry.data !== undefined,
    };
    const ops: StorageOp[] = [
      { type: "put", key: `e/${entry.id}`, value: json(stored) },
      entry.data === undefined
        ? { type: "delete", key: `d/${entry.id}` }
        : { type: "put", key: `d/${entry.id}`, value: entry.data },
      // A new entry starts a new history: an old firing record must not mark it fired.
      { type: "delete", key: `f/${entry.id}` },
    ];
    this.#batch(ops).then(
      () => {
        if (!this.attached) return;
        replyTo(this.context, this.guid, message, {
          command: answer,
          id: entry.id,
          ok: "true",
          nextAt: iso(entry.nextMs) ?? "",
        });
      },
      (error) => {
        if (!this.attached) return;
        this.#writeFailed("schedule", entry.id, error);
        // Not durable, so not scheduled: a restart would not know it either.
        if (this.#entries.get(entry.id) === entry) {
          this.#cancel(entry);
          this.#entries.delete(entry.id);
        }
        replyTo(this.context, this.guid, message, {
          command: answer,
          id: entry.id,
          ok: "false",
          error: `Cannot schedule "${entry.id}": ${errorText(error)}`,
        });
      },
    );
  }

  #unschedule(message: MapMessage): void {
    const answer = "unscheduleReturn";
    const id = message.message.id;
    if (id === undefined || id === "") return this.#refuse(message, answer, "no id");
    if (this.#configuredIds.has(id)) {
      return this.#refuse(message, answer, `the program configures entry "${id}"`);
    }
    const entry = this.#entries.get(id);
    this.#cancel(entry);
    this.#entries.delete(id);
    const found = String(entry !== undefined);
    this.#batch([
      { type: "delete", key: `e/${id}` },
      { type: "delete", key: `d/${id}` },
      { type: "delete", key: `f/${id}` },
    ]).then(
      () => {
        if (this.attached) {
          replyTo(this.context, this.guid, message, { command: answer, id, found, ok: "true" });
        }
      },
      (error) => {
        if (!this.attached) return;
        this.#writeFailed("unschedule", id, error);
        replyTo(this.context, this.guid, message, {
          command: answer,
          id,
          found,
          ok: "false",
          error: `Cannot unschedule "${id}": ${errorText(error)}`,
        });
      },
    );
  }

  // ---- helpers -----------------------------------------------------------------------------

  /** Throws a `TypeError` or `RangeError` unless `entry` can be scheduled. */
  #check(entry: ScheduleEntry, action: string): void {
    if (entry === null || typeof entry !== "object") {
      throw new TypeError(`Cannot ${action}: an entry must be an object`);
    }
    const { id, destination, message, data, everyMs, at, sendAs } = entry;
    if (typeof id !== "string" || id === "" || id.length > MAX_ID_LENGTH) {
      throw new TypeError(`Cannot ${action}: id must be 1..${MAX_ID_LENGTH} characters`);
    }
    const what = `Cannot ${action} "${id}"`;
    if (typeof destination !== "string" || destination === "") {
      throw new TypeError(`${what}: no destination`);
    }
    if (message === null || typeof message !== "object") {
      throw new TypeError(`${what}: message must be an object of strings`);
    }
    for (const [key, value] of Object.entries(message)) {
      if (typeof value !== "string") throw new TypeError(`${what}: message["${key}"] is not text`);
      if (key === SYSTEM_KEY) throw new TypeError(`${what}: "${SYSTEM_KEY}" is reserved`);
    }
    if (data !== undefined && !(data instanceof Uint8Array)) {
      throw new TypeError(`${what}: data must be a Uint8Array`);
    }
    if (sendAs !== undefined && (typeof sendAs !== "string" || sendAs === "")) {
      throw new TypeError(`${what}: sendAs must be a non-empty GUID`);
    }
    if (everyMs === undefined && at === undefined) {
      throw new TypeError(`${what}: give everyMs, at, or both`);
    }
    if (
      everyMs !== undefined &&
      !(Number.isInteger(everyMs) && everyMs >= this.#minEveryMs && everyMs <= MAX_EVERY_MS)
    ) {
      throw new RangeError(
        `${what}: everyMs ${everyMs} is not an integer in ${this.#minEveryMs}..${MAX_EVERY_MS}`,
      );
    }
    if (at !== undefined) {
      try {
        parseScheduleTime(at);
      } catch (error) {
        throw new TypeError(`${what}: ${errorText(error)}`);
      }
    }
  }

  #cancel(entry: Entry | undefined): void {
    if (entry === undefined) return;
    entry.cancelled = true;
    entry.timer?.cancel();
    entry.timer = undefined;
  }

  #batch(ops: StorageOp[]): Promise<void> {
    try {
      return this.context.storage.batch(ops);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #writeFailed(action: string, id: string, error: unknown): void {
    this.#stats.writeFailures++;
    this.context.log.log("error", "scheduler.write-failed", {
      worker: this.guid,
      action,
      id,
      error: errorText(error),
    });
  }

  /** Logs a bad request and answers it (`answer` names the reply's command). */
  #refuse(message: MapMessage, answer: string, reason: string): void {
    this.#stats.badMessages++;
    const command = message.message.command ?? "";
    this.context.log.log("warn", "scheduler.bad-message", {
      worker: this.guid,
      from: message.source,
      command,
      error: reason,
    });
    const text = reason.startsWith("Cannot ") ? reason : `Cannot ${command || "handle"}: ${reason}`;
    replyTo(
      this.context,
      this.guid,
      message,
      answer === "error"
        ? { command: "error", errorOf: command, error: text }
        : { command: answer, id: message.message.id ?? "", ok: "false", error: text },
    );
  }
}

function noFirings(): Pick<
  Entry,
  "lastDueMs" | "lastFiredMs" | "firings" | "nextMs" | "timer" | "cancelled"
> {
  return {
    lastDueMs: undefined,
    lastFiredMs: undefined,
    firings: 0,
    nextMs: undefined,
    timer: undefined,
    cancelled: false,
  };
}

/**
 * When the entry fires next: a one-shot entry at its time (at once if that has passed) unless
 * it fired; an interval entry at the first time of its cadence not yet fired and not past.
 */
function nextDue(entry: Entry, nowMs: number): number | undefined {
  const everyMs = entry.everyMs;
  if (everyMs === undefined) {
    return entry.lastDueMs !== undefined && entry.lastDueMs === entry.atMs ? undefined : entry.atMs;
  }
  const baseMs = entry.lastDueMs === undefined ? entry.anchorMs : entry.lastDueMs + everyMs;
  if (baseMs >= nowMs) return baseMs;
  // Times missed (node down, process paused) are skipped: the next one not in the past.
  return baseMs + Math.ceil((nowMs - baseMs) / everyMs) * everyMs;
}

function json(value: unknown): Uint8Array {
  return utf8.encode(JSON.stringify(value));
}

function readStoredEntry(bytes: Uint8Array): StoredEntry {
  const value = JSON.parse(utf8Decoder.decode(bytes)) as Partial<StoredEntry>;
  const finite = (n: unknown) => typeof n === "number" && Number.isFinite(n);
  if (
    typeof value !== "object" || value === null || typeof value.id !== "string" ||
    typeof value.destination !== "string" || typeof value.message !== "object" ||
    value.message === null || !finite(value.anchorMs) ||
    (value.everyMs !== undefined && !(finite(value.everyMs) && value.everyMs! > 0)) ||
    (value.atMs !== undefined && !finite(value.atMs)) ||
    (value.everyMs === undefined && value.atMs === undefined)
  ) {
    throw new TypeError("Cannot read entry: fields missing or of the wrong type");
  }
  const message: Record<string, string> = Object.create(null);
  for (const [key, text] of Object.entries(value.message)) {
    if (typeof text !== "string" || key === SYSTEM_KEY) {
      throw new TypeError(`Cannot read entry: message["${key}"] is not text`);
    }
    message[key] = text;
  }
  return {
    id: value.id,
    destination: value.destination,
    message,
    everyMs: value.everyMs,
    atMs: value.atMs,
    anchorMs: value.anchorMs!,
    sendAs: typeof value.sendAs === "string" && value.sendAs !== "" ? value.sendAs : undefined,
    hasData: value.hasData === true,
  };
}

function readFiringRecord(bytes: Uint8Array): FiringRecord {
  const value = JSON.parse(utf8Decoder.decode(bytes)) as Partial<FiringRecord>;
  if (
    typeof value !== "object" || value === null || !Number.isFinite(value.dueMs) ||
    !Number.isFinite(value.firedMs) || !Number.isInteger(value.firings)
  ) {
    throw new TypeError("Cannot read firing record: fields missing or of the wrong type");
  }
  return { dueMs: value.dueMs!, firedMs: value.firedMs!, firings: value.firings! };
}
