/**
 * Reading TS and JS modules as text, for the npm build: their imports and re-exports, the
 * runtime globals they use, the npm package a bare specifier names. No parser: comments and
 * string contents are blanked first, which is enough for the sources of this repository and
 * for what tsc emits from them.
 *
 * @module
 */

/**
 * Removes comments from TS or JS source, keeping line breaks (so line numbers still match);
 * with `strings`, blanks the contents of string and template literals too, keeping the quotes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stripComments } from "./_imports.ts";
 * assert.equal(stripComments('a; // "b"\nc("// d");'), 'a; \nc("// d");');
 * assert.equal(stripComments('x("Deno.env")', true), `x("${" ".repeat(8)}")`);
 * ```
 */
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
  /** `type`: erased by the compiler (`import type`, `export type … from`). */
  readonly kind: "static" | "dynamic" | "type";
}

/**
 * The imports and re-exports of a TS or JS module: first the static and type-only ones in
 * source order, then the dynamic `import("…")` calls with a literal specifier.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { importsOf } from "./_imports.ts";
 * const source = 'import type { A } from "./a.ts";\nexport * from "./b.ts";\n' +
 *   'const c = await import("./c.ts");';
 * assert.deepEqual(importsOf(source), [
 *   { specifier: "./a.ts", kind: "type" },
 *   { specifier: "./b.ts", kind: "static" },
 *   { specifier: "./c.ts", kind: "dynamic" },
 * ]);
 * ```
 */
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

/**
 * The `Deno` or `Bun` globals a module uses directly (`Deno.x`, not `y.Deno.x`), outside
 * comments and strings, each once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runtimeGlobalsIn } from "./_imports.ts";
 * assert.deepEqual(runtimeGlobalsIn("Deno.exit(Bun.version ? 1 : 0); Deno.pid"), ["Deno", "Bun"]);
 * assert.deepEqual(runtimeGlobalsIn('// Deno.exit()\nconst s = "Bun.serve";'), []);
 * ```
 */
export function runtimeGlobalsIn(source: string): string[] {
  const code = stripComments(source, true);
  return [...new Set([...code.matchAll(/(?<![\w$.])(Deno|Bun)\s*\.\s*\w+/g)].map((m) => m[1]))];
}

/**
 * The npm package name of a bare specifier: `hono/streaming` → `hono`, `@a/b/c` → `@a/b`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packageNameOf } from "./_imports.ts";
 * assert.equal(packageNameOf("hono/streaming"), "hono");
 * assert.equal(packageNameOf("@msgpack/msgpack"), "@msgpack/msgpack");
 * ```
 */
export function packageNameOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/**
 * Whether a specifier is a relative path (`./x` or `../x`), as opposed to a bare name or a URL.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isRelative } from "./_imports.ts";
 * assert.equal(isRelative("../src/node.ts"), true);
 * assert.equal(isRelative("node:fs"), false);
 * ```
 */
export function isRelative(specifier: string): boolean {
  return specifier.startsWith("./") || specifier.startsWith("../");
}
