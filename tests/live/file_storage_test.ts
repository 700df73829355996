/**
 * The file storage beyond the conformance suite: recovery from torn and corrupt logs,
 * compaction, the lock file, disk failures (through the fault hook), and real crashes: a child
 * process writing as fast as it can is killed with SIGKILL at seeded moments, and every batch it
 * acknowledged must be there, whole, with the state a prefix of what it issued.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  type FileStorage,
  type FileStorageOperation,
  type FileStorageOptions,
  openFileStorage,
} from "../../adapters/file_storage.ts";
import type { StorageOp } from "../../src/storage.ts";
import { SeededRandom } from "../../sim/_random.ts";
import { crashBatch, decodeSequence, SEQUENCE_KEY } from "./_file_storage_child.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
// Far above any pid_max (Linux allows at most 2^22): never a live process.
const DEAD_PID = 2147483000;

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "automp-file-storage-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function entries(storage: FileStorage): Promise<Array<[string, number[]]>> {
  return (await storage.list("")).map((entry) => [entry.key, [...entry.value]]);
}

async function reopen(
  dir: string,
  options?: FileStorageOptions,
): Promise<{ storage: FileStorage; state: Array<[string, number[]]> }> {
  const storage = await openFileStorage(dir, options);
  return { storage, state: await entries(storage) };
}

/** Writes k1, k2, k3 as three records; returns the log size after each. */
async function threeRecords(dir: string): Promise<number[]> {
  const storage = await openFileStorage(dir);
  const sizes = [storage.logBytes];
  for (const n of [1, 2, 3]) {
    await storage.put(`k${n}`, bytes(n, n, n));
    sizes.push(storage.logBytes);
  }
  await storage.close();
  return sizes;
}

test("file storage: each fsync is timed in its metrics, commits and compactions alike", async () => {
  await withDir(async (dir) => {
    const storage = await openFileStorage(dir, { compactMinBytes: 1 << 20 });
    const count = () => {
      const family = storage.metrics().find((f) =>
        f.name === "automp_storage_fsync_duration_seconds"
      );
      assert.equal(family?.type, "histogram");
      const sample = family.samples[0];
      return sample.counts.reduce((a, b) => a + b, 0) + sample.overflow;
    };
    const opened = count();
    assert.equal(opened, 1, "the new empty log was fsynced");
    await storage.put("a", bytes(1));
    assert.equal(count(), opened + 1, "one commit, one fsync");
    await storage.compact();
    assert.equal(count(), opened + 3, "a compaction fsyncs the snapshot and the directory");
    await storage.close();
  });
});

test("file storage: a torn last record is cut off wherever the tear is", async () => {
  await withDir(async (dir) => {
    const sizes = await threeRecords(dir);
    const log = join(dir, "data.log");
    const whole = await readFile(log);
    for (let size = sizes[2] + 1; size < sizes[3]; size++) {
      await writeFile(log, whole.subarray(0, size));
      const { storage, state } = await reopen(dir);
      assert.deepEqual(state, [["k1", [1, 1, 1]], ["k2", [2, 2, 2]]], `torn at ${size}`);
      assert.deepEqual(storage.recovery, { records: 2, truncatedBytes: size - sizes[2] });
      assert.equal((await stat(log)).size, sizes[2]);
      await storage.close();
    }
  });
});

test("file storage: after cutting a torn tail, new writes are kept", async () => {
  await withDir(async (dir) => {
    const sizes = await threeRecords(dir);
    await truncate(join(dir, "data.log"), sizes[3] - 3);
    let { storage } = await reopen(dir);
    await storage.put("k4", bytes(4));
    await storage.close();
    ({ storage } = await reopen(dir));
    assert.deepEqual(await entries(storage), [["k1", [1, 1, 1]], ["k2", [2, 2, 2]], ["k4", [4]]]);
    assert.deepEqual(storage.recovery, { records: 3, truncatedBytes: 0 });
    await storage.close();
  });
});

