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
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** Absolute path of the repository root (where deno.json is). */
export const ROOT: string = dirname(fileURLToPath(import.meta.url));

/** The package's name on npm. */
export const PACKAGE_NAME = "automp";

/** The subpaths of deno.json's `exports` that the npm package has (Deno and Bun have theirs). */
export const PACKAGE_EXPORTS: readonly string[] = [".", "./sim", "./node"];

const DESCRIPTION = "AutoMPI: nodes host workers with private state, discover each other, " +
  "link up, clean up broken links and route messages; one core runs on real sockets " +
  "(Node, Deno, Bun) and in a seeded network simulator.";

/** Oldest Node the package supports, and the one its tests run on. */
const NODE_MAJOR_MIN = 20;

/**
 * Node 20 has ES2023 and the well-formed-string methods of ES2024; the DOM library stands in
 * for the web APIs (TextEncoder, crypto, Request…) that Deno types as globals.
 */
const COMPILER_OPTIONS = {
  target: "ES2022",
  module: "nodenext",
  moduleResolution: "nodenext",
  lib: ["ES2023", "ES2024.String", "DOM", "DOM.Iterable"],
  types: ["node"],
  strict: true,
  skipLibCheck: true,
  allowImportingTsExtensions: true,
  rewriteRelativeImportExtensions: true,
  newLine: "lf",
};

/**
 * Files whose type errors do not fail the build, and why. tsc has no Deno types; the Deno
 * adapter is loaded only on Deno (behind a runtime check) and `deno task check` checks it.
 */
const TYPE_ERRORS_TOLERATED_IN: Readonly<Record<string, string>> = {
  "adapters/deno/": "uses the Deno namespace, which tsc has no types for",
};

/**
 * Build-only declarations, never published. Deno's types let `crypto.getRandomValues` take any
 * typed array; TypeScript 7's DOM library wants one backed by an `ArrayBuffer`, which a
 * `Uint8Array` parameter (backed by `ArrayBufferLike`) is not. This overload restores Deno's
 * signature, so the sources need no cast. `parse-prometheus-text-format`, which only
 * `src/metrics_test.ts` imports, ships no types: Deno takes it as `any`, tsc must be told to.
 */
const BUILD_DECLARATIONS = `interface Crypto {
  getRandomValues<T extends ArrayBufferView | null>(array: T): T;
}
declare module "parse-prometheus-text-format";
`;

/**
 * Tests that cannot run on Node against the package, and why. Tests that import a Deno or Bun
 * adapter, use a `Deno`/`Bun` global or an `npm:`/`jsr:`/`bun:` specifier are left out
 * without being listed here ({@link selectNodeTests} finds them).
 */
export const NODE_EXCLUDED_TESTS: Readonly<Record<string, string>> = {
  "tests/versions_test.ts":
    "checks the repository's manifests (deno.json, package.json, lockfiles), not code",
  "tests/purity_test.ts": "scans the TypeScript sources of src/ and sim/, not the package",
  "tests/sim_cli_test.ts":
    "runs sim/cli.ts in a child process of its own runtime (Node 20 runs no .ts)",
  "tests/integration_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/browser_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/netns_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/netns_legacy_test.ts": "runs mod.ts and the fake original as Deno and Bun processes",
  "tests/duplicate_guid_live_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/metrics_real_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/placement_real_test.ts": "runs mod.ts as Deno and Bun processes",
  "tests/example_workers_test.ts":
    "runs mod.ts as a Deno or Bun process, its camera server on Deno.serve or Bun.serve",
  "tests/npm_package_test.ts": "builds and installs this package itself",
  "tests/otel_deno_test.ts":
    "runs tests/_otel_deno_child.ts as a Deno process (Deno's built-in OpenTelemetry)",
};

/**
 * Single tests left out on Node, by the start of their name (a runtime label may follow), in
 * files that otherwise run; and why. They show as skipped.
 */
