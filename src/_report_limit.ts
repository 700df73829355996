/**
 * How often junk from one source is reported: bad datagrams are always counted, but a sender
 * spraying them (a misconfigured node, a forger, a port scan) must not flood the log and the
 * node's events with one line per datagram.
 *
 * @module
 */

/** The nodes' window: junk from one source is reported once per 10 s. */
export const REPORT_WINDOW_MS = 10_000;

/** Sources remembered at most; past this the memory starts over (a report may come early). */
const MAX_SOURCES = 1024;

/**
 * Allows one report per source per window. Reports that were held back are counted and handed
 * to the next report of that source, so a reader learns how many it did not see.
 *
 * @example
 * ```ts
 * import { ReportLimit } from "./_report_limit.ts";
 * const limit = new ReportLimit(10_000);
 * console.assert(limit.allow("10.0.0.1:8888", 0) === 0); // reported, none held back before
 * console.assert(limit.allow("10.0.0.1:8888", 500) === undefined); // held back
 * console.assert(limit.allow("10.0.0.2:8888", 500) === 0); // another source
 * console.assert(limit.allow("10.0.0.1:8888", 10_000) === 1); // reported: one held back since
 * console.assert(limit.text("10.0.0.3:8888", 0, new Error("Cannot read it")) === "Cannot read it");
 * ```
 */
export class ReportLimit {
  readonly #windowMs: number;
  /** Source → when it was last reported, and how many of its reports were held back since. */
  readonly #sources = new Map<string, { reportedMs: number; heldBack: number }>();

  /** One report per source per `windowMs`. */
  constructor(windowMs: number) {
    if (!(windowMs > 0 && Number.isFinite(windowMs))) {
      throw new RangeError("Cannot limit reports: windowMs must be a positive number of ms");
    }
    this.#windowMs = windowMs;
  }

  /**
   * Whether `source` may be reported at `nowMs`: the number of its reports held back since its
   * last one (report now, and say so if it is not 0), or undefined (hold this one back).
   */
  allow(source: string, nowMs: number): number | undefined {
    const sources = this.#sources;
    const entry = sources.get(source);
    if (entry !== undefined && nowMs - entry.reportedMs < this.#windowMs) {
      entry.heldBack++;
      return undefined;
    }
    if (entry !== undefined) {
      const heldBack = entry.heldBack;
      entry.reportedMs = nowMs;
      entry.heldBack = 0;
      return heldBack;
    }
    if (sources.size >= MAX_SOURCES) sources.clear();
    sources.set(source, { reportedMs: nowMs, heldBack: 0 });
    return 0;
  }

  /**
   * What to report of `error` from `source` at `nowMs`: its message, saying how many were held
   * back before it; or undefined (hold this one back).
   */
  text(source: string, nowMs: number, error: unknown): string | undefined {
    const heldBack = this.allow(source, nowMs);
    if (heldBack === undefined) return undefined;
    return withHeldBack(error instanceof Error ? error.message : String(error), heldBack);
  }
}

/**
 * A report's text, saying how many like it from the same source were held back before it.
 *
 * @example
 * ```ts
 * import { withHeldBack } from "./_report_limit.ts";
 * console.assert(withHeldBack("Cannot read it", 0) === "Cannot read it");
 * console.assert(withHeldBack("Cannot read it", 2).endsWith("(2 more from this source since the last report)"));
 * ```
 */
export function withHeldBack(text: string, heldBack: number): string {
  return heldBack === 0
    ? text
    : `${text} (${heldBack} more from this source since the last report)`;
}