test("file storage: a record with a bad CRC ends the log there", async () => {
  await withDir(async (dir) => {
    const sizes = await threeRecords(dir);
    const log = join(dir, "data.log");
    const whole = await readFile(log);
    // A flipped payload byte of the last record, then of its CRC field, then of the middle one.
    const cases: Array<[number, string[]]> = [
      [sizes[3] - 1, ["k1", "k2"]],
      [sizes[2] + 5, ["k1", "k2"]],
      [sizes[2] - 2, ["k1"]],
    ];
    for (const [at, keys] of cases) {
      const corrupt = Uint8Array.from(whole);
      corrupt[at] ^= 0x40;
      await writeFile(log, corrupt);
      const { storage, state } = await reopen(dir);
      assert.deepEqual(state.map(([key]) => key), keys, `byte ${at} flipped`);
      assert.equal(storage.recovery.records, keys.length);
      await storage.close();
    }
  });
});

test("file storage: garbage after the last record is cut off", async () => {
  await withDir(async (dir) => {
    const sizes = await threeRecords(dir);
    const log = join(dir, "data.log");
    const garbage = new SeededRandom(5).fill(new Uint8Array(100));
    await writeFile(log, garbage, { flag: "a" });
    const { storage, state } = await reopen(dir);
    assert.equal(state.length, 3);
    assert.deepEqual(storage.recovery, { records: 3, truncatedBytes: 100 });
    assert.equal((await stat(log)).size, sizes[3]);
    await storage.close();
  });
});

test("file storage: a file that is not a storage log is refused and left alone", async () => {
  await withDir(async (dir) => {
    const log = join(dir, "data.log");
    await writeFile(log, "precious notes, not a log");
    await assert.rejects(
      openFileStorage(dir),
      /^Error: Cannot open storage .*: data\.log is not a storage log$/,
    );
    assert.equal(await readFile(log, "utf8"), "precious notes, not a log");
    // The refused open released the lock.
    await assert.rejects(readFile(join(dir, "LOCK")), { code: "ENOENT" });
  });
});

test("file storage: bad options reject with TypeError or RangeError", async () => {
  await assert.rejects(openFileStorage(""), TypeError);
  await assert.rejects(openFileStorage(7 as unknown as string), TypeError);
  await withDir(async (dir) => {
    await assert.rejects(openFileStorage(dir, { compactMinBytes: -1 }), RangeError);
    await assert.rejects(openFileStorage(dir, { compactRatio: 0.5 }), RangeError);
    await assert.rejects(
      openFileStorage(dir, { faultHook: "no" as unknown as FileStorageOptions["faultHook"] }),
      TypeError,
    );
  });
});

test("file storage: the log is compacted as it grows, and keeps the data", async () => {
  await withDir(async (dir) => {
    const options = { compactMinBytes: 2048 };
    let storage = await openFileStorage(dir, options);
    let largest = 0;
    for (let i = 0; i < 150; i++) {
      await storage.put(`key/${i % 10}`, new Uint8Array(50).fill(i));
      largest = Math.max(largest, storage.logBytes);
    }
    assert.ok(largest < 2048 + 200, `the log reached ${largest} bytes`);
    await storage.close();
    storage = await openFileStorage(dir, options);
    const state = await entries(storage);
    assert.deepEqual(state.map(([key]) => key), Array.from({ length: 10 }, (_, i) => `key/${i}`));
    state.forEach(([, value], i) => assert.deepEqual(value, new Array(50).fill(140 + i)));
    assert.deepEqual((await readdir(dir)).sort(), ["LOCK", "data.log"]);
    await storage.close();
  });
});

