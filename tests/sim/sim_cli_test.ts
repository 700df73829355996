import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { runSimCli, runUntilConverged, type SimRunReport } from "../../sim/cli.ts";
import { createSimCluster } from "../../sim/cluster.ts";

function runJson(args: string[]): SimRunReport {
  const result = runSimCli([...args, "--json"]);
  assert.equal(result.stderr, "");
  assert.equal(result.code, 0);
  assert.equal(result.stdout.trimEnd().split("\n").length, 1, "expected one line");
  return JSON.parse(result.stdout);
}

test("a 10-node cluster converges within 3 simulated seconds and the JSON line says so", () => {
  const report = runJson(["--nodes", "10", "--seconds", "3", "--seed", "1"]);
  assert.equal(report.nodes, 10);
  assert.equal(report.seed, 1);
  assert.equal(report.simulated_ms, 3000);
  assert.notEqual(report.converged_at_ms, null);
  assert.ok(report.converged_at_ms! <= 3000, `converged at ${report.converged_at_ms} ms`);
  assert.equal(report.links, 45);
  assert.equal(report.worker_locations_known, 90);
  assert.equal(report.link_failures, 0);
  assert.equal(report.protocol_errors, 0);
  assert.match(report.trace_hash, /^[0-9a-f]{16}$/);
  assert.ok(report.events > 0 && report.wall_ms >= 0 && report.speedup > 0);
});

test("the same flags give the same trace hash; another seed gives another", () => {
  const flags = ["--nodes", "6", "--seconds", "2", "--loss", "0.2", "--latency-ms", "1..20"];
  const first = runJson([...flags, "--seed", "7"]);
  const second = runJson([...flags, "--seed", "7"]);
  const other = runJson([...flags, "--seed", "8"]);
  assert.equal(first.trace_hash, second.trace_hash);
  assert.equal(first.events, second.events);
  assert.equal(first.converged_at_ms, second.converged_at_ms);
  assert.notEqual(first.trace_hash, other.trace_hash);
});

test("without --json the summary carries the same numbers", () => {
  const args = ["--nodes", "4", "--seconds", "1", "--seed", "3"];
  const report = runJson(args);
  const { code, stdout } = runSimCli(args);
  assert.equal(code, 0);
  assert.match(stdout, /6\/6 links/);
  assert.match(stdout, /12\/12 worker locations/);
  assert.ok(stdout.includes(`converged at ${report.converged_at_ms} ms`), stdout);
  assert.ok(stdout.includes(report.trace_hash), stdout);
});

test("a bad flag exits with code 2 and a one-line reason, no stack trace", () => {
  const cases: Array<[string[], RegExp]> = [
    [["--nodez", "3"], /--nodez/],
    [["--nodes", "0"], /--nodes/],
    [["--nodes", "2.5"], /--nodes/],
    [["--seconds"], /needs a value/],
    [["--seconds", "-1"], /--seconds/],
    [["--seed", "x"], /not a number/],
    [["--loss", "1.5"], /--loss/],
    [["--latency-ms", "5..1"], /--latency-ms/],
    [["--latency-ms", "1..2..3"], /--latency-ms/],
    [["--json=yes"], /--json/],
    [["stray"], /stray/],
  ];
  for (const [args, reason] of cases) {
    const result = runSimCli(args);
    assert.equal(result.code, 2, `${args.join(" ")}: code ${result.code}`);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, reason);
    assert.match(result.stderr, /^sim: Cannot /);
    assert.doesNotMatch(result.stderr, /\n\s+at /, "a stack trace");
  }
});

test("--help prints the usage and runs nothing", () => {
  const result = runSimCli(["--help"]);
  assert.equal(result.code, 0);
  for (const flag of ["--nodes", "--seconds", "--seed", "--loss", "--latency-ms", "--json"]) {
    assert.ok(result.stdout.includes(flag), `usage lacks ${flag}`);
  }
});

test("the bare -- that deno task passes on and --flag=value are accepted", () => {
  const spaced = runJson(["--", "--nodes", "3", "--seconds", "1", "--latency-ms", "2..4"]);
  const joined = runJson(["--nodes=3", "--seconds=1", "--latency-ms=2..4"]);
  assert.equal(spaced.trace_hash, joined.trace_hash);
  assert.equal(joined.latency_ms_min, 2);
  assert.equal(joined.latency_ms_max, 4);
});

