import { test } from "node:test";
import assert from "node:assert/strict";
import { Twins } from "./_twins.ts";

function world() {
  let nowMs = 0;
  const logs: string[] = [];
  const reports: string[] = [];
  const stats = { duplicateGuids: 0 };
  const twins = new Twins({
    clock: { now: () => nowMs } as never,
    log: { log: (level: string, event: string) => logs.push(`${level} ${event}`) } as never,
    stats,
    onReport: (guid, address, incarnation) => reports.push(`${guid} ${address} ${incarnation}`),
  });
  return { twins, logs, reports, stats, advance: (ms: number) => nowMs += ms };
}

test("every sighting counts; a claimant is reported once, and reports are 10 s apart", () => {
  const w = world();
  w.twins.report("A", "h:1", "x");
  w.twins.report("A", "h:1", "x");
  w.twins.report("A", "h:2", "y"); // another claimant, within 10 s: not reported yet
  assert.equal(w.stats.duplicateGuids, 3);
  assert.deepEqual(w.reports, ["A h:1 x"]);
  assert.deepEqual(w.twins.last, { guid: "A", address: "h:2", incarnation: "y", atMs: 0 });
  w.advance(10_000);
  w.twins.report("A", "h:2", "y");
  w.twins.report("A", "h:1", "x");
  assert.deepEqual(w.reports, ["A h:1 x", "A h:2 y"]);
  assert.deepEqual(w.logs, ["error node.duplicate-guid", "error node.duplicate-guid"]);
});

test("a claimant refused once is logged quietly; the second refusal is a report", () => {
  const w = world();
  assert.equal(w.twins.refuseClaim({ guid: "B", address: "h:9", incarnation: "b2" }, "h:2"), 1);
  assert.deepEqual(w.logs, ["info link.refused-claim"]);
  assert.equal(w.reports.length, 0);
  assert.equal(w.twins.refuseClaim({ guid: "B", address: "h:9", incarnation: "b2" }, "h:2"), 2);
  assert.deepEqual(w.reports, ["B h:9 b2"]);
  assert.equal(w.stats.duplicateGuids, 2);
});

test("refused soon after start is a restart racing its old link; later or twice, a twin", () => {
  const refusal = {
    peer: "B",
    guid: "A",
    holder: "h:5",
    incarnation: "a0",
    count: 1,
    soonAfterStart: true,
    detail: "B holds a live link",
  };
  const w = world();
  w.twins.refusedBy(refusal);
  assert.deepEqual(w.logs, ["warn link.refused"]);
  assert.equal(w.reports.length, 0);
  w.twins.refusedBy({ ...refusal, count: 2 });
  assert.deepEqual(w.reports, ["A h:5 a0"]);
  const later = world();
  later.twins.refusedBy({ ...refusal, soonAfterStart: false });
  assert.deepEqual(later.reports, ["A h:5 a0"]);
});