test("file storage: compact() shrinks the log to the live data", async () => {
  await withDir(async (dir) => {
    let storage = await openFileStorage(dir);
    for (let i = 0; i < 50; i++) await storage.put("same", new Uint8Array(100).fill(i));
    await storage.put("gone", bytes(1));
    await storage.delete("gone");
    const before = storage.logBytes;
    await storage.compact();
    assert.ok(
      storage.logBytes < 200 && storage.logBytes < before / 10,
      `${before} -> ${storage.logBytes}`,
    );
    await storage.put("after", bytes(2));
    await storage.close();
    storage = await openFileStorage(dir);
    assert.deepEqual((await entries(storage)).map(([key]) => key), ["after", "same"]);
    assert.deepEqual(await storage.get("same"), new Uint8Array(100).fill(49));
    await storage.close();
  });
});

test("file storage: writes in flight during a compaction are neither lost nor doubled", async () => {
  await withDir(async (dir) => {
    const options = { compactMinBytes: 2048 };
    let storage = await openFileStorage(dir, options);
    const model = new Map<string, number>();
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 600; i++) {
      const key = `k${(i * 7) % 23}`;
      if (i % 5 === 4) {
        writes.push(storage.delete(key));
        model.delete(key);
      } else {
        writes.push(storage.batch([{ type: "put", key, value: new Uint8Array(40).fill(i) }]));
        model.set(key, i);
      }
      // Let a commit (and so a compaction) start now and then while writes keep coming.
      if (i % 50 === 0) await writes[writes.length - 1];
    }
    await Promise.all(writes);
    await storage.close();
    storage = await openFileStorage(dir, options);
    const expected = [...model].sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([key, i]) => [key, new Array(40).fill(i & 0xff)]);
    assert.deepEqual(await entries(storage), expected);
    await storage.close();
  });
});

test("file storage: a compaction that a crash interrupted leaves the old log in force", async () => {
  await withDir(async (dir) => {
    await threeRecords(dir);
    await writeFile(join(dir, "data.log.tmp"), "half a snapshot");
    const { storage, state } = await reopen(dir);
    assert.equal(state.length, 3);
    assert.deepEqual((await readdir(dir)).sort(), ["LOCK", "data.log"]);
    await storage.close();
  });
});

test("file storage: concurrent writes share fsyncs (group commit)", async () => {
  await withDir(async (dir) => {
    let syncs = 0;
    const storage = await openFileStorage(dir, {
      faultHook: (operation) => {
        if (operation.kind === "sync" && operation.path.endsWith("data.log")) syncs++;
      },
    });
    await Promise.all(Array.from({ length: 100 }, (_, i) => storage.put(`k${i}`, bytes(i))));
    // The first write goes alone; the 99 called while its fsync was in flight go as one.
    assert.equal(syncs, 2);
    assert.equal((await storage.list("")).length, 100);
    await storage.close();
  });
});

test("file storage: a second open is refused while the first holds the directory", async () => {
  await withDir(async (dir) => {
    const first = await openFileStorage(dir);
    assert.match(await readFile(join(dir, "LOCK"), "utf8"), new RegExp(`^${process.pid}\n`));
    await assert.rejects(
      openFileStorage(dir),
      (error: Error) =>
        error.message === `Cannot open storage ${first.dir}: in use by process ${process.pid}`,
    );
    await first.put("k", bytes(1));
    await first.close();
    await assert.rejects(readFile(join(dir, "LOCK")), { code: "ENOENT" });
    const second = await openFileStorage(dir);
    assert.deepEqual(await second.get("k"), bytes(1));
    await second.close();
  });
});

test("file storage: a lock held by another live process is respected", async () => {
  await withDir(async (dir) => {
    // Process 1 (init) is always alive; it is not ours, so we may not signal it: still alive.
    await writeFile(join(dir, "LOCK"), "1\n");
    await assert.rejects(openFileStorage(dir), /: in use by process 1$/);
    assert.equal(await readFile(join(dir, "LOCK"), "utf8"), "1\n");
  });
});

