import { test } from "node:test";
import assert from "node:assert/strict";
import { Simulation } from "../../sim/simulation.ts";
import { RecordingWorker } from "../../sim/cluster.ts";
import { AutoMpiNode } from "../node.ts";
import type { Platform } from "../platform.ts";
import { MemoryStorage } from "../storage.ts";
import { KeyValueStoreWorker } from "./kv.ts";
import { type FetchImage, type IPCameraOptions, IPCameraWorker } from "./camera.ts";

const BROADCAST = "10.0.255.255";
const EPOCH_MS = 1_767_225_600_000;

async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

async function advance(sim: Simulation, ms: number, stepMs = 5): Promise<void> {
  for (let doneMs = 0; doneMs < ms; doneMs += stepMs) {
    sim.run(Math.min(stepMs, ms - doneMs));
    await settle();
  }
}

/** What the fake camera does with the next fetch. */
type Mode = "ok" | "fail" | "slow" | "big" | "throw" | "junk";

/**
 * A fake camera on the simulated clock: "ok" answers a small PNG-ish image after 20 ms, "fail"
 * rejects after 10 ms (as an HTTP 500 would), "slow" answers after 5 s, "big" answers an
 * image over the limit. Counts fetches in flight.
 */
function fakeCamera(platform: Platform) {
  const camera = {
    mode: "ok" as Mode,
    fetches: 0,
    inFlight: 0,
    maxInFlight: 0,
    urls: [] as string[],
  };
  const later = <T>(ms: number, fn: () => T): Promise<T> =>
    new Promise((resolve, reject) =>
      platform.clock.schedule(ms, () => {
        camera.inFlight--;
        try {
          resolve(fn());
        } catch (error) {
          reject(error);
        }
      })
    );
  const fetchImage: FetchImage = (url, { maxBytes }) => {
    camera.urls.push(url);
    const n = ++camera.fetches;
    if (camera.mode === "throw") throw new Error("Cannot fetch: bad URL");
    camera.inFlight++;
    camera.maxInFlight = Math.max(camera.maxInFlight, camera.inFlight);
    switch (camera.mode) {
      case "ok":
        return later(20, () => new Uint8Array([0x89, 0x50, 0x4e, 0x47, n]));
      case "fail":
        return later(10, () => {
          throw new Error("Cannot fetch image: HTTP 500");
        });
      case "slow":
        return later(5000, () => new Uint8Array([0x89, 0x50, 0x4e, 0x47, n]));
      case "big":
        return later(20, () => new Uint8Array(maxBytes + 1));
      case "junk":
        return later(20, () => "not bytes" as unknown as Uint8Array);
      default:
        throw new Error("unreachable");
    }
  };
  return { camera, fetchImage };
}

/** A store on node S, a camera (attached by the test) and a report recorder on node C. */
async function world(seed: number, options: Partial<IPCameraOptions> = {}) {
  const sim = new Simulation({ seed, epochMs: EPOCH_MS });
  const store = new KeyValueStoreWorker("Store0001");
  const serverHost = sim.addHost("S", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "S",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
      storage: new MemoryStorage(),
    });
    node.start();
    node.attachWorker(store);
    return node;
  });
  const reports = new RecordingWorker("Monitor");
  let fake!: ReturnType<typeof fakeCamera>;
  let camera!: IPCameraWorker;
  const cameraHost = sim.addHost("C", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "C",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
    });
    node.start();
    node.attachWorker(reports);
    fake = fakeCamera(platform);
    camera = new IPCameraWorker("Camera01", {
      url: "http://127.0.0.1:8080/snapshot.png",
      fetchImage: fake.fetchImage,
      intervalMs: 2000,
      timeoutMs: 1000,
      maxImageBytes: 64,
      reportTo: "Monitor",
      ...options,
    });
    return node;
  });
  await advance(sim, 1500, 50);
  assert.equal(cameraHost.app!.locate("Store0001"), "S");
  const startMs = sim.now;
  cameraHost.app!.attachWorker(camera);
  return { sim, serverHost, cameraHost, store, camera, fake, reports, startMs };
}

test("every intervalMs the camera sends an image to the store with command=set, key=image-<time>", async () => {
  const { sim, store, camera, fake, startMs } = await world(1);
  await advance(sim, 9000);
  // Fetches at 0, 2, 4, 6 and 8 s after attach, each answered in 20 ms.
  assert.equal(fake.camera.fetches, 5);
  assert.deepEqual(fake.camera.urls, Array(5).fill("http://127.0.0.1:8080/snapshot.png"));
  assert.equal(camera.stats.captures, 5);
  const keys = store.keys();
  assert.equal(keys.length, 5);
  const times = keys.map((key) => Number(/^image-(\d+)$/.exec(key)![1]));
  for (let i = 0; i < times.length; i++) {
    // The key is the wall-clock time the image arrived: attach + i × interval + fetch (+ a step).
    const expected = EPOCH_MS + startMs + i * 2000 + 20;
    assert.ok(times[i] >= expected && times[i] <= expected + 10, `${times[i]} vs ${expected}`);
  }
  assert.deepEqual(store.value(keys[2]), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 3]));
  assert.equal(camera.stats.lastKey, keys[4]);
});