export const NODE_EXCLUDED_TEST_NAMES: Readonly<Record<string, string>> = {
  "decodeHello refuses a 200-byte hello of nested array claims":
    "runs tests/_hostile_hello_child.ts as a Deno or Bun process with a capped heap",
  "file storage: after kill -9 at seeded moments":
    "runs tests/_file_storage_child.ts in a child process of its runtime (Node 20 runs no .ts)",
};

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

/** What the `npm/package.json` holds. */
export interface PackageManifest {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  readonly license: string;
  readonly type: "module";
  readonly main: string;
  readonly types: string;
  readonly exports: Record<string, { types: string; import: string }>;
  readonly files: string[];
  readonly engines: { node: string };
  readonly dependencies: Record<string, string>;
}

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

/** A step that failed: what to look at is in the message. */
export class NpmBuildError extends Error {
  override name = "NpmBuildError";
}

// ---- small helpers -----------------------------------------------------------------------------

const posix = (path: string) => path.split(sep).join("/");

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, "utf8"));
}

/** Every file under `dir`, relative to it, in a fixed (sorted) order. */
function listFiles(dir: string, skip: (rel: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const entries = readdirSync(join(dir, rel), { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const child = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (skip(child)) continue;
      if (entry.isDirectory()) walk(child);
      else out.push(child);
    }
  };
  walk("");
  return out;
}

interface Ran {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number; inheritStdout?: boolean } = {},
): Ran {
  const result = spawnSync(command, args, {
    cwd: options.cwd ?? ROOT,
    encoding: "utf8",
    timeout: options.timeoutMs ?? 300_000,
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["ignore", options.inheritStdout ? "inherit" : "pipe", "pipe"],
  });
  if (result.error) {
    throw new NpmBuildError(`Cannot run ${command}: ${result.error.message}`);
  }
  return { status: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}

/** Removes comments (and, if asked, the contents of string literals) from TS or JS source. */
export function stripComments(source: string, strings = false): string {
  let out = "";
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      while (i < source.length && source[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, " ");
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < source.length && source[j] !== c) {
        if (source[j] === "\\") j++;
        else if (c !== "`" && source[j] === "\n") break;
        j++;
      }
      const literal = source.slice(i, j + 1);
      out += strings ? c + literal.slice(1, -1).replace(/[^\n]/g, " ") + c : literal;
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** One import of a module: its specifier, and whether it is loaded at run time and how. */
export interface ImportRef {
  readonly specifier: string;
  readonly kind: "static" | "dynamic" | "type";
}

/** The imports and re-exports of a TS or JS module, in source order by kind. */
export function importsOf(source: string): ImportRef[] {
  const text = stripComments(source);
  const refs: ImportRef[] = [];
  const statement =
    /(?:^|[;}\n])\s*(import|export)(\s+type)?\s+(?:[\w*${},\s]*?\s*from\s*)?["']([^"'\n]+)["']/g;
  for (const match of text.matchAll(statement)) {
    refs.push({ specifier: match[3], kind: match[2] ? "type" : "static" });
  }
  for (const match of text.matchAll(/\bimport\s*\(\s*["']([^"'\n]+)["']\s*\)/g)) {
    refs.push({ specifier: match[1], kind: "dynamic" });
  }
  return refs;
}

/** Direct uses of the `Deno` or `Bun` global (not `x.Deno`), outside comments and strings. */
export function runtimeGlobalsIn(source: string): string[] {
  const code = stripComments(source, true);
  return [...new Set([...code.matchAll(/(?<![\w$.])(Deno|Bun)\s*\.\s*\w+/g)].map((m) => m[1]))];
}

/** The npm package name of a bare specifier: `hono/streaming` → `hono`, `@a/b/c` → `@a/b`. */
export function packageNameOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

function isRelative(specifier: string): boolean {
  return specifier.startsWith("./") || specifier.startsWith("../");
}

// ---- deno.json ---------------------------------------------------------------------------------

interface DenoConfig {
  readonly version: string;
  readonly exports: Readonly<Record<string, string>>;
  /** npm package name → exact version, from `imports`. */
  readonly npmVersions: ReadonlyMap<string, string>;
  readonly imports: Readonly<Record<string, string>>;
  readonly testInclude: readonly string[];
  readonly exclude: readonly string[];
}

function readDenoConfig(): DenoConfig {
  const config = readJson(join(ROOT, "deno.json"));
  const imports = (config.imports ?? {}) as Record<string, string>;
  const npmVersions = new Map<string, string>();
  for (const value of Object.values(imports)) {
    const match = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@([^/]+)/.exec(value);
    if (match) npmVersions.set(match[1], match[2]);
  }
  const test = (config.test ?? {}) as { include?: string[] };
  return {
    version: String(config.version),
    exports: config.exports as Record<string, string>,
    npmVersions,
    imports,
    testInclude: test.include ?? ["."],
    exclude: (config.exclude ?? []) as string[],
  };
}

/** The npm package a bare specifier reaches through deno.json's import map, or undefined. */
function mappedPackage(specifier: string, config: DenoConfig): string | undefined {
  let target = config.imports[specifier];
  if (target === undefined) {
    const prefix = Object.keys(config.imports)
      .filter((key) => key.endsWith("/") && specifier.startsWith(key))
      .sort((a, b) => b.length - a.length)[0];
    if (prefix !== undefined) target = config.imports[prefix];
  }
  const match = target === undefined ? null : /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@/.exec(target);
  return match?.[1];
}

// ---- tsc ---------------------------------------------------------------------------------------

/** One tsc diagnostic: the file it is in (repository-relative), or "" for global ones. */
interface Diagnostic {
  readonly file: string;
  readonly text: string;
}

function tscPath(): string {
  const path = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  if (!existsSync(path)) {
    throw new NpmBuildError(
      "Cannot compile: node_modules/typescript is missing; run `npm ci` (typescript is a " +
        "pinned devDependency in package.json)",
    );
  }
  return path;
}

function parseDiagnostics(output: string): Diagnostic[] {
  const diagnostics: { file: string; lines: string[] }[] = [];
  for (const line of output.split("\n")) {
    if (line.trim() === "") continue;
    if (/^\s/.test(line) && diagnostics.length > 0) {
      diagnostics[diagnostics.length - 1].lines.push(line);
      continue;
    }
    const match = /^(.+?)\(\d+,\d+\): error /.exec(line);
    const file = match ? posix(relative(ROOT, resolve(ROOT, match[1]))) : "";
    diagnostics.push({ file, lines: [line] });
  }
  return diagnostics.map(({ file, lines }) => ({ file, text: lines.join("\n") }));
}

/**
 * Runs tsc on `files` (absolute) into `outDir`; returns the tolerated diagnostics and throws on
 * any other.
 */
function compile(
  label: string,
  files: readonly string[],
  outDir: string,
  configDir: string,
  declaration: boolean,
): Diagnostic[] {
  mkdirSync(configDir, { recursive: true });
  const declarations = join(configDir, "build.d.ts");
  writeFileSync(declarations, BUILD_DECLARATIONS);
  const configPath = join(configDir, `tsconfig.${label}.json`);
  const config = {
    compilerOptions: {
      ...COMPILER_OPTIONS,
      typeRoots: [join(ROOT, "node_modules", "@types")],
      declaration,
      rootDir: ROOT,
      outDir,
    },
    files: [declarations, ...files],
  };
  writeFileSync(configPath, JSON.stringify(config, null, 2) + "\n");
  const ran = run("node", [tscPath(), "-p", configPath, "--pretty", "false"]);
  const diagnostics = parseDiagnostics(ran.stdout + ran.stderr);
  const tolerated = diagnostics.filter((d) =>
    Object.keys(TYPE_ERRORS_TOLERATED_IN).some((prefix) => d.file.startsWith(prefix))
  );
  const fatal = diagnostics.filter((d) => !tolerated.includes(d));
  if (fatal.length > 0 || (ran.status !== 0 && diagnostics.length === 0)) {
    const shown = fatal.length > 0 ? fatal.map((d) => d.text).join("\n") : ran.stdout + ran.stderr;
    throw new NpmBuildError(`Cannot compile ${label}: tsc reported\n${shown}`);
  }
  return tolerated;
}

// ---- the package -------------------------------------------------------------------------------

/**
 * Follows the static imports of the compiled exports and fails if one reaches a Deno or Bun
 * adapter, a `Deno`/`Bun` global or a specifier Node cannot load. Returns the modules reached.
 */
function checkStaticGraph(esmDir: string, entries: readonly string[]): string[] {
  const seen = new Set<string>();
  const problems: string[] = [];
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    if (/^adapters\/(deno|bun)\//.test(file)) {
      problems.push(`${file} (a Deno or Bun adapter) is imported statically`);
    }
    const source = readFileSync(join(esmDir, file), "utf8");
    for (const global of runtimeGlobalsIn(source)) {
      problems.push(`${file} uses the ${global} global`);
    }
    for (const { specifier, kind } of importsOf(source)) {
      if (kind !== "static") continue;
      if (isRelative(specifier)) {
        queue.push(posix(join(dirname(file), specifier)));
      } else if (/^(npm|jsr|bun|https?):/.test(specifier)) {
        problems.push(`${file} imports "${specifier}", which Node cannot load`);
      }
    }
  }
  if (problems.length > 0) {
    throw new NpmBuildError(
      `Cannot build: the exports reach what exists only on Deno or Bun:\n  ${
        problems.join("\n  ")
      }`,
    );
  }
  return [...seen];
}

