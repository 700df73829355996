/**
 * Real sockets: two nodes in this process on loopback, beside a raw-socket baseline on the same
 * platform adapter in the same run.
 *
 * One way: a worker on one node sending to a worker on the other, small messages (100-byte
 * data) per second and MB/s with 1 MiB data. The raw baseline is what a careful hand-written
 * app needs at least: the same frames (4-byte length + payload of the same size) through a bare
 * stream connection, one write per burst of small frames, and a receiver that cuts the byte
 * stream back into whole frames (the same `FrameDecoder`), without any message encoding,
 * routing or worker queue.
 *
 * Request/reply: the application on node A sends a request (100-byte data and an `id`) to an
 * `EchoWorker` on node B and awaits its reply, which comes back to node A's message handler
 * (as `broker.call` awaits an action's result in Moleculer). Latency p50/p99 over
 * `REQREP_SAMPLES` requests one at a time after `REQREP_WARMUP`, the rate of that serial loop,
 * and the rate with `IN_FLIGHT` requests outstanding. The raw baseline: a bare stream whose
 * far end writes every whole frame straight back, frames of the request's size, one promise
 * per request, the same loops.
 *
 * Tracing cost: `oneway_small` again with a no-op tracer provider given to both nodes (spans are
 * made and record nothing, as with the API's no-op provider registered) and with a recording one
 * (the SDK's `BasicTracerProvider`, every span handed to an exporter that drops it), each beside
 * the plain `oneway_small` of the same run, where no provider is registered and nodes trace
 * nothing.
 *
 * Run: `deno run -A bench/real_bench.ts [--json]`, `bun run bench/real_bench.ts [--json]`
 * (also part of `deno task bench`).
 *
 * @module
 */
import { AutoMpiNode, type NodeOptions } from "../src/node.ts";
import { ProxyTracerProvider, type TracerProvider } from "@opentelemetry/api";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { createMessage, type MapMessage } from "../src/message.ts";
import { msgpackCodec } from "../src/codec.ts";
import { encodeFrame, FrameDecoder } from "../src/framing.ts";
import { EchoWorker, WorkerBase } from "../src/worker.ts";
import type { Platform, StreamConn } from "../src/platform.ts";
import { createRuntimePlatform } from "../adapters/runtime.ts";
import { type BenchRow, percentile, progress, report, runtimeName } from "./_harness.ts";

const REQREP_WARMUP = 1000;
const REQREP_SAMPLES = 5000;
const PARALLEL_CALLS = 50_000;
const IN_FLIGHT = 64;
/** Each request/reply phase stops at this wall time, whatever its count (a slow machine). */
const PHASE_LIMIT_MS = 15_000;

class Sink extends WorkerBase {
  count = 0;
  bytes = 0;
  onCount: (() => void) | undefined;
  protected override onMessage(message: MapMessage): void {
    this.count++;
    this.bytes += message.data?.length ?? 0;
    this.onCount?.();
  }
}

function waitUntil(platform: Platform, predicate: () => boolean, maxMs: number): Promise<boolean> {
  const start = platform.clock.now();
  return new Promise((resolve) => {
    const check = () => {
      if (predicate()) return resolve(true);
      if (platform.clock.now() - start > maxMs) return resolve(false);
      platform.clock.schedule(1, check);
    };
    check();
  });
}

interface Pair {
  readonly sender: AutoMpiNode;
  readonly receiver: AutoMpiNode;
  readonly sink: Sink;
  close(): void;
}

async function nodePair(platform: Platform, options: Partial<NodeOptions> = {}): Promise<Pair> {
  const make = (guid: string, seeds: string[] = []) => {
    return new AutoMpiNode(platform, {
      ...options,
      guid,
      listen: { host: "127.0.0.1", port: 0 },
      discovery: false,
      seeds,
    });
  };
  const receiver = make("BenchB");
  const sink = new Sink("Sink", { queueLimit: 1_000_000 });
  const started = new Promise<void>((resolve) => receiver.on("started", () => resolve()));
  receiver.start();
  receiver.attachWorker(sink);
  receiver.attachWorker(new EchoWorker("Echo", { queueLimit: 100_000 }));
  await started;
  const sender = make("BenchA", [receiver.address]);
  sender.on("undeliverable", ({ reason, detail }) => refusals.set(sender, `${reason}: ${detail}`));
  sender.start();
  const located = () => sender.locate("Sink") === "BenchB" && sender.locate("Echo") === "BenchB";
  if (!(await waitUntil(platform, located, 10_000))) {
    throw new Error("Cannot run real bench: the two nodes did not link");
  }
  return {
    sender,
    receiver,
    sink,
    close() {
      sender.close();
      receiver.close();
    },
  };
}

