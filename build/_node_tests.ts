/**
 * Running the selected tests on Node against the built package: compiling them, pointing their
 * imports of the package's modules at the package's own files, running `node --test` and
 * reading its counts.
 *
 * @module
 */
import { existsSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { listFiles, NpmBuildError, ROOT, run } from "./_common.ts";
import { compile } from "./_compile.ts";
import { NODE_EXCLUDED_TEST_NAMES } from "./_test_selection.ts";

/** Counts of one `node --test` run. */
export interface NodeTestCounts {
  readonly files: number;
  readonly tests: number;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly cancelled: number;
  readonly todo: number;
}

/**
 * The counts in the summary of `node --test`'s TAP output (`# pass 12`…), 0 for any missing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTapCounts } from "./_node_tests.ts";
 * const tap = "ok 1 - a\nok 2 - b # SKIP\n1..2\n# tests 2\n# pass 1\n# skipped 1\n";
 * assert.deepEqual(parseTapCounts(tap, 1), {
 *   files: 1, tests: 2, passed: 1, failed: 0, skipped: 1, cancelled: 0, todo: 0,
 * });
 * ```
 */
export function parseTapCounts(tap: string, files: number): NodeTestCounts {
  const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, "m").exec(tap)?.[1] ?? 0);
  return {
    files,
    tests: count("tests"),
    passed: count("pass"),
    failed: count("fail"),
    skipped: count("skipped"),
    cancelled: count("cancelled"),
    todo: count("todo"),
  };
}

/**
 * The `--test-name-pattern` that runs every test but those whose name starts with one of
 * `names` (taken literally); undefined when there are none. It matches neither a file-level
 * test (`/…`) nor the root (`<root>`), whose match would run every test below it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { skipNamePattern } from "./_node_tests.ts";
 * const pattern = new RegExp(skipNamePattern(["after kill -9 (seeded)"])!);
 * assert.equal(pattern.test("after kill -9 (seeded) [deno]"), false);
 * assert.equal(pattern.test("a put reads back"), true);
 * assert.equal(pattern.test("/tmp/x_test.js"), false);
 * assert.equal(skipNamePattern([]), undefined);
 * ```
 */
export function skipNamePattern(names: readonly string[]): string | undefined {
  if (names.length === 0) return undefined;
  const escaped = names.map((name) => name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return `^(?![</])(?!(?:${escaped.join("|")})).`;
}

/**
 * Compiles the tests (repository-relative) into `<outDir>/.test/`, replaces every compiled
 * module that the package has by a link to the package's file in `<outDir>/esm/`, and runs
 * the tests with `node --test`, its spec report on this process's stdout. Tests whose name
 * {@link NODE_EXCLUDED_TEST_NAMES} lists are skipped. Throws {@link NpmBuildError} if Node
 * failed without a failed or cancelled test to show for it.
 *
 * @example
 * ```ts ignore
 * import { runNodeTests } from "./_node_tests.ts";
 * const counts = runNodeTests("/tmp/automp-npm", ["src/codec_test.ts"], console.log);
 * console.log(`${counts.passed} passed`);
 * ```
 */
export function runNodeTests(
  outDir: string,
  tests: readonly string[],
  print: (line: string) => void,
): NodeTestCounts {
  const testDir = join(outDir, ".test");
  const esmDir = join(outDir, "esm");
  compile({
    label: "tests",
    files: tests.map((test) => join(ROOT, test)),
    outDir: testDir,
    configDir: join(outDir, ".tsconfig"),
    declaration: false,
  });
  let linked = 0;
  const fromSource: string[] = [];
  const testSet = new Set(tests.map((test) => test.replace(/\.ts$/, ".js")));
  for (const rel of listFiles(testDir)) {
    if (!rel.endsWith(".js") || testSet.has(rel)) continue;
    if (existsSync(join(esmDir, rel))) {
      const path = join(testDir, rel);
      rmSync(path);
      symlinkSync(relative(dirname(path), join(esmDir, rel)), path);
      linked++;
    } else {
      fromSource.push(rel);
    }
  }
  print(
    `node tests: ${tests.length} test files; they import ${linked} modules from the package` +
      (fromSource.length > 0 ? ` and ${fromSource.length} test helpers compiled from source` : ""),
  );
  const pattern = skipNamePattern(Object.keys(NODE_EXCLUDED_TEST_NAMES));
  const ran = run("node", [
    "--test",
    // A test file's process exits when its tests are done, as on Deno and Bun, even if a
    // socket is left open (Node 20 never closes a socket given end() then resetAndDestroy()).
    "--test-force-exit",
    "--test-timeout=180000",
    ...(pattern === undefined ? [] : [`--test-name-pattern=${pattern}`]),
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    // For the counts: a pipe is written synchronously on Linux, so the summary survives
    // --test-force-exit (a file reporter loses it).
    "--test-reporter=tap",
    "--test-reporter-destination=stderr",
    ...tests.map((test) => join(testDir, test.replace(/\.ts$/, ".js"))),
  ], { cwd: testDir, timeoutMs: 30 * 60_000, inheritStdout: true });
  const counts = parseTapCounts(ran.stderr, tests.length);
  if (ran.status !== 0 && counts.failed + counts.cancelled === 0) {
    throw new NpmBuildError(`Cannot run the tests on Node: node --test exited ${ran.status}`);
  }
  return counts;
}
