/**
 * The writer of the file storage crash test (tests/live/file_storage_test.ts): opens the storage in
 * the directory given as its argument and writes numbered batches ({@link crashBatch}) as fast
 * as it can, a few in flight at a time, until it is killed. It prints `start N` once open (N
 * the first number it will write), then `ack N` after the Promise of batch N resolved, and
 * never before.
 *
 * Run as `deno run -A tests/live/_file_storage_child.ts DIR` or `bun tests/live/_file_storage_child.ts DIR`.
 *
 * @module
 */
import process from "node:process";
import { openFileStorage } from "../../adapters/file_storage.ts";
import type { StorageOp } from "../../src/storage.ts";

/** Small enough that the writer compacts every few hundred batches: a kill may land in one. */
export const CRASH_COMPACT_MIN_BYTES = 32 * 1024;
const IN_FLIGHT = 16;
const ITEMS = 13;

/** The key holding the number of the last batch applied. */
export const SEQUENCE_KEY = "seq";

/** Batch `seq`: puts and deletes over a few keys, so a partial batch would show. */
export function crashBatch(seq: number): StorageOp[] {
  const number = new Uint8Array(4);
  new DataView(number.buffer).setUint32(0, seq);
  const ops: StorageOp[] = [
    { type: "put", key: `item/${seq % ITEMS}`, value: new Uint8Array((seq * 7) % 300).fill(seq) },
    { type: "delete", key: `item/${(seq * 5 + 3) % ITEMS}` },
    { type: "put", key: SEQUENCE_KEY, value: number },
  ];
  if (seq % 10 === 0) {
    ops.splice(1, 0, { type: "put", key: `big/${seq % 3}`, value: new Uint8Array(2000).fill(seq) });
  }
  return ops;
}

/** The number stored under {@link SEQUENCE_KEY}, or -1. */
export function decodeSequence(value: Uint8Array | undefined): number {
  return value === undefined ? -1 : new DataView(value.buffer, value.byteOffset).getUint32(0);
}

async function main(dir: string): Promise<void> {
  const storage = await openFileStorage(dir, { compactMinBytes: CRASH_COMPACT_MIN_BYTES });
  let next = decodeSequence(await storage.get(SEQUENCE_KEY)) + 1;
  process.stdout.write(`start ${next}\n`);
  const inFlight: Promise<void>[] = [];
  for (;;) {
    const seq = next++;
    inFlight.push(
      storage.batch(crashBatch(seq)).then(() => void process.stdout.write(`ack ${seq}\n`)),
    );
    if (inFlight.length >= IN_FLIGHT) await inFlight.shift();
  }
}

if (import.meta.main) await main(process.argv[process.argv.length - 1]);