const refusals = new WeakMap<AutoMpiNode, string>();

/** Why the node last refused a message (for the error that stops a run). */
function lastRefusal(node: AutoMpiNode): string {
  return refusals.get(node) ?? "no undeliverable event";
}

/** Sends `total` messages with `dataBytes` of data in bursts of `burst`, keeping at most `window` unconfirmed. */
async function nodeRun(
  platform: Platform,
  pair: Pair,
  total: number,
  dataBytes: number,
  burst: number,
  window: number,
): Promise<number> {
  const data = new Uint8Array(dataBytes).fill(7);
  const message = createMessage("Sink", { command: "bench" }, { source: "BenchA", data });
  const base = pair.sink.count;
  let sent = 0;
  const start = performance.now();
  while (sent < total) {
    const room = Math.min(burst, total - sent, window - (sent - (pair.sink.count - base)));
    if (room <= 0) {
      await waitUntil(platform, () => sent - (pair.sink.count - base) < window / 2, 60_000);
      continue;
    }
    for (let i = 0; i < room; i++) {
      if (!pair.sender.send(message)) {
        throw new Error(`Cannot run real bench: send refused (${lastRefusal(pair.sender)})`);
      }
    }
    sent += room;
    await new Promise<void>((resolve) => platform.clock.schedule(0, resolve));
  }
  if (!(await waitUntil(platform, () => pair.sink.count - base >= total, 60_000))) {
    throw new Error(`Cannot run real bench: ${pair.sink.count - base} of ${total} arrived`);
  }
  return (performance.now() - start) / 1000;
}

/** The same traffic through a bare stream: frames of the same size, one write per burst. */
async function rawRun(
  platform: Platform,
  total: number,
  frameBytes: number,
  burst: number,
  window: number,
): Promise<number> {
  let received = 0;
  let listenerPort = 0;
  const closers: Array<() => void> = [];
  const ready = new Promise<void>((resolve, reject) => {
    const listener = platform.net.listen({ host: "127.0.0.1", port: 0 }, {
      onListening: (l) => {
        listenerPort = l.local.port;
        resolve();
      },
      onError: reject,
      onConnection: () => {
        const decoder = new FrameDecoder({ maxFrameBytes: 32 << 20 });
        return {
          onData: (_conn, chunk) => {
            for (const frame of decoder.push(chunk)) received += frame.length + 4;
          },
          onClose() {},
        };
      },
    });
    closers.push(() => listener.close());
  });
  await ready;
  const conn = await new Promise<StreamConn>((resolve, reject) => {
    const c = platform.net.connect({ host: "127.0.0.1", port: listenerPort }, {
      onOpen: () => resolve(c),
      onData() {},
      onClose: (_c, reason, error) => reason !== "local" && reject(error ?? new Error(reason)),
    });
  });
  const frame = encodeFrame(new Uint8Array(frameBytes - 4).fill(7));
  const totalBytes = total * frameBytes;
  let sent = 0;
  const start = performance.now();
  while (sent < total) {
    const inFlight = sent - Math.floor(received / frameBytes);
    const room = Math.min(burst, total - sent, window - inFlight);
    if (room <= 0) {
      await waitUntil(
        platform,
        () => sent - Math.floor(received / frameBytes) < window / 2,
        60_000,
      );
      continue;
    }
    if (frameBytes >= 64 * 1024) {
      for (let i = 0; i < room; i++) conn.write(frame);
    } else {
      const out = new Uint8Array(room * frameBytes);
      for (let i = 0; i < room; i++) out.set(frame, i * frameBytes);
      conn.write(out);
    }
    sent += room;
    await new Promise<void>((resolve) => platform.clock.schedule(0, resolve));
  }
  if (!(await waitUntil(platform, () => received >= totalBytes, 60_000))) {
    throw new Error(`Cannot run raw bench: ${received} of ${totalBytes} bytes arrived`);
  }
  const seconds = (performance.now() - start) / 1000;
  conn.destroy();
  for (const close of closers) close();
  return seconds;
}

