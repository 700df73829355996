/**
 * What every step of the npm build (`npm-build.ts`) shares: the repository root, the error a
 * failed step throws, path helpers, a sorted file listing and running a command.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** Absolute path of the repository root (where deno.json is). */
export const ROOT: string = dirname(dirname(fileURLToPath(import.meta.url)));

/**
 * A step of the build that failed: what to look at is in the message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NpmBuildError } from "./_common.ts";
 * const error = new NpmBuildError("Cannot build: README.md is missing");
 * assert.equal(error.name, "NpmBuildError");
 * ```
 */
export class NpmBuildError extends Error {
  override name = "NpmBuildError";
}

/**
 * A path with `/` separators, whatever the platform's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { posix } from "./_common.ts";
 * assert.equal(posix("src/node.ts"), "src/node.ts");
 * ```
 */
export function posix(path: string): string {
  return path.split(sep).join("/");
}

/**
 * Whether `path` is `dir` or below it (both absolute, or both relative to the same place).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isInside } from "./_common.ts";
 * assert.equal(isInside("/repo/npm", "/repo"), true);
 * assert.equal(isInside("/repo", "/repo/npm"), false);
 * ```
 */
export function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/**
 * The JSON object in a file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { readJson, ROOT } from "./_common.ts";
 * assert.equal(readJson(join(ROOT, "deno.json")).name, "@automp/automp");
 * ```
 */
export function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, "utf8"));
}

/**
 * Every file under `dir`, relative to it with `/` separators, in a fixed (sorted) order;
 * `skip` leaves out a file or a whole directory by its relative path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { listFiles, ROOT } from "./_common.ts";
 * assert.ok(listFiles(join(ROOT, "build")).includes("_common.ts"));
 * ```
 */
export function listFiles(dir: string, skip: (rel: string) => boolean = () => false): string[] {
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

/** What a finished command left: its exit status (null if killed) and its output. */
export interface Ran {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link run}. */
export interface RunOptions {
  /** Working directory; default {@link ROOT}. */
  readonly cwd?: string;
  /** The command is killed after this long; default 5 minutes. */
  readonly timeoutMs?: number;
  /** Let stdout through to this process's stdout instead of capturing it. */
  readonly inheritStdout?: boolean;
}

/**
 * Runs a command to its end and returns its status and output; throws
 * {@link NpmBuildError} only if it cannot be started.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { run } from "./_common.ts";
 * assert.match(run("node", ["--version"]).stdout, /^v\d+/);
 * ```
 */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Ran {
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
