/**
 * Compiling with the npm `typescript` package (a pinned devDependency), for the npm build:
 * the compiler options that give Node 20 ES modules, the build-only declarations, running tsc
 * and reading its diagnostics.
 *
 * @module
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { NpmBuildError, posix, ROOT, run } from "./_common.ts";

/**
 * Node 20 has ES2023 and the well-formed-string methods of ES2024; the DOM library stands in
 * for the web APIs (TextEncoder, crypto, Request…) that Deno types as globals.
 */
export const COMPILER_OPTIONS = {
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
} as const;

/**
 * Files whose type errors do not fail the build, by path prefix, and why. tsc has no Deno
 * types; the Deno adapter is loaded only on Deno (behind a runtime check) and `deno task check`
 * checks it.
 */
export const TYPE_ERRORS_TOLERATED_IN: Readonly<Record<string, string>> = {
  "adapters/deno/": "uses the Deno namespace, which tsc has no types for",
};

/**
 * Build-only declarations, never published. Deno's types let `crypto.getRandomValues` take any
 * typed array; TypeScript 7's DOM library wants one backed by an `ArrayBuffer`, which a
 * `Uint8Array` parameter (backed by `ArrayBufferLike`) is not. This overload restores Deno's
 * signature, so the sources need no cast. `parse-prometheus-text-format`, which only
 * `src/metrics_test.ts` imports, ships no types: Deno takes it as `any`, tsc must be told to.
 */
export const BUILD_DECLARATIONS = `interface Crypto {
  getRandomValues<T extends ArrayBufferView | null>(array: T): T;
}
declare module "parse-prometheus-text-format";
`;

/** One tsc diagnostic: the file it is in (repository-relative), or "" for global ones. */
export interface Diagnostic {
  readonly file: string;
  /** The diagnostic as tsc printed it, continuation lines included. */
  readonly text: string;
}

/**
 * Path of the `tsc` script in node_modules; throws {@link NpmBuildError} if `npm ci` has not
 * put it there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tscPath } from "./_compile.ts";
 * assert.match(tscPath(), /node_modules\/typescript\/bin\/tsc$/);
 * ```
 */
export function tscPath(root: string = ROOT): string {
  const path = join(root, "node_modules", "typescript", "bin", "tsc");
  if (!existsSync(path)) {
    throw new NpmBuildError(
      "Cannot compile: node_modules/typescript is missing; run `npm ci` (typescript is a " +
        "pinned devDependency in package.json)",
    );
  }
  return path;
}

/**
 * The diagnostics in tsc's `--pretty false` output: a line `file(line,col): error …` starts
 * one, indented lines continue it, any other line is a diagnostic of its own with no file.
 * Files come back relative to `root`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDiagnostics } from "./_compile.ts";
 * const output = "src/a.ts(3,7): error TS2322: Type 'string' is not assignable.\n" +
 *   "  Details follow.\nerror TS5083: Cannot read file.\n";
 * assert.deepEqual(parseDiagnostics(output, "/repo"), [
 *   { file: "src/a.ts", text: output.split("\n").slice(0, 2).join("\n") },
 *   { file: "", text: "error TS5083: Cannot read file." },
 * ]);
 * ```
 */
export function parseDiagnostics(output: string, root: string = ROOT): Diagnostic[] {
  const diagnostics: { file: string; lines: string[] }[] = [];
  for (const line of output.split("\n")) {
    if (line.trim() === "") continue;
    if (/^\s/.test(line) && diagnostics.length > 0) {
      diagnostics[diagnostics.length - 1].lines.push(line);
      continue;
    }
    const match = /^(.+?)\(\d+,\d+\): error /.exec(line);
    const file = match ? posix(relative(root, resolve(root, match[1]))) : "";
    diagnostics.push({ file, lines: [line] });
  }
  return diagnostics.map(({ file, lines }) => ({ file, text: lines.join("\n") }));
}

/**
 * Whether a diagnostic is in a file listed in {@link TYPE_ERRORS_TOLERATED_IN}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTolerated } from "./_compile.ts";
 * assert.equal(isTolerated({ file: "adapters/deno/mod.ts", text: "error TS2304" }), true);
 * assert.equal(isTolerated({ file: "src/node.ts", text: "error TS2304" }), false);
 * ```
 */
export function isTolerated(diagnostic: Diagnostic): boolean {
  return Object.keys(TYPE_ERRORS_TOLERATED_IN).some((prefix) => diagnostic.file.startsWith(prefix));
}

/** What {@link compile} compiles, and where to. */
export interface CompileOptions {
  /** Names the tsconfig file and the error message: `package`, `tests`. */
  readonly label: string;
  /** Absolute paths of the entry files; tsc follows their imports. */
  readonly files: readonly string[];
  /** Where the `.js` (and `.d.ts`) files go, in the repository's layout. */
  readonly outDir: string;
  /** Where the tsconfig and the build declarations are written. */
  readonly configDir: string;
  /** Emit declarations too. */
  readonly declaration: boolean;
}

/**
 * Runs tsc on the given files with {@link COMPILER_OPTIONS}; returns the tolerated
 * diagnostics and throws {@link NpmBuildError} on any other.
 *
 * @example
 * ```ts ignore
 * import { join } from "node:path";
 * import { compile } from "./_compile.ts";
 * import { ROOT } from "./_common.ts";
 * const tolerated = compile({
 *   label: "package",
 *   files: [join(ROOT, "mod.ts")],
 *   outDir: "/tmp/automp-npm/esm",
 *   configDir: "/tmp/automp-npm/.tsconfig",
 *   declaration: true,
 * });
 * console.log(tolerated.map((d) => d.file));
 * ```
 */
export function compile(options: CompileOptions): Diagnostic[] {
  const { label, files, outDir, configDir, declaration } = options;
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
  const tolerated = diagnostics.filter(isTolerated);
  const fatal = diagnostics.filter((d) => !tolerated.includes(d));
  if (fatal.length > 0 || (ran.status !== 0 && diagnostics.length === 0)) {
    const shown = fatal.length > 0 ? fatal.map((d) => d.text).join("\n") : ran.stdout + ran.stderr;
    throw new NpmBuildError(`Cannot compile ${label}: tsc reported\n${shown}`);
  }
  return tolerated;
}
