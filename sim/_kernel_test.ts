import { test } from "node:test";
import assert from "node:assert/strict";
import {
  K_DGRAM,
  K_SEG,
  Kernel,
  type KernelHost,
  type KernelOptions,
  type SimEvent,
  toUs,
} from "./_kernel.ts";

function kernel(options: Partial<KernelOptions> = {}): Kernel {
  return new Kernel({
    traceLimit: 0,
    logLimit: 100,
    logLevel: "debug",
    hostErrors: "throw",
    ...options,
  });
}

function host(name = "a", index = 0): KernelHost & { incarnation: number; state: string } {
  return { name, index, incarnation: 1, state: "up", deferred: [] } as KernelHost & {
    incarnation: number;
    state: string;
  };
}

test("events run in time order, and events of one instant in the order they were pushed", () => {
  const k = kernel();
  const order: string[] = [];
  k.schedule(2, () => order.push("t2 first"));
  k.schedule(1, () => order.push("t1"));
  k.schedule(2, () => order.push("t2 second"));
  k.schedule(2, () => k.schedule(0, () => order.push("t2 pushed while running")));
  k.run(10);
  assert.deepEqual(order, ["t1", "t2 first", "t2 second", "t2 pushed while running"]);
  assert.equal(k.nowUs, 10_000);
  assert.equal(k.stats.events, 5);
});

test("a microtask runs right after the event that deferred it, before the next event", () => {
  const k = kernel();
  const a = host();
  const order: string[] = [];
  k.call(a, 0, () => {
    order.push("event 1");
    k.defer(a, 1, () => {
      order.push("microtask");
      k.defer(a, 1, () => order.push("microtask of a microtask"));
    });
  });
  k.call(a, 0, () => order.push("event 2"));
  k.run(1);
  assert.deepEqual(order, ["event 1", "microtask", "microtask of a microtask", "event 2"]);
});

test("host code of another incarnation or of a down host is skipped; a paused host's waits", () => {
  const k = kernel();
  const a = host();
  const ran: string[] = [];
  k.call(a, 1000, () => ran.push("old incarnation"));
  a.incarnation = 2;
  k.call(a, 1000, () => ran.push("paused"));
  a.state = "paused";
  k.run(5);
  assert.equal(ran.length, 0);
  assert.equal(a.deferred.length, 1);
  a.state = "up";
  for (const event of a.deferred.splice(0)) k.requeue(event);
  k.run(0);
  assert.equal(ran.join(), "paused");
  a.state = "down";
  k.call(a, 0, () => ran.push("down"));
  k.run(1);
  assert.equal(ran.join(), "paused");
});

test("a cancelled timer does not run and leaves the trace hash as if it never ran", () => {
  const k = kernel();
  let ran = false;
  k.schedule(1, () => void (ran = true)).cancel();
  k.run(2);
  assert.equal(ran, false);
  assert.equal(k.hash.hex(), kernel().hash.hex());
});

test("a packet event goes to its kind's transport; a host error there is its host's", () => {
  const k = kernel({ hostErrors: "crash" });
  const a = host();
  const got: string[] = [];
  const crashed: string[] = [];
  k.attach({
    datagrams: { arrive: (event: SimEvent) => got.push(`datagram ${event.payload}`) },
    segments: {
      arrive: (event: SimEvent) => {
        got.push(`segment ${event.payload}`);
        throw new Error("handler failed");
      },
    },
    crash: (h) => crashed.push(h.name),
  });
  k.push(10, K_SEG, a, 0, "s1");
  k.push(5, K_DGRAM, a, 0, "d1");
  k.run(1);
  assert.deepEqual(got, ["datagram d1", "segment s1"]);
  assert.deepEqual(crashed, ["a"]);
  assert.equal(k.errors.length, 1);
  assert.equal(k.logs.at(-1)?.event, "host.uncaught");
});

test("an exception in world code is rethrown even under hostErrors: crash", () => {
  const k = kernel({ hostErrors: "crash" });
  k.schedule(0, () => {
    throw new Error("world failed");
  });
  assert.throws(() => k.run(1), /world failed/);
});

test("runUntil stops at the first instant the predicate holds; run refuses to nest", () => {
  const k = kernel();
  let count = 0;
  for (let ms = 1; ms <= 5; ms++) k.schedule(ms, () => void count++);
  assert.equal(k.runUntil(() => count === 3, 100), true);
  assert.equal(k.nowUs, 3000);
  k.schedule(0, () => k.run(1));
  assert.throws(() => k.run(1), /already running/);
});

test("log entries below the level are hashed but not kept; the ring keeps the newest", () => {
  const k = kernel({ logLimit: 2, logLevel: "info" });
  const a = host();
  const before = k.hash.hex();
  k.log(a, "debug", "quiet");
  assert.notEqual(k.hash.hex(), before);
  assert.equal(k.logs.length, 0);
  for (const event of ["one", "two", "three"]) k.log(a, "info", event);
  assert.deepEqual(k.logs.map((entry) => entry.event), ["two", "three"]);
});

test("a delay that cannot be scheduled is refused with a RangeError", () => {
  assert.equal(toUs(0.0015), 2);
  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => toUs(bad), RangeError);
  }
});
