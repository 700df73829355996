/**
 * A tiny benchmark harness: named measurements printed as a table, or as one JSON object per
 * line with `--json`. Figures that have a baseline measured in the same run carry it, so
 * ratios, not absolute numbers, are what to compare on a shared, noisy machine.
 *
 * @module
 */

/** One measured figure. */
export interface BenchRow {
  readonly name: string;
  readonly runtime: string;
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

/** Prints rows as a table, or as JSON lines when `--json` was given. */
export function report(rows: readonly BenchRow[], args = benchArgs()): void {
  if (args.includes("--json")) {
    for (const row of rows) console.log(JSON.stringify(row));
    return;
  }
  const format = (value: number) =>
    value >= 100 ? Math.round(value).toLocaleString("en-US") : value.toPrecision(3);
  const lines = rows.map((row) => [
    row.name,
    row.runtime,
    `${format(row.value)} ${row.unit}`,
    row.baseline === undefined
      ? ""
      : `${format(row.baseline)} ${row.unit} (${row.baselineName ?? "baseline"})`,
    row.baseline === undefined || row.baseline === 0
      ? ""
      : `${(row.value / row.baseline).toFixed(2)}x`,
    row.note ?? "",
  ]);
  const header = ["benchmark", "runtime", "value", "baseline", "ratio", "note"];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i].length)));
  const show = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i])).join(" | ");
  console.log(show(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const line of lines) console.log(show(line));
}
