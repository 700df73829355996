import { test } from "node:test";
import assert from "node:assert/strict";
import { Simulation } from "../../sim/simulation.ts";
import { runAsync, SimDisk } from "../../sim/storage.ts";
import { AutoMpiNode } from "../node.ts";
import type { MapMessage } from "../message.ts";
import { MemoryStorage, type StorageOp } from "../storage.ts";
import { WorkerBase } from "../worker.ts";
import { parseScheduleTime, type ScheduleEntry, SchedulerWorker } from "./scheduler.ts";

const BROADCAST = "10.0.255.255";
const EPOCH_MS = 1_767_225_600_000; // 2026-01-01T00:00:00Z: the simulation's wall clock at 0

async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

async function advance(sim: Simulation, ms: number, stepMs = 5): Promise<void> {
  for (let doneMs = 0; doneMs < ms; doneMs += stepMs) {
    sim.run(Math.min(stepMs, ms - doneMs));
    await settle();
  }
}

/** Records each message with the (virtual) time it arrived. */
class Recorder extends WorkerBase {
  readonly received: Array<{ atMs: number; message: MapMessage }> = [];
  protected override onMessage(message: MapMessage): void {
    this.received.push({ atMs: this.context.clock.now(), message });
  }
  /** The `n` field of what arrived with `command`, or arrival times. */
  timesOf(command: string): number[] {
    return this.received.filter((r) => r.message.message.command === command).map((r) => r.atMs);
  }
  answers(command: string): Array<Record<string, string>> {
    return this.received.filter((r) => r.message.message.command === command).map((r) => ({
      ...r.message.message,
    }));
  }
}

/**
 * Node "S" hosts the scheduler (on `storage`, surviving restarts of S, re-created with the same
 * entries); node "T" hosts "Target", where scheduled messages go, and "Client", which asks.
 */
async function world(
  options: {
    seed?: number;
    entries?: ScheduleEntry[];
    storage?: MemoryStorage;
    maxEntries?: number;
  } = {},
) {
  const sim = new Simulation({ seed: options.seed ?? 1, epochMs: EPOCH_MS });
  const storage = options.storage ?? new MemoryStorage();
  const schedulers: SchedulerWorker[] = [];
  const serverHost = sim.addHost("S", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "S",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
      storage,
    });
    node.start();
    const scheduler = new SchedulerWorker("Sched", {
      entries: options.entries,
      maxEntries: options.maxEntries,
    });
    schedulers.push(scheduler);
    node.attachWorker(scheduler);
    return node;
  });
  const target = new Recorder("Target");
  const client = new Recorder("Client");
  const targetHost = sim.addHost("T", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "T",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
    });
    node.start();
    node.attachWorker(target);
    node.attachWorker(client);
    return node;
  });
  const ask = (fields: Record<string, string>, data?: Uint8Array) =>
    targetHost.app!.send({
      destination: "Sched",
      source: "Client",
      message: fields,
      ...(data ? { data } : {}),
    });
  /** When each entry fired (its due time, wall ms since the epoch of the simulation). */
  const firings = (id: string) =>
    sim.logs.filter((e) => e.event === "scheduler.fired" && e.fields!.id === id).map((e) =>
      (e.fields!.dueMs as number) - EPOCH_MS
    );
  await settle(); // the scheduler loads at virtual time 0
  return { sim, storage, schedulers, serverHost, targetHost, target, client, ask, firings };
}

test("an interval entry sends its message every everyMs, from everyMs after the start", async () => {
  const { sim, target, firings, schedulers } = await world({
    entries: [{ id: "tick", destination: "Target", message: { command: "tick" }, everyMs: 1000 }],
  });
  await advance(sim, 5500);
  assert.deepEqual(firings("tick"), [1000, 2000, 3000, 4000, 5000]);
  // The first firing may wait for the link to T (retried every 500 ms); the rest arrive at once.
  const arrived = target.timesOf("tick");
  assert.equal(arrived.length, 5);
  for (const [i, atMs] of arrived.slice(1).entries()) {
    assert.ok(atMs >= (i + 2) * 1000 && atMs < (i + 2) * 1000 + 20, `tick ${i + 2} at ${atMs}`);
  }
  assert.equal(target.received[0].message.source, "Sched");
  assert.equal(schedulers[0].stats.fired, 5);
  assert.equal(schedulers[0].stats.undelivered, 0);
});

