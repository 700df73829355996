import { test } from "node:test";
import assert from "node:assert/strict";
import { jsonLine, percentile, report } from "./_harness.ts";
import { GROUPS, selectedGroups } from "./mod.ts";

function captureLog(fn: () => void): string[] {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    fn();
  } finally {
    console.log = original;
  }
  return lines;
}

test("--json prints one object per row with name, runtime, value, unit and baseline", () => {
  const lines = captureLog(() =>
    report([
      {
        name: "oneway_small",
        runtime: "deno",
        value: 1000,
        unit: "msg/s",
        baseline: 2000,
        baselineName: "raw_stream_small",
        note: "n",
      },
      { name: "moleculer_oneway_small", runtime: "node", value: 10, unit: "msg/s" },
    ], ["--json"])
  );
  assert.equal(lines.length, 2);
  const [first, second] = lines.map((line) => JSON.parse(line));
  assert.deepEqual(Object.keys(first), [
    "name",
    "runtime",
    "value",
    "unit",
    "baseline",
    "baselineName",
    "note",
  ]);
  assert.equal(first.baseline, 2000);
  assert.deepEqual(second, {
    name: "moleculer_oneway_small",
    runtime: "node",
    value: 10,
    unit: "msg/s",
  });
});

test("a figure that was not measured is null in JSON and n/a in the table", () => {
  const row = { name: "x", runtime: "bun", value: NaN, unit: "ms", baseline: 5, note: "why" };
  assert.equal(JSON.parse(jsonLine(row)).value, null);
  const table = captureLog(() => report([row], []));
  assert.match(table[2], /n\/a ms/);
});

test("percentile is the nearest rank", () => {
  const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(sorted, 50), 50);
  assert.equal(percentile(sorted, 99), 99);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test("--only selects groups and rejects unknown ones", () => {
  assert.deepEqual([...selectedGroups(["--only", "codec,peer"])], ["codec", "peer"]);
  assert.deepEqual([...selectedGroups(["--only=sim"])], ["sim"]);
  assert.equal(selectedGroups([]).size, GROUPS.length);
  assert.deepEqual([...selectedGroups(["--only", "scenario"])], ["scenario"]);
  assert.throws(() => selectedGroups(["--only", "codecs"]), RangeError);
});