/** What the request/reply loops measured. */
export interface ReqRepFigures {
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Requests per second of the one-at-a-time loop (the latency samples). */
  readonly serialPerSecond: number;
  readonly samples: number;
  /** Requests per second with `IN_FLIGHT` outstanding. */
  readonly parallelPerSecond: number;
  readonly parallelCalls: number;
  /** Whether a phase stopped at its time limit before its count. */
  readonly truncated: boolean;
}

/**
 * The request/reply loops, the same for the node and the raw baseline: warm-up, then
 * `REQREP_SAMPLES` timed requests one at a time, then `PARALLEL_CALLS` with `IN_FLIGHT`
 * outstanding. Every phase is bounded by `PHASE_LIMIT_MS`.
 */
async function reqRepLoops(request: () => Promise<void>): Promise<ReqRepFigures> {
  let truncated = false;
  const warmupStart = performance.now();
  for (let i = 0; i < REQREP_WARMUP && performance.now() - warmupStart < PHASE_LIMIT_MS; i++) {
    await request();
  }
  const samples: number[] = [];
  const serialStart = performance.now();
  for (let i = 0; i < REQREP_SAMPLES; i++) {
    const start = performance.now();
    await request();
    samples.push(performance.now() - start);
    if (performance.now() - serialStart > PHASE_LIMIT_MS) {
      truncated = true;
      break;
    }
  }
  const serialSeconds = (performance.now() - serialStart) / 1000;
  samples.sort((a, b) => a - b);
  let issued = 0;
  let done = 0;
  const parallelStart = performance.now();
  const expired = () => performance.now() - parallelStart > PHASE_LIMIT_MS;
  await new Promise<void>((resolve, reject) => {
    const fill = () => {
      while (issued - done < IN_FLIGHT && issued < PARALLEL_CALLS && !expired()) {
        issued++;
        request().then(() => {
          done++;
          if (done === issued && (issued >= PARALLEL_CALLS || expired())) resolve();
          else fill();
        }, reject);
      }
    };
    fill();
  });
  if (done < PARALLEL_CALLS) truncated = true;
  return {
    p50Ms: percentile(samples, 50),
    p99Ms: percentile(samples, 99),
    serialPerSecond: samples.length / serialSeconds,
    samples: samples.length,
    parallelPerSecond: done / ((performance.now() - parallelStart) / 1000),
    parallelCalls: done,
    truncated,
  };
}

/**
 * Requests from node A's application to `destination` on node B (the `EchoWorker`, or node B
 * itself), replies to A's handler.
 */
function nodeRequester(
  pair: Pair,
  destination: string,
): { request: () => Promise<void>; close: () => void } {
  const data = new Uint8Array(100).fill(7);
  const pending = new Map<string, () => void>();
  let next = 0;
  const off = pair.sender.onMessage((message) => {
    const id = message.message.id;
    if (id === undefined) return;
    const resolve = pending.get(id);
    if (resolve === undefined) return;
    pending.delete(id);
    resolve();
  });
  const request = () =>
    new Promise<void>((resolve, reject) => {
      const id = String(next++);
      pending.set(id, resolve);
      const message = createMessage(destination, { command: "bench", id }, {
        source: pair.sender.guid,
        data,
      });
      if (!pair.sender.send(message)) {
        pending.delete(id);
        reject(new Error("Cannot run request/reply: send refused"));
      }
    });
  return { request, close: off };
}

/**
 * The raw request/reply baseline: a bare stream whose far end writes every whole frame
 * straight back (all frames of one chunk in one write); each request writes one frame of
 * `frameBytes` and resolves when a whole frame comes back (replies come in order).
 */
async function rawEcho(
  platform: Platform,
  frameBytes: number,
): Promise<{ request: () => Promise<void>; close: () => void }> {
  let port = 0;
  const listener = await new Promise<{ close(): void }>((resolve, reject) => {
    const l = platform.net.listen({ host: "127.0.0.1", port: 0 }, {
      onListening: (bound) => {
        port = bound.local.port;
        resolve(l);
      },
      onError: reject,
      onConnection: () => {
        const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20 });
        return {
          onData: (conn, chunk) => {
            const frames = [...decoder.push(chunk)];
            if (frames.length === 0) return;
            let length = 0;
            for (const frame of frames) length += frame.length + 4;
            const out = new Uint8Array(length);
            let at = 0;
            for (const frame of frames) {
              out.set(encodeFrame(frame), at);
              at += frame.length + 4;
            }
            conn.write(out);
          },
          onClose() {},
        };
      },
    });
  });
  const waiting: Array<() => void> = [];
  const decoder = new FrameDecoder({ maxFrameBytes: 1 << 20 });
  const conn = await new Promise<StreamConn>((resolve, reject) => {
    const c = platform.net.connect({ host: "127.0.0.1", port }, {
      onOpen: () => resolve(c),
      onData: (_conn, chunk) => {
        for (const _frame of decoder.push(chunk)) waiting.shift()?.();
      },
      onClose: (_c, reason, error) => reason !== "local" && reject(error ?? new Error(reason)),
    });
  });
  const frame = encodeFrame(new Uint8Array(frameBytes - 4).fill(7));
  const request = () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      conn.write(frame);
    });
  return {
    request,
    close() {
      conn.destroy();
      listener.close();
    },
  };
}

