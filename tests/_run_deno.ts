/**
 * Runs the test suite on Deno: `deno task test:deno [deno test options and files…]`.
 *
 * 1. Brings `node_modules` up to package.json (see `tests/_install.ts`), so that a fresh clone
 *    needs nothing run first.
 * 2. Runs `deno test -A --doc` plus the arguments given, with the Deno running this script:
 *    every `*_test.ts` under deno.json's `test.include`, and every JSDoc `@example` block there
 *    (type-checked and run, each as a test named `file.ts#line-line.ts`). Pass `--no-doc` to
 *    leave the examples out of a quick run.
 *
 * @module
 */

import { ensureNodeModules } from "./_install.ts";

async function main(args: readonly string[]): Promise<number> {
  if (await ensureNodeModules("test:deno") !== "ready") return 1;
  const noDoc = args.includes("--no-doc");
  const rest = args.filter((arg) => arg !== "--no-doc");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", ...(noDoc ? [] : ["--doc"]), ...rest],
    cwd: decodeURIComponent(new URL("../", import.meta.url).pathname),
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  return (await child.status).code;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
