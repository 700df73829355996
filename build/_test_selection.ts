/**
 * Which of the repository's tests run on Node against the built package, and why the others
 * do not. Most are found by what they import; the rest are listed here with the reason.
 *
 * @module
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { listFiles, posix, ROOT } from "./_common.ts";
import { type DenoConfig, readDenoConfig } from "./_config.ts";
import { importsOf, isRelative, runtimeGlobalsIn } from "./_imports.ts";

/**
 * Test files (repository-relative) that cannot run on Node against the package, and why; a
 * key ending in `/` leaves out every test in that folder. Tests that import a Deno or Bun
 * adapter, use a `Deno`/`Bun` global or an `npm:`/`jsr:`/`bun:` specifier are left out without
 * being listed here ({@link whyNotOnNode} finds them). A test that starts Deno or Bun processes
 * must be listed.
 */
export const NODE_EXCLUDED_TESTS: Readonly<Record<string, string>> = {
  "build/": "tests the npm build, which runs on Deno, not the package",
  "tests/tooling/versions_test.ts":
    "checks the repository's manifests (deno.json, package.json, lockfiles), not code",
  "tests/tooling/purity_test.ts": "scans the TypeScript sources of src/ and sim/, not the package",
  "tests/sim/sim_cli_test.ts":
    "runs sim/cli.ts in a child process of its own runtime (Node 20 runs no .ts)",
  "tests/live/integration_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/live/browser_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/netns/netns_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/netns/netns_legacy_test.ts": "runs mod.ts and the fake original as Deno and Bun processes",
  "tests/live/duplicate_guid_live_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/live/metrics_real_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/live/placement_real_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/live/example_workers_test.ts":
    "runs mod.ts as a Deno or Bun process, its camera server on Deno.serve or Bun.serve",
  "tests/tooling/npm_package_test.ts": "builds and installs this package itself",
  "tests/live/otel_deno_test.ts":
    "runs tests/live/_otel_deno_child.ts as a Deno process (Deno's built-in OpenTelemetry)",
};

/**
 * Single tests left out on Node, by the start of their name (a runtime label may follow), in
 * files that otherwise run; and why. They show as skipped.
 */
export const NODE_EXCLUDED_TEST_NAMES: Readonly<Record<string, string>> = {
  "decodeHello refuses a 200-byte hello of nested array claims":
    "runs tests/property/_hostile_hello_child.ts as a Deno or Bun process with a capped heap",
  "file storage: after kill -9 at seeded moments":
    "runs tests/live/_file_storage_child.ts in a child process of its runtime (Node 20 runs no .ts)",
};

/**
 * Whether a path names a test file as `deno test` sees one: `*_test.ts`, `*.test.ts` or
 * `test.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTestFile } from "./_test_selection.ts";
 * assert.equal(isTestFile("src/node_test.ts"), true);
 * assert.equal(isTestFile("tests/_processes.ts"), false);
 * ```
 */
export function isTestFile(path: string): boolean {
  return /(^|[/_.])test\.ts$/.test(path);
}

/**
 * The test files under deno.json's `test.include` (outside its `exclude`),
 * repository-relative, sorted. A file named in `test.include` (mod.ts) is there for its doc
 * examples and counts only if it is a test file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readDenoConfig } from "./_config.ts";
 * import { testFiles } from "./_test_selection.ts";
 * assert.ok(testFiles(readDenoConfig()).includes("build/_imports_test.ts"));
 * ```
 */
export function testFiles(config: DenoConfig, root: string = ROOT): string[] {
  const excluded = config.exclude.map((dir) => dir.replace(/\/$/, ""));
  const files: string[] = [];
  for (const include of config.testInclude) {
    const dir = join(root, include);
    if (!existsSync(dir)) continue;
    if (!statSync(dir).isDirectory()) {
      if (isTestFile(include)) files.push(posix(include));
      continue;
    }
    const skip = (rel: string) => {
      const path = posix(join(include, rel));
      return excluded.some((ex) => path === ex || path.startsWith(`${ex}/`));
    };
    for (const rel of listFiles(dir, skip)) {
      if (isTestFile(rel)) files.push(posix(join(include, rel)));
    }
  }
  return [...new Set(files)].sort();
}