/**
 * The API's no-op provider, whose tracers make spans that record nothing: what an empty proxy
 * delegates to, given as if the application had registered it.
 */
function noopTracerProvider(): TracerProvider {
  return new ProxyTracerProvider().getDelegate();
}

/** The SDK recording every span, then dropping it at export. */
function recordingTracerProvider(): TracerProvider {
  return new BasicTracerProvider({
    spanProcessors: [
      new SimpleSpanProcessor({
        export: (_spans, done) => done({ code: 0 }),
        shutdown: () => Promise.resolve(),
      }),
    ],
  });
}

/** Rows: node and raw rates for small and large messages, on this runtime's adapter. */
export async function realRows(): Promise<BenchRow[]> {
  const runtime = runtimeName();
  const platform = await createRuntimePlatform();
  try {
    const pair = await nodePair(platform);
    const smallFrame = encodeFrame(
      msgpackCodec.encode(
        createMessage("Sink", { command: "bench" }, {
          source: "BenchA",
          data: new Uint8Array(100),
        }),
      ),
    ).length;
    const largeFrame = encodeFrame(
      msgpackCodec.encode(
        createMessage("Sink", { command: "bench" }, {
          source: "BenchA",
          data: new Uint8Array(1 << 20),
        }),
      ),
    ).length;
    const small = 200_000;
    const large = 200;
    // Recording costs far more per message: fewer of them take as long.
    const recorded = 50_000;
    const noopPair = await nodePair(platform, { tracerProvider: noopTracerProvider() });
    // Warm-up, then best of two for each.
    await nodeRun(platform, pair, 20_000, 100, 1000, 20_000);
    await nodeRun(platform, noopPair, 20_000, 100, 1000, 20_000);
    await rawRun(platform, 20_000, smallFrame, 1000, 20_000);
    let nodeSmall = Infinity, rawSmall = Infinity, nodeLarge = Infinity, rawLarge = Infinity;
    let noopSmall = Infinity, recordingSmall = Infinity;
    // The plain and the no-op-traced small runs first, in the order plain, no-op, no-op, plain:
    // each meets the same state of the machine (the large runs below leave much garbage behind).
    for (const traced of [false, true, true, false]) {
      const seconds = await nodeRun(platform, traced ? noopPair : pair, small, 100, 1000, 20_000);
      if (traced) noopSmall = Math.min(noopSmall, seconds);
      else nodeSmall = Math.min(nodeSmall, seconds);
    }
    for (let i = 0; i < 2; i++) {
      rawSmall = Math.min(rawSmall, await rawRun(platform, small, smallFrame, 1000, 20_000));
      // At most 4 MiB in flight: under the node's 8 MiB link buffer limit.
      nodeLarge = Math.min(nodeLarge, await nodeRun(platform, pair, large, 1 << 20, 2, 4));
      rawLarge = Math.min(rawLarge, await rawRun(platform, large, largeFrame, 2, 4));
    }
    noopPair.close();
    progress("real: request/reply");
    const requester = nodeRequester(pair, "Echo");
    const requestFrame = encodeFrame(
      msgpackCodec.encode(
        createMessage("Echo", { command: "bench", id: "1234" }, {
          source: pair.sender.guid,
          data: new Uint8Array(100),
        }),
      ),
    ).length;
    const node = await reqRepLoops(requester.request);
    requester.close();
    // The same with a message handler on node B answering instead of a worker: no worker pass.
    const offEcho = pair.receiver.onMessage((message) => {
      if (message.message.command !== "bench") return;
      pair.receiver.send(
        createMessage(message.source, { ...message.message, command: "echoReply" }, {
          source: pair.receiver.guid,
          data: message.data,
        }),
      );
    });
    const handlerRequester = nodeRequester(pair, pair.receiver.guid);
    const handler = await reqRepLoops(handlerRequester.request);
    handlerRequester.close();
    offEcho();
    pair.close();
    const echo = await rawEcho(platform, requestFrame);
    const raw = await reqRepLoops(echo.request);
    echo.close();
    // Last: the SDK's spans and traced messages would make the shared code paths measured above
    // see other shapes, which no application that picked one tracer sees.
    progress("real: one way, recording every span");
    const recordingPair = await nodePair(platform, { tracerProvider: recordingTracerProvider() });
    await nodeRun(platform, recordingPair, 10_000, 100, 1000, 20_000);
    for (let i = 0; i < 2; i++) {
      recordingSmall = Math.min(
        recordingSmall,
        await nodeRun(platform, recordingPair, recorded, 100, 1000, 20_000),
      );
    }
    recordingPair.close();
    const mb = (count: number, bytes: number, seconds: number) => (count * bytes) / seconds / 1e6;
    const cut = node.truncated || raw.truncated || handler.truncated
      ? "; a phase hit its time limit"
      : "";
    return [
      {
        name: "oneway_small",
        runtime,
        value: small / nodeSmall,
        unit: "msg/s",
        baseline: small / rawSmall,
        baselineName: "raw_stream_small",
        note: `100-byte data (${smallFrame}-byte frames); aim >= 0.5x raw`,
      },
      {
        name: "oneway_small_noop_tracer",
        runtime,
        value: small / noopSmall,
        unit: "msg/s",
        baseline: small / nodeSmall,
        baselineName: "oneway_small",
        note: "both nodes given a no-op tracer provider (spans record nothing); aim >= 0.9x",
      },
      {
        name: "oneway_small_recording_tracer",
        runtime,
        value: recorded / recordingSmall,
        unit: "msg/s",
        baseline: small / nodeSmall,
        baselineName: "oneway_small",
        note: `the SDK's BasicTracerProvider recording the 3 spans of each message ` +
          `(${recorded.toLocaleString("en-US")} messages), each exported to a sink that drops it`,
      },
      {
        name: "oneway_large",
        runtime,
        value: mb(large, 1 << 20, nodeLarge),
        unit: "MB/s",
        baseline: mb(large, 1 << 20, rawLarge),
        baselineName: "raw_stream_large",
        note: "1 MiB data per message; aim >= 0.8x raw",
      },
      {
        name: "reqrep_p50",
        runtime,
        value: node.p50Ms,
        unit: "ms",
        baseline: raw.p50Ms,
        baselineName: "raw_reqrep_p50",
        note: `one request in flight, ${node.samples} samples after ${REQREP_WARMUP}; ` +
          `app on A -> EchoWorker on B -> A's handler; lower is better${cut}`,
      },
      {
        name: "reqrep_p99",
        runtime,
        value: node.p99Ms,
        unit: "ms",
        baseline: raw.p99Ms,
        baselineName: "raw_reqrep_p99",
        note: `raw: a bare stream echoing ${requestFrame}-byte frames; lower is better`,
      },
      {
        name: "reqrep_handler_p50",
        runtime,
        value: handler.p50Ms,
        unit: "ms",
        baseline: raw.p50Ms,
        baselineName: "raw_reqrep_p50",
        note: "the same, answered by a message handler on node B instead of a worker " +
          "(no worker pass)",
      },
      {
        name: "reqrep_handler_p99",
        runtime,
        value: handler.p99Ms,
        unit: "ms",
        baseline: raw.p99Ms,
        baselineName: "raw_reqrep_p99",
        note: `${handler.samples} samples; ${
          Math.round(handler.serialPerSecond).toLocaleString("en-US")
        } calls/s one at a time, ${
          Math.round(handler.parallelPerSecond).toLocaleString("en-US")
        } with ${IN_FLIGHT} in flight`,
      },
      {
        name: "reqrep_serial",
        runtime,
        value: node.serialPerSecond,
        unit: "calls/s",
        baseline: raw.serialPerSecond,
        baselineName: "raw_reqrep_serial",
        note: "one request in flight (the latency loop)",
      },
      {
        name: "reqrep_64_in_flight",
        runtime,
        value: node.parallelPerSecond,
        unit: "calls/s",
        baseline: raw.parallelPerSecond,
        baselineName: "raw_reqrep_64_in_flight",
        note: `${IN_FLIGHT} requests outstanding, ${node.parallelCalls} calls`,
      },
    ];
  } finally {
    await platform.close();
  }
}

if (import.meta.main) report(await realRows());
