// The peer benchmark: two Moleculer brokers in one Node process, linked by Moleculer's TCP
// transporter on loopback, doing what bench/real_bench.ts does with two AutoMPI nodes:
// request/reply one at a time (p50/p99 latency, calls/s), request/reply with 64 in flight
// (calls/s), and one-way small messages (msg/s). Prints one JSON object on stdout:
// `{ "ok": true, "moleculerVersion": …, "results": { … } }`, or `{ "ok": false, "error": … }`
// when Moleculer cannot be loaded (not installed: run `npm ci`).
//
// Started by bench/peer_bench.ts as `node bench/_moleculer_peer.mjs`. Plain .mjs so that Node
// runs it as it is. Loopback only: UDP discovery is off (the brokers find each other through
// static `urls`), every address a broker would dial or listen on is forced to 127.0.0.1, and
// every sending loop is bounded in count and in time.

import net from "node:net";
import process from "node:process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const LOOPBACK = "127.0.0.1";

/** Per-phase wall-time cap: a phase stops early (and says so) rather than run on. */
const PHASE_LIMIT_MS = 15_000;
const SERIAL_WARMUP = 1_000;
const SERIAL_SAMPLES = 5_000;
const PARALLEL_CALLS = 50_000;
const IN_FLIGHT = 64;
const ONEWAY_WARMUP = 20_000;
const ONEWAY_TOTAL = 200_000;
const ONEWAY_BURST = 1_000;
const ONEWAY_WINDOW = 20_000;
const DATA = "x".repeat(100);