/** The dependencies the compiled code imports (static or dynamic), at deno.json's versions. */
function dependenciesOf(esmDir: string, jsFiles: readonly string[], config: DenoConfig) {
  const dependencies: Record<string, string> = {};
  const problems: string[] = [];
  for (const file of jsFiles) {
    for (const { specifier, kind } of importsOf(readFileSync(join(esmDir, file), "utf8"))) {
      if (kind === "type" || isRelative(specifier) || specifier.startsWith("node:")) continue;
      const name = packageNameOf(specifier);
      const version = config.npmVersions.get(name);
      if (version === undefined || mappedPackage(specifier, config) !== name) {
        problems.push(`${file} imports "${specifier}", which deno.json's imports do not pin`);
      } else {
        dependencies[name] = version;
      }
    }
  }
  if (problems.length > 0) throw new NpmBuildError(`Cannot build:\n  ${problems.join("\n  ")}`);
  return Object.fromEntries(Object.entries(dependencies).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function manifestOf(config: DenoConfig, dependencies: Record<string, string>): PackageManifest {
  const exports: Record<string, { types: string; import: string }> = {};
  for (const subpath of PACKAGE_EXPORTS) {
    const source = config.exports[subpath];
    if (source === undefined) {
      throw new NpmBuildError(`Cannot build: deno.json exports no "${subpath}"`);
    }
    const base = `./esm/${source.replace(/^\.\//, "").replace(/\.ts$/, "")}`;
    exports[subpath] = { types: `${base}.d.ts`, import: `${base}.js` };
  }
  return {
    name: PACKAGE_NAME,
    version: config.version,
    description: DESCRIPTION,
    license: "MIT",
    type: "module",
    main: exports["."].import,
    types: exports["."].types,
    exports,
    files: ["esm/"],
    engines: { node: `>=${NODE_MAJOR_MIN}` },
    dependencies,
  };
}

/** Node on PATH, and its major version; throws if it is missing or older than Node 20. */
function nodeVersion(): string {
  const version = run("node", ["--version"]).stdout.trim();
  const major = Number(/^v(\d+)/.exec(version)?.[1]);
  if (!(major >= NODE_MAJOR_MIN)) {
    throw new NpmBuildError(
      `Cannot build: need Node >= ${NODE_MAJOR_MIN} on PATH, found ${version}`,
    );
  }
  return version;
}

/** Imports every export of the package on Node, which fails if one cannot load there. */
function importOnNode(outDir: string, manifest: PackageManifest): void {
  const urls = Object.values(manifest.exports).map((entry) =>
    JSON.stringify(new URL(entry.import.slice(2), `file://${outDir}/`).href)
  );
  const script = `for (const url of [${urls.join(", ")}]) {
  const module = await import(url);
  if (Object.keys(module).length === 0) throw new Error(url + " exports nothing");
}`;
  const ran = run("node", ["--input-type=module", "--eval", script], { cwd: outDir });
  if (ran.status !== 0) {
    throw new NpmBuildError(`Cannot import the package on Node:\n${ran.stderr}`);
  }
}

/** Type-checks a file that imports every export, as a Node user's TypeScript would. */
function checkPublishedTypes(outDir: string, manifest: PackageManifest): void {
  const dir = join(outDir, ".typecheck");
  mkdirSync(dir, { recursive: true });
  const lines = PACKAGE_EXPORTS.map((subpath, i) =>
    `import * as m${i} from "${posix(join(manifest.name, subpath))}";`
  );
  lines.push(`export const modules: object[] = [${PACKAGE_EXPORTS.map((_, i) => `m${i}`)}];`);
  writeFileSync(join(dir, "consumer.ts"), lines.join("\n") + "\n");
  const config = {
    compilerOptions: {
      target: "ES2022",
      module: "nodenext",
      moduleResolution: "nodenext",
      lib: ["ES2023"],
      types: ["node"],
      typeRoots: [join(ROOT, "node_modules", "@types")],
      strict: true,
      skipLibCheck: false,
      noEmit: true,
    },
    files: [join(dir, "consumer.ts")],
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(config, null, 2) + "\n");
  const ran = run("node", [tscPath(), "-p", join(dir, "tsconfig.json"), "--pretty", "false"]);
  // Errors inside the dependencies' own declarations are theirs, not ours.
  const ours = parseDiagnostics(ran.stdout + ran.stderr)
    .filter((d) => !d.file.includes("node_modules/"));
  if (ran.status !== 0 && ours.length > 0) {
    throw new NpmBuildError(
      `Cannot use the published types from Node:\n${ours.map((d) => d.text).join("\n")}`,
    );
  }
}

// ---- tests on Node -----------------------------------------------------------------------------

/** The repository's test files, repository-relative, in a fixed order. */
function testFiles(config: DenoConfig): string[] {
  const excluded = config.exclude.map((dir) => dir.replace(/\/$/, ""));
  const files: string[] = [];
  for (const include of config.testInclude) {
    const dir = join(ROOT, include);
    if (!existsSync(dir)) continue;
    if (!statSync(dir).isDirectory()) {
      // A file in test.include (mod.ts) is there for its doc examples; only *_test.ts are tests.
      if (/(^|[/_.])test\.ts$/.test(include)) files.push(posix(include));
      continue;
    }
    const skip = (rel: string) => {
      const path = posix(join(include, rel));
      return excluded.some((ex) => path === ex || path.startsWith(`${ex}/`));
    };
    for (const rel of listFiles(dir, skip)) {
      if (/(^|[/_.])test\.ts$/.test(rel)) files.push(posix(join(include, rel)));
    }
  }
  return [...new Set(files)].sort();
}

/** Why a test cannot run on Node, from what its static imports reach; undefined if it can. */
function whyNotOnNode(test: string): string | undefined {
  const seen = new Set<string>();
  const queue = [test];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const adapter = /^adapters\/(deno|bun)\//.exec(file);
    if (adapter) return `imports the ${adapter[1] === "deno" ? "Deno" : "Bun"} adapter (${file})`;
    let source: string;
    try {
      source = readFileSync(join(ROOT, file), "utf8");
    } catch {
      return `imports ${file}, which does not exist`;
    }
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
export function selectNodeTests(): { selected: string[]; excluded: Record<string, string> } {
  const selected: string[] = [];
  const excluded: Record<string, string> = {};
  for (const test of testFiles(readDenoConfig())) {
    const reason = NODE_EXCLUDED_TESTS[test] ?? whyNotOnNode(test);
    if (reason === undefined) selected.push(test);
    else excluded[test] = reason;
  }
  return { selected, excluded };
}

function parseTapCounts(tap: string, files: number): NodeTestCounts {
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
 * Compiles the selected tests into `<outDir>/.test/`, links every compiled module that the
 * package has to the package's file, and runs the tests with `node --test`.
 */
function runNodeTests(
  outDir: string,
  tests: readonly string[],
  print: (line: string) => void,
): NodeTestCounts {
  const testDir = join(outDir, ".test");
  const esmDir = join(outDir, "esm");
  compile(
    "tests",
    tests.map((test) => join(ROOT, test)),
    testDir,
    join(outDir, ".tsconfig"),
    false,
  );
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
  const skipNames = Object.keys(NODE_EXCLUDED_TEST_NAMES)
    .map((name) => name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const ran = run("node", [
    "--test",
    // A test file's process exits when its tests are done, as on Deno and Bun, even if a
    // socket is left open (Node 20 never closes a socket given end() then resetAndDestroy()).
    "--test-force-exit",
    "--test-timeout=180000",
    // Every name but those starting so; not the file-level test ("/…") nor the root
    // ("<root>"), whose match would run every test below it.
    ...(skipNames.length > 0
      ? [`--test-name-pattern=^(?![</])(?!(?:${skipNames.join("|")})).`]
      : []),
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

// ---- npm pack ----------------------------------------------------------------------------------

interface PackFile {
  readonly path: string;
  readonly size: number;
}

function packSummary(outDir: string, print: (line: string) => void): PackFile[] {
  const ran = run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: outDir });
  if (ran.status !== 0) throw new NpmBuildError(`Cannot npm pack --dry-run:\n${ran.stderr}`);
  const [info] = JSON.parse(ran.stdout) as {
    filename: string;
    size: number;
    unpackedSize: number;
    files: PackFile[];
  }[];
  const kB = (bytes: number) => `${(bytes / 1000).toFixed(1)} kB`;
  print(
    `npm pack --dry-run: ${info.filename}, ${info.files.length} files, ` +
      `${kB(info.size)} packed, ${kB(info.unpackedSize)} unpacked`,
  );
  const groups = new Map<string, { count: number; bytes: number; js: number; dts: number }>();
  for (const file of info.files) {
    const dir = file.path.includes("/") ? file.path.slice(0, file.path.lastIndexOf("/")) : ".";
    const group = groups.get(dir) ?? { count: 0, bytes: 0, js: 0, dts: 0 };
    group.count++;
    group.bytes += file.size;
    if (file.path.endsWith(".d.ts")) group.dts++;
    else if (file.path.endsWith(".js")) group.js++;
    groups.set(dir, group);
  }
  for (const [dir, group] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const names = dir === "."
      ? info.files.filter((f) => !f.path.includes("/")).map((f) => f.path).sort().join(", ")
      : `${group.js} .js, ${group.dts} .d.ts`;
    print(
      `  ${(dir + "/").padEnd(24)} ${String(group.count).padStart(3)} files ${
        kB(group.bytes).padStart(9)
      }  ${names}`,
    );
  }
  const stray = info.files.filter((f) => !f.path.startsWith("esm/") && f.path.includes("/"));
  if (stray.length > 0) {
    throw new NpmBuildError(`Cannot pack: unexpected files ${stray.map((f) => f.path).join(", ")}`);
  }
  return info.files;
}

// ---- the build ---------------------------------------------------------------------------------

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
  const tolerated = compile(
    "package",
    entries.map((entry) => join(ROOT, entry ?? "")),
    esmDir,
    join(outDir, ".tsconfig"),
    true,
  );
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

  const dependencies = dependenciesOf(esmDir, js, config);
  const manifest = manifestOf(config, dependencies);
  writeFileSync(join(outDir, "package.json"), JSON.stringify(manifest, null, 2) + "\n");
  for (const file of ["README.md", "LICENSE"]) {
    if (!existsSync(join(ROOT, file))) throw new NpmBuildError(`Cannot build: ${file} is missing`);
    copyFileSync(join(ROOT, file), join(outDir, file));
  }
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