test("a failing, slow or oversize camera is reported, never fatal, and the camera keeps going", async () => {
  const { sim, camera, fake, reports, store, cameraHost, serverHost } = await world(2);
  // Ticks every 2 s from attach; times below are since attach.
  await advance(sim, 1000); // 0 s: a good image
  fake.camera.mode = "fail";
  await advance(sim, 4000); // 2 s and 4 s: HTTP 500
  fake.camera.mode = "slow";
  await advance(sim, 2500); // 6 s: no answer by 7 s, a timeout
  fake.camera.mode = "big";
  await advance(sim, 3600); // 8 s and 10 s: the slow fetch is still out, skipped; it ends at 11 s
  await advance(sim, 1900); // 12 s: an oversize image
  fake.camera.mode = "ok";
  await advance(sim, 4000); // 14 s and 16 s: good again
  const stats = camera.stats;
  assert.equal(stats.captures, 3, JSON.stringify(stats));
  assert.equal(stats.failures, 4); // 2 errors, 1 timeout, 1 oversize
  assert.equal(stats.timeouts, 1);
  assert.equal(stats.oversize, 1);
  assert.equal(stats.busyTicks, 2);
  assert.equal(stats.consecutiveFailures, 0);
  assert.match(stats.lastError, /exceeds maxImageBytes 64/);
  assert.equal(fake.camera.maxInFlight, 1, "never two fetches at once");
  assert.equal(store.size, 3, "only good images reach the store");
  // Reported: log lines (1st, 2nd and 4th failure in a row), and messages to reportTo.
  const logged = sim.logs.filter((e) => e.event === "camera.failure");
  assert.deepEqual(logged.map((e) => [e.level, e.fields!.reason, e.fields!.consecutive]), [
    ["warn", "error", 1],
    ["warn", "error", 2],
    ["warn", "oversize", 4],
  ]);
  assert.match(String(logged[0].fields!.error), /HTTP 500/);
  assert.equal(sim.logs.filter((e) => e.event === "camera.recovered").length, 1);
  assert.deepEqual(
    reports.received.map((m) => [m.message.command, m.message.state, m.message.reason ?? ""]),
    [
      ["cameraStatus", "failing", "error"],
      ["cameraStatus", "failing", "error"],
      ["cameraStatus", "failing", "oversize"],
      ["cameraStatus", "ok", ""],
    ],
  );
  assert.equal(reports.received[3].message.afterFailures, "4");
  // Nothing escaped to the nodes.
  assert.equal(cameraHost.app!.state().stats.workerErrors, 0);
  assert.equal(serverHost.app!.state().stats.workerErrors, 0);
});

test("status is answered with the camera's counters, other commands with an error", async () => {
  const { sim, fake, cameraHost, reports } = await world(3);
  fake.camera.mode = "fail";
  await advance(sim, 500);
  const ask = (fields: Record<string, string>) =>
    cameraHost.app!.send({ destination: "Camera01", source: "Monitor", message: fields });
  ask({ command: "status", id: "s1" });
  ask({ command: "zoom" });
  ask({ command: "setReturn", key: "image-1", ok: "true" }); // a store's answer: ignored
  await advance(sim, 50);
  const answers = reports.received.filter((m) => m.message.command !== "cameraStatus");
  assert.equal(answers.length, 2);
  const status = answers[0].message;
  assert.equal(status.command, "statusReturn");
  assert.equal(status.id, "s1");
  assert.equal(status.state, "failing");
  assert.equal(status.failures, "1");
  assert.equal(status.consecutiveFailures, "1");
  assert.equal(status.store, "Store0001");
  assert.equal(status.url, "http://127.0.0.1:8080/snapshot.png");
  assert.match(status.lastError, /HTTP 500/);
  assert.equal(answers[1].message.command, "error");
  assert.equal(answers[1].message.errorOf, "zoom");
});

test("a fetcher that throws or resolves with something other than bytes is a reported failure", async () => {
  const { sim, camera, fake } = await world(4);
  fake.camera.mode = "throw";
  await advance(sim, 1000);
  fake.camera.mode = "junk";
  await advance(sim, 2000);
  fake.camera.mode = "ok";
  await advance(sim, 2000);
  assert.equal(camera.stats.failures, 2);
  assert.equal(camera.stats.captures, 1);
  assert.equal(camera.busy, false);
  const errors = sim.logs.filter((e) => e.event === "camera.failure").map((e) => e.fields!.error);
  assert.deepEqual(errors, [
    "Cannot fetch: bad URL",
    "fetchImage resolved with something other than bytes",
  ]);
});

test("images for a store nobody knows are counted undelivered and logged, and the camera goes on", async () => {
  const { sim, camera, cameraHost } = await world(5, { store: "NoSuchStore" });
  await advance(sim, 5000);
  assert.equal(camera.stats.undelivered, 3);
  assert.equal(camera.stats.captures, 0);
  assert.equal(sim.logs.filter((e) => e.event === "camera.undelivered").length, 3);
  assert.equal(cameraHost.app!.state().stats.workerErrors, 0);
});

test("detaching the camera stops its fetches", async () => {
  const { sim, cameraHost, fake } = await world(6);
  await advance(sim, 2500);
  assert.equal(fake.camera.fetches, 2);
  cameraHost.app!.detachWorker("Camera01");
  await advance(sim, 10_000, 50);
  assert.equal(fake.camera.fetches, 2);
});

test("options are checked when the camera is made", () => {
  const fetchImage: FetchImage = () => Promise.resolve(new Uint8Array());
  const url = "http://127.0.0.1/x.jpg";
  assert.throws(
    () => new IPCameraWorker("C", { url, fetchImage: undefined as unknown as FetchImage }),
    TypeError,
  );
  assert.throws(() => new IPCameraWorker("C", { url: "", fetchImage }), TypeError);
  assert.throws(() => new IPCameraWorker("C", { url, fetchImage, intervalMs: 0 }), RangeError);
  assert.throws(() => new IPCameraWorker("C", { url, fetchImage, maxImageBytes: 0 }), RangeError);
  const camera = new IPCameraWorker("C", { url, fetchImage });
  assert.equal(camera.store, "Store0001", "the original's store GUID by default");
});
