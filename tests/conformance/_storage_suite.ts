/**
 * The storage conformance suite: one set of behaviours every {@link Storage} backend must show,
 * run unchanged against each (memory, a scoped view, the file backend, the simulator's disk),
 * as tests/conformance/_platform_suite.ts does for the platform seam.
 *
 * A runner builds a {@link StorageFixture} per test. Every test name says the behaviour:
 * `storage(file): a batch is all or nothing: one bad op applies none`. The last test is a
 * model-based property: random sequences of calls (some awaited at once, some left in flight,
 * some with bad arguments, and reopening where the backend outlives itself) against a `Map`.
 *
 * fast-check runs with a fixed seed; to replay a failure, copy the `{ seed, path }` it prints
 * into the property's options and run the one runner file.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import {
  MAX_STORAGE_KEY_LENGTH,
  type Storage,
  type StorageEntry,
  type StorageOp,
} from "../../src/storage.ts";

/** One store to test, and what it takes to reopen and release it. */
export interface StorageFixture {
  readonly storage: Storage;
  /**
   * Closes `storage` and opens the same durable state again; called only once every write has
   * resolved. Absent where a store does not outlive itself (memory).
   */
  readonly reopen?: () => Promise<Storage>;
  /** The longest key it takes; default MAX_STORAGE_KEY_LENGTH (a scoped view takes less). */
  readonly maxKeyLength?: number;
  /** Closes whatever is open and removes what the fixture made. */
  cleanup(): Promise<void>;
}

/** Options of {@link runStorageConformance}. */
export interface StorageSuiteOptions {
  /** Runs of the model-based property. Default 60. */
  readonly propertyRuns?: number;
}

const SEED = 20260712;
const bytes = (...values: number[]) => new Uint8Array(values);
const text = (value: string) => new TextEncoder().encode(value);

