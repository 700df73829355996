import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { EventQueue } from "./_queue.ts";

interface Item {
  timeUs: number;
  seq: number;
}

// Replay a failure with the seed and path fast-check prints: fc.assert(..., { seed, path }).
test("the heap pops in (time, sequence) order, as a sorted list would, through growth and clears", () => {
  const op = fc.oneof(
    fc.record({ push: fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 90 }) }),
    fc.record({ pop: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ clear: fc.constant(true) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const heap = new EventQueue<Item>();
      let reference: Item[] = [];
      let seq = 0;
      for (const step of ops) {
        if ("push" in step) {
          // Few distinct times: ties are the usual case, and must come out in push order.
          for (const timeUs of step.push) {
            const item = { timeUs, seq: seq++ };
            heap.push(item);
            reference.push(item);
          }
          reference.sort((a, b) => a.timeUs - b.timeUs || a.seq - b.seq);
        } else if ("pop" in step) {
          for (let i = 0; i < step.pop; i++) {
            assert.equal(heap.peek(), reference[0]);
            assert.equal(heap.pop(), reference.shift());
          }
        } else {
          heap.clear();
          reference = [];
        }
        assert.equal(heap.size, reference.length);
      }
      while (reference.length > 0) assert.equal(heap.pop(), reference.shift());
      assert.equal(heap.pop(), undefined);
      assert.equal(heap.peek(), undefined);
      assert.equal(heap.size, 0);
    }),
    { seed: 2026, numRuns: 200 },
  );
});

test("an empty heap pops and peeks undefined", () => {
  const heap = new EventQueue<Item>();
  assert.equal(heap.pop(), undefined);
  assert.equal(heap.peek(), undefined);
  heap.push({ timeUs: 1, seq: 0 });
  assert.equal(heap.pop()?.timeUs, 1);
  assert.equal(heap.pop(), undefined);
});
