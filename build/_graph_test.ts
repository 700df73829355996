import { test } from "node:test";
import assert from "node:assert/strict";
import { walkStaticGraph } from "./_graph.ts";

const reader = (modules: Record<string, string>) => (file: string) => {
  const source = modules[file];
  if (source === undefined) throw new Error(`no ${file}`);
  return source;
};

test("the graph follows static imports and re-exports across folders, each module once", () => {
  const graph = walkStaticGraph(
    ["mod.js"],
    reader({
      "mod.js": 'export * from "./src/a.js";\nimport { b } from "./src/b.js";',
      "src/a.js": 'import { b } from "./b.js";\nimport { x } from "../sim/x.js";',
      "src/b.js": 'import { a } from "./a.js";',
      "sim/x.js": "export const x = 1;",
    }),
  );
  assert.deepEqual(graph, {
    reached: ["mod.js", "src/a.js", "src/b.js", "sim/x.js"],
    problems: [],
  });
});

test("dynamic and type-only imports are not followed", () => {
  const graph = walkStaticGraph(
    ["mod.js"],
    reader({
      "mod.js":
        'import type { T } from "./t.js";\nconst a = () => import("./adapters/bun/mod.js");',
    }),
  );
  assert.deepEqual(graph, { reached: ["mod.js"], problems: [] });
});

test("a statically imported Deno or Bun adapter, a runtime global or an npm: import is a problem", () => {
  const graph = walkStaticGraph(
    ["mod.js"],
    reader({
      "mod.js": 'import "./adapters/deno/mod.js";\nimport "jsr:@std/path";\nimport "node:fs";',
      "adapters/deno/mod.js": "export const args = Deno.args;",
    }),
  );
  assert.deepEqual(graph.problems, [
    'mod.js imports "jsr:@std/path", which Node cannot load',
    "adapters/deno/mod.js (a Deno or Bun adapter) is imported statically",
    "adapters/deno/mod.js uses the Deno global",
  ]);
});