test("an at entry fires once at its wall-clock time, given as ISO text or epoch ms", async () => {
  const { sim, target, firings, schedulers } = await world({
    entries: [
      {
        id: "iso",
        destination: "Target",
        message: { command: "wake", who: "iso" },
        at: "2026-01-01T00:00:03.000Z",
      },
      {
        id: "epoch",
        destination: "Target",
        message: { command: "wake", who: "epoch" },
        data: new Uint8Array([1, 2, 3]),
        at: EPOCH_MS + 4500,
      },
      {
        id: "then-every",
        destination: "Target",
        message: { command: "beat" },
        at: EPOCH_MS + 2500,
        everyMs: 2000,
      },
    ],
  });
  await advance(sim, 8000);
  assert.deepEqual(firings("iso"), [3000]);
  assert.deepEqual(firings("epoch"), [4500]);
  assert.deepEqual(firings("then-every"), [2500, 4500, 6500]);
  const wakes = target.received.filter((r) => r.message.message.command === "wake");
  assert.deepEqual(wakes.map((r) => r.message.message.who), ["iso", "epoch"]);
  assert.ok(wakes[0].atMs >= 3000 && wakes[0].atMs < 3020);
  assert.deepEqual(wakes[1].message.data, new Uint8Array([1, 2, 3]));
  assert.deepEqual(schedulers[0].list().map((e) => e.id), ["then-every"], "one-shots are done");
});

test("schedule, list and unschedule by message, each answered once durable", async () => {
  const { sim, target, client, ask, storage } = await world({ seed: 2 });
  await advance(sim, 1500, 50);
  ask(
    {
      command: "schedule",
      id: "ping",
      destination: "Target",
      everyMs: "500",
      "msg.command": "ping",
      "msg.key": "x",
    },
    new Uint8Array([9]),
  );
  ask({
    command: "schedule",
    id: "later",
    destination: "Target",
    at: String(EPOCH_MS + 60_000),
    "msg.command": "later",
  });
  await advance(sim, 20);
  const scheduled = client.answers("scheduleReturn");
  assert.equal(scheduled.length, 2);
  assert.equal(scheduled[0].ok, "true");
  assert.equal(scheduled[0].id, "ping");
  assert.ok(Date.parse(scheduled[0].nextAt) > EPOCH_MS + 1500);
  assert.equal(scheduled[1].nextAt, "2026-01-01T00:01:00.000Z");
  assert.ok((await storage.list("workers/Sched/e/")).length === 2, "entries are stored");
  await advance(sim, 1600);
  const pings = target.received.filter((r) => r.message.message.command === "ping");
  assert.equal(pings.length, 3);
  assert.deepEqual({ ...pings[0].message.message }, { command: "ping", key: "x" });
  assert.deepEqual(pings[0].message.data, new Uint8Array([9]));
  ask({ command: "list", id: "q" });
  await advance(sim, 20);
  const [listed] = client.answers("listReturn");
  assert.equal(listed.count, "2");
  assert.equal(listed.id, "q");
  const entries = JSON.parse(listed.entries);
  assert.equal(entries[0].id, "ping");
  assert.equal(entries[0].everyMs, 500);
  assert.equal(entries[0].firings, 3);
  assert.equal(entries[0].dataBytes, 1);
  assert.deepEqual(entries[0].message, { command: "ping", key: "x" });
  assert.equal(entries[1].at, "2026-01-01T00:01:00.000Z");
  assert.equal(entries[1].lastFiredAt, null);
  ask({ command: "unschedule", id: "ping" });
  ask({ command: "unschedule", id: "ping" });
  await advance(sim, 20);
  assert.deepEqual(client.answers("unscheduleReturn"), [
    { command: "unscheduleReturn", id: "ping", found: "true", ok: "true" },
    { command: "unscheduleReturn", id: "ping", found: "false", ok: "true" },
  ]);
  assert.deepEqual((await storage.list("workers/Sched/")).map((e) => e.key), [
    "workers/Sched/e/later",
  ]);
  await advance(sim, 2000);
  assert.equal(target.received.filter((r) => r.message.message.command === "ping").length, 3);
});