test("runUntilConverged stops at the instant converged() first holds", () => {
  const options = { nodes: 12, seed: 5, lossProbability: 0.2, latencyMsMin: 1, latencyMsMax: 30 };
  const plain = createSimCluster(options);
  assert.ok(plain.sim.runUntil(() => plain.converged(), 10_000));
  const quick = createSimCluster(options);
  assert.equal(runUntilConverged(quick, 10_000), plain.sim.now);
  assert.equal(quick.sim.traceHash, plain.sim.traceHash);
  const deaf = createSimCluster({ ...options, lossProbability: 1 });
  assert.equal(runUntilConverged(deaf, 2000), null);
  assert.equal(deaf.sim.now, 2000);
});

test("the CLI run as a program on this runtime prints one JSON line", () => {
  const g = globalThis as { Deno?: { execPath(): string }; process?: { execPath: string } };
  const cli = fileURLToPath(new URL("../../sim/cli.ts", import.meta.url));
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const flags = ["--nodes", "5", "--seconds", "2", "--seed", "1", "--json"];
  const [command, args] = g.Deno
    ? [g.Deno.execPath(), ["run", "-A", cli, ...flags]]
    : [g.process!.execPath, [cli, ...flags]];
  const result = spawnSync(command, args, { cwd: root, encoding: "utf8", timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  assert.equal(lines.length, 1, result.stdout);
  const report: SimRunReport = JSON.parse(lines[0]);
  assert.equal(report.links, 10);
  assert.equal(report.worker_locations_known, 20);
  assert.equal(report.trace_hash, runJson(flags.slice(0, -1)).trace_hash);
});

test("--replay runs a user's scenario file from the module it names, exactly, twice alike", async () => {
  const { runSimCliAsync } = await import("../../sim/cli.ts");
  const { echoes } = await import("./_scenario_fixture.ts");
  const { replayFile, runScenario } = await import("../../sim/scenario.ts");
  const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const scenario = {
    version: 1 as const,
    seed: 17,
    nodes: 3,
    durationMs: 2000,
    settleMs: 10_000,
    latencyMsMin: 1,
    latencyMsMax: 4,
    faults: [{ atMs: 300, kind: "crash" as const, node: 2 }],
    traffic: [{ atMs: 100, from: 0, value: 2 }, { atMs: 600, from: 1, value: 2 }],
  };
  const dir = mkdtempSync(join(tmpdir(), "automp-scenario-"));
  try {
    const file = join(dir, "failure.json");
    writeFileSync(file, JSON.stringify(replayFile(echoes, scenario)));
    const first = await runSimCliAsync(["--replay", file]);
    const second = await runSimCliAsync(["--", "--replay", file]);
    assert.equal(first.code, 1, first.stderr);
    const line = JSON.parse(first.stdout);
    assert.equal(line.scenario, "fixture echoes");
    assert.deepEqual(line.violations, ["check: a node was restarted"]);
    assert.equal(line.trace_hash, JSON.parse(second.stdout).trace_hash);
    assert.equal(line.trace_hash, runScenario(echoes, scenario).traceHash, "same as in-process");

    // As a program, the way the failure message says, with the module given relative to cwd.
    writeFileSync(
      file,
      JSON.stringify({
        ...replayFile(echoes, scenario),
        module: "./tests/sim/_scenario_fixture.ts",
      }),
    );
    const g = globalThis as { Deno?: { execPath(): string }; process?: { execPath: string } };
    const cli = fileURLToPath(new URL("../../sim/cli.ts", import.meta.url));
    const root = fileURLToPath(new URL("../../", import.meta.url));
    const [command, args] = g.Deno
      ? [g.Deno.execPath(), ["run", "-A", cli, "--replay", file]]
      : [g.process!.execPath, [cli, "--replay", file]];
    const program = spawnSync(command, args, { cwd: root, encoding: "utf8", timeout: 60_000 });
    assert.equal(program.status, 1, program.stderr);
    assert.equal(JSON.parse(program.stdout).trace_hash, line.trace_hash);

    const bad = (content: unknown) => {
      writeFileSync(file, JSON.stringify(content));
      return runSimCliAsync(["--replay", file]);
    };
    const file0 = replayFile(echoes, scenario);
    const unknown = await bad({ ...file0, name: "nope" });
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /no exported scenario named "nope" \(exported: "fixture echoes"\)/,
    );
    const missing = await bad({ ...file0, module: "./no/such/module.ts" });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Cannot replay .*failure\.json/);
    const noModule = await bad({ ...file0, module: null });
    assert.match(noModule.stderr, /the file names no module/);
    const outOfRange = await bad({ ...file0, scenario: { ...scenario, nodes: 0 } });
    assert.equal(outOfRange.code, 2);
    assert.match(outOfRange.stderr, /nodes 0 not in 1..1000/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