/** Registers every case for one backend; `open` makes a fresh, empty store per case. */
export function runStorageConformance(
  name: string,
  open: () => Promise<StorageFixture>,
  options: StorageSuiteOptions = {},
): void {
  const it = (behaviour: string, body: (fixture: StorageFixture) => Promise<void>) =>
    test(`storage(${name}): ${behaviour}`, async () => {
      const fixture = await open();
      try {
        await body(fixture);
      } finally {
        await fixture.cleanup();
      }
    });

  it("a missing key reads as undefined; a put reads back equal bytes", async ({ storage }) => {
    assert.equal(await storage.get("nothing"), undefined);
    await storage.put("k", bytes(1, 2, 3));
    assert.deepEqual(await storage.get("k"), bytes(1, 2, 3));
    await storage.put("k", bytes());
    assert.deepEqual(await storage.get("k"), bytes());
  });

  it("values are copied in and out, Node Buffers included", async ({ storage }) => {
    const given = Buffer.from([1, 2, 3]);
    await storage.put("buffer", given);
    given[0] = 9;
    const read = await storage.get("buffer");
    assert.deepEqual(read, bytes(1, 2, 3));
    read![1] = 9;
    assert.deepEqual(await storage.get("buffer"), bytes(1, 2, 3));
    const value = bytes(4);
    await storage.batch([{ type: "put", key: "batched", value }]);
    value[0] = 0;
    const [entry] = await storage.list("batched");
    assert.deepEqual(entry.value, bytes(4));
    entry.value[0] = 0;
    assert.deepEqual(await storage.get("batched"), bytes(4));
  });

  it("delete resolves whether the key was there, and removes it", async ({ storage }) => {
    await storage.put("k", bytes(1));
    assert.equal(await storage.delete("k"), true);
    assert.equal(await storage.get("k"), undefined);
    assert.equal(await storage.delete("k"), false);
  });

  it("list returns the keys under a prefix in ascending UTF-16 order", async ({ storage }) => {
    const keys = ["b", "a/2", "a", "ab", "a/10", "A", "é", "\u{1F600}", "\uFFFF", "a/1"];
    for (const key of keys) await storage.put(key, text(key));
    const all = await storage.list("");
    assert.deepEqual(all.map((e) => e.key), [...keys].sort());
    for (const entry of all) assert.deepEqual(entry.value, text(entry.key));
    assert.deepEqual((await storage.list("a/")).map((e) => e.key), ["a/1", "a/10", "a/2"]);
    assert.deepEqual((await storage.list("a")).map((e) => e.key), [
      "a",
      "a/1",
      "a/10",
      "a/2",
      "ab",
    ]);
    assert.deepEqual(await storage.list("zzz"), []);
  });

  it("a batch applies its ops in order", async ({ storage }) => {
    await storage.put("gone", bytes(1));
    await storage.batch([
      { type: "put", key: "x", value: bytes(1) },
      { type: "put", key: "x", value: bytes(2) },
      { type: "put", key: "y", value: bytes(3) },
      { type: "delete", key: "y" },
      { type: "delete", key: "z" },
      { type: "put", key: "z", value: bytes(4) },
      { type: "delete", key: "gone" },
    ]);
    assert.deepEqual(await entries(storage), [["x", [2]], ["z", [4]]]);
    await storage.batch([]);
    assert.deepEqual(await entries(storage), [["x", [2]], ["z", [4]]]);
  });

  it("a batch is all or nothing: one bad op applies none", async ({ storage }) => {
    await storage.put("keep", bytes(1));
    const bad: unknown[] = [
      [{ type: "put", key: "new", value: bytes(1) }, { type: "put", key: "", value: bytes(1) }],
      [{ type: "delete", key: "keep" }, { type: "put", key: "new", value: "text" }],
      [{ type: "put", key: "new", value: bytes(1) }, { type: "rename", key: "keep" }],
      [{ type: "delete", key: "keep" }, null],
      [{ type: "put", key: "x".repeat(MAX_STORAGE_KEY_LENGTH + 1), value: bytes() }],
    ];
    for (const ops of bad) {
      await assert.rejects(storage.batch(ops as StorageOp[]), isArgumentError);
    }
    assert.deepEqual(await entries(storage), [["keep", [1]]]);
  });

  it("bad arguments reject with TypeError or RangeError, never throw", async (fixture) => {
    const { storage } = fixture;
    const long = "k".repeat((fixture.maxKeyLength ?? MAX_STORAGE_KEY_LENGTH) + 1);
    const calls: Array<[string, () => Promise<unknown>, ErrorConstructor]> = [
      ["get('')", () => storage.get(""), TypeError],
      ["get(7)", () => storage.get(7 as unknown as string), TypeError],
      ["get(long)", () => storage.get(long), RangeError],
      ["put('', v)", () => storage.put("", bytes()), TypeError],
      ["put(k, 'text')", () => storage.put("k", "text" as unknown as Uint8Array), TypeError],
      ["put(k, [1])", () => storage.put("k", [1] as unknown as Uint8Array), TypeError],
      ["put(long, v)", () => storage.put(long, bytes()), RangeError],
      ["delete(undefined)", () => storage.delete(undefined as unknown as string), TypeError],
      ["delete(long)", () => storage.delete(long), RangeError],
      ["list(5)", () => storage.list(5 as unknown as string), TypeError],
      ["batch('ops')", () => storage.batch("ops" as unknown as StorageOp[]), TypeError],
    ];
    for (const [label, call, type] of calls) {
      let promise: Promise<unknown>;
      assert.doesNotThrow(() => void (promise = call()), label);
      await assert.rejects(promise!, (error) => error instanceof type, label);
    }
    const longest = "k".repeat(fixture.maxKeyLength ?? MAX_STORAGE_KEY_LENGTH);
    await storage.put(longest, bytes(1));
    assert.deepEqual(await storage.get(longest), bytes(1));
    assert.deepEqual((await entries(storage)).map(([key]) => key), [longest]);
  });

  it("writes left in flight apply and resolve in call order", async ({ storage }) => {
    const resolved: number[] = [];
    const track = <T>(index: number, promise: Promise<T>) =>
      promise.then((value) => (resolved.push(index), value));
    const results = await Promise.all([
      track(0, storage.put("k", bytes(1))),
      track(1, storage.batch([{ type: "put", key: "k", value: bytes(2) }])),
      track(2, storage.delete("k")),
      track(3, storage.delete("k")),
      track(4, storage.put("k", bytes(3))),
      track(5, storage.batch([])),
    ]);
    assert.deepEqual(resolved, [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(results.slice(2, 4), [true, false]);
    assert.deepEqual(await storage.get("k"), bytes(3));
  });

  it("a read sees every write called before it, even one not yet resolved", async ({ storage }) => {
    const put = storage.put("k", bytes(1));
    assert.deepEqual(await storage.get("k"), bytes(1));
    const batch = storage.batch([{ type: "delete", key: "k" }, {
      type: "put",
      key: "j",
      value: bytes(2),
    }]);
    assert.deepEqual(await storage.list(""), [{ key: "j", value: bytes(2) }]);
    await Promise.all([put, batch]);
  });

  it("a large value round-trips", async ({ storage }) => {
    const value = new Uint8Array(1 << 20);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31) >>> 3;
    await storage.put("large", value);
    assert.deepEqual(await storage.get("large"), value);
  });

  it("after close every call rejects with an Error, and close can be repeated", async (fixture) => {
    const { storage } = fixture;
    await storage.put("k", bytes(1));
    await storage.close();
    await storage.close();
    const calls: Array<[string, () => Promise<unknown>]> = [
      ["get", () => storage.get("k")],
      ["put", () => storage.put("k", bytes(2))],
      ["delete", () => storage.delete("k")],
      ["list", () => storage.list("")],
      ["batch", () => storage.batch([{ type: "delete", key: "k" }])],
    ];
    for (const [label, call] of calls) {
      await assert.rejects(
        call(),
        (error) =>
          error instanceof Error && !(error instanceof TypeError) && /closed/.test(String(error)),
        label,
      );
    }
  });

  it("what resolved is there after reopening", async (fixture) => {
    if (fixture.reopen === undefined) return; // this backend does not outlive itself
    const { storage } = fixture;
    await storage.put("a", bytes(1));
    await storage.batch([
      { type: "put", key: "b", value: bytes(2) },
      { type: "put", key: "c", value: bytes(3) },
      { type: "delete", key: "a" },
    ]);
    await storage.delete("c");
    const again = await fixture.reopen();
    assert.deepEqual(await entries(again), [["b", [2]]]);
    await again.put("d", bytes(4));
    const third = await fixture.reopen();
    assert.deepEqual(await entries(third), [["b", [2]], ["d", [4]]]);
  });

  it("random call sequences match a Map model (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(commandArbitrary, { maxLength: 30 }), async (commands) => {
        const fixture = await open();
        try {
          await checkAgainstModel(fixture, commands);
        } finally {
          await fixture.cleanup();
        }
      }),
      { seed: SEED, numRuns: options.propertyRuns ?? 60 },
    );
  });
}

