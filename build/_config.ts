/**
 * What the npm build takes from deno.json, the source of truth: the version, the exports, the
 * npm packages the import map pins, and which directories hold tests.
 *
 * @module
 */
import { join } from "node:path";
import { readJson, ROOT } from "./_common.ts";

/** The parts of deno.json the build uses. */
export interface DenoConfig {
  readonly version: string;
  /** Subpath → source file, e.g. `"./sim"` → `"./sim/mod.ts"`. */
  readonly exports: Readonly<Record<string, string>>;
  /** npm package name → exact version, from `imports`. */
  readonly npmVersions: ReadonlyMap<string, string>;
  /** The import map as written. */
  readonly imports: Readonly<Record<string, string>>;
  /** `test.include`: files and directories (`"src/"`) that hold tests; default `["."]`. */
  readonly testInclude: readonly string[];
  /** `exclude`: directories (`"npm/"`) no tool looks into. */
  readonly exclude: readonly string[];
}

/**
 * The build's view of a parsed deno.json.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDenoConfig } from "./_config.ts";
 * const config = parseDenoConfig({
 *   version: "1.2.3",
 *   exports: { ".": "./mod.ts" },
 *   imports: { "hono": "npm:hono@4.13.19", "pure-rand/": "npm:/pure-rand@8.4.2/" },
 * });
 * assert.deepEqual([...config.npmVersions], [["hono", "4.13.19"], ["pure-rand", "8.4.2"]]);
 * assert.deepEqual(config.testInclude, ["."]);
 * ```
 */
export function parseDenoConfig(config: Record<string, unknown>): DenoConfig {
  const imports = (config.imports ?? {}) as Record<string, string>;
  const npmVersions = new Map<string, string>();
  for (const value of Object.values(imports)) {
    const match = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@([^/]+)/.exec(value);
    if (match) npmVersions.set(match[1], match[2]);
  }
  const test = (config.test ?? {}) as { include?: string[] };
  return {
    version: String(config.version),
    exports: (config.exports ?? {}) as Record<string, string>,
    npmVersions,
    imports,
    testInclude: test.include ?? ["."],
    exclude: (config.exclude ?? []) as string[],
  };
}

/**
 * The repository's deno.json, as {@link parseDenoConfig} reads it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readDenoConfig } from "./_config.ts";
 * assert.equal(readDenoConfig().exports["./sim"], "./sim/mod.ts");
 * ```
 */
export function readDenoConfig(root: string = ROOT): DenoConfig {
  return parseDenoConfig(readJson(join(root, "deno.json")));
}

/**
 * The npm package a bare specifier reaches through deno.json's import map (an exact key, else
 * the longest key ending in `/` that starts it), or undefined if the map does not take it to
 * an `npm:` package.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mappedPackage, parseDenoConfig } from "./_config.ts";
 * const config = parseDenoConfig({ imports: { "hono/": "npm:/hono@4.13.19/" } });
 * assert.equal(mappedPackage("hono/streaming", config), "hono");
 * assert.equal(mappedPackage("express", config), undefined);
 * ```
 */
export function mappedPackage(specifier: string, config: DenoConfig): string | undefined {
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
