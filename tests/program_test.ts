import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  parseProgramArgs,
  type ProgramEnvironment,
  type ProgramOptions,
  readClusterKey,
  startProgram,
  UsageError,
} from "../adapters/program.ts";
import { Simulation } from "../sim/simulation.ts";

test("program flags: the defaults make a loopback node", () => {
  const options = parseProgramArgs([]) as ProgramOptions;
  assert.equal(options.host, "127.0.0.1");
  assert.equal(options.port, 8888);
  assert.equal(options.discoveryPort, 9999);
  assert.equal(options.httpPort, 8800);
  assert.equal(options.codec, "msgpack");
  assert.equal(options.broadcast, undefined);
});

test("program flags: every flag is read, in both --flag value and --flag=value forms", () => {
  const options = parseProgramArgs([
    "--guid=NodeX",
    "--host",
    "10.9.0.2",
    "--port",
    "7000",
    "--discovery-port=7001",
    "--broadcast",
    "10.9.0.255",
    "--peers",
    "10.9.0.3:7000, 10.9.0.4:7000",
    "--http-port",
    "0",
    "--codec",
    "json",
    "--worker",
    "template:T1",
    "--worker=template:T2",
    "--heartbeat-ms",
    "500",
    "--silence",
    "4",
    "--json",
  ]) as ProgramOptions;
  assert.equal(options.guid, "NodeX");
  assert.equal(options.host, "10.9.0.2");
  assert.equal(options.port, 7000);
  assert.equal(options.discoveryPort, 7001);
  assert.equal(options.broadcast, "10.9.0.255");
  assert.deepEqual(options.peers, ["10.9.0.3:7000", "10.9.0.4:7000"]);
  assert.equal(options.httpPort, 0);
  assert.equal(options.codec, "json");
  assert.deepEqual(options.workers.map((w) => w.guid), ["T1", "T2"]);
  assert.equal(options.heartbeatMs, 500);
  assert.equal(options.silenceIntervals, 4);
  assert.equal(options.json, true);
  assert.equal(parseProgramArgs(["--help"]), "help");
});

test("program flags: mistakes are UsageErrors that say what is wrong", () => {
  const cases: Array<[string[], RegExp]> = [
    [["--port", "x"], /--port "x"/],
    [["--port", "70000"], /--port/],
    [["--codec", "xml"], /msgpack or json/],
    [["--worker", "unicorn:U1"], /KIND:GUID/],
    [["--host", "0.0.0.0"], /0\.0\.0\.0/],
    [["--http-host", "10.0.0.1"], /--token/],
    [["--bogus"], /unknown flag/],
    [["--guid"], /needs a value/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseProgramArgs(args), (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match((error as Error).message, message);
      return true;
    });
  }
});

test("the program starts a node with its workers on a simulated platform and stops it", async () => {
  const sim = new Simulation({ seed: 5 });
  const host = sim.addHost("h", (platform) => platform);
  const printed: string[] = [];
  const env: ProgramEnvironment = {
    runtime: "sim",
    platform: host.app!,
    subnetBroadcast: () => "10.0.255.255",
    serve: () => Promise.resolve({ port: 8800, close() {} }),
    onSignal() {},
    print: (line) => printed.push(line),
    printError: (line) => printed.push(line),
    exit() {},
  };
  const options = parseProgramArgs([
    "--host",
    host.address,
    "--worker",
    "template:T1",
  ]) as ProgramOptions;
  const running = startProgram(options, env);
  sim.run(10);
  const program = await running;
  assert.equal(program.node.running, true);
  assert.equal(program.node.address, `${host.address}:8888`);
  assert.ok(program.node.worker("T1"));
  assert.ok(
    printed.some((line) => /started .*links=10\.0\.0\.1:8888/.test(line)),
    printed.join("\n"),
  );
  await program.stop();
  assert.equal(program.node.running, false);
});

test("program flags: the cluster key comes inline or from a file, never both, never with json", () => {
  const inline = parseProgramArgs(["--cluster-key", "s3cret"]) as ProgramOptions;
  assert.equal(inline.clusterKey, "s3cret");
  assert.equal(inline.clusterKeyFile, undefined);
  const file = parseProgramArgs(["--cluster-key-file=/run/secrets/automp"]) as ProgramOptions;
  assert.equal(file.clusterKeyFile, "/run/secrets/automp");
  assert.equal(file.clusterKey, undefined);
  const cases: Array<[string[], RegExp]> = [
    [["--cluster-key", "k", "--cluster-key-file", "f"], /together/],
    [["--cluster-key="], /empty/],
    [["--cluster-key-file="], /empty/],
    [["--cluster-key", "k", "--codec", "json"], /original protocol/],
    [["--codec", "json", "--cluster-key-file", "f"], /original protocol/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseProgramArgs(args), (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match((error as Error).message, message);
      return true;
    });
  }
});

test("a key file gives its bytes without trailing whitespace, the same key as inline text", async () => {
  const readFile = (text: string) => () => Promise.resolve(new TextEncoder().encode(text));
  const fromFile = await readClusterKey(
    { clusterKey: undefined, clusterKeyFile: "key" },
    { readFile: readFile("s3cret \r\n\n") },
  );
  assert.deepEqual(fromFile, new TextEncoder().encode("s3cret"));
  assert.equal(
    await readClusterKey({ clusterKey: "s3cret", clusterKeyFile: undefined }, {}),
    "s3cret",
  );
  await assert.rejects(
    readClusterKey({ clusterKey: undefined, clusterKeyFile: "key" }, { readFile: readFile("\n") }),
    (error: unknown) => error instanceof UsageError && /holds no key/.test(error.message),
  );
  await assert.rejects(
    readClusterKey({ clusterKey: undefined, clusterKeyFile: "missing" }, {
      readFile: () => Promise.reject(new Error("No such file")),
    }),
    (error: unknown) =>
      error instanceof UsageError && /Cannot read --cluster-key-file missing: No such/.test(
        error.message,
      ),
  );
  // Without an environment reader, the file is read with node:fs.
  const dir = mkdtempSync(join(tmpdir(), "automp-key-"));
  try {
    writeFileSync(join(dir, "key"), "from disk\n");
    assert.deepEqual(
      await readClusterKey({ clusterKey: undefined, clusterKeyFile: join(dir, "key") }, {}),
      new TextEncoder().encode("from disk"),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the program starts a keyed node when given a key file", async () => {
  const sim = new Simulation({ seed: 6 });
  const host = sim.addHost("h", (platform) => platform);
  const printed: string[] = [];
  const env: ProgramEnvironment = {
    runtime: "sim",
    platform: host.app!,
    subnetBroadcast: () => "10.0.255.255",
    serve: () => Promise.resolve({ port: 8800, close() {} }),
    readFile: () => Promise.resolve(new TextEncoder().encode("s3cret\n")),
    onSignal() {},
    print: (line) => printed.push(line),
    printError: (line) => printed.push(line),
    exit() {},
  };
  const options = parseProgramArgs([
    "--host",
    host.address,
    "--cluster-key-file",
    "key",
  ]) as ProgramOptions;
  let program: Awaited<ReturnType<typeof startProgram>> | undefined;
  const running = startProgram(options, env).then((started) => program = started);
  // The key file is read asynchronously; virtual time runs while the program starts.
  for (let i = 0; i < 100 && program === undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    sim.run(10);
  }
  await running;
  assert.equal(program!.node.state().authenticated, true);
  assert.ok(printed.some((line) => /started .* key=set/.test(line)), printed.join("\n"));
  await program!.stop();
});