function isArgumentError(error: unknown): boolean {
  return error instanceof TypeError || error instanceof RangeError;
}

async function entries(storage: Storage): Promise<Array<[string, number[]]>> {
  return (await storage.list("")).map((entry) => [entry.key, [...entry.value]]);
}

// ---- the model-based property ----------------------------------------------------------------

type Command =
  | {
    readonly kind: "put";
    readonly key: string;
    readonly value: Uint8Array;
    readonly wait: boolean;
  }
  | { readonly kind: "delete"; readonly key: string; readonly wait: boolean }
  | { readonly kind: "batch"; readonly ops: readonly StorageOp[]; readonly wait: boolean }
  | { readonly kind: "get"; readonly key: string }
  | { readonly kind: "list"; readonly prefix: string }
  | { readonly kind: "bad"; readonly call: number }
  | { readonly kind: "reopen" };

// Few keys, sharing prefixes, so that calls collide; a lone surrogate must round-trip too.
const keyArbitrary = fc.oneof(
  fc.constantFrom("a", "a/1", "a/2", "a/10", "ab", "b", "b/a", "é", "\u{1F600}", "\uD83D"),
  fc.string({ minLength: 1, maxLength: 4 }),
);
const valueArbitrary = fc.uint8Array({ maxLength: 12 });
const opArbitrary: fc.Arbitrary<StorageOp> = fc.oneof(
  fc.record({ type: fc.constant("put" as const), key: keyArbitrary, value: valueArbitrary }),
  fc.record({ type: fc.constant("delete" as const), key: keyArbitrary }),
);
const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("put" as const),
      key: keyArbitrary,
      value: valueArbitrary,
      wait: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("delete" as const),
      key: keyArbitrary,
      wait: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("batch" as const),
      ops: fc.array(opArbitrary, { maxLength: 5 }),
      wait: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("get" as const), key: keyArbitrary }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("list" as const),
      prefix: fc.constantFrom("", "a", "a/", "a/1", "b", "é", "\uD83D", "zz"),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("bad" as const), call: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant({ kind: "reopen" as const }) },
);

