/**
 * A tiny benchmark harness: named measurements printed as a table, or as one JSON object per
 * line with `--json`. Figures that have a baseline measured in the same run carry it, so
 * ratios, not absolute numbers, are what to compare on a shared, noisy machine.
 *
 * A figure that could not be measured (a peer that is not installed, say) has `value: NaN`,
 * shown as `n/a` in the table and `null` in JSON, and its `note` says why.
 *
 * @module
 */
import process from "node:process";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** One measured figure. */
export interface BenchRow {
  readonly name: string;
  /** The runtime that measured it: `deno`, `bun`, or `node` for a peer run under Node. */
  readonly runtime: string;
  /** The figure; `NaN` if it could not be measured (then `note` says why). */
  readonly value: number;
  readonly unit: string;
  /** The comparable figure of the baseline, measured in the same run. */
  readonly baseline?: number;
  readonly baselineName?: string;
  readonly note?: string;
}

/** The runtime this process runs on. */
export function runtimeName(): string {
  const g = globalThis as Record<string, unknown>;
  if (g.Bun) return "bun";
  if (g.Deno) return "deno";
  return "node";
}

/** Runs `fn` `repeat` times and returns the best (shortest) wall time in milliseconds. */
export function bestOf(repeat: number, fn: () => void): number {
  let best = Infinity;
  for (let i = 0; i < repeat; i++) {
    const start = performance.now();
    fn();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

/** Command-line arguments without the runtime's own. */
export function benchArgs(): string[] {
  const g = globalThis as { Deno?: { args: string[] }; process?: { argv: string[] } };
  return g.Deno ? g.Deno.args : (g.process?.argv.slice(2) ?? []);
}

/** The row as one JSON line: `name`, `runtime`, `value`, `unit`, then `baseline` and extras. */
export function jsonLine(row: BenchRow): string {
  const { name, runtime, value, unit, baseline, baselineName, note } = row;
  const finite = (n: number | undefined) => n === undefined || Number.isFinite(n) ? n : null;
  return JSON.stringify({
    name,
    runtime,
    value: finite(value),
    unit,
    ...(baseline === undefined ? {} : { baseline: finite(baseline) }),
    ...(baselineName === undefined ? {} : { baselineName }),
    ...(note === undefined ? {} : { note }),
  });
}

function ratioText(ratio: number): string {
  return `${Math.abs(ratio) >= 0.1 ? ratio.toFixed(2) : ratio.toPrecision(2)}x`;
}

/** Prints rows as a table, or as JSON lines when `--json` was given. */
export function report(rows: readonly BenchRow[], args = benchArgs()): void {
  if (args.includes("--json")) {
    for (const row of rows) console.log(jsonLine(row));
    return;
  }
  const format = (value: number) =>
    !Number.isFinite(value)
      ? "n/a"
      : Math.abs(value) >= 100
      ? Math.round(value).toLocaleString("en-US")
      : value.toPrecision(3);
  const lines = rows.map((row) => [
    row.name,
    row.runtime,
    `${format(row.value)} ${row.unit}`,
    row.baseline === undefined
      ? ""
      : `${format(row.baseline)} ${row.unit} (${row.baselineName ?? "baseline"})`,
    row.baseline === undefined || row.baseline === 0 || !Number.isFinite(row.baseline) ||
      !Number.isFinite(row.value)
      ? ""
      : ratioText(row.value / row.baseline),
    row.note ?? "",
  ]);
  const header = ["benchmark", "runtime", "value", "baseline", "ratio", "note"];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i].length)));
  const show = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i])).join(" | ");
  console.log(show(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const line of lines) console.log(show(line));
}

/** Prints a progress line on stderr, so that `--json` output on stdout stays clean. */
export function progress(text: string): void {
  console.error(`bench: ${text}`);
}

/** The value of `--name value` (or `--name=value`) in `args`, if given. */
export function flagValue(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i].startsWith(`--${name}=`)) return args[i].slice(name.length + 3);
  }
  return undefined;
}

/** The `p`-th percentile (0..100) of ascending `sorted` values (nearest rank); NaN if empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

let v8Gc: (() => void) | undefined | null = null;

/**
 * Runs a full garbage collection where the runtime allows it and returns whether it could:
 * `globalThis.gc` when exposed (`--v8-flags=--expose-gc`, `node --expose-gc`), `Bun.gc(true)`,
 * else V8's `gc` reached through `node:v8` and `node:vm` (as `tests/_hostile.ts` does).
 */
export function forceGc(): boolean {
  const g = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  if (g.Bun !== undefined) {
    g.Bun.gc(true);
    return true;
  }
  if (typeof g.gc === "function") {
    g.gc();
    return true;
  }
  if (v8Gc === null) {
    v8Gc = undefined;
    try {
      setFlagsFromString("--expose-gc");
      const gc = runInNewContext("gc");
      if (typeof gc === "function") v8Gc = gc as () => void;
    } catch {
      v8Gc = undefined;
    }
  }
  if (v8Gc === undefined) return false;
  v8Gc();
  return true;
}

/** Heap in use (bytes) after two forced collections, and whether they could be forced. */
export function heapUsedAfterGc(): { heapUsedBytes: number; collected: boolean } {
  const collected = forceGc() && forceGc();
  return { heapUsedBytes: process.memoryUsage().heapUsed, collected };
}
