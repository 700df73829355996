import { test } from "node:test";
import assert from "node:assert/strict";
import { mappedPackage, parseDenoConfig, readDenoConfig } from "./_config.ts";

test("parseDenoConfig takes exact versions from npm: imports, scoped and prefix ones too", () => {
  const config = parseDenoConfig({
    version: "0.1.0",
    imports: {
      "@msgpack/msgpack": "npm:@msgpack/msgpack@3.1.3",
      "hono/": "npm:/hono@4.13.19/",
      "std/": "jsr:@std/assert@1/",
      "local": "./local.ts",
    },
  });
  assert.deepEqual(Object.fromEntries(config.npmVersions), {
    "@msgpack/msgpack": "3.1.3",
    hono: "4.13.19",
  });
});

test("parseDenoConfig defaults: tests anywhere, nothing excluded, no imports", () => {
  const config = parseDenoConfig({ version: "1.0.0" });
  assert.deepEqual(config.testInclude, ["."]);
  assert.deepEqual(config.exclude, []);
  assert.deepEqual(config.imports, {});
  assert.equal(config.version, "1.0.0");
});

test("mappedPackage prefers an exact key, then the longest prefix key", () => {
  const config = parseDenoConfig({
    imports: {
      "a": "npm:pkg-a@1.0.0",
      "a/": "npm:/pkg-a@1.0.0/",
      "a/deep/": "npm:/other@2.0.0/",
      "@s/b": "npm:@s/b@3.0.0",
    },
  });
  assert.equal(mappedPackage("a", config), "pkg-a");
  assert.equal(mappedPackage("a/x", config), "pkg-a");
  assert.equal(mappedPackage("a/deep/y", config), "other");
  assert.equal(mappedPackage("@s/b", config), "@s/b");
  assert.equal(mappedPackage("c", config), undefined);
});

test("mappedPackage gives undefined for an import map entry that is not an npm package", () => {
  const config = parseDenoConfig({ imports: { "x": "./x.ts", "y/": "jsr:/@std/y@1/" } });
  assert.equal(mappedPackage("x", config), undefined);
  assert.equal(mappedPackage("y/z", config), undefined);
});

test("the repository's deno.json exports what the npm package needs and lists build/ for tests", () => {
  const config = readDenoConfig();
  for (const subpath of [".", "./sim", "./node"]) assert.ok(config.exports[subpath], subpath);
  assert.ok(config.testInclude.includes("build/"), "deno.json test.include lacks build/");
});
