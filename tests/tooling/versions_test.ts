import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";

// Deno reads deno.json, Bun and npm read package.json (and package-lock.json): the same code
// must see the same dependency versions everywhere, and the suite must be run by the same
// Deno and Bun wherever it runs. These tests keep every copy of a version in step.

const root = new URL("../../", import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), "utf8");
const readJson = (path: string) => JSON.parse(read(path));

/** Exact versions only: a range would let Deno and Bun resolve different releases. */
const EXACT = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;

/** `npm:name@1.2.3`, `npm:name@1.2.3/sub` and `npm:/name@1.2.3/` → [name, version]. */
function parseNpmSpecifier(specifier: string): [string, string] | undefined {
  const match = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@([^/]+)(?:\/.*)?$/.exec(specifier);
  return match === null ? undefined : [match[1], match[2]];
}

/** Every `deno@x` and `bun@x` with a numeric version in `text` (not `@types/bun@x`). */
function toolMentions(text: string): [string, string][] {
  const mention = /(?<![\w/@.-])(deno|bun)@(\d[^\s"'`);]*)/g;
  return [...text.matchAll(mention)].map((match) => [match[1], match[2]]);
}

function denoNpmVersions(): Map<string, string> {
  const versions = new Map<string, string>();
  for (const [key, value] of Object.entries(readJson("deno.json").imports ?? {})) {
    if (typeof value !== "string" || !value.startsWith("npm:")) continue;
    const parsed = parseNpmSpecifier(value);
    assert.ok(parsed, `deno.json imports["${key}"] = "${value}" is not npm:name@version`);
    const [name, version] = parsed;
    const seen = versions.get(name);
    assert.ok(
      seen === undefined || seen === version,
      `deno.json imports pin ${name} at both ${seen} and ${version}`,
    );
    versions.set(name, version);
  }
  return versions;
}

test("npm specifiers are parsed with scope, subpath and trailing slash", () => {
  assert.deepEqual(parseNpmSpecifier("npm:@msgpack/msgpack@3.1.3"), ["@msgpack/msgpack", "3.1.3"]);
  assert.deepEqual(parseNpmSpecifier("npm:/hono@4.13.19/"), ["hono", "4.13.19"]);
  assert.deepEqual(parseNpmSpecifier("npm:hono@4.13.19/cors"), ["hono", "4.13.19"]);
  assert.deepEqual(parseNpmSpecifier("npm:/@scope/pkg@1.0.0-rc.1/"), ["@scope/pkg", "1.0.0-rc.1"]);
  assert.equal(parseNpmSpecifier("jsr:@std/assert@1.0.0"), undefined);
});

test("deno.json imports and package.json dependencies pin the same packages at the same versions", () => {
  const deno = denoNpmVersions();
  const npm = new Map<string, string>(Object.entries(readJson("package.json").dependencies ?? {}));
  for (const [name, version] of deno) {
    assert.match(version, EXACT, `deno.json pins ${name} at "${version}", not an exact version`);
    assert.equal(
      npm.get(name),
      version,
      `${name}: deno.json has ${version}, package.json has ${npm.get(name) ?? "nothing"}`,
    );
  }
  for (const [name, version] of npm) {
    assert.ok(deno.has(name), `package.json depends on ${name}@${version}; deno.json does not`);
  }
});

for (const dir of ["", ".ci/tools/"]) {
  test(`${dir}package-lock.json installs exactly what ${dir}package.json pins`, () => {
    const manifest = readJson(`${dir}package.json`);
    const lock = readJson(`${dir}package-lock.json`);
    const top = lock.packages?.[""] ?? {};
    const fix = `run npm install${dir === "" ? "" : ` --prefix ${dir}`}`;
    for (const field of ["dependencies", "devDependencies"]) {
      assert.deepEqual(
        top[field] ?? {},
        manifest[field] ?? {},
        `${dir}package-lock.json ${field} differ from ${dir}package.json: ${fix}`,
      );
      for (const [name, version] of Object.entries(manifest[field] ?? {})) {
        assert.match(String(version), EXACT, `${dir}package.json pins ${name} at "${version}"`);
        assert.equal(
          lock.packages?.[`node_modules/${name}`]?.version,
          version,
          `${dir}package-lock.json installs another ${name} than ${version}: ${fix}`,
        );
      }
    }
  });
}

test("every pin of the Deno and Bun that run the suite names the same version", () => {
  // .ci/tools/package.json is what CI installs; every other mention must agree with it.
  const dev = readJson(".ci/tools/package.json").devDependencies ?? {};
  const pins: Record<string, string> = { deno: dev.deno, bun: dev.bun };
  assert.match(String(pins.deno), EXACT, ".ci/tools/package.json pins no exact deno");
  assert.match(String(pins.bun), EXACT, ".ci/tools/package.json pins no exact bun");

  const runBun = read("tests/_run_bun.ts");
  assert.equal(
    /export const BUN_VERSION = "([^"]+)"/.exec(runBun)?.[1],
    pins.bun,
    "tests/_run_bun.ts BUN_VERSION differs from .ci/tools/package.json",
  );

  const files = [".ci/run", "tests/_run_bun.ts", "README.md", "deno.json", "package.json"];
  for (const file of files) {
    if (!existsSync(new URL(file, root))) continue;
    for (const [tool, version] of toolMentions(read(file))) {
      assert.equal(
        version,
        pins[tool],
        `${file} says ${tool}@${version}; .ci/tools/package.json pins ${tool}@${pins[tool]}`,
      );
    }
  }
});

test("tool pins are found in commands but not in @types/bun", () => {
  assert.deepEqual(
    toolMentions("npx -y bun@1.4.4 test; npm i @types/bun@1.4.4 `deno@2.9.6` deno@latest"),
    [["bun", "1.4.4"], ["deno", "2.9.6"]],
  );
});
