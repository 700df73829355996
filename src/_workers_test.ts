import { test } from "node:test";
import assert from "node:assert/strict";
import { WorkerHost, type WorkerHostHost } from "./_workers.ts";
import { createMessage, type MapMessage } from "./message.ts";
import { MemoryStorage } from "./storage.ts";
import { EchoWorker, type Worker, WorkerBase, type WorkerContext } from "./worker.ts";

class Probe implements Worker {
  readonly log: string[] = [];
  periodic?: boolean;
  queued: MapMessage[] = [];
  context: WorkerContext | undefined;
  accept = true;
  constructor(readonly guid: string, readonly onProcess?: (probe: Probe) => void) {}
  attach(context: WorkerContext): void {
    this.context = context;
  }
  queueMessage(message: MapMessage): boolean {
    if (!this.accept) return false;
    this.queued.push(message);
    return true;
  }
  processMessages(): void {
    this.log.push(`process ${this.queued.map((m) => m.message.n).join(",")}`);
    this.queued = [];
    this.onProcess?.(this);
  }
  doWork(elapsedMs: number): void {
    this.log.push(`work ${elapsedMs}`);
  }
  close(): void {
    this.log.push("close");
  }
  age(): number {
    return 0;
  }
}

function world() {
  let nowMs = 0;
  let closed = false;
  const deferred: Array<() => void> = [];
  const timers: Array<{ atMs: number; fn: () => void; cancelled: boolean }> = [];
  const calls: string[] = [];
  const stats = { workerErrors: 0 };
  const hostOf: WorkerHostHost = {
    clock: {
      now: () => nowMs,
      defer: (fn: () => void) => deferred.push(fn),
      schedule: (delayMs: number, fn: () => void) => {
        const timer = { atMs: nowMs + delayMs, fn, cancelled: false };
        timers.push(timer);
        return { cancel: () => timer.cancelled = true };
      },
    } as never,
    random: { next: () => 0.5 } as never,
    log: { log: () => {} } as never,
    storage: new MemoryStorage(),
    stats,
    nodeGuid: "N",
    closed: () => closed,
    send: (message) => (calls.push(`send ${message.destination}`), true),
    attached: (guid) => calls.push(`attached ${guid}`),
    detaching: (guid) => calls.push(`detaching ${guid}`),
    detached: (guid) => calls.push(`detached ${guid}`),
    refused: (
      message,
      worker,
    ) => (calls.push(`refused ${worker.guid} ${message.message.n}`), false),
    delivered: (worker, message) => calls.push(`delivered ${worker.guid} ${message.message.n}`),
  };
  const host = new WorkerHost(hostOf, 100);
  const runTimersTo = (ms: number) => {
    nowMs = ms;
    for (const timer of [...timers]) {
      if (!timer.cancelled && timer.atMs <= ms) {
        timers.splice(timers.indexOf(timer), 1);
        timer.fn();
      }
    }
  };
  const endTurn = () => {
    while (deferred.length > 0) deferred.shift()!();
  };
  return { host, calls, stats, endTurn, runTimersTo, timers, close: () => closed = true };
}

const msg = (n: number) => createMessage("w", { n: String(n) });

test("a worker gets its context, and reserved or taken GUIDs are refused", () => {
  const w = world();
  const a = new Probe("a");
  w.host.attach(a);
  assert.equal(a.context?.nodeGuid, "N");
  a.context!.send(createMessage("x", {}));
  assert.deepEqual(w.calls, ["attached a", "send x"]);
  assert.throws(() => w.host.attach(new Probe("a")), /one with that GUID is attached/);
  for (const guid of ["N", "ALLNodes", "ALLWorkers"]) {
    assert.throws(() => w.host.attach(new Probe(guid)), /the GUID is reserved/);
  }
  assert.throws(() => w.host.attach({} as Worker), TypeError);
  w.close();
  assert.throws(() => w.host.attach(new Probe("b")), /node N is closed/);
});

test("messages are handled once the turn is over, all of a burst in one pass", () => {
  const w = world();
  const a = new Probe("a");
  w.host.attach(a);
  w.host.queue(a, msg(1));
  w.host.queue(a, msg(2));
  assert.deepEqual(a.log, []);
  w.endTurn();
  assert.deepEqual(a.log, ["process 1,2"]);
  assert.deepEqual(w.calls.slice(1), ["delivered a 1", "delivered a 2"]);
});

test("what workers send each other during a pass waits for a timer turn", () => {
  const w = world();
  const b = new Probe("b");
  const a = new Probe("a", () => w.host.queue(b, msg(9)));
  w.host.attach(a);
  w.host.attach(b);
  w.host.queue(a, msg(1));
  w.endTurn();
  assert.deepEqual(b.log, [], "not in the same pass");
  w.runTimersTo(0);
  assert.deepEqual(b.log, ["process 9"]);
});

test("a refused message is reported and a throwing worker is counted, not thrown", () => {
  const w = world();
  const a = new Probe("a");
  a.accept = false;
  w.host.attach(a);
  assert.equal(w.host.queue(a, msg(1)), false);
  assert.deepEqual(w.calls.slice(1), ["refused a 1"]);
  const b = new Probe("b", () => {
    throw new Error("boom");
  });
  w.host.attach(b);
  w.host.queue(b, msg(2));
  w.endTurn();
  assert.equal(w.stats.workerErrors, 1);
});

test("doWork runs every tick with the time since the last, until the node closes", () => {
  const w = world();
  const a = new Probe("a");
  w.host.attach(a);
  w.runTimersTo(100);
  w.runTimersTo(200);
  assert.deepEqual(a.log, ["work 100", "work 100"]);
  w.host.stopWork();
  w.runTimersTo(300);
  assert.equal(a.log.length, 2);
});

test("workers that say they are not periodic get no ticks, and with none no timer runs", () => {
  const w = world();
  const quiet = new Probe("quiet");
  quiet.periodic = false;
  w.host.attach(quiet);
  assert.equal(w.timers.length, 0, "no timer for a worker that only answers messages");
  const busy = new Probe("busy");
  w.host.attach(busy);
  w.runTimersTo(100);
  assert.deepEqual(busy.log, ["work 100"]);
  assert.deepEqual(quiet.log, []);
  w.host.detach("busy");
  w.runTimersTo(200);
  assert.equal(w.timers.filter((t) => !t.cancelled).length, 0, "the timer stops with the last");
});

test("a WorkerBase is periodic only if its class overrides onWork", () => {
  class Answers extends WorkerBase {
    protected onMessage(): void {}
  }
  class Counts extends Answers {
    protected override onWork(): void {}
  }
  assert.equal(new Answers("a").periodic, false);
  assert.equal(new Counts("c").periodic, true);
  assert.equal(new EchoWorker("e").periodic, false);
});

test("a detached worker is closed and gets nothing it had pending; closing closes all", () => {
  const w = world();
  const a = new Probe("a");
  const b = new Probe("b");
  w.host.attach(a);
  w.host.attach(b);
  w.host.queue(a, msg(1));
  assert.equal(w.host.detach("a"), true);
  assert.equal(w.host.detach("a"), false);
  w.endTurn();
  assert.deepEqual(a.log, ["close"]);
  assert.deepEqual(w.calls.slice(3), ["detaching a", "detached a"]);
  w.host.queueAll(msg(2));
  w.host.closeAll();
  assert.deepEqual(b.log, ["close"]);
  assert.equal(w.host.size, 0);
});
