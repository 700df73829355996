/**
 * The purity scanner behind tests/tooling/purity_test.ts.
 *
 * `src/` and `sim/` must run unchanged on Deno, Bun, Node and in the seeded simulator, so
 * everything non-deterministic (time, randomness, I/O, the runtime itself) reaches them only
 * through the platform seam. This scanner finds the ways around the seam by looking at the text.
 *
 * It is deliberately strict and simple: it reads comments and strings too, because a JSDoc
 * `@example` in `src/` must run in the simulator just as the code does. When prose has to name a
 * forbidden API, write it so that it does not match (e.g. "the runtime's clock" instead of the
 * call). There is no opt-out comment.
 *
 * Rules (a match preceded by `.` is a method of some object and is allowed, except after
 * `globalThis.`, `window.`, `self.` or `global.`, which reach the real global):
 * - `Deno.x`, `Bun.x`, `process.x`: the runtime.
 * - `Date.now`, `new Date()` / `Date()` without arguments, `performance.now`: the real clock.
 * - `Math.random`, `crypto.randomUUID`, `crypto.getRandomValues`: real randomness.
 * - `setTimeout`, `setInterval`, `setImmediate` (called or referenced): real timers.
 * - `globalThis[…]`: dynamic access to any of the above.
 * - any string starting with `node:`: a Node built-in (static, dynamic or `require` import).
 * - import specifiers must be relative, or a bare name listed in deno.json "imports" (Bun has no
 *   `npm:`/`jsr:` specifiers), or the package's own name as used in JSDoc examples.
 * - relative imports must stay inside the allowed roots: `src/` imports only `src/`; `sim/`
 *   imports `src/` and `sim/` (adapters, mod.ts and tests point at the core, never the reverse).
 *
 * @module
 */

/** One forbidden use found by {@linkcode scanSource}. */
export interface Violation {
  /** Repository-relative path, e.g. `src/node.ts`. */
  readonly file: string;
  /** 1-based line number. */
  readonly line: number;
  /** Which rule matched, e.g. `"Date.now"`. */
  readonly rule: string;
  /** The offending line, trimmed. */
  readonly text: string;
}

/** What, besides relative paths, a scanned file may import. */
export interface ScanOptions {
  /**
   * Bare import specifiers allowed: a key ending in `/` allows that prefix, any other key that
   * exact name (the shape of deno.json "imports").
   */
  readonly allowedImports?: readonly string[];
  /** The package's own name (deno.json "name"); it and its subpaths may be imported. */
  readonly packageName?: string;
  /**
   * Repository-relative directories a file may import from, by the directory of the file
   * (`{ "src/": ["src/"], "sim/": ["src/", "sim/"] }`). Files outside every key are not checked.
   */
  readonly importRoots?: Readonly<Record<string, readonly string[]>>;
}

/** The import roots of the project: src/ is the core, sim/ builds on it. */
export const PROJECT_IMPORT_ROOTS: Readonly<Record<string, readonly string[]>> = {
  "src/": ["src/"],
  "sim/": ["src/", "sim/"],
};

// Not preceded by an identifier character or a dot, or preceded by a global object and a dot.
const GLOBAL = String.raw`(?:(?<![\w$.])|(?<![\w$.])(?:globalThis|window|self|global)\??\.)`;

const RULES: readonly { readonly rule: string; readonly pattern: RegExp }[] = [
  // `Deno.` followed directly by a name, so that prose ending a sentence ("on Deno.") passes.
  { rule: "Deno.*", pattern: new RegExp(String.raw`${GLOBAL}Deno\??\.[A-Za-z_$]`) },
  { rule: "Bun.*", pattern: new RegExp(String.raw`${GLOBAL}Bun\??\.[A-Za-z_$]`) },
  { rule: "process.*", pattern: new RegExp(String.raw`${GLOBAL}process\??\.[A-Za-z_$]`) },
  { rule: "Date.now", pattern: new RegExp(String.raw`${GLOBAL}Date\??\.now\b`) },
  {
    rule: "Date() without arguments",
    pattern: new RegExp(String.raw`(?:\bnew\s+)?${GLOBAL}Date\s*\(\s*\)`),
  },
  { rule: "performance.now", pattern: new RegExp(String.raw`${GLOBAL}performance\??\.now\b`) },
  { rule: "Math.random", pattern: new RegExp(String.raw`${GLOBAL}Math\??\.random\b`) },
  {
    rule: "crypto randomness",
    pattern: new RegExp(String.raw`${GLOBAL}crypto\??\.(?:randomUUID|getRandomValues)\b`),
  },
  {
    rule: "real timer",
    pattern: new RegExp(String.raw`${GLOBAL}(?:setTimeout|setInterval|setImmediate)\b`),
  },
  {
    rule: "dynamic global access",
    pattern: /(?<![\w$.])globalThis\??\.?\[/,
  },
  { rule: "node: import", pattern: /["'`]node:/ },
];

// `from "x"`, `import "x"`, `import("x")`, `require("x")`, `export … from "x"`.
// A keyword right after a quote is a string's content ("from", "to"), not an import.
// Only quoted with " or ': prose in comments often says "from `x`".
const SPECIFIER = /(?<![\w$."'])(?:from|import|require)\s*\(?\s*(["'])([^"'\n]+)\1/g;

/** Resolves `specifier` against the directory of repository-relative `file`, or undefined. */
function resolveRelative(file: string, specifier: string): string | undefined {
  const parts = file.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else {
      parts.push(part);
    }
  }
  return parts.join("/");
}

function checkSpecifier(
  file: string,
  specifier: string,
  options: ScanOptions,
): string | undefined {
  if (specifier.startsWith("node:")) return undefined; // reported by the "node: import" rule
  if (specifier.startsWith("./") || specifier.startsWith("../")) {
    const roots = options.importRoots ?? {};
    const own = Object.keys(roots).find((dir) => file.startsWith(dir));
    if (own === undefined) return undefined;
    const target = resolveRelative(file, specifier);
    if (target !== undefined && roots[own].some((dir) => target.startsWith(dir))) {
      return undefined;
    }
    return `import outside ${roots[own].join(" and ")}`;
  }
  const name = options.packageName;
  if (name !== undefined && (specifier === name || specifier.startsWith(`${name}/`))) {
    return undefined;
  }
  for (const key of options.allowedImports ?? []) {
    if (key.endsWith("/") ? specifier.startsWith(key) : specifier === key) return undefined;
  }
  return "import not in deno.json imports";
}

/**
 * Lists every forbidden use in one source file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scanSource } from "./_purity.ts";
 *
 * const found = scanSource("src/a.ts", "const ok = clock.now();\nconst t = Date.now();\n");
 * assert.deepEqual(found.map((v) => [v.line, v.rule]), [[2, "Date.now"]]);
 * ```
 */
export function scanSource(file: string, source: string, options: ScanOptions = {}): Violation[] {
  const violations: Violation[] = [];
  const lines = source.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const text = lines[index];
    const report = (rule: string) =>
      violations.push({ file, line: index + 1, rule, text: text.trim() });
    for (const { rule, pattern } of RULES) {
      if (pattern.test(text)) report(rule);
    }
    for (const match of text.matchAll(SPECIFIER)) {
      const problem = checkSpecifier(file, match[2], options);
      if (problem !== undefined) report(`${problem}: "${match[2]}"`);
    }
  }
  return violations;
}

/** Formats violations one per line as `file:line: rule: text`, for a failure message. */
export function formatViolations(violations: readonly Violation[]): string {
  return violations.map((v) => `${v.file}:${v.line}: ${v.rule}: ${v.text}`).join("\n");
}
