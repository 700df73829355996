/**
 * The example workers in the node program as users run it, as real processes on loopback:
 *
 * - A kv store kept in `--data-dir` answers, after its node was killed with SIGKILL and started
 *   again with the same directory, what it held (set and get through the state page's
 *   `POST /messages`, answers read from `GET /messages`).
 * - Cameras against a local hono server that serves generated images: one route works, one
 *   fails with HTTP 500, one is slower than the timeout. The failures are reported (log lines,
 *   counters, `status` answers) and never fatal: every camera keeps fetching on its cadence.
 *
 * The program runs on the runtime running this file. Every wait is bounded; every process and
 * server started is stopped at the end, even on failure.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import {
  currentRuntime,
  httpJson,
  killAll,
  type NodeProcess,
  randomPorts,
  reapLeftoverProcesses,
  type RecentMessageJson,
  runToken,
  startNode,
  waitFor,
  waitForStarted,
} from "../_processes.ts";

const START_TIMEOUT_MS = 20_000;
const ANSWER_TIMEOUT_MS = 10_000;
const TEST_TIMEOUT_MS = 60_000;

const runtime = currentRuntime();

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** The flags every node here shares: loopback, its own ports, quick heartbeats. */
function baseArgs(guid: string, index: number, ports: ReturnType<typeof randomPorts>): string[] {
  return [
    "--guid",
    guid,
    "--port",
    String(ports.linkPortBase + 10 * index),
    "--discovery-port",
    String(ports.discoveryPort),
    "--http-port",
    String(ports.httpPortBase + 10 * index),
    "--heartbeat-ms",
    "300",
  ];
}

/**
 * Sends a message to a worker through `POST /messages` with the node's own GUID as source, so
 * that the worker's answer comes back to the node and shows in `GET /messages`; returns the
 * first answer with `command` that carries `id`.
 */
async function ask(
  httpPort: number,
  nodeGuid: string,
  destination: string,
  message: Record<string, string>,
  data?: Uint8Array,
): Promise<RecentMessageJson> {
  const id = `${message.command}-${Math.random().toString(36).slice(2)}`;
  const accepted = await httpJson<{ accepted: boolean }>(httpPort, "/messages", {
    method: "POST",
    body: {
      destination,
      source: nodeGuid,
      message: { ...message, id },
      ...(data ? { data: toBase64(data) } : {}),
    },
  });
  assert.equal(accepted.accepted, true);
  return await waitFor(
    async () => {
      const recent = await httpJson<RecentMessageJson[]>(httpPort, "/messages");
      return recent.find((m) => m.message.id === id && m.source === destination);
    },
    ANSWER_TIMEOUT_MS,
    { what: `${destination} to answer ${message.command}` },
  );
}

test(
  `a kv store in --data-dir answers what it held after its node is killed with SIGKILL (${runtime})`,
  { timeout: TEST_TIMEOUT_MS },
  async () => {
    reapLeftoverProcesses();
    const token = runToken();
    const dir = mkdtempSync(join(tmpdir(), `automp-kv-${token}-`));
    const guid = `KvNode-${token}`;
    const ports = randomPorts();
    const args = [...baseArgs(guid, 1, ports), "--data-dir", dir, "--worker", "kv:Store0001"];
    let node: NodeProcess | undefined;
    try {
      node = startNode({ name: "kv", runtime, args });
      let info = await waitForStarted(node, START_TIMEOUT_MS);
      assert.match(node.lines.find((l) => / started /.test(l.text))!.text, /storage=/);
      const teal = new TextEncoder().encode("teal");
      const photo = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 255]);
      const set1 = await ask(info.httpPort!, guid, "Store0001", {
        command: "set",
        key: "color",
        ack: "true",
      }, teal);
      assert.equal(set1.message.command, "setReturn");
      assert.equal(set1.message.ok, "true", JSON.stringify(set1));
      const set2 = await ask(info.httpPort!, guid, "Store0001", {
        command: "set",
        key: "photo",
        ack: "true",
      }, photo);
      assert.equal(set2.message.ok, "true");
      // Acknowledged means durable: a kill -9 right now loses neither.
      const status = await node.stop("SIGKILL");
      assert.equal(status.signal, "SIGKILL");

      node = startNode({ name: "kv-again", runtime, args });
      info = await waitForStarted(node, START_TIMEOUT_MS);
      const color = await ask(info.httpPort!, guid, "Store0001", { command: "get", key: "color" });
      assert.equal(color.message.command, "getReturn");
      assert.equal(color.message.found, "true");
      assert.equal(color.message.value, "teal");
      assert.deepEqual(fromBase64(color.data!), teal);
      const got = await ask(info.httpPort!, guid, "Store0001", { command: "get", key: "photo" });
      assert.deepEqual(fromBase64(got.data!), photo);
      const missing = await ask(info.httpPort!, guid, "Store0001", { command: "get", key: "x" });
      assert.equal(missing.message.found, "false");
    } finally {
      await node?.stop("SIGKILL");
      await killAll();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

/** A local camera server: `/ok.png` works, `/fail.png` answers 500, `/slow.png` takes 3 s. */
function startCameraServer() {
  const requests = { ok: 0, fail: 0, slow: 0 };
  const app = new Hono();
  app.get("/ok.png", (c) => {
    const n = ++requests.ok;
    // PNG-ish: the signature, then the request number.
    const image = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, n & 255]);
    return c.body(image, 200, { "content-type": "image/png" });
  });
  app.get("/fail.png", (c) => {
    requests.fail++;
    return c.text("camera on fire", 500);
  });
  // Slow answers still waiting; closing the server releases them, so it need not wait 3 s.
  const waiting = new Set<() => void>();
  app.get("/slow.png", async (c) => {
    requests.slow++;
    await new Promise<void>((resolve) => {
      const release = () => {
        clearTimeout(timer);
        waiting.delete(release);
        resolve();
      };
      const timer = setTimeout(release, 3000);
      waiting.add(release);
    });
    return c.body(new Uint8Array([0x89, 0x50, 0x4e, 0x47]), 200);
  });
  const releaseAll = () => {
    for (const release of [...waiting]) release();
  };
  const g = globalThis as unknown as {
    Deno?: {
      serve(
        options: { hostname: string; port: number; onListen?: () => void },
        handler: (request: Request) => Response | Promise<Response>,
      ): { addr: { port: number }; shutdown(): Promise<void> };
    };
    Bun?: {
      serve(options: {
        hostname: string;
        port: number;
        fetch: (request: Request) => Response | Promise<Response>;
      }): { port: number; stop(closeActive?: boolean): void };
    };
  };
  if (g.Bun) {
    const server = g.Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch });
    return {
      port: server.port,
      requests,
      close: () => (releaseAll(), Promise.resolve(server.stop(true))),
    };
  }
  const server = g.Deno!.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  return { port: server.addr.port, requests, close: () => (releaseAll(), server.shutdown()) };
}

