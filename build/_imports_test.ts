import { test } from "node:test";
import assert from "node:assert/strict";
import {
  importsOf,
  isRelative,
  packageNameOf,
  runtimeGlobalsIn,
  stripComments,
} from "./_imports.ts";

test("stripComments blanks block comments but keeps their line breaks", () => {
  assert.equal(stripComments("a /* b\nc */ d"), "a     \n     d");
});

test("stripComments drops a line comment up to the line break and keeps the break", () => {
  assert.equal(stripComments("a // b\nc"), "a \nc");
});

test("stripComments leaves comment markers inside strings and templates alone", () => {
  const source = 'const url = "http://x"; const t = `/* not a comment */`;';
  assert.equal(stripComments(source), source);
});

test("stripComments with strings blanks literal contents and keeps quotes and escapes' length", () => {
  assert.equal(stripComments('f("a\\"b", \'c\')', true), "f(\"    \", ' ')");
});

test("importsOf finds imports, re-exports and side-effect imports with their kinds", () => {
  const source = [
    'import { a } from "./a.ts";',
    'import type { B } from "./b.ts";',
    'export { c } from "./c.ts";',
    'export type { D } from "./d.ts";',
    'export * as e from "./e.ts";',
    'import "./f.ts";',
    "import * as g from 'g';",
    "const h = await import('./h.ts');",
  ].join("\n");
  assert.deepEqual(importsOf(source), [
    { specifier: "./a.ts", kind: "static" },
    { specifier: "./b.ts", kind: "type" },
    { specifier: "./c.ts", kind: "static" },
    { specifier: "./d.ts", kind: "type" },
    { specifier: "./e.ts", kind: "static" },
    { specifier: "./f.ts", kind: "static" },
    { specifier: "g", kind: "static" },
    { specifier: "./h.ts", kind: "dynamic" },
  ]);
});

test("importsOf reads a multi-line import list", () => {
  const source = 'import {\n  a,\n  type B,\n} from "./a.ts";\nexport const x = 1;';
  assert.deepEqual(importsOf(source), [{ specifier: "./a.ts", kind: "static" }]);
});

test("importsOf ignores imports in comments and a dynamic import of a computed name", () => {
  const source = '// import { a } from "./a.ts";\n/* import("./b.ts") */\nawait import(name);';
  assert.deepEqual(importsOf(source), []);
});

test("runtimeGlobalsIn finds Deno and Bun used directly, once each, in order of first use", () => {
  assert.deepEqual(runtimeGlobalsIn("Bun.serve(); Deno.exit(); Bun.file()"), ["Bun", "Deno"]);
});

test("runtimeGlobalsIn ignores properties named Deno or Bun and mentions in comments or strings", () => {
  const source = 'globalThis.Deno.exit(); x.Bun.y; // Deno.exit()\nconst s = "Bun.serve()";';
  assert.deepEqual(runtimeGlobalsIn(source), []);
});

test("packageNameOf keeps the scope of a scoped package and drops any subpath", () => {
  assert.equal(packageNameOf("@msgpack/msgpack"), "@msgpack/msgpack");
  assert.equal(packageNameOf("@scope/pkg/deep/path.js"), "@scope/pkg");
  assert.equal(packageNameOf("pure-rand/distribution/uniformInt"), "pure-rand");
  assert.equal(packageNameOf("hono"), "hono");
});

test("isRelative accepts ./ and ../ only", () => {
  assert.deepEqual(
    ["./a.ts", "../a.ts", "/a.ts", "a", "node:fs", ".a"].map(isRelative),
    [true, true, false, false, false, false],
  );
});