/**
 * Why a test cannot run on Node, from what its static imports reach (`read` gives a
 * repository-relative file's text, or undefined if there is none); undefined if it can.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { whyNotOnNode } from "./_test_selection.ts";
 * const files: Record<string, string> = {
 *   "tests/a_test.ts": 'import { helper } from "./_helper.ts";',
 *   "tests/_helper.ts": "export const helper = Deno.args;",
 * };
 * assert.equal(
 *   whyNotOnNode("tests/a_test.ts", (file) => files[file]),
 *   "uses the Deno global in tests/_helper.ts",
 * );
 * ```
 */
export function whyNotOnNode(
  test: string,
  read: (file: string) => string | undefined,
): string | undefined {
  const seen = new Set<string>();
  const queue = [test];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const adapter = /^adapters\/(deno|bun)\//.exec(file);
    if (adapter) return `imports the ${adapter[1] === "deno" ? "Deno" : "Bun"} adapter (${file})`;
    const source = read(file);
    if (source === undefined) return `imports ${file}, which does not exist`;
    const globals = runtimeGlobalsIn(source);
    if (globals.length > 0) return `uses the ${globals.join(" and ")} global in ${file}`;
    for (const { specifier, kind } of importsOf(source)) {
      if (kind !== "static") continue;
      if (/^(npm|jsr|bun):/.test(specifier)) return `imports "${specifier}" in ${file}`;
      if (isRelative(specifier)) queue.push(posix(join(dirname(file), specifier)));
    }
  }
  return undefined;
}

/** The tests to run on Node, and the others with the reason each is left out. */
export interface TestSelection {
  readonly selected: string[];
  readonly excluded: Record<string, string>;
}

/**
 * Splits test files into those that run on Node and those that do not: a file in `listed`, or
 * in a folder listed there (a key ending in `/`), for the reason given there; any other for
 * {@link whyNotOnNode}'s.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectTests } from "./_test_selection.ts";
 * const files: Record<string, string> = {
 *   "tests/a_test.ts": 'import { x } from "../src/x.ts";',
 *   "tests/b_test.ts": 'import { y } from "../adapters/bun/mod.ts";',
 *   "tests/c_test.ts": "",
 *   "src/x.ts": "export const x = 1;",
 * };
 * const selection = selectTests(
 *   ["tests/a_test.ts", "tests/b_test.ts", "tests/c_test.ts"],
 *   (file) => files[file],
 *   { "tests/c_test.ts": "checks the repository" },
 * );
 * assert.deepEqual(selection, {
 *   selected: ["tests/a_test.ts"],
 *   excluded: {
 *     "tests/b_test.ts": "imports the Bun adapter (adapters/bun/mod.ts)",
 *     "tests/c_test.ts": "checks the repository",
 *   },
 * });
 * ```
 */
export function selectTests(
  files: readonly string[],
  read: (file: string) => string | undefined,
  listed: Readonly<Record<string, string>> = NODE_EXCLUDED_TESTS,
): TestSelection {
  const selected: string[] = [];
  const excluded: Record<string, string> = {};
  for (const test of files) {
    const folder = Object.keys(listed).find((key) => key.endsWith("/") && test.startsWith(key));
    const reason = listed[test] ?? (folder && listed[folder]) ?? whyNotOnNode(test, read);
    if (reason === undefined) selected.push(test);
    else excluded[test] = reason;
  }
  return { selected, excluded };
}

/**
 * {@link selectTests} over the repository's test files and {@link NODE_EXCLUDED_TESTS}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NODE_EXCLUDED_TESTS, selectNodeTests } from "./_test_selection.ts";
 * const { selected, excluded } = selectNodeTests();
 * assert.ok(selected.length > 0);
 * assert.equal(excluded["build/_imports_test.ts"], NODE_EXCLUDED_TESTS["build/"]);
 * ```
 */
export function selectNodeTests(): TestSelection {
  const read = (file: string) => {
    try {
      return readFileSync(join(ROOT, file), "utf8");
    } catch {
      return undefined;
    }
  };
  return selectTests(testFiles(readDenoConfig()), read);
}
