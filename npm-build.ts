/**
 * Builds the npm package into `npm/` (`deno task npm`), doing what dnt would do with only the
 * npm `typescript` package (a pinned devDependency) and Node:
 *
 * 1. Compiles the exports that make sense on Node — `.` (mod.ts), `./sim` and `./node` — and
 *    everything they import, statically or dynamically, to ES modules with declarations in
 *    `npm/esm/`, keeping the repository's layout; `./x.ts` imports become `./x.js`
 *    (`rewriteRelativeImportExtensions`). The Deno and Bun adapters are compiled too, because
 *    the CLI part of mod.ts loads the runtime's adapter behind `import.meta.main` and a runtime
 *    check; a check here fails the build if a Deno or Bun adapter, a `Deno.*` or `Bun.*` global,
 *    or an `npm:`/`jsr:`/`bun:` specifier is ever reached by a static import from an export,
 *    and the three exports are then imported on Node to prove it.
 * 2. Writes `npm/package.json` (version, exports and dependencies from deno.json: exactly the
 *    packages the compiled code imports, at the versions deno.json pins), and copies README.md
 *    and LICENSE.
 * 3. Type-checks the published declarations as a Node user would see them (`skipLibCheck`
 *    off, no DOM library).
 * 4. Unless `--no-test`: compiles every `*_test.ts` that can run on Node into `npm/.test/`,
 *    where each compiled source module is replaced by a link to the package's own file, so the
 *    tests exercise the built package; runs them with `node --test`; prints the counts. Tests
 *    that import a Deno or Bun adapter or use a `Deno`/`Bun` global are left out by
 *    themselves; a test that cannot run on Node for another reason (it runs a `.ts` file as a
 *    process, say) goes in {@link NODE_EXCLUDED_TESTS} or {@link NODE_EXCLUDED_TEST_NAMES}
 *    with the reason.
 * 5. Runs `npm pack --dry-run` in `npm/` and prints what the tarball would hold.
 *
 * Each step is a file of its own in `build/`: `_compile.ts` (tsc), `_graph.ts` (the static
 * import graph), `_manifest.ts` (package.json), `_node_check.ts` (importing and type-checking
 * the package on Node), `_test_selection.ts` and `_node_tests.ts` (the tests on Node),
 * `_pack.ts` (npm pack), with `_config.ts` (deno.json), `_imports.ts` (reading modules as text)
 * and `_common.ts` shared. This file runs them in order and re-exports what other files use.
 *
 * Usage: `deno task npm [--no-test] [--test-only PART,…] [--out-dir DIR]`. It needs `npm ci`
 * to have run (for `typescript` and the dependencies' types) and Node ≥ 20 on PATH. Exits
 * non-zero when a step fails; `npm/` is left as far as it got, to look at.
 *
 * @example
 * ```ts ignore
 * import { buildNpmPackage } from "./npm-build.ts";
 * const result = buildNpmPackage({ outDir: "/tmp/automp-npm", test: false, pack: false });
 * console.log(result.manifest.version, result.files.length);
 * ```
 *
 * @module
 */
import { mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { isInside, listFiles, NpmBuildError, ROOT } from "./build/_common.ts";
import { compile, TYPE_ERRORS_TOLERATED_IN } from "./build/_compile.ts";
import { readDenoConfig } from "./build/_config.ts";
import { checkStaticGraph } from "./build/_graph.ts";
import {
  dependenciesOf,
  manifestOf,
  PACKAGE_EXPORTS,
  PACKAGE_NAME,
  type PackageManifest,
  writePackageFiles,
} from "./build/_manifest.ts";
import { checkPublishedTypes, importOnNode, nodeVersion } from "./build/_node_check.ts";
import { type NodeTestCounts, runNodeTests } from "./build/_node_tests.ts";
import { packSummary } from "./build/_pack.ts";
import { NODE_EXCLUDED_TEST_NAMES, selectNodeTests } from "./build/_test_selection.ts";

export { NpmBuildError, ROOT } from "./build/_common.ts";
export {
  type ImportRef,
  importsOf,
  packageNameOf,
  runtimeGlobalsIn,
  stripComments,
} from "./build/_imports.ts";
export { PACKAGE_EXPORTS, PACKAGE_NAME, type PackageManifest } from "./build/_manifest.ts";
export type { NodeTestCounts } from "./build/_node_tests.ts";
export {
  NODE_EXCLUDED_TEST_NAMES,
  NODE_EXCLUDED_TESTS,
  selectNodeTests,
} from "./build/_test_selection.ts";

/** Options of {@link buildNpmPackage}. */
export interface BuildOptions {
  /** Where the package goes; default `npm/` in the repository. Emptied first. */
  readonly outDir?: string;
  /** Run the tests that can run on Node against the built package. Default true. */
  readonly test?: boolean;
  /** Run only the test files whose path contains one of these. Default: every one. */
  readonly testOnly?: readonly string[];
  /** Run `npm pack --dry-run` and print its summary. Default true. */
  readonly pack?: boolean;
  /** Where progress lines go; default `console.log`. */
  readonly print?: (line: string) => void;
}

/** What {@link buildNpmPackage} did. */
export interface BuildResult {
  /** Absolute path of the package directory. */
  readonly outDir: string;
  readonly manifest: PackageManifest;
  /** Files written under the package directory, relative to it (the compiled tests aside). */
  readonly files: string[];
  /** Test files (repository-relative) left out on Node, with the reason. */
  readonly excludedTests: Readonly<Record<string, string>>;
  /** Counts of the Node test run; undefined when tests were not run. */
  readonly tests?: NodeTestCounts;
  /** Whether every step passed (the Node tests included). */
  readonly ok: boolean;
  /** How long the build took, and each step. */
  readonly timingsMs: Readonly<Record<string, number>>;
}

/**
 * Builds the npm package; see the module documentation for the steps.
 *
 * @example
 * ```ts ignore
 * import { buildNpmPackage } from "./npm-build.ts";
 * const result = buildNpmPackage({ test: false });
 * console.assert(result.manifest.exports["./node"].import === "./esm/adapters/node/mod.js");
 * ```
 */
export function buildNpmPackage(options: BuildOptions = {}): BuildResult {
  const print = options.print ?? ((line: string) => console.log(line));
  const outDir = resolve(options.outDir ?? join(ROOT, "npm"));
  if (isInside(ROOT, outDir) || outDir === dirname(outDir)) {
    throw new RangeError(`Cannot build into ${outDir}: it holds the repository`);
  }
  const timingsMs: Record<string, number> = {};
  const started = performance.now();
  let mark = started;
  const lap = (step: string) => {
    const now = performance.now();
    timingsMs[step] = Math.round(now - mark);
    mark = now;
  };

  const config = readDenoConfig();
  print(`npm-build: ${PACKAGE_NAME}@${config.version} into ${outDir}, with ${nodeVersion()}`);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  // Outside the repository, Node would not find the dependencies from the package's files.
  if (!isInside(outDir, ROOT)) {
    symlinkSync(join(ROOT, "node_modules"), join(outDir, "node_modules"), "dir");
  }

  const esmDir = join(outDir, "esm");
  const entries = PACKAGE_EXPORTS.map((subpath) => config.exports[subpath]);
  const tolerated = compile({
    label: "package",
    files: entries.map((entry) => join(ROOT, entry ?? "")),
    outDir: esmDir,
    configDir: join(outDir, ".tsconfig"),
    declaration: true,
  });
  const tolerant = new Set(tolerated.map((d) => d.file));
  for (const file of tolerant) {
    const prefix = Object.keys(TYPE_ERRORS_TOLERATED_IN).find((p) => file.startsWith(p))!;
    print(`tsc: type errors in ${file} tolerated: it ${TYPE_ERRORS_TOLERATED_IN[prefix]}`);
  }
  const built = listFiles(esmDir);
  const js = built.filter((file) => file.endsWith(".js"));
  const reached = checkStaticGraph(
    esmDir,
    entries.map((entry) => entry.replace(/^\.\//, "").replace(/\.ts$/, ".js")),
  );
  print(
    `tsc: ${js.length} modules with declarations in esm/; the exports reach ${reached.length} ` +
      `statically, the rest only from mod.ts's CLI part (import.meta.main)`,
  );
  lap("compile");

  const dependencies = dependenciesOf(
    js.map((file) => ({ file, source: readFileSync(join(esmDir, file), "utf8") })),
    config,
  );
  const manifest = manifestOf(config, dependencies);
  writePackageFiles(outDir, manifest);
  print(
    `package.json: dependencies ${
      Object.entries(dependencies).map(([name, version]) => `${name}@${version}`).join(", ")
    }`,
  );
  importOnNode(outDir, manifest);
  checkPublishedTypes(outDir, manifest);
  print(`node: ${Object.keys(manifest.exports).join(", ")} import cleanly; their types check`);
  lap("package");

  let ok = true;
  let tests: NodeTestCounts | undefined;
  const { selected, excluded } = selectNodeTests();
  if (options.test ?? true) {
    for (const [file, reason] of Object.entries(excluded)) {
      print(`node tests: skipping ${file}: ${reason}`);
    }
    for (const [name, reason] of Object.entries(NODE_EXCLUDED_TEST_NAMES)) {
      print(`node tests: skipping "${name}…": ${reason}`);
    }
    const only = options.testOnly;
    const chosen = only === undefined
      ? selected
      : selected.filter((file) => only.some((part) => file.includes(part)));
    tests = runNodeTests(outDir, chosen, print);
    ok = tests.failed === 0 && tests.cancelled === 0;
    print(
      `node tests: ${tests.passed} passed, ${tests.failed} failed, ${tests.skipped} skipped, ` +
        `${tests.cancelled} cancelled (${tests.tests} tests in ${tests.files} files)`,
    );
    lap("node tests");
  }
  if (options.pack ?? true) {
    packSummary(outDir, print);
    lap("pack");
  }
  timingsMs.total = Math.round(performance.now() - started);
  print(
    `npm-build: ${ok ? "done" : "FAILED"} in ${(timingsMs.total / 1000).toFixed(1)} s (${
      Object.entries(timingsMs).filter(([step]) => step !== "total")
        .map(([step, ms]) => `${step} ${(ms / 1000).toFixed(1)} s`).join(", ")
    })`,
  );
  return {
    outDir,
    manifest,
    files: listFiles(outDir, (rel) => rel.startsWith(".") || rel === "node_modules"),
    excludedTests: excluded,
    tests,
    ok,
    timingsMs,
  };
}

function argValue(args: readonly string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index < 0 ? undefined : args[index + 1];
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  try {
    const result = buildNpmPackage({
      outDir: argValue(args, "--out-dir"),
      test: !args.includes("--no-test"),
      testOnly: argValue(args, "--test-only")?.split(","),
    });
    process.exitCode = result.ok ? 0 : 1;
  } catch (error) {
    console.error(error instanceof NpmBuildError ? error.message : error);
    process.exitCode = 1;
  }
}
