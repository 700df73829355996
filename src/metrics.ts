/**
 * Metrics in the shape Prometheus and OpenMetrics read: counter, gauge and histogram families,
 * and their text exposition. A node gives its own with `node.metrics()` (on real sockets and in
 * the simulator alike); the state server serves them at `GET /metrics`.
 *
 * @module
 */

/** One value of a counter or gauge, with its labels. */
export interface MetricSample {
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One histogram's state: counts per bucket (not cumulative), their sum and count. */
export interface HistogramSample {
  readonly labels?: Readonly<Record<string, string>>;
  /** Observations at or below each bucket bound and above the previous one. */
  readonly counts: readonly number[];
  /** Observations above the last bound. */
  readonly overflow: number;
  readonly sum: number;
}

/** A metric family. Counter names leave out `_total`: the exposition adds it. */
export type MetricFamily =
  | {
    readonly name: string;
    readonly help: string;
    readonly type: "counter" | "gauge";
    readonly samples: readonly MetricSample[];
  }
  | {
    readonly name: string;
    readonly help: string;
    readonly type: "histogram";
    /** Upper bounds, ascending (`+Inf` is implied). */
    readonly buckets: readonly number[];
    readonly samples: readonly HistogramSample[];
  };

/**
 * A histogram with fixed bucket bounds.
 *
 * @example
 * ```ts
 * import { Histogram } from "./metrics.ts";
 * const h = new Histogram([0.001, 0.01, 0.1]);
 * h.observe(0.004);
 * h.observe(5);
 * const s = h.sample();
 * if (s.counts[1] !== 1 || s.overflow !== 1 || s.sum !== 5.004) throw new Error("unexpected");
 * ```
 */
export class Histogram {
  readonly #counts: number[];
  #overflow = 0;
  #sum = 0;

  /** A histogram over `buckets` (ascending upper bounds). */
  constructor(readonly buckets: readonly number[]) {
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i] > buckets[i - 1])) {
        throw new RangeError("Cannot create histogram: bucket bounds must ascend");
      }
    }
    this.#counts = buckets.map(() => 0);
  }

  /** Records one observation, or `count` equal ones. */
  observe(value: number, count = 1): void {
    if (!Number.isFinite(value)) return;
    if (!(Number.isInteger(count) && count >= 1)) {
      throw new RangeError(`Cannot observe ${count} times: give a whole number >= 1`);
    }
    this.#sum += value * count;
    // A plain loop: this runs once per message for some histograms.
    const buckets = this.buckets;
    for (let i = 0; i < buckets.length; i++) {
      if (value <= buckets[i]) {
        this.#counts[i] += count;
        return;
      }
    }
    this.#overflow += count;
  }

  /** Its state now. */
  sample(labels?: Readonly<Record<string, string>>): HistogramSample {
    return {
      ...(labels ? { labels } : {}),
      counts: [...this.#counts],
      overflow: this.#overflow,
      sum: this.#sum,
    };
  }
}

/**
 * Bucket bounds, in seconds, of the latency histograms the toolkit keeps (handshakes, message
 * round trips, event-loop lag, storage fsyncs): 100 µs to 5 s, about three per decade.
 *
 * @example
 * ```ts
 * import { Histogram, LATENCY_BUCKETS_SECONDS } from "./metrics.ts";
 * const fsyncSeconds = new Histogram(LATENCY_BUCKETS_SECONDS);
 * fsyncSeconds.observe(0.003);
 * if (fsyncSeconds.sample().counts.reduce((a, b) => a + b) !== 1) throw new Error("unexpected");
 * ```
 */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
];

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function labelText(labels: Readonly<Record<string, string>> | undefined, extra?: string): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(labels ?? {})) {
    if (!LABEL.test(key)) throw new TypeError(`Cannot format metrics: label name "${key}"`);
    parts.push(`${key}="${escapeLabel(value)}"`);
  }
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function number(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Number.isNaN(value)) return "NaN";
  return String(value);
}

/** Options of {@link formatMetrics}. */
export interface FormatOptions {
  /** OpenMetrics 1.0 (`application/openmetrics-text`) instead of Prometheus text 0.0.4. */
  readonly openMetrics?: boolean;
}

/** The content type of {@link formatMetrics}'s output. */
export function metricsContentType(options: FormatOptions = {}): string {
  return options.openMetrics
    ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
    : "text/plain; version=0.0.4; charset=utf-8";
}

/**
 * The text exposition of metric families: Prometheus text format 0.0.4, or OpenMetrics.
 * Throws a `TypeError` for a name or label name the formats do not allow.
 *
 * @example
 * ```ts
 * import { formatMetrics } from "./metrics.ts";
 * const text = formatMetrics([
 *   { name: "app_requests", help: "Requests.", type: "counter", samples: [{ value: 3 }] },
 * ]);
 * if (!text.includes("# TYPE app_requests_total counter\napp_requests_total 3\n")) {
 *   throw new Error(text);
 * }
 * ```
 */
export function formatMetrics(
  families: readonly MetricFamily[],
  options: FormatOptions = {},
): string {
  const open = options.openMetrics === true;
  const lines: string[] = [];
  for (const family of families) {
    if (!NAME.test(family.name)) {
      throw new TypeError(`Cannot format metrics: metric name "${family.name}"`);
    }
    const sampleName = family.type === "counter" ? `${family.name}_total` : family.name;
    // Prometheus text names a counter family with its _total; OpenMetrics without.
    const familyName = family.type === "counter" && !open ? sampleName : family.name;
    lines.push(`# HELP ${familyName} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${familyName} ${family.type}`);
    if (family.type === "histogram") {
      for (const sample of family.samples) {
        let cumulative = 0;
        for (const [i, bound] of family.buckets.entries()) {
          cumulative += sample.counts[i] ?? 0;
          lines.push(
            `${family.name}_bucket${
              labelText(sample.labels, `le="${number(bound)}"`)
            } ${cumulative}`,
          );
        }
        const count = cumulative + sample.overflow;
        lines.push(`${family.name}_bucket${labelText(sample.labels, 'le="+Inf"')} ${count}`);
        lines.push(`${family.name}_sum${labelText(sample.labels)} ${number(sample.sum)}`);
        lines.push(`${family.name}_count${labelText(sample.labels)} ${count}`);
      }
      continue;
    }
    for (const sample of family.samples) {
      lines.push(`${sampleName}${labelText(sample.labels)} ${number(sample.value)}`);
    }
  }
  if (open) lines.push("# EOF");
  return `${lines.join("\n")}\n`;
}
