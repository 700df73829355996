import { test } from "node:test";
import assert from "node:assert/strict";
import { parseTapCounts, skipNamePattern } from "./_node_tests.ts";

test("parseTapCounts reads every count of node --test's TAP summary", () => {
  const tap = [
    "TAP version 13",
    "# Subtest: a",
    "ok 1 - a",
    "# tests 543",
    "# suites 0",
    "# pass 538",
    "# fail 1",
    "# cancelled 1",
    "# skipped 2",
    "# todo 1",
    "# duration_ms 144823.69",
  ].join("\n");
  assert.deepEqual(parseTapCounts(tap, 49), {
    files: 49,
    tests: 543,
    passed: 538,
    failed: 1,
    skipped: 2,
    cancelled: 1,
    todo: 1,
  });
});

test("parseTapCounts counts nothing when the summary is missing, and ignores indented lines", () => {
  assert.deepEqual(parseTapCounts("    # pass 3\nnot ok 1 - crashed\n", 2), {
    files: 2,
    tests: 0,
    passed: 0,
    failed: 0,
    skipped: 0,
    cancelled: 0,
    todo: 0,
  });
});

test("the skip pattern runs every test but those starting with a listed name", () => {
  const pattern = new RegExp(skipNamePattern(["file storage: after kill -9", "a.b"])!);
  assert.equal(pattern.test("file storage: after kill -9 at seeded moments [deno]"), false);
  assert.equal(pattern.test("a.b"), false);
  assert.equal(pattern.test("axb runs"), true, "a listed name is taken literally, not as a regex");
  assert.equal(pattern.test("storage(file): file storage: after kill -9"), true);
});

test("the skip pattern never matches a file-level test or the root", () => {
  const pattern = new RegExp(skipNamePattern(["x"])!);
  assert.equal(pattern.test("/repo/npm/.test/src/codec_test.js"), false);
  assert.equal(pattern.test("<root>"), false);
});

test("with no names to skip there is no pattern", () => {
  assert.equal(skipNamePattern([]), undefined);
});
