import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { staleNodeModules } from "../_install.ts";

// Issue 11: on a fresh clone `deno task test:deno` ran the npm package test before anything had
// installed node_modules/typescript. The runners now install first; these tests keep the check
// they rely on honest, and keep CI running the README's command before any install of its own.

const root = new URL("../../", import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), "utf8");

function workspace(manifest: object, installed: Record<string, string>): URL {
  const dir = mkdtempSync(join(tmpdir(), "automp-install-"));
  writeFileSync(join(dir, "package.json"), JSON.stringify(manifest));
  for (const [name, version] of Object.entries(installed)) {
    mkdirSync(join(dir, "node_modules", name), { recursive: true });
    writeFileSync(
      join(dir, "node_modules", name, "package.json"),
      JSON.stringify({ name, version }),
    );
  }
  return pathToFileURL(dir + "/");
}

test("a fresh clone's missing devDependencies count as stale, not only its dependencies", () => {
  const dir = workspace({
    dependencies: { hono: "4.13.19" },
    devDependencies: { typescript: "7.0.2", "@types/bun": "1.4.5" },
  }, {});
  try {
    assert.deepEqual(
      staleNodeModules(dir).map((p) => [p.name, p.wanted, p.installed]),
      [["hono", "4.13.19", undefined], ["typescript", "7.0.2", undefined], [
        "@types/bun",
        "1.4.5",
        undefined,
      ]],
    );
  } finally {
    rmSync(new URL(dir), { recursive: true, force: true });
  }
});

test("a package installed at another version is stale and one at the pinned version is not", () => {
  const dir = workspace(
    { dependencies: { hono: "4.13.19" }, devDependencies: { typescript: "7.0.2" } },
    { hono: "4.13.19", typescript: "5.9.3" },
  );
  try {
    assert.deepEqual(staleNodeModules(dir), [
      { name: "typescript", wanted: "7.0.2", installed: "5.9.3" },
    ]);
  } finally {
    rmSync(new URL(dir), { recursive: true, force: true });
  }
});

test("both test runners install node_modules before running a test", () => {
  for (const runner of ["tests/_run_deno.ts", "tests/_run_bun.ts"]) {
    const source = read(runner);
    const install = source.indexOf("await ensureNodeModules(");
    const spawn = source.indexOf(`"test"`);
    assert.ok(install > 0, `${runner} never calls ensureNodeModules`);
    assert.ok(spawn > install, `${runner} starts tests before ensureNodeModules`);
  }
  const tasks = JSON.parse(read("deno.json")).tasks;
  assert.equal(tasks["test:deno"].command, "deno run -A tests/_run_deno.ts");
  assert.equal(tasks["test:bun"].command, "deno run -A tests/_run_bun.ts");
  assert.match(tasks.test.command, /^deno task test:deno;.*deno task test:bun/);
});

test("CI runs the README's test command before any npm ci of the root package", () => {
  const lines = read(".ci/run").split("\n").filter((line) => !line.trimStart().startsWith("#"));
  // The body of the npm_ci helper is a definition, not an install; its calls are checked below.
  const script = lines.join("\n").replace(/^npm_ci\(\) \{[\s\S]*?^\}$/m, "npm_ci() {}");
  const testAt = script.search(/deno task test 2>&1/);
  assert.ok(testAt > 0, ".ci/run does not run `deno task test`");
  assert.match(read("README.md"), /npx -y deno task test /, "README's test command changed");
  // Only the pinned tools are installed before the tests: every npm ci names .ci/tools.
  for (const match of script.slice(0, testAt).matchAll(/^[ \t]*npm_ci[ \t]+(.*)$/gm)) {
    assert.match(
      match[1],
      /--prefix \.ci\/tools/,
      `.ci/run installs before the tests: ${match[0]}`,
    );
  }
  assert.doesNotMatch(script.slice(0, testAt), /^[ \t]*npm (ci|install|i)\b/m);
  assert.doesNotMatch(script.slice(0, testAt), /bun install/);
});

test("the Deno run checks the JSDoc examples and includes mod.ts", () => {
  const config = JSON.parse(read("deno.json"));
  assert.ok(config.test.include.includes("mod.ts"), "deno.json test.include lacks mod.ts");
  const runner = read("tests/_run_deno.ts");
  assert.match(runner, /"--doc"/);
});

test("Bun runs the tests of every directory deno.json's test.include names, and only those", async () => {
  const { BUN_TEST_DIRS } = await import("../_run_bun.ts");
  const config = JSON.parse(read("deno.json"));
  const dirs = (config.test.include as string[]).filter((path) => path.endsWith("/"))
    .map((dir) => `./${dir.slice(0, -1)}`);
  assert.deepEqual([...BUN_TEST_DIRS].sort(), dirs.sort());
});
