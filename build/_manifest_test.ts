import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDenoConfig } from "./_config.ts";
import {
  dependenciesOf,
  manifestOf,
  NODE_MAJOR_MIN,
  PACKAGE_EXPORTS,
  PACKAGE_NAME,
} from "./_manifest.ts";
import { NpmBuildError } from "./_common.ts";

const config = parseDenoConfig({
  version: "0.3.1",
  exports: {
    ".": "./mod.ts",
    "./sim": "./sim/mod.ts",
    "./node": "./adapters/node/mod.ts",
    "./deno": "./adapters/deno/mod.ts",
  },
  imports: {
    "@msgpack/msgpack": "npm:@msgpack/msgpack@3.1.3",
    "hono": "npm:hono@4.13.19",
    "hono/": "npm:/hono@4.13.19/",
    "fast-check": "npm:fast-check@4.10.2",
  },
});

test("the dependencies are exactly the packages imported, sorted, at deno.json's versions", () => {
  const modules = [
    { file: "src/b.js", source: 'import { Hono } from "hono";\nimport "hono/streaming";' },
    { file: "src/a.js", source: 'const m = await import("@msgpack/msgpack");' },
  ];
  assert.deepEqual(dependenciesOf(modules, config), {
    "@msgpack/msgpack": "3.1.3",
    hono: "4.13.19",
  });
});

test("node: built-ins, relative and type-only imports are no dependencies", () => {
  const modules = [{
    file: "a.js",
    source:
      'import { x } from "node:fs";\nimport { y } from "./y.js";\nimport type { Z } from "z";',
  }];
  assert.deepEqual(dependenciesOf(modules, config), {});
});

test("an import deno.json does not pin fails the build and names every such import", () => {
  const modules = [
    { file: "a.js", source: 'import "left-pad";' },
    { file: "b.js", source: 'import "fast-check/lib/x";\nimport "@msgpack/other";' },
  ];
  assert.throws(() => dependenciesOf(modules, config), (error: unknown) => {
    assert.ok(error instanceof NpmBuildError);
    assert.match(error.message, /a\.js imports "left-pad"/);
    assert.match(error.message, /b\.js imports "fast-check\/lib\/x"/);
    assert.match(error.message, /b\.js imports "@msgpack\/other"/);
    return true;
  });
});

test("the manifest has the three Node exports, each with its declarations, and only them", () => {
  const manifest = manifestOf(config, { hono: "4.13.19" });
  assert.deepEqual(Object.keys(manifest.exports), [...PACKAGE_EXPORTS]);
  assert.deepEqual(manifest.exports["./sim"], {
    types: "./esm/sim/mod.d.ts",
    import: "./esm/sim/mod.js",
  });
  assert.equal(manifest.name, PACKAGE_NAME);
  assert.equal(manifest.version, "0.3.1");
  assert.equal(manifest.main, "./esm/mod.js");
  assert.equal(manifest.type, "module");
  assert.deepEqual(manifest.files, ["esm/"]);
  assert.deepEqual(manifest.engines, { node: `>=${NODE_MAJOR_MIN}` });
  assert.deepEqual(manifest.dependencies, { hono: "4.13.19" });
});

test("a deno.json without one of the Node exports fails the manifest", () => {
  const partial = parseDenoConfig({ version: "1.0.0", exports: { ".": "./mod.ts" } });
  assert.throws(() => manifestOf(partial, {}), /Cannot build: deno.json exports no "\.\/sim"/);
});
