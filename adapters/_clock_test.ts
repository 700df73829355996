import { test } from "node:test";
import assert from "node:assert/strict";
import { RealClock } from "./_clock.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(predicate: () => boolean, maxMs = 2000): Promise<void> {
  const deadline = performance.now() + maxMs;
  while (!predicate() && performance.now() < deadline) await sleep(2);
  assert.ok(predicate(), `timed out after ${maxMs} ms`);
}

test("clock: timers scheduled in a row with one delay run in scheduling order", async () => {
  const clock = new RealClock();
  const order: number[] = [];
  for (let i = 0; i < 50; i++) clock.schedule(5, () => order.push(i));
  await until(() => order.length === 50);
  const sorted = [...order].sort((a, b) => a - b);
  assert.deepEqual(order, sorted);
  clock.close();
});

test("clock: a callback never runs before now() reaches its due time", async () => {
  const clock = new RealClock();
  const early: string[] = [];
  let fired = 0;
  for (const delayMs of [0, 0.4, 1, 1.5, 3, 7.9, 12]) {
    const dueMs = clock.now() + delayMs;
    clock.schedule(delayMs, () => {
      fired++;
      if (clock.now() < dueMs) {
        early.push(`${delayMs} ms timer ran ${dueMs - clock.now()} ms early`);
      }
    });
  }
  await until(() => fired === 7);
  assert.deepEqual(early, []);
  clock.close();
});

test("clock: cancel stops a timer, also from an earlier callback due at the same time", async () => {
  const clock = new RealClock();
  const fired: string[] = [];
  const later = clock.schedule(10, () => fired.push("later"));
  clock.schedule(5, () => {
    fired.push("first");
    later.cancel();
  });
  const gone = clock.schedule(5, () => fired.push("gone"));
  gone.cancel();
  await until(() => fired.includes("first"));
  await sleep(20);
  assert.deepEqual(fired, ["first"]);
  assert.equal(clock.pending, 0);
  clock.close();
});

test("clock: a delay beyond setTimeout's 32-bit limit does not fire at once", async () => {
  const clock = new RealClock();
  let fired = false;
  const timer = clock.schedule(2 ** 33, () => void (fired = true));
  await sleep(20);
  assert.equal(fired, false);
  assert.equal(clock.pending, 1);
  timer.cancel();
  assert.equal(clock.pending, 0);
});

test("clock: a zero-delay timer scheduled by a callback runs in a later turn", async () => {
  const clock = new RealClock();
  const order: string[] = [];
  clock.schedule(0, () => {
    order.push("a");
    clock.schedule(0, () => order.push("c"));
    queueMicrotask(() => order.push("b"));
  });
  await until(() => order.length === 3);
  assert.deepEqual(order, ["a", "b", "c"]);
  clock.close();
});

test("clock: close() cancels everything and later timers never fire", async () => {
  const clock = new RealClock();
  let fired = 0;
  clock.schedule(1, () => fired++);
  clock.close();
  clock.schedule(0, () => fired++);
  await sleep(15);
  assert.equal(fired, 0);
  assert.equal(clock.pending, 0);
});

test("clock: bad arguments throw", () => {
  const clock = new RealClock();
  assert.throws(() => clock.schedule(-1, () => {}), RangeError);
  assert.throws(() => clock.schedule(Number.NaN, () => {}), RangeError);
  assert.throws(() => clock.schedule(Infinity, () => {}), RangeError);
  assert.throws(() => clock.schedule(1, "no" as unknown as () => void), TypeError);
  assert.ok(Math.abs(clock.wallNow() - Date.now()) < 1000);
});
