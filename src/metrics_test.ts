import { test } from "node:test";
import assert from "node:assert/strict";
import parsePrometheus from "parse-prometheus-text-format";
import { formatMetrics, Histogram, type MetricFamily, metricsContentType } from "./metrics.ts";

interface Parsed {
  name: string;
  type: string;
  help: string;
  metrics: Array<
    {
      value?: string;
      labels?: Record<string, string>;
      buckets?: Record<string, string>;
      count?: string;
      sum?: string;
    }
  >;
}

const parse = (text: string) => parsePrometheus(text) as Parsed[];

function families(): MetricFamily[] {
  const h = new Histogram([0.01, 0.1, 1]);
  for (const v of [0.005, 0.05, 0.05, 3]) h.observe(v);
  return [
    {
      name: "t_requests",
      help: "Requests, by reason.",
      type: "counter",
      samples: [
        { labels: { reason: "no-link" }, value: 2 },
        { labels: { reason: 'odd "quoted"\\value\nline' }, value: 1 },
      ],
    },
    {
      name: "t_links",
      help: "Links up now.\nSecond line.",
      type: "gauge",
      samples: [{ value: 4 }],
    },
    {
      name: "t_wait_seconds",
      help: "Waits.",
      type: "histogram",
      buckets: h.buckets,
      samples: [h.sample()],
    },
  ];
}

test("the Prometheus text format is read back by a real parser: counters, gauges, histograms, escapes", () => {
  const text = formatMetrics(families());
  const parsed = parse(text);
  const byName = new Map(parsed.map((f) => [f.name, f]));
  const requests = byName.get("t_requests_total")!;
  assert.equal(requests.type, "COUNTER");
  assert.deepEqual(requests.metrics.map((m) => [m.labels?.reason, m.value]), [
    ["no-link", "2"],
    ['odd "quoted"\\value\nline', "1"],
  ]);
  assert.equal(byName.get("t_links")!.metrics[0].value, "4");
  assert.equal(byName.get("t_links")!.help, "Links up now.\nSecond line.");
  const wait = byName.get("t_wait_seconds")!;
  assert.equal(wait.type, "HISTOGRAM");
  assert.deepEqual(wait.metrics[0].buckets, { "0.01": "1", "0.1": "3", "1": "3", "+Inf": "4" });
  assert.equal(wait.metrics[0].count, "4");
  assert.equal(Number(wait.metrics[0].sum), 3.105);
  assert.match(metricsContentType(), /^text\/plain; version=0\.0\.4/);
});

test("OpenMetrics names counter families without _total and ends with # EOF", () => {
  const text = formatMetrics(families(), { openMetrics: true });
  assert.match(text, /^# TYPE t_requests counter$/m);
  assert.match(text, /^t_requests_total\{reason="no-link"\} 2$/m);
  assert.ok(text.endsWith("# EOF\n"));
  assert.match(
    metricsContentType({ openMetrics: true }),
    /^application\/openmetrics-text; version=1\.0\.0/,
  );
});

test("bad names and bounds are refused with Cannot errors", () => {
  assert.throws(
    () => formatMetrics([{ name: "bad-name", help: "", type: "gauge", samples: [] }]),
    /Cannot format metrics: metric name "bad-name"/,
  );
  assert.throws(
    () =>
      formatMetrics([{
        name: "g",
        help: "",
        type: "gauge",
        samples: [{ labels: { "a-b": "x" }, value: 1 }],
      }]),
    /label name "a-b"/,
  );
  assert.throws(() => new Histogram([1, 1]), /bucket bounds must ascend/);
});

test("a histogram takes several equal observations at once, as if observed one by one", () => {
  const once = new Histogram([0.01, 0.1]);
  const each = new Histogram([0.01, 0.1]);
  once.observe(0.05, 3);
  once.observe(7, 2);
  for (const v of [0.05, 0.05, 0.05, 7, 7]) each.observe(v);
  assert.deepEqual(once.sample(), each.sample());
  assert.throws(() => once.observe(0.05, 0), /^RangeError: Cannot observe 0 times/);
  assert.throws(() => once.observe(0.05, 1.5), /Cannot observe 1.5 times/);
  assert.deepEqual(once.sample(), each.sample(), "a refused count changes nothing");
});