test("file storage: a stale or unreadable lock is taken over", async () => {
  await withDir(async (dir) => {
    for (const content of [`${DEAD_PID}\n`, "", "not a pid"]) {
      await writeFile(join(dir, "LOCK"), content);
      const storage = await openFileStorage(dir);
      assert.match(await readFile(join(dir, "LOCK"), "utf8"), new RegExp(`^${process.pid}\n`));
      await storage.close();
    }
    assert.deepEqual(await readdir(dir), ["data.log"]);
  });
});

test("file storage: opens racing in one process let exactly one in", async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, "LOCK"), `${DEAD_PID}\n`);
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => openFileStorage(dir)));
    const opened = results.filter((r) => r.status === "fulfilled");
    assert.equal(opened.length, 1);
    for (const result of results) {
      if (result.status === "rejected") assert.match(String(result.reason), /in use by process/);
    }
    await (opened[0] as PromiseFulfilledResult<FileStorage>).value.close();
  });
});

/** A fault hook failing the next `count` operations of `kind`, with ENOSPC. */
function failing(kind: FileStorageOperation["kind"]) {
  const faults = { count: 0, seen: [] as string[] };
  const hook = (operation: FileStorageOperation) => {
    faults.seen.push(operation.kind);
    if (operation.kind !== kind || faults.count <= 0) return undefined;
    faults.count--;
    return Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
  };
  return { faults, hook };
}

for (const kind of ["write", "sync"] as const) {
  test(`file storage: a failed ${kind} rejects that commit, undoes it, and the store goes on`, async () => {
    await withDir(async (dir) => {
      const { faults, hook } = failing(kind);
      let storage = await openFileStorage(dir, { faultHook: hook });
      await storage.put("a", bytes(1));
      // Until the committer is idle, a new write would join the commit of the one before.
      await new Promise((resolve) => setTimeout(resolve, 0));
      faults.count = 1;
      const failed = storage.batch([{ type: "put", key: "a", value: bytes(2) }, {
        type: "put",
        key: "b",
        value: bytes(2),
      }]);
      const rejected = assert.rejects(
        failed,
        (error: Error) =>
          error.message ===
            `Cannot write to storage ${storage.dir}: ENOSPC: no space left on device` &&
          !(error instanceof TypeError),
      );
      // Called after the failing commit started: its own commit comes after, and succeeds.
      const later = storage.put("c", bytes(3));
      await rejected;
      await later;
      assert.deepEqual(await entries(storage), [["a", [1]], ["c", [3]]]);
      await storage.put("d", bytes(4));
      await storage.close();
      storage = await openFileStorage(dir);
      assert.deepEqual(await entries(storage), [["a", [1]], ["c", [3]], ["d", [4]]]);
      assert.equal(storage.recovery.truncatedBytes, 0);
      await storage.close();
    });
  });
}

test("file storage: while cutting off a failed append fails, writes reject; then they resume", async () => {
  await withDir(async (dir) => {
    const sync = failing("sync");
    const truncating = failing("truncate");
    let storage = await openFileStorage(dir, {
      faultHook: (operation) => sync.hook(operation) ?? truncating.hook(operation),
    });
    sync.faults.count = 1;
    truncating.faults.count = 2;
    await assert.rejects(storage.put("a", bytes(1)), /^Error: Cannot write to storage /);
    await assert.rejects(storage.put("b", bytes(2)), /ENOSPC/);
    await assert.rejects(storage.put("c", bytes(3)), /ENOSPC/);
    await storage.put("d", bytes(4));
    await storage.close();
    storage = await openFileStorage(dir);
    assert.deepEqual(await entries(storage), [["d", [4]]]);
    await storage.close();
  });
});

