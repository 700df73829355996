/**
 * The real {@link Clock} of every adapter: the runtime's monotonic clock and one-shot timers
 * kept in one queue ordered by due time, then by scheduling order, as the simulator orders them.
 *
 * One runtime timer is armed for the earliest due entry. That gives two guarantees the bare
 * runtime timers do not: a callback never runs before `now()` reaches its due time (runtime
 * timers may fire up to a millisecond early, and very long delays overflow), and timers due at
 * the same time run in the order they were scheduled, whatever their delays.
 *
 * @module
 */
import type { Clock, Timer } from "../src/platform.ts";

interface Entry {
  readonly dueMs: number;
  readonly seq: number;
  fn: (() => void) | undefined;
}

// setTimeout takes a signed 32-bit delay; longer ones are re-armed when they come up early.
const MAX_ARM_MS = 2_147_483_647;

/**
 * A {@link Clock} on `performance.now()` (monotonic), `Date.now()` (wall) and `setTimeout`.
 *
 * @example
 * ```ts
 * import { RealClock } from "./_clock.ts";
 * const clock = new RealClock();
 * const order: number[] = [];
 * clock.schedule(40, () => order.push(2));
 * clock.schedule(1, () => order.push(1));
 * await new Promise((resolve) => clock.schedule(60, () => resolve(undefined)));
 * console.assert(order.join() === "1,2");
 * ```
 */
export class RealClock implements Clock {
  readonly #heap: Entry[] = [];
  #seq = 0;
  #live = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedForMs = Infinity;
  #closed = false;

  now(): number {
    return performance.now();
  }

  wallNow(): number {
    return Date.now();
  }

  schedule(delayMs: number, fn: () => void): Timer {
    if (typeof fn !== "function") {
      throw new TypeError("Cannot schedule: the callback is not a function");
    }
    if (!(delayMs >= 0) || !Number.isFinite(delayMs)) {
      throw new RangeError(`Cannot schedule ${delayMs} ms ahead: need a finite number >= 0`);
    }
    const entry: Entry = { dueMs: this.now() + delayMs, seq: this.#seq++, fn };
    if (this.#closed) return { cancel() {} };
    this.#push(entry);
    this.#live++;
    this.#arm();
    return {
      cancel: () => {
        if (entry.fn === undefined) return;
        entry.fn = undefined;
        this.#live--;
        if (this.#live === 0) this.#disarm();
      },
    };
  }

  defer(fn: () => void): void {
    if (typeof fn !== "function") {
      throw new TypeError("Cannot defer: the callback is not a function");
    }
    if (this.#closed) return;
    queueMicrotask(() => {
      if (!this.#closed) fn();
    });
  }

  /** How many timers are scheduled and not yet fired or cancelled. */
  get pending(): number {
    return this.#live;
  }

  /** Cancels every timer; later `schedule` calls return timers that never fire. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#heap) entry.fn = undefined;
    this.#heap.length = 0;
    this.#live = 0;
    this.#disarm();
  }

  #arm(): void {
    const top = this.#peekLive();
    if (top === undefined) {
      this.#disarm();
      return;
    }
    if (this.#timer !== undefined && this.#armedForMs <= top.dueMs) return;
    this.#disarm();
    this.#armedForMs = top.dueMs;
    const delayMs = Math.min(MAX_ARM_MS, Math.max(0, Math.ceil(top.dueMs - this.now())));
    this.#timer = setTimeout(() => this.#fire(), delayMs);
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedForMs = Infinity;
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedForMs = Infinity;
    // Only what is due now runs in this turn: a zero-delay timer scheduled by one of these
    // callbacks waits for the next turn, so I/O is never starved.
    const nowMs = this.now();
    const due: Entry[] = [];
    for (let top = this.#heap[0]; top !== undefined && top.dueMs <= nowMs; top = this.#heap[0]) {
      this.#pop();
      if (top.fn !== undefined) due.push(top);
    }
    let failed = false;
    let failure: unknown;
    for (const entry of due) {
      const fn = entry.fn;
      if (fn === undefined) continue; // cancelled by an earlier callback of this turn
      entry.fn = undefined;
      this.#live--;
      try {
        fn();
      } catch (error) {
        if (!failed) {
          failed = true;
          failure = error;
        } else {
          queueMicrotask(() => {
            throw error;
          });
        }
      }
    }
    if (!this.#closed) this.#arm();
    if (failed) throw failure; // an exception in a timer callback is uncaught, as usual
  }

  #peekLive(): Entry | undefined {
    while (this.#heap.length > 0 && this.#heap[0].fn === undefined) this.#pop();
    return this.#heap[0];
  }

  #push(entry: Entry): void {
    const heap = this.#heap;
    let index = heap.length;
    heap.push(entry);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(entry, heap[parent])) break;
      heap[index] = heap[parent];
      index = parent;
    }
    heap[index] = entry;
  }

  #pop(): Entry | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length === 0 || last === undefined) return top;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right], heap[left]) ? right : left;
      if (!before(heap[child], last)) break;
      heap[index] = heap[child];
      index = child;
    }
    heap[index] = last;
    return top;
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.seq < b.seq);
}
