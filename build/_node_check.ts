/**
 * The built package as a Node user meets it: Node is new enough, every export imports, and the
 * published declarations type-check without the build's leniencies.
 *
 * @module
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NpmBuildError, posix, ROOT, run } from "./_common.ts";
import { parseDiagnostics, tscPath } from "./_compile.ts";
import { NODE_MAJOR_MIN, PACKAGE_EXPORTS, type PackageManifest } from "./_manifest.ts";

/**
 * The version of the `node` on PATH (`v22.1.0`); throws {@link NpmBuildError} if it is missing
 * or older than {@link NODE_MAJOR_MIN}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nodeVersion } from "./_node_check.ts";
 * assert.match(nodeVersion(), /^v\d+\./);
 * ```
 */
export function nodeVersion(): string {
  const version = run("node", ["--version"]).stdout.trim();
  const major = Number(/^v(\d+)/.exec(version)?.[1]);
  if (!(major >= NODE_MAJOR_MIN)) {
    throw new NpmBuildError(
      `Cannot build: need Node >= ${NODE_MAJOR_MIN} on PATH, found ${version}`,
    );
  }
  return version;
}

/**
 * Imports every export of the built package on Node; throws {@link NpmBuildError} with Node's
 * error if one cannot load there or exports nothing.
 *
 * @example
 * ```ts ignore
 * import { readFileSync } from "node:fs";
 * import { importOnNode } from "./_node_check.ts";
 * importOnNode("/tmp/automp-npm", JSON.parse(readFileSync("/tmp/automp-npm/package.json", "utf8")));
 * ```
 */
export function importOnNode(outDir: string, manifest: PackageManifest): void {
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

/**
 * Type-checks a file that imports every export by the package's name, as a Node user's
 * TypeScript would (`skipLibCheck` off, no DOM library); throws {@link NpmBuildError} on an
 * error in the package's declarations (errors inside the dependencies' own are theirs).
 *
 * @example
 * ```ts ignore
 * import { readFileSync } from "node:fs";
 * import { checkPublishedTypes } from "./_node_check.ts";
 * const manifest = JSON.parse(readFileSync("/tmp/automp-npm/package.json", "utf8"));
 * checkPublishedTypes("/tmp/automp-npm", manifest);
 * ```
 */
export function checkPublishedTypes(outDir: string, manifest: PackageManifest): void {
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
  const ours = parseDiagnostics(ran.stdout + ran.stderr)
    .filter((d) => !d.file.includes("node_modules/"));
  if (ran.status !== 0 && ours.length > 0) {
    throw new NpmBuildError(
      `Cannot use the published types from Node:\n${ours.map((d) => d.text).join("\n")}`,
    );
  }
}
