/**
 * The structured {@link Logger} of the real adapters: one line per entry, as text or JSON.
 *
 * @module
 */
import type { Logger, LogLevel } from "../src/platform.ts";

/** One log entry, as a sink receives it beside its formatted line. */
export interface LogRecord {
  /** Wall-clock milliseconds since the Unix epoch. */
  readonly timeMs: number;
  readonly level: LogLevel;
  readonly event: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** The least severe level written. Default `"info"`. */
  readonly level?: LogLevel;
  /**
   * `"text"` (default): `2026-01-01T00:00:00.000Z INFO  link.up peer=a1 address=127.0.0.1:5000`;
   * `"json"`: one JSON object per line, `time`, `level` and `event` first, then the fields.
   */
  readonly format?: "text" | "json";
  /** Where lines go. Default: standard error (`console.error`). */
  readonly sink?: (line: string, record: LogRecord) => void;
  /** Fields added to every entry (before its own), e.g. `{ node: "a" }`. */
  readonly fields?: Readonly<Record<string, unknown>>;
  /** The wall clock for timestamps, in ms since the epoch. Default `Date.now`. */
  readonly wallNow?: () => number;
}

const LEVELS: Readonly<Record<LogLevel, number>> = { debug: 0, info: 1, warn: 2, error: 3 };
const LABELS: Readonly<Record<LogLevel, string>> = {
  debug: "DEBUG",
  info: "INFO ",
  warn: "WARN ",
  error: "ERROR",
};
const RESERVED = new Set(["time", "level", "event"]);
// A text value goes out bare when it cannot be mistaken for anything else.
const BARE = /^[\w.:/@+\-[\]]+$/;

/**
 * Creates a structured logger that writes one line per entry at or above `level`.
 *
 * @example
 * ```ts
 * import { createLogger } from "./_logger.ts";
 * const lines: string[] = [];
 * const log = createLogger({ format: "json", sink: (line) => lines.push(line), wallNow: () => 0 });
 * log.log("info", "link.up", { peer: "a1" });
 * log.log("debug", "hidden");
 * console.assert(lines.length === 1 && JSON.parse(lines[0]).peer === "a1");
 * ```
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  if (!(level in LEVELS)) {
    throw new TypeError(`Cannot create logger: unknown level "${level}"`);
  }
  const format = options.format ?? "text";
  if (format !== "text" && format !== "json") {
    throw new TypeError(`Cannot create logger: unknown format "${format}"`);
  }
  const threshold = LEVELS[level];
  const sink = options.sink ?? ((line: string) => console.error(line));
  const wallNow = options.wallNow ?? (() => Date.now());
  const base = options.fields ?? {};
  return {
    log(entryLevel, event, fields) {
      const rank = LEVELS[entryLevel] ?? LEVELS.error;
      if (rank < threshold) return;
      const record: LogRecord = {
        timeMs: wallNow(),
        level: LEVELS[entryLevel] === undefined ? "error" : entryLevel,
        event: String(event),
        fields: fields === undefined ? base : { ...base, ...fields },
      };
      sink(format === "json" ? formatJson(record) : formatText(record), record);
    },
  };
}

/** Formats a record as one text line. */
export function formatText(record: LogRecord): string {
  let line = `${isoTime(record.timeMs)} ${LABELS[record.level]} ${record.event}`;
  for (const [key, value] of Object.entries(record.fields)) {
    line += ` ${key}=${textValue(value)}`;
  }
  return line;
}

/** Formats a record as one JSON line; fields named `time`, `level` or `event` get a `_`. */
export function formatJson(record: LogRecord): string {
  const out: Record<string, unknown> = {
    time: isoTime(record.timeMs),
    level: record.level,
    event: record.event,
  };
  for (const [key, value] of Object.entries(record.fields)) {
    out[RESERVED.has(key) ? `_${key}` : key] = plain(value);
  }
  try {
    return JSON.stringify(out);
  } catch {
    // A cycle or a throwing getter: keep the line, lose the detail.
    const fallback: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(out)) fallback[key] = safeString(value);
    return JSON.stringify(fallback);
  }
}

function isoTime(timeMs: number): string {
  const date = new Date(timeMs);
  return Number.isNaN(date.getTime()) ? String(timeMs) : date.toISOString();
}

function textValue(value: unknown): string {
  if (typeof value === "string") return BARE.test(value) ? value : JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) {
    return String(value);
  }
  if (value === undefined) return "undefined";
  const converted = plain(value);
  if (typeof converted === "string") return JSON.stringify(converted);
  try {
    return JSON.stringify(converted) ?? safeString(value);
  } catch {
    return JSON.stringify(safeString(value));
  }
}

/** What JSON cannot show well, as something it can. */
function plain(value: unknown): unknown {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (typeof value === "function" || typeof value === "symbol") return safeString(value);
  return value;
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return "[unprintable]";
  }
}
