import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { WheelQueue } from "./_wheel.ts";
import { EventQueue } from "./_queue.ts";

interface Item {
  next?: Item;
  timeUs: number;
  seq: number;
}

// Replay a failure with the seed and path fast-check prints: fc.assert(..., { seed, path }).
test("the wheel pops in exactly the (time, sequence) order of the heap", () => {
  const delay = fc.oneof(
    fc.constant(0),
    fc.integer({ min: 0, max: 70 }),
    fc.integer({ min: 0, max: 70_000 }),
    fc.integer({ min: 60_000, max: 2_000_000 }),
  );
  const op = fc.oneof(
    fc.record({ push: fc.array(delay, { minLength: 1, maxLength: 5 }) }),
    fc.record({ pop: fc.integer({ min: 1, max: 6 }) }),
    fc.record({ peek: fc.constant(true) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const wheel = new WheelQueue<Item>();
      const heap = new EventQueue<Item>();
      let now = 0;
      let seq = 0;
      for (const step of ops) {
        if ("push" in step) {
          for (const d of step.push) {
            const item = { timeUs: now + d, seq: seq++ };
            wheel.push(item);
            heap.push(item);
          }
        } else if ("peek" in step) {
          assert.equal(wheel.peek(), heap.peek());
        } else {
          for (let i = 0; i < step.pop; i++) {
            assert.equal(wheel.peek(), heap.peek());
            const a = wheel.pop();
            const b = heap.pop();
            assert.equal(a, b);
            if (a) now = a.timeUs;
          }
        }
        assert.equal(wheel.size, heap.size);
      }
      while (heap.size > 0) assert.equal(wheel.pop(), heap.pop());
      assert.equal(wheel.pop(), undefined);
    }),
    { seed: 1128, numRuns: 300 },
  );
});

test("pushing before the last popped time is a RangeError", () => {
  const wheel = new WheelQueue<Item>();
  wheel.push({ timeUs: 100, seq: 0 });
  wheel.pop();
  assert.throws(() => wheel.push({ timeUs: 99, seq: 1 }), RangeError);
});