for (const kind of ["write", "sync", "rename", "syncDir"] as const) {
  test(`file storage: a compaction whose ${kind} fails changes nothing that was acknowledged`, async () => {
    await withDir(async (dir) => {
      const { faults, hook } = failing(kind);
      let storage = await openFileStorage(dir, { faultHook: hook });
      for (let i = 0; i < 20; i++) await storage.put("k", bytes(i));
      faults.count = 1;
      await assert.rejects(storage.compact(), /^Error: Cannot compact storage .*: ENOSPC/);
      await storage.put("after", bytes(1));
      assert.ok(faults.seen.includes(kind));
      await storage.close();
      storage = await openFileStorage(dir);
      assert.deepEqual(await entries(storage), [["after", [1]], ["k", [19]]]);
      assert.deepEqual((await readdir(dir)).sort(), ["LOCK", "data.log"]);
      await storage.close();
    });
  });
}

// ---- real crashes ------------------------------------------------------------------------------

const CHILD = fileURLToPath(new URL("./_file_storage_child.ts", import.meta.url));
const g = globalThis as unknown as { Deno?: { execPath(): string } };

function childCommand(dir: string): [string, string[]] {
  return g.Deno !== undefined
    ? [g.Deno.execPath(), ["run", "-A", CHILD, dir]]
    : [process.execPath, [CHILD, dir]];
}

interface Round {
  readonly start: number;
  readonly acknowledged: number;
}

/**
 * Starts the writer, waits for `acks` acknowledgements (or `maxMs`), waits `extraMs` more, then
 * kills it with SIGKILL; resolves with what it reported.
 */
function crashRound(dir: string, acks: number, extraMs: number, maxMs: number): Promise<Round> {
  const [command, args] = childCommand(dir);
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  let start = -1;
  let acknowledged = -1;
  let count = 0;
  let killed = false;
  let buffered = "";
  let errors = "";
  const kill = () => {
    if (killed) return;
    killed = true;
    child.kill("SIGKILL");
  };
  const deadline = setTimeout(kill, maxMs);
  return new Promise((resolve, reject) => {
    child.stderr.on("data", (chunk) => void (errors += chunk));
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        const [word, number] = line.split(" ");
        if (word === "start") start = Number(number);
        if (word !== "ack") continue;
        acknowledged = Math.max(acknowledged, Number(number));
        if (++count === acks) setTimeout(kill, extraMs);
      }
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(deadline);
      if (signal !== "SIGKILL") {
        reject(new Error(`the writer exited by itself (${code}, ${signal}): ${errors}`));
      } else {
        resolve({ start, acknowledged });
      }
    });
  });
}

/** The state after batches 0..last, as list("") would give it. */
function replay(last: number): Array<[string, number[]]> {
  const model = new Map<string, Uint8Array>();
  for (let seq = 0; seq <= last; seq++) {
    for (const op of crashBatch(seq) as StorageOp[]) {
      if (op.type === "put") model.set(op.key, op.value);
      else model.delete(op.key);
    }
  }
  return [...model].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, value]) => [key, [...value]]);
}

test("file storage: after kill -9 at seeded moments, every acknowledged batch is there, whole", async () => {
  const seed = 20260712;
  const random = new SeededRandom(seed);
  await withDir(async (dir) => {
    let expectedStart = 0;
    for (let round = 0; round < 5; round++) {
      const acks = random.int(1, 400);
      const extraMs = random.int(0, 3);
      const { start, acknowledged } = await crashRound(dir, acks, extraMs, 5000);
      const context = `round ${round} (seed ${seed}, ${acks} acks + ${extraMs} ms)`;
      assert.equal(start, expectedStart, `${context}: the writer resumed after the last batch`);
      assert.ok(acknowledged >= start, `${context}: nothing acknowledged`);
      const storage = await openFileStorage(dir);
      try {
        const last = decodeSequence(await storage.get(SEQUENCE_KEY));
        assert.ok(
          last >= acknowledged,
          `${context}: batch ${acknowledged} acknowledged, ${last} found`,
        );
        // Whole batches, in order: the state is exactly that of batches 0..last.
        assert.deepEqual(await entries(storage), replay(last), context);
        expectedStart = last + 1;
      } finally {
        await storage.close();
      }
    }
  });
});
