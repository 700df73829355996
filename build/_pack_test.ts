import { test } from "node:test";
import assert from "node:assert/strict";
import { packSummaryLines, strayFiles } from "./_pack.ts";

test("the pack summary has a line of totals, then one per folder in sorted order", () => {
  const lines = packSummaryLines({
    filename: "automp-0.1.0.tgz",
    size: 277_700,
    unpackedSize: 1_041_100,
    files: [
      { path: "README.md", size: 60_000 },
      { path: "esm/src/node.js", size: 90_000 },
      { path: "LICENSE", size: 1_000 },
      { path: "esm/mod.d.ts", size: 500 },
      { path: "esm/src/node.d.ts", size: 10_000 },
      { path: "package.json", size: 12_000 },
      { path: "esm/mod.js", size: 7_200 },
    ],
  });
  assert.deepEqual(lines, [
    "npm pack --dry-run: automp-0.1.0.tgz, 7 files, 277.7 kB packed, 1041.1 kB unpacked",
    "  ./                         3 files   73.0 kB  LICENSE, README.md, package.json",
    "  esm/                       2 files    7.7 kB  1 .js, 1 .d.ts",
    "  esm/src/                   2 files  100.0 kB  1 .js, 1 .d.ts",
  ]);
});

test("only files in folders other than esm/ are stray", () => {
  assert.deepEqual(
    strayFiles([
      { path: "package.json", size: 1 },
      { path: "esm/a/b.js", size: 1 },
      { path: ".test/a_test.js", size: 1 },
      { path: "node_modules/x/index.js", size: 1 },
    ]),
    [".test/a_test.js", "node_modules/x/index.js"],
  );
});
