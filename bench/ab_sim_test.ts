import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtimeName } from "./_harness.ts";

/** Runs `bench/ab_sim.ts` with `args` in a runtime like this one; its output and exit code. */
function abSim(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  const script = fileURLToPath(new URL("./ab_sim.ts", import.meta.url));
  const command = runtimeName() === "deno" ? ["run", "-A", script, ...args] : [script, ...args];
  return new Promise((resolve) => {
    execFile(process.execPath, command, { timeout: 120_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ stdout, stderr, code });
    });
  });
}

const root = fileURLToPath(new URL("..", import.meta.url));

test("ab_sim in two processes compares a checkout with itself: one trace, both sides timed", async () => {
  const small = ["--nodes", "12", "--windows", "3", "--window-ms", "2000", "--heap-mb", "2000"];
  const { stdout, stderr, code } = await abSim([root, root, ...small, "--processes", "--json"]);
  assert.equal(code, 0, stderr);
  const found = JSON.parse(stdout.trim().split("\n").at(-1)!);
  assert.equal(found.processes, true);
  assert.equal(found.nodes, 12);
  assert.equal(found.windows, 3);
  assert.equal(found.sameTrace, true, "the same checkout and seed run the same simulation");
  for (const key of ["speedA", "speedB", "ratio", "ratioMin", "ratioMax"]) {
    assert.ok(Number.isFinite(found[key]) && found[key] > 0, `${key}: ${found[key]}`);
  }
  assert.ok(found.ratioMin <= found.ratioMedian && found.ratioMedian <= found.ratioMax);
});

test("ab_sim in two processes names the side that could not start and fails", async () => {
  const { code, stderr } = await abSim([
    "/nonexistent-checkout",
    root,
    "--nodes",
    "4",
    "--windows",
    "1",
    "--processes",
  ]);
  assert.notEqual(code, 0);
  assert.match(stderr, /Cannot load the checkout at \/nonexistent-checkout/);
  assert.match(stderr, /Cannot compare: side A exited/);
});