test("after a restart: a fired one-shot stays fired, a missed one fires once, intervals keep their cadence", async () => {
  const storage = new MemoryStorage();
  const entries: ScheduleEntry[] = [
    { id: "A", destination: "Target", message: { command: "A" }, at: EPOCH_MS + 3000 },
    {
      id: "C",
      destination: "Target",
      message: { command: "C" },
      at: EPOCH_MS + 2000,
      everyMs: 1000,
    },
  ];
  const { sim, serverHost, target, ask, firings, schedulers } = await world({
    storage,
    entries,
    seed: 3,
  });
  await advance(sim, 1500, 50);
  ask({
    command: "schedule",
    id: "B",
    destination: "Target",
    at: String(EPOCH_MS + 6500),
    "msg.command": "B",
  });
  ask({ command: "schedule", id: "D", destination: "Target", everyMs: "700", "msg.command": "D" });
  await advance(sim, 3000); // to 4.5 s
  assert.deepEqual(firings("A"), [3000]);
  assert.deepEqual(firings("C"), [2000, 3000, 4000]);
  const dBefore = firings("D"); // every 700 ms from about 2.2 s
  assert.equal(dBefore.length, 4);
  sim.crash(serverHost); // down from 4.5 s to 8.2 s: B's time (6.5 s) passes meanwhile
  await advance(sim, 3700, 50);
  sim.restart(serverHost);
  await advance(sim, 4300); // to 12.5 s
  assert.equal(schedulers.length, 2);
  assert.deepEqual(firings("A"), [3000], "a one-shot that fired does not fire again");
  assert.deepEqual(firings("B"), [6500], "a one-shot missed while down fires once on start");
  const bFired = sim.logs.find((e) => e.event === "scheduler.fired" && e.fields!.id === "B")!;
  assert.ok(bFired.timeMs >= 8200 && bFired.timeMs < 8300, `B fired at ${bFired.timeMs}`);
  assert.deepEqual(
    firings("C"),
    [2000, 3000, 4000, 9000, 10000, 11000, 12000],
    "missed times are skipped, the cadence kept",
  );
  const dAfter = firings("D").slice(dBefore.length);
  const anchor = dBefore[0];
  assert.ok(dAfter.length >= 5);
  for (const due of dAfter) assert.equal((due - anchor) % 700, 0, `D at ${due} is off its cadence`);
  assert.ok(dAfter[0] > 8200 && dAfter[0] <= 8200 + 700);
  // Every firing reached the target, the first ones after the restart once the link was up.
  assert.deepEqual(target.timesOf("A").length, 1);
  assert.deepEqual(target.timesOf("B").length, 1);
  assert.equal(target.timesOf("C").length, 7);
  assert.equal(schedulers[1].stats.undelivered, 0);
  // Nothing of A or B is left; C and D go on.
  assert.deepEqual(schedulers[1].list().map((e) => e.id), ["C", "D"]);
});

test("bad requests are refused with a reason and logged; answers are not answered", async () => {
  const { sim, client, ask, schedulers } = await world({
    entries: [{ id: "fixed", destination: "Target", message: {}, everyMs: 1000 }],
    maxEntries: 2,
  });
  await advance(sim, 1500, 50);
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ command: "schedule", destination: "Target", everyMs: "100" }, /id must be/],
    [{ command: "schedule", id: "x", everyMs: "100" }, /no destination/],
    [{ command: "schedule", id: "x", destination: "Target" }, /everyMs, at, or both/],
    [{ command: "schedule", id: "x", destination: "Target", everyMs: "5" }, /everyMs 5/],
    [{ command: "schedule", id: "x", destination: "Target", everyMs: "soon" }, /everyMs NaN/],
    [{ command: "schedule", id: "x", destination: "Target", at: "tomorrow" }, /ISO 8601/],
    [{ command: "schedule", id: "x", destination: "Target", at: "2026-01-01T08:00" }, /ISO 8601/],
    [
      {
        command: "schedule",
        id: "x",
        destination: "T",
        at: "1",
        "msg.AutoMPI_System_Message": "x",
      },
      /reserved/,
    ],
    [{ command: "schedule", id: "fixed", destination: "Target", everyMs: "100" }, /program/],
    [{ command: "unschedule", id: "fixed" }, /program/],
    [{ command: "unschedule" }, /no id/],
  ];
  for (const [fields] of cases) ask(fields);
  ask({ command: "schedule", id: "one", destination: "Target", at: String(EPOCH_MS + 99_000) });
  ask({ command: "schedule", id: "two", destination: "Target", at: String(EPOCH_MS + 99_000) });
  ask({ command: "dance" });
  ask({ command: "scheduleReturn", ok: "true" });
  await advance(sim, 50);
  const answers = client.received.map((r) => ({ ...r.message.message }));
  assert.equal(answers.length, cases.length + 3, JSON.stringify(answers));
  for (const [i, [fields, reason]] of cases.entries()) {
    assert.equal(answers[i].ok, "false", JSON.stringify(fields));
    assert.equal(answers[i].command, `${fields.command}Return`);
    assert.match(answers[i].error, reason);
  }
  // The refusals are answered at once, the accepted entry once durable: compare as a set.
  const rest = answers.slice(cases.length).map((a) =>
    `${a.command} ${a.ok ?? a.errorOf} ${a.error ?? ""}`
  ).sort();
  assert.deepEqual(rest, [
    'error dance Cannot dance: unknown command "dance"',
    'scheduleReturn false Cannot schedule "two": 2 entries already',
    "scheduleReturn true ",
  ]);
  assert.equal(schedulers[0].stats.badMessages, cases.length + 2);
  assert.equal(
    sim.logs.filter((e) => e.event === "scheduler.bad-message").length,
    cases.length + 2,
  );
});