function out(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function argValue(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index < 0 ? fallback : Number(process.argv[index + 1]);
}

let moleculer;
try {
  moleculer = require("moleculer");
} catch (error) {
  out({ ok: false, error: `moleculer not installed (${String(error.message).split("\n")[0]})` });
  process.exit(0);
}

// Moleculer's TCP server listens on every interface; keep it on loopback.
const originalListen = net.Server.prototype.listen;
net.Server.prototype.listen = function (options, ...rest) {
  if (options !== null && typeof options === "object" && options.host === undefined) {
    return originalListen.call(this, { ...options, host: LOOPBACK }, ...rest);
  }
  return originalListen.call(this, options, ...rest);
};

function freePort() {
  return new Promise((resolve, reject) => {
    const server = originalListen.call(net.createServer(), { host: LOOPBACK, port: 0 }, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Nearest rank, as bench/_harness.ts computes it. */
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

async function main() {
  const { ServiceBroker } = moleculer;
  const [portA, portB] = [await freePort(), await freePort()];
  const transporter = (port, otherPort, otherId) => ({
    type: "TCP",
    options: {
      // No UDP at all: no multicast, no broadcast. The peer is given by address.
      udpDiscovery: false,
      udpBroadcast: false,
      port,
      urls: [`${LOOPBACK}:${otherPort}/${otherId}`],
      useHostname: false,
    },
  });
  const brokerOptions = (nodeID, port, otherPort, otherId) => ({
    nodeID,
    namespace: `bench${process.pid}`,
    transporter: transporter(port, otherPort, otherId),
    logger: false,
    // Moleculer's defaults otherwise (JSON serializer, balancer on); no metrics, no tracing.
    metrics: false,
    tracing: false,
  });
  const caller = new ServiceBroker(brokerOptions("benchA", portA, portB, "benchB"));
  const callee = new ServiceBroker(brokerOptions("benchB", portB, portA, "benchA"));
  for (const broker of [caller, callee]) {
    // The local node advertises 127.0.0.1, never the machine's hostname or other addresses.
    const local = broker.registry.nodes.localNode;
    local.hostname = LOOPBACK;
    local.ipList = [LOOPBACK];
    const tcp = broker.transit.tx;
    const address = tcp.getNodeAddress.bind(tcp);
    tcp.getNodeAddress = (node) => {
      const host = address(node);
      if (host !== null && !String(host).startsWith("127.")) {
        throw new Error(`Refusing to dial ${host}: the bench stays on loopback`);
      }
      return host;
    };
  }
  let received = 0;
  callee.createService({
    name: "echo",
    actions: {
      echo(ctx) {
        return ctx.params;
      },
    },
    events: {
      "bench.oneway"() {
        received++;
      },
    },
  });
  const closeAll = () => Promise.allSettled([caller.stop(), callee.stop()]);
  const hardStop = setTimeout(() => {
    out({ ok: false, error: "the peer bench ran past its time limit" });
    process.exit(1);
  }, argValue("limit-ms", 150_000));
  hardStop.unref();
  try {
    await Promise.all([callee.start(), caller.start()]);
    await caller.waitForServices(["echo"], 15_000);
    // The event subscription travels in the same INFO as the action; give it a moment anyway.
    const linked = Date.now();
    while (caller.registry.events.getBalancedEndpoints("bench.oneway").length === 0) {
      if (Date.now() - linked > 10_000) throw new Error("the event listener never showed up");
      await sleep(20);
    }
    const params = { command: "bench", data: DATA };
    const results = {};

    // Request/reply, one at a time.
    const samples = [];
    let truncated = false;
    for (let i = 0; i < SERIAL_WARMUP; i++) await caller.call("echo.echo", params);
    const serialStart = performance.now();
    for (let i = 0; i < SERIAL_SAMPLES; i++) {
      const start = performance.now();
      await caller.call("echo.echo", params);
      samples.push(performance.now() - start);
      if (performance.now() - serialStart > PHASE_LIMIT_MS) {
        truncated = true;
        break;
      }
    }
    const serialSeconds = (performance.now() - serialStart) / 1000;
    samples.sort((a, b) => a - b);
    results.reqrepP50Ms = percentile(samples, 50);
    results.reqrepP99Ms = percentile(samples, 99);
    results.reqrepSerialPerSecond = samples.length / serialSeconds;
    results.reqrepSamples = samples.length;

    // Request/reply, IN_FLIGHT at a time.
    let issued = 0;
    let done = 0;
    const parallelStart = performance.now();
    await new Promise((resolve, reject) => {
      const next = () => {
        if (done === issued && (issued >= PARALLEL_CALLS || truncatedParallel())) resolve();
        while (issued - done < IN_FLIGHT && issued < PARALLEL_CALLS && !truncatedParallel()) {
          issued++;
          caller.call("echo.echo", params).then(() => {
            done++;
            next();
          }, reject);
        }
      };
      const truncatedParallel = () => performance.now() - parallelStart > PHASE_LIMIT_MS;
      next();
    });
    results.reqrepParallelPerSecond = done / ((performance.now() - parallelStart) / 1000);
    results.reqrepParallelCalls = done;

    // One way: broker.emit of an event to the one listening service (balanced: one receiver),
    // in bursts, at most ONEWAY_WINDOW unconfirmed, as bench/real_bench.ts sends.
    const oneway = async (total) => {
      const base = received;
      let sent = 0;
      const start = performance.now();
      while (sent < total) {
        if (performance.now() - start > PHASE_LIMIT_MS) break;
        const room = Math.min(
          ONEWAY_BURST,
          total - sent,
          ONEWAY_WINDOW - (sent - (received - base)),
        );
        if (room <= 0) {
          await turn();
          continue;
        }
        for (let i = 0; i < room; i++) caller.emit("bench.oneway", params);
        sent += room;
        await turn();
      }
      while (received - base < sent && performance.now() - start < PHASE_LIMIT_MS + 10_000) {
        await turn();
      }
      return { count: received - base, sent, seconds: (performance.now() - start) / 1000 };
    };
    await oneway(ONEWAY_WARMUP);
    const best = [await oneway(ONEWAY_TOTAL), await oneway(ONEWAY_TOTAL)]
      .map((run) => ({ ...run, rate: run.count / run.seconds }))
      .sort((a, b) => b.rate - a.rate)[0];
    results.onewayPerSecond = best.rate;
    results.onewayLost = best.sent - best.count;
    results.truncated = truncated;
    out({
      ok: true,
      moleculerVersion: ServiceBroker.MOLECULER_VERSION,
      node: process.version,
      serializer: "JSON",
      results,
    });
  } finally {
    await closeAll();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    out({ ok: false, error: String(error?.stack ?? error) });
    process.exit(1);
  },
);
