/**
 * Simulator speed: bare datagram deliveries per second to a no-op handler, beside a bare
 * priority-queue loop (push + pop of the same number of events) measured in the same run.
 *
 * Run: `deno task bench` or `deno run -A bench/sim_bench.ts [--json]`, `bun run bench/sim_bench.ts`.
 *
 * @module
 */
import { Simulation } from "../sim/simulation.ts";
import { EventQueue } from "../sim/_queue.ts";
import { WheelQueue } from "../sim/_wheel.ts";
import { SeededRandom } from "../sim/_random.ts";
import type { DatagramSocket } from "../src/platform.ts";
import { type BenchRow, bestOf, report, runtimeName } from "./_harness.ts";

const DELIVERIES = 1_000_000;
const BATCH = 1000;

/**
 * The simulator's bare delivery rate: datagram deliveries per second to a no-op handler,
 * `DELIVERIES` datagrams in batches, each with a latency draw (best of 3).
 */
export function simDeliveriesPerSecond(): number {
  let delivered = 0;
  const ms = bestOf(3, () => {
    const sim = new Simulation({ seed: 1, latencyMsMin: 1, latencyMsMax: 5 });
    const target = sim.addHost("sink", (platform) => {
      platform.net.bindDatagram({ host: "0.0.0.0", port: 9999 }, {
        onMessage: () => void delivered++,
      });
    });
    const source = sim.addHost(
      "source",
      (platform) => platform.net.bindDatagram({ host: "0.0.0.0", port: 0 }, { onMessage() {} }),
    );
    const socket = source.app as DatagramSocket;
    const payload = new Uint8Array(32);
    const to = { host: target.address, port: 9999 };
    for (let sent = 0; sent < DELIVERIES; sent += BATCH) {
      for (let i = 0; i < BATCH; i++) socket.send(payload, to);
      sim.run(1);
    }
    sim.run(10);
  });
  if (delivered !== 3 * DELIVERIES) {
    throw new Error(`delivered ${delivered}, expected ${3 * DELIVERIES}`);
  }
  return DELIVERIES / (ms / 1000);
}

interface BareItem {
  timeUs: number;
  seq: number;
  payload: number;
  next?: BareItem;
}

interface BareQueue {
  push(item: BareItem): void;
  pop(): BareItem | undefined;
  peek(): BareItem | undefined;
  readonly size: number;
}

/** A bare queue: push `DELIVERIES` events with random times in batches, pop each. */
function queueOpsPerSecond(make: () => BareQueue): number {
  let sink = 0;
  const ms = bestOf(3, () => {
    const queue = make();
    const random = new SeededRandom(1);
    let seq = 0;
    let now = 0;
    for (let sent = 0; sent < DELIVERIES; sent += BATCH) {
      for (let i = 0; i < BATCH; i++) {
        queue.push({
          timeUs: now + random.int(1000, 5000),
          seq: seq++,
          payload: i,
          next: undefined,
        });
      }
      now += 1000;
      while ((queue.peek()?.timeUs ?? Infinity) <= now) sink += queue.pop()!.payload;
    }
    while (queue.size > 0) sink += queue.pop()!.payload;
  });
  if (sink < 0) throw new Error("unreachable");
  return DELIVERIES / (ms / 1000);
}

/** The rows of this file: the bare queues, then the simulator's bare delivery rate. */
export function simRows(): BenchRow[] {
  const runtime = runtimeName();
  const heap = queueOpsPerSecond(() => new EventQueue());
  const bare = queueOpsPerSecond(() => new WheelQueue());
  const sim = simDeliveriesPerSecond();
  return [
    {
      name: "heap_push_pop",
      runtime,
      value: heap,
      unit: "events/s",
      note: "bare 4-ary heap loop (keys in typed arrays), same draws",
    },
    {
      name: "queue_push_pop",
      runtime,
      value: bare,
      unit: "events/s",
      baseline: heap,
      baselineName: "heap_push_pop",
      note: "bare timing-wheel loop (the simulator's queue)",
    },
    {
      name: "sim_datagram_deliveries",
      runtime,
      value: sim,
      unit: "deliveries/s",
      baseline: bare,
      baselineName: "queue_push_pop",
      note: "target >= 2,000,000",
    },
  ];
}

if (import.meta.main) report(simRows());
