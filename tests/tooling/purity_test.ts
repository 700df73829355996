import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import {
  formatViolations,
  PROJECT_IMPORT_ROOTS,
  type ScanOptions,
  scanSource,
  type Violation,
} from "./_purity.ts";

const root = new URL("../../", import.meta.url);
const SCANNED_DIRS = ["src/", "sim/"];
const SOURCE = /\.(?:ts|tsx|mts|cts|js|mjs|cjs)$/;
const TEST_FILE = /[._]test\.[^/]+$/;
// The simulator's command line is an edge like mod.ts: it may read arguments and print.
const EXEMPT = new Set(["sim/cli.ts"]);

function listSources(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(new URL(dir, root), { withFileTypes: true });
  } catch {
    return []; // git keeps no empty directories: a fresh clone may lack sim/
  }
  const files: string[] = [];
  for (const entry of entries) {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory()) files.push(...listSources(`${path}/`));
    else if (SOURCE.test(entry.name) && !TEST_FILE.test(entry.name) && !EXEMPT.has(path)) {
      files.push(path);
    }
  }
  return files.sort();
}

function projectOptions(): ScanOptions {
  const config = JSON.parse(readFileSync(new URL("deno.json", root), "utf8"));
  return {
    allowedImports: Object.keys(config.imports ?? {}),
    packageName: config.name,
    importRoots: PROJECT_IMPORT_ROOTS,
  };
}

function scan(file: string, source: string): Violation[] {
  return scanSource(file, source, projectOptions());
}

function rulesOf(file: string, source: string): string[] {
  return scan(file, source).map((v) => v.rule);
}

test("src/ and sim/ reach time, randomness, I/O and the runtime only through the seam", () => {
  const files = SCANNED_DIRS.flatMap(listSources);
  assert.ok(files.some((f) => f.startsWith("src/")), "found no source file in src/");
  const violations = files.flatMap((file) => scan(file, readFileSync(new URL(file, root), "utf8")));
  assert.equal(
    violations.length,
    0,
    `Forbidden uses in src/ or sim/ (see tests/tooling/_purity.ts for the rules):\n${
      formatViolations(violations)
    }`,
  );
});

test("Date.now() appended to a real src/ file is reported at its line", () => {
  const file = listSources("src/")[0];
  const original = readFileSync(new URL(file, root), "utf8");
  const tainted = `${original.replace(/\n?$/, "\n")}export const startedAtMs = Date.now();\n`;
  const line = tainted.split("\n").length - 1;
  const found = scan(file, tainted);
  assert.ok(
    found.some((v) => v.line === line && v.rule === "Date.now" && v.file === file),
    formatViolations(found),
  );
});

test("every forbidden API is reported, with its file and line", () => {
  const cases: [string, string][] = [
    ["Deno.*", "const port = Deno.env.get('PORT');"],
    ["Deno.*", "const d = globalThis.Deno?.version;"],
    ["Bun.*", "Bun.serve({ fetch });"],
    ["process.*", "process.exit(1);"],
    ["process.*", "const argv = globalThis.process.argv;"],
    ["Date.now", "const t = Date.now();"],
    ["Date.now", "const t = globalThis.Date.now();"],
    ["Date() without arguments", "const d = new Date();"],
    ["performance.now", "const t = performance.now();"],
    ["Math.random", "const r = Math.random();"],
    ["crypto randomness", "const id = crypto.randomUUID();"],
    ["crypto randomness", "crypto.getRandomValues(bytes);"],
    ["real timer", "setTimeout(() => tick(), 10);"],
    ["real timer", "const id = setInterval(tick, 10);"],
    ["real timer", "globalThis.setTimeout(tick, 0);"],
    ["real timer", "const later = setTimeout;"],
    ["real timer", "  setImmediate(tick);"],
    ["dynamic global access", 'const t = globalThis["setTimeout"];'],
    ["node: import", 'import { createServer } from "node:net";'],
    ["node: import", 'import type { Socket } from "node:net";'],
    ["node: import", 'const fs = await import("node:fs");'],
    ["node: import", 'export { Buffer } from "node:buffer";'],
    ["node: import", 'const os = require("node:os");'],
  ];
  for (const [rule, line] of cases) {
    const found = scan("src/sample.ts", `// line one\n${line}\n`);
    assert.ok(
      found.some((v) => v.rule === rule && v.line === 2 && v.file === "src/sample.ts"),
      `expected ${rule} in ${JSON.stringify(line)}, got ${JSON.stringify(found)}`,
    );
  }
});

test("methods of seam objects and look-alike names are not reported", () => {
  const clean = [
    "const t = clock.now();",
    "const timer = clock.schedule(10, tick);",
    "this.setTimeout(tick, 10);",
    "platform.clock.setInterval(tick, 5);",
    "const r = random.next();",
    "const d = new Date(wallMs);",
    "const iso = new Date(0).toISOString();",
    "worker.process.send(message);",
    "function processFrame(bytes: Uint8Array) {}",
    "const myDate = toDate();",
    "// Runs the same on Deno. Bun runs it too, and so does Node.",
    "const copy = Array.from(items);",
    'import { encode } from "@msgpack/msgpack";',
    'import { Hono } from "hono";',
    'import { cors } from "hono/cors";',
    'import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";',
    'import fc from "fast-check";',
    'import { Node } from "./node.ts";',
    'import type { Platform } from "../src/platform.ts";',
    ' * import { startNode } from "@automp/automp";',
    ' * import { simulate } from "@automp/automp/sim";',
  ];
  for (const line of clean) {
    assert.deepEqual(rulesOf("src/sample.ts", line), [], line);
  }
  assert.deepEqual(rulesOf("sim/world.ts", 'import { Node } from "../src/node.ts";'), []);
});

test("imports that Bun cannot resolve or that point the wrong way are reported", () => {
  assert.deepEqual(rulesOf("src/a.ts", 'import { assert } from "jsr:@std/assert";'), [
    'import not in deno.json imports: "jsr:@std/assert"',
  ]);
  assert.deepEqual(rulesOf("src/a.ts", 'import { x } from "npm:left-pad@1.3.0";'), [
    'import not in deno.json imports: "npm:left-pad@1.3.0"',
  ]);
  assert.deepEqual(rulesOf("src/a.ts", 'import net from "net";'), [
    'import not in deno.json imports: "net"',
  ]);
  assert.deepEqual(rulesOf("src/a.ts", 'import { World } from "../sim/world.ts";'), [
    'import outside src/: "../sim/world.ts"',
  ]);
  assert.deepEqual(rulesOf("src/deep/a.ts", 'import { x } from "../../adapters/deno/mod.ts";'), [
    'import outside src/: "../../adapters/deno/mod.ts"',
  ]);
  assert.deepEqual(rulesOf("sim/a.ts", 'import { main } from "../mod.ts";'), [
    'import outside src/ and sim/: "../mod.ts"',
  ]);
});

test("a violation is formatted as file:line: rule: text", () => {
  const found = scan("sim/net.ts", "\n\n  const r = Math.random();\n");
  assert.equal(formatViolations(found), "sim/net.ts:3: Math.random: const r = Math.random();");
});