function badCall(storage: Storage, which: number): Promise<unknown> {
  switch (which) {
    case 0:
      return storage.put("", bytes(1));
    case 1:
      return storage.put("a", "a" as unknown as Uint8Array);
    case 2:
      return storage.get("x".repeat(MAX_STORAGE_KEY_LENGTH + 1));
    case 3:
      return storage.batch([{ type: "put", key: "a", value: bytes(9) }, {
        type: "delete",
        key: "",
      }]);
    case 4:
      return storage.list(null as unknown as string);
    default:
      return storage.delete(0 as unknown as string);
  }
}

function modelEntries(model: Map<string, Uint8Array>, prefix: string): StorageEntry[] {
  return [...model]
    .filter(([key]) => key.startsWith(prefix))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => ({ key, value }));
}

async function checkAgainstModel(
  fixture: StorageFixture,
  commands: readonly Command[],
): Promise<void> {
  let storage = fixture.storage;
  const model = new Map<string, Uint8Array>();
  const apply = (op: StorageOp) =>
    op.type === "put" ? model.set(op.key, new Uint8Array(op.value)) : model.delete(op.key);
  // Writes left in flight: each must resolve after every earlier one.
  const inFlight: Promise<void>[] = [];
  let issued = 0;
  let resolved = 0;
  const write = async <T>(promise: Promise<T>, wait: boolean, check: (value: T) => void) => {
    const index = issued++;
    const done = promise.then((value) => {
      assert.equal(index, resolved++, "writes resolved out of call order");
      check(value);
    });
    if (wait) {
      await done;
    } else {
      done.catch(() => {}); // awaited at the end; not unhandled if an earlier check fails
      inFlight.push(done);
    }
  };
  for (const command of commands) {
    switch (command.kind) {
      case "put":
        await write(storage.put(command.key, command.value), command.wait, () => {});
        apply({ type: "put", key: command.key, value: command.value });
        break;
      case "delete": {
        const existed = model.has(command.key);
        await write(storage.delete(command.key), command.wait, (was) => assert.equal(was, existed));
        model.delete(command.key);
        break;
      }
      case "batch":
        await write(storage.batch(command.ops), command.wait, () => {});
        command.ops.forEach(apply);
        break;
      case "get":
        assert.deepEqual(await storage.get(command.key), model.get(command.key));
        break;
      case "list":
        assert.deepEqual(await storage.list(command.prefix), modelEntries(model, command.prefix));
        break;
      case "bad":
        await assert.rejects(badCall(storage, command.call), isArgumentError);
        break;
      case "reopen":
        if (fixture.reopen === undefined) break;
        await Promise.all(inFlight.splice(0));
        storage = await fixture.reopen();
        break;
    }
  }
  await Promise.all(inFlight);
  assert.deepEqual(await storage.list(""), modelEntries(model, ""));
}
