/**
 * Real-socket throughput: two nodes in this process on loopback, a worker on one sending to a
 * worker on the other, beside a raw-socket baseline on the same platform adapter in the same
 * run: small messages (100-byte data) per second and MB/s with 1 MiB data.
 *
 * The raw baseline is what a careful hand-written app needs at least: the same frames (4-byte
 * length + payload of the same size) through a bare stream connection, one write per burst of
 * small frames, and a receiver that cuts the byte stream back into whole frames (the same
 * `FrameDecoder`), without any message encoding, routing or worker queue.
 *
 * Run: `deno run -A bench/real_bench.ts [--json]`, `bun run bench/real_bench.ts [--json]`
 * (also part of `deno task bench`).
 *
 * @module
 */
import { AutoMpiNode } from "../src/node.ts";
import { createMessage, type MapMessage } from "../src/message.ts";
import { msgpackCodec } from "../src/codec.ts";
import { encodeFrame, FrameDecoder } from "../src/framing.ts";
import { WorkerBase } from "../src/worker.ts";
import type { Platform, StreamConn } from "../src/platform.ts";
import { createRuntimePlatform } from "../adapters/runtime.ts";
import { type BenchRow, report, runtimeName } from "./_harness.ts";

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
  readonly sink: Sink;
  close(): void;
}

async function nodePair(platform: Platform): Promise<Pair> {
  const make = (guid: string, seeds: string[] = []) => {
    return new AutoMpiNode(platform, {
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
  await started;
  const sender = make("BenchA", [receiver.address]);
  sender.start();
  if (!(await waitUntil(platform, () => sender.locate("Sink") === "BenchB", 10_000))) {
    throw new Error("Cannot run real bench: the two nodes did not link");
  }
  return {
    sender,
    sink,
    close() {
      sender.close();
      receiver.close();
    },
  };
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
      if (!pair.sender.send(message)) throw new Error("Cannot run real bench: send refused");
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
    // Warm-up, then best of two for each.
    await nodeRun(platform, pair, 20_000, 100, 1000, 20_000);
    await rawRun(platform, 20_000, smallFrame, 1000, 20_000);
    let nodeSmall = Infinity, rawSmall = Infinity, nodeLarge = Infinity, rawLarge = Infinity;
    for (let i = 0; i < 2; i++) {
      nodeSmall = Math.min(nodeSmall, await nodeRun(platform, pair, small, 100, 1000, 20_000));
      rawSmall = Math.min(rawSmall, await rawRun(platform, small, smallFrame, 1000, 20_000));
      // At most 4 MiB in flight: under the node's 8 MiB link buffer limit.
      nodeLarge = Math.min(nodeLarge, await nodeRun(platform, pair, large, 1 << 20, 2, 4));
      rawLarge = Math.min(rawLarge, await rawRun(platform, large, largeFrame, 2, 4));
    }
    pair.close();
    const mb = (count: number, bytes: number, seconds: number) => (count * bytes) / seconds / 1e6;
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
        name: "oneway_large",
        runtime,
        value: mb(large, 1 << 20, nodeLarge),
        unit: "MB/s",
        baseline: mb(large, 1 << 20, rawLarge),
        baselineName: "raw_stream_large",
        note: "1 MiB data per message; aim >= 0.8x raw",
      },
    ];
  } finally {
    await platform.close();
  }
}

if (import.meta.main) report(await realRows());
