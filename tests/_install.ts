/**
 * Makes `node_modules` match package.json before a test run, so that the README's test command
 * is all the set-up a fresh clone needs (`deno task test`, `deno task test:deno` or
 * `deno task test:bun`, in any order).
 *
 * Deno resolves the `npm:` imports of deno.json from its own cache, but some tests need files
 * from `node_modules`: the npm package test compiles with `node_modules/typescript`, the
 * Moleculer peer test loads `moleculer`, `deno check` reads `@types/bun`, and Bun resolves every
 * import from there. Both test runners call {@link ensureNodeModules} first.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = new URL("../", import.meta.url);
const rootPath = fileURLToPath(root);

/** One package of package.json that `node_modules` lacks or holds at another version. */
export interface StalePackage {
  /** The package name, e.g. `typescript`. */
  readonly name: string;
  /** The version package.json pins. */
  readonly wanted: string;
  /** The version installed, or undefined when the package is missing. */
  readonly installed: string | undefined;
}

/**
 * The packages of package.json (`dependencies` and `devDependencies`) that `node_modules`
 * lacks or holds at a version other than the pinned one. Reads with `node:fs`, so it works on
 * Deno, Bun and Node.
 *
 * @example
 * ```ts
 * import { staleNodeModules } from "./_install.ts";
 * for (const stale of staleNodeModules()) {
 *   console.log(`${stale.name}: want ${stale.wanted}, have ${stale.installed ?? "nothing"}`);
 * }
 * ```
 */
export function staleNodeModules(directory: URL = root): StalePackage[] {
  const manifest = JSON.parse(readFileSync(new URL("package.json", directory), "utf8"));
  const pinned: Record<string, string> = {
    ...(manifest.dependencies ?? {}),
    ...(manifest.devDependencies ?? {}),
  };
  const stale: StalePackage[] = [];
  for (const [name, wanted] of Object.entries(pinned)) {
    let installed: string | undefined;
    try {
      installed = JSON.parse(
        readFileSync(new URL(`node_modules/${name}/package.json`, directory), "utf8"),
      ).version;
    } catch {
      installed = undefined;
    }
    if (installed !== wanted) stale.push({ name, wanted, installed });
  }
  return stale;
}

async function commandWorks(command: string): Promise<boolean> {
  try {
    const output = await new Deno.Command(command, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
      stdin: "null",
    }).output();
    return output.success;
  } catch {
    return false;
  }
}

/**
 * What {@link ensureNodeModules} found: `"ready"` (up to date, perhaps after installing),
 * `"no-npm"` (stale, and no npm on PATH to install with) or `"failed"` (npm ran and failed).
 */
export type InstallOutcome = "ready" | "no-npm" | "failed";

/**
 * Installs package.json's packages into `node_modules` when any is missing or stale: `npm ci`
 * (exactly package-lock.json; one retry, since a fresh machine fetches a lot and a transfer can
 * drop). Prints what it does on stderr, prefixed with `who`. Without npm it says so and
 * resolves to `"no-npm"`, so a caller with another installer (Bun) can use that.
 *
 * @example
 * ```ts ignore
 * import { ensureNodeModules } from "./_install.ts";
 * if (await ensureNodeModules("test:deno") !== "ready") Deno.exit(1);
 * ```
 */
export async function ensureNodeModules(who: string): Promise<InstallOutcome> {
  const stale = staleNodeModules();
  if (stale.length === 0) return "ready";
  const names = stale.map((p) => `${p.name}@${p.wanted}`).join(", ");
  if (!await commandWorks("npm")) {
    console.error(`${who}: node_modules lacks ${names} and there is no npm to install it`);
    return "no-npm";
  }
  const hasLock = (() => {
    try {
      Deno.statSync(new URL("package-lock.json", root));
      return true;
    } catch {
      return false;
    }
  })();
  const args = hasLock ? ["ci", "--no-audit", "--no-fund"] : ["install", "--no-audit", "--no-fund"];
  for (let attempt = 1; attempt <= 2; attempt++) {
    console.error(`${who}: node_modules lacks ${names}; npm ${args[0]} (attempt ${attempt} of 2)`);
    const status = await new Deno.Command("npm", {
      args,
      cwd: rootPath,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn().status;
    if (status.success && staleNodeModules().length === 0) return "ready";
  }
  const left = staleNodeModules().map((p) => p.name).join(", ");
  console.error(`${who}: Cannot install node_modules with npm; still missing or stale: ${left}`);
  return "failed";
}
