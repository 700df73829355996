import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEFAULT_CAMERA_URL,
  exampleWorkerKinds,
  parseProgramArgs,
  type ProgramEnvironment,
  type ProgramOptions,
  readClusterKey,
  startProgram,
  UsageError,
} from "../../adapters/program.ts";
import { Simulation } from "../../sim/simulation.ts";
import { RecordingWorker } from "../../sim/cluster.ts";
import { MemoryStorage, type Storage } from "../../src/storage.ts";
import { rendezvousScore } from "../../src/placement.ts";
import type { FetchImage } from "../../src/workers/camera.ts";
import { KeyValueStoreWorker } from "../../src/workers/kv.ts";
import type { IPCameraWorker } from "../../src/workers/camera.ts";
import { SchedulerWorker } from "../../src/workers/scheduler.ts";
import { EchoWorker, TemplateWorker } from "../../src/worker.ts";

test("program flags: the defaults make a loopback node", () => {
  const options = parseProgramArgs([]) as ProgramOptions;
  assert.equal(options.host, "127.0.0.1");
  assert.equal(options.port, 8888);
  assert.equal(options.discoveryPort, 9999);
  assert.equal(options.httpPort, 8800);
  assert.equal(options.codec, "msgpack");
  assert.equal(options.membership, "mesh");
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
    "--membership=mesh",
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
    [["--membership", "star"], /expected mesh or ring/],
    [["--membership", "ring", "--codec", "json"], /needs the native protocol/],
    [["--membership", "ring", "--cluster-key", "k".repeat(32)], /not signed yet/],
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

test("program flags: the example workers, --data-dir and the camera flags", () => {
  const options = parseProgramArgs([
    "--worker",
    "kv:Store7",
    "--worker",
    "camera:Cam1@http://127.0.0.1:8081/still.png",
    "--worker=camera:Cam2",
    "--worker",
    "scheduler:Sched1",
    "--worker",
    "echo:E1",
    "--data-dir",
    "/var/lib/automp",
    "--camera-store",
    "Store9",
    "--camera-interval-ms=500",
    "--camera-timeout-ms",
    "300",
  ]) as ProgramOptions;
  assert.deepEqual(options.workers, [
    { kind: "kv", guid: "Store7", argument: undefined },
    { kind: "camera", guid: "Cam1", argument: "http://127.0.0.1:8081/still.png" },
    { kind: "camera", guid: "Cam2", argument: undefined },
    { kind: "scheduler", guid: "Sched1", argument: undefined },
    { kind: "echo", guid: "E1", argument: undefined },
  ]);
  assert.equal(options.dataDir, "/var/lib/automp");
  assert.equal(options.cameraStore, "Store9");
  assert.equal(options.cameraIntervalMs, 500);
  assert.equal(options.cameraTimeoutMs, 300);
  const defaults = parseProgramArgs([]) as ProgramOptions;
  assert.equal(defaults.dataDir, undefined);
  assert.equal(defaults.cameraIntervalMs, 2000);
  const cases: Array<[string[], RegExp]> = [
    [["--worker", "echo:E1@http://127.0.0.1/x"], /only a camera takes an @URL/],
    [["--worker", "camera:C1@ftp://127.0.0.1/x"], /http:\/\/ or https:\/\//],
    [["--worker", "kv:S1", "--worker", "echo:S1"], /given twice/],
    [["--data-dir="], /path is empty/],
    [["--camera-store", ""], /GUID is empty/],
    [["--camera-interval-ms", "5"], /10\.\.86400000/],
    [["--camera-timeout-ms", "soon"], /10\.\.86400000/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseProgramArgs(args), (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match((error as Error).message, message);
      return true;
    });
  }
});

test("the worker kinds registry makes every example worker from a GUID and text parameters", () => {
  const fetchImage: FetchImage = () => Promise.resolve(new Uint8Array([1]));
  const kinds = exampleWorkerKinds({ fetchImage, cameraStore: "StoreX", cameraIntervalMs: 700 });
  assert.deepEqual([...kinds.keys()], ["template", "echo", "kv", "camera", "scheduler"]);
  assert.ok(kinds.get("template")!("T1", { intervalMs: "1000" }) instanceof TemplateWorker);
  assert.ok(kinds.get("echo")!("E1", {}) instanceof EchoWorker);
  assert.ok(kinds.get("kv")!("K1", { maxValueBytes: "1024" }) instanceof KeyValueStoreWorker);
  const camera = kinds.get("camera")!("C1", {}) as IPCameraWorker;
  assert.equal(camera.url, DEFAULT_CAMERA_URL);
  assert.equal(camera.store, "StoreX", "the environment's store by default");
  const other = kinds.get("camera")!("C2", { url: "http://127.0.0.1:1/a.png", store: "S2" });
  assert.equal((other as IPCameraWorker).store, "S2");
  const scheduler = kinds.get("scheduler")!("S1", {
    entries: JSON.stringify([
      { id: "a", destination: "K1", message: { command: "get", key: "k" }, everyMs: 1000 },
      { id: "b", destination: "K1", message: { command: "set", key: "k" }, at: 5, data: "AQI=" },
    ]),
  });
  assert.ok(scheduler instanceof SchedulerWorker);
  assert.throws(() => kinds.get("kv")!("K2", { colour: "blue" }), /unknown parameter "colour"/);
  assert.throws(() => kinds.get("template")!("T2", { intervalMs: "-1" }), /not a whole number/);
  assert.throws(() => kinds.get("scheduler")!("S2", { entries: "{" }), /not JSON/);
  assert.throws(
    () => kinds.get("scheduler")!("S3", { entries: JSON.stringify([{ id: "x" }]) }),
    /no destination/,
  );
});

/** A program environment on a simulated host, recording what it prints. */
function simEnvironment(seed: number, extra: Partial<ProgramEnvironment> = {}) {
  const sim = new Simulation({ seed });
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
    ...extra,
  };
  return { sim, host, env, printed };
}

/** Runs virtual time while `promise` (which may wait for real I/O) settles. */
async function drive<T>(sim: Simulation, promise: Promise<T>, stepMs = 10): Promise<T> {
  let settled = false;
  // Observed at once, so that a rejection is not reported as unhandled while time runs.
  const outcome = promise.then(
    (value) => ({ value, error: undefined, failed: false }),
    (error: unknown) => ({ value: undefined, error, failed: true }),
  ).finally(() => (settled = true));
  for (let i = 0; i < 2000 && !settled; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    sim.run(stepMs);
  }
  const result = await outcome;
  if (result.failed) throw result.error;
  return result.value as T;
}

/** Runs virtual time in steps, letting promise callbacks (storage, fetches) run between them. */
async function advance(sim: Simulation, ms: number, stepMs = 10): Promise<void> {
  for (let doneMs = 0; doneMs < ms; doneMs += stepMs) {
    sim.run(stepMs);
    for (let i = 0; i < 50; i++) await Promise.resolve();
  }
}

test("the program runs the example workers: a camera feeds the first kv store, kept in --data-dir", async () => {
  const opened: string[] = [];
  let closed = 0;
  const storage = new MemoryStorage();
  const fetches: string[] = [];
  const { sim, host, env, printed } = simEnvironment(7, {
    openStorage: (dir) => {
      opened.push(dir);
      const view: Storage = {
        get: (key) => storage.get(key),
        put: (key, value) => storage.put(key, value),
        delete: (key) => storage.delete(key),
        list: (prefix) => storage.list(prefix),
        batch: (ops) => storage.batch(ops),
        close: () => (closed++, Promise.resolve()),
      };
      return Promise.resolve(view);
    },
    fetchImage: (url) => {
      fetches.push(url);
      return Promise.resolve(new Uint8Array([0x89, 0x50, 0x4e, 0x47]));
    },
  });
  const options = parseProgramArgs([
    "--host",
    host.address,
    "--data-dir",
    "/srv/automp",
    "--worker",
    "kv:Photos",
    "--worker",
    "kv:Other",
    "--worker",
    "camera:Cam1@http://127.0.0.1:8081/still.png",
    "--worker",
    "scheduler:Sched1",
    "--worker",
    "template:T1",
    "--camera-interval-ms",
    "1000",
  ]) as ProgramOptions;
  const program = await drive(sim, startProgram(options, env));
  assert.deepEqual(opened, ["/srv/automp"]);
  assert.ok(
    printed.some((line) => /started .*storage=\/srv\/automp/.test(line)),
    printed.join("\n"),
  );
  await advance(sim, 2500);
  assert.deepEqual(fetches, Array(3).fill("http://127.0.0.1:8081/still.png"));
  const photos = program.node.worker("Photos") as KeyValueStoreWorker;
  assert.equal(photos.size, 3, "the first kv worker is the camera's store");
  assert.equal((program.node.worker("Other") as KeyValueStoreWorker).size, 0);
  assert.equal((await storage.list("workers/Photos/v/image-")).length, 3);
  assert.ok(program.node.worker("Sched1") instanceof SchedulerWorker);
  assert.ok(program.node.worker("T1") instanceof TemplateWorker);
  await program.stop();
  assert.equal(closed, 1, "the program closes the storage it opened");
});

test("without --data-dir the workers keep their state in memory, and a bad --data-dir is a usage error", async () => {
  const { sim, host, env, printed } = simEnvironment(8, {
    openStorage: () => Promise.reject(new Error("permission denied")),
  });
  const memory = parseProgramArgs(["--host", host.address, "--worker", "kv:S1"]) as ProgramOptions;
  const program = await drive(sim, startProgram(memory, env));
  assert.ok(printed.some((line) => /started .*storage=memory/.test(line)), printed.join("\n"));
  await program.stop();
  const bad = parseProgramArgs(["--host", host.address, "--data-dir", "/nope"]) as ProgramOptions;
  await assert.rejects(
    drive(sim, startProgram(bad, env)),
    (error: unknown) =>
      error instanceof UsageError && /Cannot use --data-dir \/nope: permission denied/.test(
        error.message,
      ),
  );
});

test("with --data-dir on the file storage, a restarted program's kv store answers what it held", async () => {
  const dir = mkdtempSync(join(tmpdir(), "automp-program-"));
  try {
    const run = async (seed: number) => {
      const { sim, host, env } = simEnvironment(seed);
      const options = parseProgramArgs([
        "--host",
        host.address,
        "--data-dir",
        dir,
        "--worker",
        "kv:Store0001",
      ]) as ProgramOptions;
      const program = await drive(sim, startProgram(options, env));
      const client = new RecordingWorker("Client");
      program.node.attachWorker(client);
      const ask = (fields: Record<string, string>, data?: Uint8Array) =>
        program.node.send({
          destination: "Store0001",
          source: "Client",
          message: fields,
          ...(data ? { data } : {}),
        });
      // The file storage answers after real I/O: wait for it in real time, bounded.
      const waitFor = async (what: string, predicate: () => boolean) => {
        for (let i = 0; i < 500 && !predicate(); i++) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          sim.run(5);
        }
        assert.ok(predicate(), `timed out waiting for ${what}`);
      };
      return { program, client, ask, waitFor };
    };
    const first = await run(9);
    first.ask({ command: "set", key: "color", ack: "true" }, new TextEncoder().encode("teal"));
    await first.waitFor("the acknowledgement", () => first.client.received.length === 1);
    assert.equal(first.client.received[0].message.ok, "true");
    await first.program.stop();
    const second = await run(10);
    second.ask({ command: "get", key: "color" });
    await second.waitFor("the answer", () => second.client.received.length === 1);
    assert.equal(second.client.received[0].message.value, "teal");
    await second.program.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("program flags: --host-kinds, --strategy and --spawn with its parameters", () => {
  const defaults = parseProgramArgs([]) as ProgramOptions;
  assert.deepEqual(defaults.hostKinds, ["template", "echo", "kv", "camera", "scheduler"]);
  assert.equal(defaults.strategy, "least-loaded");
  assert.deepEqual(defaults.spawns, []);
  const options = parseProgramArgs([
    "--host-kinds",
    "kv, echo",
    "--strategy=hashed",
    "--spawn",
    "kv:Store9",
    "--spawn=camera:Cam1?url=http://127.0.0.1:8081/a.jpg&intervalMs=5000",
    "--spawn",
    "template:T1?intervalMs=250",
  ]) as ProgramOptions;
  assert.deepEqual(options.hostKinds, ["kv", "echo"]);
  assert.equal(options.strategy, "hashed");
  assert.deepEqual(options.spawns, [
    { kind: "kv", guid: "Store9", params: {} },
    {
      kind: "camera",
      guid: "Cam1",
      params: { url: "http://127.0.0.1:8081/a.jpg", intervalMs: "5000" },
    },
    { kind: "template", guid: "T1", params: { intervalMs: "250" } },
  ]);
  assert.deepEqual((parseProgramArgs(["--host-kinds", "none"]) as ProgramOptions).hostKinds, []);
  assert.deepEqual(
    (parseProgramArgs(["--host-kinds=all"]) as ProgramOptions).hostKinds,
    defaults.hostKinds,
  );
  for (const strategy of ["least-loaded", "local", "hashed"]) {
    assert.equal((parseProgramArgs(["--strategy", strategy]) as ProgramOptions).strategy, strategy);
  }
  const cases: Array<[string[], RegExp]> = [
    [["--host-kinds", "kv,unicorn"], /"unicorn" is not one of/],
    [["--host-kinds", "all,kv"], /"all" is not one of/],
    [["--host-kinds", ","], /empty/],
    [["--strategy", "random"], /least-loaded, local, hashed/],
    [["--spawn", "unicorn:U1"], /KIND:GUID\[\?k=v&k2=v2\]/],
    [["--spawn", "kv"], /KIND:GUID/],
    [["--spawn", "kv:"], /KIND:GUID/],
    [["--spawn", "kv:S1?colour=blue"], /kv takes no parameter "colour"/],
    [["--spawn", "echo:E1?x=1"], /known: none/],
    [["--spawn", "kv:S1?maxKeyLength=1&maxKeyLength=2"], /given twice/],
    [["--spawn", "kv:S1", "--spawn", "echo:S1"], /GUID S1 is given twice/],
    [["--worker", "kv:S1", "--spawn", "kv:S1"], /--worker attaches S1 already/],
    [["--spawn", `kv:${"x".repeat(257)}`], /over 256/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseProgramArgs(args), (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match((error as Error).message, message);
      return true;
    });
  }
});

/** Several programs on simulated hosts of one simulation, each recording what it prints. */
function simPrograms(seed: number, count: number) {
  const sim = new Simulation({ seed });
  const hosts = Array.from({ length: count }, (_, i) => sim.addHost(`h${i}`, (p) => p));
  const printed = hosts.map(() => [] as string[]);
  const envOf = (i: number): ProgramEnvironment => ({
    runtime: "sim",
    platform: hosts[i].app!,
    subnetBroadcast: () => "10.0.255.255",
    serve: () => Promise.resolve({ port: 8800, close() {} }),
    onSignal() {},
    print: (line) => printed[i].push(line),
    printError: (line) => printed[i].push(line),
    exit() {},
  });
  const start = (i: number, flags: string[]) =>
    drive(
      sim,
      startProgram(
        parseProgramArgs([
          "--guid",
          `P${i}`,
          "--host",
          hosts[i].address,
          "--heartbeat-ms",
          "250",
          ...flags,
        ]) as ProgramOptions,
        envOf(i),
      ),
    );
  return { sim, hosts, printed, start };
}

test("--spawn places a worker after the node has linked, prints the host, and never fails the node", async () => {
  const { sim, printed, start } = simPrograms(11, 4);
  // Two hosts of kv; the spawning node hosts no kind at all.
  const p1 = await start(1, ["--host-kinds", "kv"]);
  const p2 = await start(2, ["--host-kinds", "kv,echo"]);
  sim.run(2000);
  const p0 = await start(0, [
    "--host-kinds",
    "none",
    "--spawn",
    "kv:Store9?maxValueBytes=1024",
    "--spawn",
    "scheduler:Sched1",
  ]);
  assert.deepEqual(p0.node.placement.kinds, []);
  assert.deepEqual(p1.node.placement.kinds, ["kv"]);
  // Not before two heartbeat intervals: the node would know no host of kv yet.
  sim.run(400);
  assert.equal(p0.node.placement.where("Store9"), undefined);
  sim.run(200);
  const host = p0.node.placement.where("Store9");
  assert.ok(host === "P1" || host === "P2", String(host));
  // Least loaded, both empty: the tie goes to the higher rendezvous score.
  const expected = rendezvousScore("Store9", "P1") > rendezvousScore("Store9", "P2") ? "P1" : "P2";
  assert.equal(host, expected);
  const lines = printed[0].join("\n");
  assert.match(
    lines,
    new RegExp(`spawn +worker=Store9 kind=kv node=${host} strategy=least-loaded`),
  );
  assert.match(lines, new RegExp(`worker-placed +worker=Store9 kind=kv node=${host} version=1`));
  assert.match(
    lines,
    /spawn-error +worker=Sched1 kind=scheduler error=Cannot spawn "Sched1": no linked node hosts kind "scheduler"/,
  );
  sim.run(500);
  const hostNode = host === "P1" ? p1.node : p2.node;
  assert.ok(hostNode.worker("Store9") instanceof KeyValueStoreWorker, "the host runs it");
  assert.deepEqual(hostNode.placement.entry("Store9")?.params, { maxValueBytes: "1024" });
  assert.equal(p0.node.running, true, "a failed spawn leaves the node running");
  // A worker its host cannot make is reported there as the "spawn-failed" event.
  p1.node.spawn("kv", "Bad1", { params: { colour: "blue" }, strategy: "local" });
  sim.run(10);
  assert.match(
    printed[1].join("\n"),
    /spawn-failed +worker=Bad1 kind=kv error=Cannot start placed worker "Bad1" .*unknown parameter "colour"/,
  );
  // A node started later with the same --spawn finds it placed already, from the cluster's table.
  const p3 = await start(3, ["--spawn", "kv:Store9"]);
  sim.run(600);
  assert.match(
    printed[3].join("\n"),
    new RegExp(`spawn +worker=Store9 kind=kv node=${host} already=placed`),
  );
  assert.equal(p3.node.placement.where("Store9"), host, "it stays where it was");
  await Promise.all([p0.stop(), p1.stop(), p2.stop(), p3.stop()]);
});
