/**
 * The static import graph of the compiled package: what the exports load on Node before any
 * of their code runs, which must hold nothing that exists only on Deno or Bun.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { NpmBuildError, posix } from "./_common.ts";
import { importsOf, isRelative, runtimeGlobalsIn } from "./_imports.ts";

/** What {@link walkStaticGraph} found. */
export interface StaticGraph {
  /** Every module the entries reach by static imports, the entries first, breadth first. */
  readonly reached: string[];
  /** Why the graph cannot load on Node, one line each; empty if it can. */
  readonly problems: string[];
}

/**
 * Follows the static imports from `entries` (paths relative to the package's module
 * directory), reading each module with `read`, and lists what Node could not load: a Deno or
 * Bun adapter, a `Deno`/`Bun` global, an `npm:`/`jsr:`/`bun:`/`http(s):` specifier. Dynamic
 * and type-only imports are not followed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { walkStaticGraph } from "./_graph.ts";
 * const modules: Record<string, string> = {
 *   "mod.js": 'import { a } from "./src/a.js";\nconst d = () => import("./adapters/deno/mod.js");',
 *   "src/a.js": 'import { x } from "npm:x@1";\nexport const a = 1;',
 * };
 * assert.deepEqual(walkStaticGraph(["mod.js"], (file) => modules[file]), {
 *   reached: ["mod.js", "src/a.js"],
 *   problems: ['src/a.js imports "npm:x@1", which Node cannot load'],
 * });
 * ```
 */
export function walkStaticGraph(
  entries: readonly string[],
  read: (file: string) => string,
): StaticGraph {
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
    const source = read(file);
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
  return { reached: [...seen], problems };
}

/**
 * {@link walkStaticGraph} over the compiled files in `esmDir`: returns the modules reached,
 * or throws {@link NpmBuildError} listing every problem.
 *
 * @example
 * ```ts ignore
 * import { checkStaticGraph } from "./_graph.ts";
 * const reached = checkStaticGraph("/tmp/automp-npm/esm", ["mod.js", "sim/mod.js"]);
 * console.log(`${reached.length} modules load statically`);
 * ```
 */
export function checkStaticGraph(esmDir: string, entries: readonly string[]): string[] {
  const { reached, problems } = walkStaticGraph(
    entries,
    (file) => readFileSync(join(esmDir, file), "utf8"),
  );
  if (problems.length > 0) {
    throw new NpmBuildError(
      `Cannot build: the exports reach what exists only on Deno or Bun:\n  ${
        problems.join("\n  ")
      }`,
    );
  }
  return reached;
}
