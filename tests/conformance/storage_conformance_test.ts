/**
 * The storage conformance suite (tests/conformance/_storage_suite.ts) against every backend: memory, a
 * scoped view of memory (with other keys around it that it must not see), the file backend in a
 * temporary directory, and the simulator's disk, driven on virtual time.
 *
 * @module
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  MAX_STORAGE_KEY_LENGTH,
  MemoryStorage,
  scopedStorage,
  type Storage,
} from "../../src/storage.ts";
import { openFileStorage } from "../../adapters/file_storage.ts";
import { Simulation } from "../../sim/simulation.ts";
import { SimDisk } from "../../sim/storage.ts";
import { runStorageConformance } from "./_storage_suite.ts";

runStorageConformance("memory", () => {
  const storage = new MemoryStorage();
  return Promise.resolve({ storage, cleanup: () => storage.close() });
});

runStorageConformance("scoped", async () => {
  const shared = new MemoryStorage();
  const noise = new Uint8Array([7]);
  for (const key of ["workers/w1", "workers/w10/a", "workers/w2/a", "a", "workers/w0"]) {
    await shared.put(key, noise);
  }
  const prefix = "workers/w1/";
  let view = scopedStorage(shared, prefix);
  return {
    storage: view,
    maxKeyLength: MAX_STORAGE_KEY_LENGTH - prefix.length,
    reopen: async () => {
      await view.close();
      view = scopedStorage(shared, prefix);
      return view;
    },
    cleanup: () => view.close(),
  };
});

runStorageConformance("file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "automp-storage-test-"));
  let storage = await openFileStorage(dir);
  return {
    storage,
    reopen: async () => {
      await storage.close();
      storage = await openFileStorage(dir);
      return storage;
    },
    cleanup: async () => {
      await storage.close().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}, { propertyRuns: 40 }); // each write waits for an fsync

let simSeed = 0;

runStorageConformance("sim", () => {
  const sim = new Simulation({ seed: ++simSeed });
  const disk = new SimDisk(sim, { fsyncMsMin: 1, fsyncMsMax: 5 });
  const host = sim.addHost("h", () => undefined);
  // Test code awaits the Promises itself, so the simulation runs whenever a write is waiting:
  // in a microtask after the calls of the current turn, so that they are in flight together.
  let driving = false;
  const drive = () => {
    if (driving) return;
    driving = true;
    queueMicrotask(() => {
      driving = false;
      sim.runUntil(() => disk.pendingWrites === 0, 60_000);
    });
  };
  const driven = (storage: Storage): Storage => ({
    get: (key) => storage.get(key),
    list: (prefix) => storage.list(prefix),
    put: (key, value) => after(storage.put(key, value)),
    delete: (key) => after(storage.delete(key)),
    batch: (ops) => after(storage.batch(ops)),
    close: () => after(storage.close()),
  });
  const after = <T>(promise: Promise<T>): Promise<T> => {
    drive();
    return promise;
  };
  let storage = driven(disk.open(host));
  return Promise.resolve({
    storage,
    reopen: async () => {
      await storage.close();
      // Everything resolved is durable: a crash of the host must not lose any of it.
      sim.crash(host);
      sim.restart(host);
      storage = driven(disk.open(host));
      return storage;
    },
    cleanup: () => Promise.resolve(),
  });
});
