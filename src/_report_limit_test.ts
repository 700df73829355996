import { it } from "node:test";
import assert from "node:assert/strict";
import { ReportLimit, withHeldBack } from "./_report_limit.ts";

it("a source is reported once per window, and its next report counts what was held back", () => {
  const limit = new ReportLimit(10_000);
  assert.equal(limit.allow("a", 0), 0);
  assert.equal(limit.allow("a", 1), undefined);
  assert.equal(limit.allow("a", 9_999), undefined);
  assert.equal(limit.allow("b", 5_000), 0, "another source has its own window");
  assert.equal(limit.allow("a", 10_000), 2);
  assert.equal(limit.allow("a", 10_001), undefined);
  assert.equal(limit.allow("a", 30_000), 1);
  assert.equal(limit.allow("a", 50_000), 0, "nothing held back since");
});

it("many sources: memory stays bounded and a forgotten source is reported again", () => {
  const limit = new ReportLimit(10_000);
  for (let i = 0; i < 5_000; i++) assert.equal(limit.allow(`s${i}`, 0), 0);
  // s0 was forgotten when the memory started over: reported, early rather than never.
  assert.equal(limit.allow("s0", 1), 0);
  assert.equal(limit.allow("s4999", 1), undefined);
});

it("a window that is not a positive number of ms is refused", () => {
  for (const bad of [0, -1, Number.NaN, Infinity]) {
    assert.throws(() => new ReportLimit(bad), /^RangeError: Cannot limit reports/);
  }
});

it("a report's text says how many like it were held back", () => {
  assert.equal(withHeldBack("Cannot read it", 0), "Cannot read it");
  assert.equal(
    withHeldBack("Cannot read it", 3),
    "Cannot read it (3 more from this source since the last report)",
  );
});

it("a report's text is the error's message while allowed, and nothing while held back", () => {
  const limit = new ReportLimit(10_000);
  assert.equal(limit.text("a", 0, new Error("Cannot read it")), "Cannot read it");
  assert.equal(limit.text("a", 1, new Error("Cannot read it")), undefined);
  assert.equal(
    limit.text("a", 10_000, "Cannot read it"),
    "Cannot read it (1 more from this source since the last report)",
  );
});
