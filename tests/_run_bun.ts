/**
 * Runs the test suite on Bun: `deno task test:bun [bun test options…]`.
 *
 * The suite is written once against `node:test`; Deno runs it with `deno test`, and this script
 * runs the same files with `bun test` so that nobody needs Bun installed by hand:
 *
 * 1. If `node_modules` lacks a package of package.json at its pinned version, it installs
 *    them: with `npm ci` when npm is on PATH (see `tests/_install.ts`, shared with
 *    `test:deno`), otherwise with `bun install --no-save`.
 * 2. It picks a Bun of exactly {@link BUN_VERSION}: the one CI installs into `.ci/tools/`, else
 *    `bun` on PATH, else `npx -y bun@<version>`. A `bun` of another version is used only when
 *    npx is missing, with a warning.
 * 3. It runs `bun test --timeout 120000 ./bench ./src ./sim ./tests ./adapters ./examples ./build` plus
 *    the arguments given, and exits with Bun's exit code. Arguments starting with `./` or `../`
 *    are paths and replace the default directories (Bun treats other bare words as file-name
 *    filters).
 *
 * Bun's default per-test timeout is 5 s; simulator tests may run longer, hence the 120 s.
 *
 * @module
 */

import { ensureNodeModules } from "./_install.ts";

/** The Bun release the suite is tested on; tests/tooling/versions_test.ts keeps every pin equal. */
export const BUN_VERSION = "1.4.5";

/**
 * Directories whose `*_test.ts` files Bun runs, relative to the repository root: the
 * directories of deno.json's `test.include` (tests/tooling/install_test.ts keeps them equal).
 */
export const BUN_TEST_DIRS: readonly string[] = [
  "./bench",
  "./src",
  "./sim",
  "./tests",
  "./adapters",
  "./examples",
  "./build",
];

const BUN_TEST_TIMEOUT_MS = 120_000;

const root = new URL("../", import.meta.url);
const rootPath = decodeURIComponent(root.pathname);

/** The version a command prints for `--version`, or undefined if it cannot run. */
async function versionOf(command: readonly string[]): Promise<string | undefined> {
  try {
    const output = await new Deno.Command(command[0], {
      args: [...command.slice(1), "--version"],
      cwd: rootPath,
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).output();
    if (!output.success) return undefined;
    return new TextDecoder().decode(output.stdout).trim();
  } catch {
    return undefined;
  }
}

async function run(command: readonly string[]): Promise<number> {
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    cwd: rootPath,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const status = await child.status;
  return status.code;
}

async function pickBun(): Promise<string[]> {
  const local = `${rootPath}.ci/tools/node_modules/.bin/bun`;
  const candidates: string[][] = [[local], ["bun"]];
  let otherVersion: string[] | undefined;
  for (const candidate of candidates) {
    const version = await versionOf(candidate);
    if (version === BUN_VERSION) return candidate;
    if (version !== undefined && otherVersion === undefined) otherVersion = candidate;
  }
  if (await versionOf(["npx"]) !== undefined) {
    console.error(`test:bun: fetching Bun ${BUN_VERSION} with npx`);
    return ["npx", "-y", `bun@${BUN_VERSION}`];
  }
  if (otherVersion !== undefined) {
    const which = otherVersion[0];
    console.error(`test:bun: warning: no npx, so using ${which}, which is not Bun ${BUN_VERSION}`);
    return otherVersion;
  }
  throw new Error(`Cannot run the Bun tests: no Bun ${BUN_VERSION}, no bun on PATH, and no npx`);
}

async function main(args: readonly string[]): Promise<number> {
  const installed = await ensureNodeModules("test:bun");
  if (installed === "failed") return 1;
  const bun = await pickBun();
  if (installed === "no-npm") {
    console.error("test:bun: installing node_modules with bun install instead");
    const code = await run([...bun, "install", "--no-save"]);
    if (code !== 0) return code;
  }
  const givesPaths = args.some((arg) => arg.startsWith("./") || arg.startsWith("../"));
  const givesTimeout = args.some((arg) => arg === "--timeout" || arg.startsWith("--timeout="));
  return await run([
    ...bun,
    "test",
    ...(givesTimeout ? [] : ["--timeout", String(BUN_TEST_TIMEOUT_MS)]),
    ...(givesPaths ? [] : BUN_TEST_DIRS),
    ...args,
  ]);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
