import { test } from "node:test";
import assert from "node:assert/strict";
import { readDenoConfig } from "./_config.ts";
import {
  isTestFile,
  NODE_EXCLUDED_TESTS,
  selectTests,
  testFiles,
  whyNotOnNode,
} from "./_test_selection.ts";

const reader = (files: Record<string, string>) => (file: string) => files[file];

test("test files are *_test.ts, *.test.ts and test.ts; helpers and mod.ts are not", () => {
  assert.deepEqual(
    ["a_test.ts", "a.test.ts", "test.ts", "x/test.ts", "_helper.ts", "mod.ts", "latest.ts"].map(
      isTestFile,
    ),
    [true, true, true, true, false, false, false],
  );
});

test("a test runs on Node when nothing it imports statically needs Deno or Bun", () => {
  const read = reader({
    "tests/a_test.ts": 'import { x } from "../src/x.ts";\nimport "node:fs";\nimport "hono";',
    "src/x.ts": 'export const x = () => import("../adapters/deno/mod.ts");',
  });
  assert.equal(whyNotOnNode("tests/a_test.ts", read), undefined);
});

test("a test is left out on Node with the first reason found, naming the file", () => {
  const read = reader({
    "tests/a_test.ts": 'import "./_h.ts";',
    "tests/b_test.ts": 'import "npm:left-pad@1";',
    "tests/c_test.ts": 'import "./_missing.ts";',
    "tests/_h.ts": 'import "../adapters/bun/mod.ts";',
  });
  assert.equal(
    whyNotOnNode("tests/a_test.ts", read),
    "imports the Bun adapter (adapters/bun/mod.ts)",
  );
  assert.equal(
    whyNotOnNode("tests/b_test.ts", read),
    'imports "npm:left-pad@1" in tests/b_test.ts',
  );
  assert.equal(
    whyNotOnNode("tests/c_test.ts", read),
    "imports tests/_missing.ts, which does not exist",
  );
});

test("a listed file or a file under a listed folder is left out for the listed reason", () => {
  const read = reader({
    "a/x_test.ts": "",
    "b/y_test.ts": "",
    "b/z/w_test.ts": "",
    "c_test.ts": "",
  });
  const selection = selectTests(
    ["a/x_test.ts", "b/y_test.ts", "b/z/w_test.ts", "c_test.ts"],
    read,
    { "a/x_test.ts": "one file", "b/": "a folder" },
  );
  assert.deepEqual(selection, {
    selected: ["c_test.ts"],
    excluded: { "a/x_test.ts": "one file", "b/y_test.ts": "a folder", "b/z/w_test.ts": "a folder" },
  });
});

test("every test NODE_EXCLUDED_TESTS names is a test file of the repository", () => {
  // A moved or renamed test would otherwise drop out of this list and fail on Node.
  const files = new Set(testFiles(readDenoConfig()));
  for (const key of Object.keys(NODE_EXCLUDED_TESTS)) {
    if (key.endsWith("/")) {
      assert.ok([...files].some((file) => file.startsWith(key)), `no test under ${key}`);
    } else {
      assert.ok(files.has(key), `${key} is listed in NODE_EXCLUDED_TESTS but is no test file`);
    }
  }
});
