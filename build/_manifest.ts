/**
 * The npm package's manifest: its name, exports and engines, and exactly the dependencies the
 * compiled code imports, at the versions deno.json pins.
 *
 * @module
 */
import { copyFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NpmBuildError, ROOT } from "./_common.ts";
import { type DenoConfig, mappedPackage } from "./_config.ts";
import { importsOf, isRelative, packageNameOf } from "./_imports.ts";

/** The package's name on npm. */
export const PACKAGE_NAME = "automp";

/** The subpaths of deno.json's `exports` that the npm package has (Deno and Bun have theirs). */
export const PACKAGE_EXPORTS: readonly string[] = [".", "./sim", "./node"];

/** Oldest Node the package supports, and the one its tests run on. */
export const NODE_MAJOR_MIN = 20;

const DESCRIPTION = "AutoMPI: nodes host workers with private state, discover each other, " +
  "link up, clean up broken links and route messages; one core runs on real sockets " +
  "(Node, Deno, Bun) and in a seeded network simulator.";

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

/** A compiled module: its path in the package's module directory, and its text. */
export interface ModuleSource {
  readonly file: string;
  readonly source: string;
}

/**
 * The npm packages the modules import (statically or dynamically; `node:` built-ins and
 * type-only imports aside), each at the version deno.json pins, sorted by name. Throws
 * {@link NpmBuildError} naming every import deno.json's import map does not pin.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDenoConfig } from "./_config.ts";
 * import { dependenciesOf } from "./_manifest.ts";
 * const config = parseDenoConfig({ imports: { "hono": "npm:hono@4.13.19", "hono/": "npm:/hono@4.13.19/" } });
 * const modules = [{ file: "a.js", source: 'import { Hono } from "hono";\nimport "hono/streaming";' }];
 * assert.deepEqual(dependenciesOf(modules, config), { hono: "4.13.19" });
 * ```
 */
export function dependenciesOf(
  modules: Iterable<ModuleSource>,
  config: DenoConfig,
): Record<string, string> {
  const dependencies: Record<string, string> = {};
  const problems: string[] = [];
  for (const { file, source } of modules) {
    for (const { specifier, kind } of importsOf(source)) {
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

/**
 * The manifest for deno.json's version and the {@link PACKAGE_EXPORTS}, each export pointing
 * at its compiled module and declarations under `esm/`. Throws {@link NpmBuildError} if
 * deno.json lacks one of the exports.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDenoConfig } from "./_config.ts";
 * import { manifestOf } from "./_manifest.ts";
 * const config = parseDenoConfig({
 *   version: "0.1.0",
 *   exports: { ".": "./mod.ts", "./sim": "./sim/mod.ts", "./node": "./adapters/node/mod.ts" },
 * });
 * const manifest = manifestOf(config, { hono: "4.13.19" });
 * assert.equal(manifest.exports["./node"].import, "./esm/adapters/node/mod.js");
 * assert.equal(manifest.types, "./esm/mod.d.ts");
 * ```
 */
export function manifestOf(
  config: DenoConfig,
  dependencies: Record<string, string>,
): PackageManifest {
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

/**
 * Writes `package.json` into the package directory and copies README.md and LICENSE beside it;
 * throws {@link NpmBuildError} if either is missing from the repository.
 *
 * @example
 * ```ts ignore
 * import { readDenoConfig } from "./_config.ts";
 * import { manifestOf, writePackageFiles } from "./_manifest.ts";
 * writePackageFiles("/tmp/automp-npm", manifestOf(readDenoConfig(), {}));
 * ```
 */
export function writePackageFiles(outDir: string, manifest: PackageManifest): void {
  writeFileSync(join(outDir, "package.json"), JSON.stringify(manifest, null, 2) + "\n");
  for (const file of ["README.md", "LICENSE"]) {
    if (!existsSync(join(ROOT, file))) throw new NpmBuildError(`Cannot build: ${file} is missing`);
    copyFileSync(join(ROOT, file), join(outDir, file));
  }
}