test("a schedule whose write fails is answered ok=false and not kept", async () => {
  class FailingStorage extends MemoryStorage {
    failing = false;
    override batch(ops: readonly StorageOp[]): Promise<void> {
      return this.failing ? Promise.reject(new Error("Cannot write: disk full")) : super.batch(ops);
    }
  }
  const storage = new FailingStorage();
  const { sim, client, ask, schedulers, target } = await world({ storage });
  await advance(sim, 1500, 50);
  storage.failing = true;
  ask({ command: "schedule", id: "x", destination: "Target", everyMs: "100", "msg.command": "x" });
  await advance(sim, 500);
  const [answer] = client.answers("scheduleReturn");
  assert.equal(answer.ok, "false");
  assert.match(answer.error, /disk full/);
  assert.deepEqual(schedulers[0].list(), []);
  assert.equal(target.received.length, 0);
  assert.equal(schedulers[0].stats.writeFailures, 1);
  assert.equal(sim.logs.filter((e) => e.event === "scheduler.write-failed").length, 1);
});

test("a firing whose record cannot be written is still sent, and the failure logged", async () => {
  class FailingStorage extends MemoryStorage {
    failing = false;
    override batch(ops: readonly StorageOp[]): Promise<void> {
      return this.failing ? Promise.reject(new Error("Cannot write: disk full")) : super.batch(ops);
    }
  }
  const storage = new FailingStorage();
  const { sim, target, schedulers } = await world({
    storage,
    entries: [{ id: "t", destination: "Target", message: { command: "t" }, everyMs: 1000 }],
  });
  await advance(sim, 1500, 50);
  storage.failing = true;
  await advance(sim, 2000);
  assert.equal(target.timesOf("t").length, 3);
  assert.equal(schedulers[0].stats.writeFailures, 2);
});

test("entries are checked when the scheduler is made, and times are read strictly", () => {
  const entry = { id: "a", destination: "T", message: {}, everyMs: 1000 };
  assert.throws(() => new SchedulerWorker("S", { entries: [entry, entry] }), /used twice/);
  assert.throws(
    () => new SchedulerWorker("S", { entries: [{ ...entry, everyMs: undefined }] }),
    /everyMs, at, or both/,
  );
  assert.throws(() => new SchedulerWorker("S", { entries: [{ ...entry, at: "noon" }] }), TypeError);
  assert.throws(
    () => new SchedulerWorker("S", { entries: [{ ...entry, everyMs: 1 }] }),
    RangeError,
  );
  assert.equal(parseScheduleTime("2026-01-01T00:00:00Z"), EPOCH_MS);
  assert.equal(parseScheduleTime("2026-01-01T01:00:00+01:00"), EPOCH_MS);
  assert.equal(parseScheduleTime("2026-01-01"), EPOCH_MS);
  assert.equal(parseScheduleTime(String(EPOCH_MS)), EPOCH_MS);
  assert.equal(parseScheduleTime(EPOCH_MS + 0.7), EPOCH_MS);
  for (const bad of ["2026-01-01T08:00", "Jan 1 2026", "", "-5", "1e12"]) {
    assert.throws(() => parseScheduleTime(bad), TypeError, bad);
  }
});

test("on the simulated disk, a crash before a firing is recorded sends it once, after the restart", async () => {
  const sim = new Simulation({ seed: 12, epochMs: EPOCH_MS });
  const disk = new SimDisk(sim, { fsyncMsMin: 2, fsyncMsMax: 4 });
  const schedulers: SchedulerWorker[] = [];
  const server = sim.addHost("S", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "S",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
      storage: disk.open(host),
    });
    node.start();
    const scheduler = new SchedulerWorker("Sched", {
      entries: [{
        id: "once",
        destination: "Target",
        message: { command: "once" },
        at: EPOCH_MS + 3000,
      }],
    });
    schedulers.push(scheduler);
    node.attachWorker(scheduler);
    return node;
  });
  const target = new Recorder("Target");
  sim.addHost("T", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: "T",
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: BROADCAST },
    });
    node.start();
    node.attachWorker(target);
    return node;
  });
  await runAsync(sim, 2999);
  // At 3 s the entry fires: its record is written, not yet durable, and nothing is sent yet.
  assert.ok(sim.runUntil(() => sim.now >= 3000, 10));
  assert.equal(target.received.length, 0);
  sim.crash(server);
  await runAsync(sim, 2000);
  sim.restart(server);
  await runAsync(sim, 5000);
  assert.equal(target.timesOf("once").length, 1, "sent once, by the restarted scheduler");
  assert.ok(target.timesOf("once")[0] > 5000);
  assert.equal(disk.durableEntries("workers/Sched/f/").length, 1, "and now recorded");
  await runAsync(sim, 1000);
  sim.restart(server);
  await runAsync(sim, 5000);
  assert.equal(target.timesOf("once").length, 1, "recorded: not again after another restart");
});