test(
  `cameras that fail or are slow are reported, never fatal, and keep fetching (${runtime})`,
  { timeout: TEST_TIMEOUT_MS },
  async () => {
    reapLeftoverProcesses();
    const token = runToken();
    const guid = `CamNode-${token}`;
    const ports = randomPorts();
    const server = startCameraServer();
    const base = `http://127.0.0.1:${server.port}`;
    let node: NodeProcess | undefined;
    try {
      node = startNode({
        name: "cameras",
        runtime,
        args: [
          ...baseArgs(guid, 2, ports),
          "--worker",
          "kv:Photos",
          "--worker",
          `camera:CamOk@${base}/ok.png`,
          "--worker",
          `camera:CamFail@${base}/fail.png`,
          "--worker",
          `camera:CamSlow@${base}/slow.png`,
          "--camera-interval-ms",
          "500",
          "--camera-timeout-ms",
          "300",
        ],
      });
      const info = await waitForStarted(node, START_TIMEOUT_MS);
      const status = (camera: string) =>
        ask(info.httpPort!, guid, camera, { command: "status" }).then((m) => m.message);
      // Each camera has fetched a few times: 500 ms apart, whatever the others do.
      await waitFor(
        () => server.requests.ok >= 3 && server.requests.fail >= 3 && server.requests.slow >= 3,
        ANSWER_TIMEOUT_MS,
        { what: "three fetches per camera", describe: () => JSON.stringify(server.requests) },
      );
      // Reported: a warning line per camera (the platform logs warnings to stderr)…
      const failure = await node.waitForLine(/camera\.failure .*CamFail/, ANSWER_TIMEOUT_MS);
      assert.match(failure.text, /reason=error/);
      assert.match(failure.text, /HTTP 500/);
      const timeout = await node.waitForLine(/camera\.failure .*CamSlow/, ANSWER_TIMEOUT_MS);
      assert.match(timeout.text, /reason=timeout/);
      // …counters, and a status answer.
      const failing = await status("CamFail");
      assert.equal(failing.command, "statusReturn");
      assert.equal(failing.state, "failing");
      assert.ok(Number(failing.failures) >= 3, JSON.stringify(failing));
      assert.equal(failing.captures, "0");
      assert.match(failing.lastError, /HTTP 500/);
      const slow = await status("CamSlow");
      assert.equal(slow.state, "failing");
      assert.ok(Number(slow.timeouts) >= 2, JSON.stringify(slow));
      const ok = await status("CamOk");
      assert.equal(ok.state, "ok");
      assert.ok(Number(ok.captures) >= 3, JSON.stringify(ok));
      assert.equal(ok.failures, "0");
      assert.match(ok.lastKey, /^image-\d{13}$/);
      // Never fatal: the node runs on, and the failing cameras keep trying.
      const before = { ...server.requests };
      await waitFor(
        () =>
          server.requests.fail >= before.fail + 2 && server.requests.slow >= before.slow + 2 &&
          server.requests.ok >= before.ok + 2,
        ANSWER_TIMEOUT_MS,
        { what: "the cameras to keep fetching", describe: () => JSON.stringify(server.requests) },
      );
      assert.equal(node.lines.some((l) => /uncaught|panic/i.test(l.text)), false, node.output());
      // The store holds the good camera's images: the last one is what the server sent.
      const image = await ask(info.httpPort!, guid, "Photos", { command: "get", key: ok.lastKey });
      assert.equal(image.message.found, "true");
      const bytes = fromBase64(image.data!);
      assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      const state = await httpJson<{ stats: { workerErrors: number } }>(info.httpPort!, "/state");
      assert.equal(state.stats.workerErrors, 0);
    } finally {
      await node?.stop("SIGKILL");
      await killAll();
      await server.close();
    }
  },
);
