/**
 * The simulator's main event queue: a timing wheel with one slot per microsecond for the next
 * 65.5 ms, backed by a heap for later events.
 *
 * Network deliveries (latencies of a few milliseconds) land in the wheel in O(1); timers far
 * ahead wait in the heap and move into the wheel as time approaches them. Events of one instant
 * come out in push order, exactly as the (time, sequence) order of {@link EventQueue} would.
 *
 * Why it keeps that order: an event goes into the heap only when its time is at least a wheel
 * span ahead. Every time the wheel's base advances, all heap events that now fit are moved into
 * their slots *before* any code of that instant can push, so they precede, in their slots, every
 * event pushed later for the same instant, and they were pushed earlier.
 *
 * @module
 */
import { EventQueue, type QueueItem } from "./_queue.ts";

const WHEEL_BITS = 16;
const WHEEL_SIZE = 1 << WHEEL_BITS;
const WHEEL_MASK = WHEEL_SIZE - 1;
const WORDS = WHEEL_SIZE >>> 5;
const SUMMARY_WORDS = WORDS >>> 5;

/**
 * A monotone priority queue on integer times: items may never be pushed before the time of the
 * last popped item.
 *
 * @example
 * ```ts
 * import { WheelQueue } from "./_wheel.ts";
 * const queue = new WheelQueue<{ timeUs: number; seq: number }>();
 * queue.push({ timeUs: 5000, seq: 0 });
 * queue.push({ timeUs: 10, seq: 1 });
 * console.assert(queue.pop()?.timeUs === 10);
 * ```
 */
export class WheelQueue<T extends QueueItem & { next?: T | undefined }> {
  // Each slot is an intrusive FIFO list through the items' `next` field: no arrays to allocate.
  readonly #heads: Array<T | undefined> = new Array(WHEEL_SIZE).fill(undefined);
  readonly #tails: Array<T | undefined> = new Array(WHEEL_SIZE).fill(undefined);
  readonly #bits = new Uint32Array(WORDS);
  readonly #summary = new Uint32Array(SUMMARY_WORDS);
  readonly #later = new EventQueue<T>();
  /** Time of the last popped item: every wheel item lies in [base, base + WHEEL_SIZE). */
  #baseUs = 0;
  /** Time of the earliest wheel item once settled. */
  #currentUs = 0;
  #wheelCount = 0;

  /** How many items are queued. */
  get size(): number {
    return this.#wheelCount + this.#later.size;
  }

  /** Adds an item; its time must not be before the last popped item's. */
  push(item: T): void {
    const timeUs = item.timeUs;
    if (!(timeUs >= this.#baseUs)) {
      throw new RangeError(
        `Cannot queue an event at ${timeUs} µs: the queue is at ${this.#baseUs} µs`,
      );
    }
    if (timeUs - this.#baseUs < WHEEL_SIZE) this.#toSlot(item);
    else this.#later.push(item);
  }

  /** The earliest item without removing it. */
  peek(): T | undefined {
    if (this.#wheelCount === 0) return this.#later.peek();
    return this.#heads[this.#settle()];
  }

  /** Removes and returns the earliest item. */
  pop(): T | undefined {
    return this.popUntil(Infinity);
  }

  /** Removes and returns the earliest item if its time is at most `limitUs`. */
  popUntil(limitUs: number): T | undefined {
    if (this.#wheelCount === 0) {
      const next = this.#later.peek();
      if (next === undefined || next.timeUs > limitUs) return undefined;
      this.#advance(next.timeUs);
    }
    const index = this.#settle();
    if (this.#currentUs > limitUs) return undefined;
    const item = this.#heads[index]!;
    const next = item.next;
    item.next = undefined;
    this.#wheelCount--;
    if (next === undefined) this.#clearSlot(index);
    else this.#heads[index] = next;
    if (this.#currentUs > this.#baseUs) this.#advance(this.#currentUs);
    return item;
  }

  /** Removes every item. */
  clear(): void {
    this.#heads.fill(undefined);
    this.#tails.fill(undefined);
    this.#bits.fill(0);
    this.#summary.fill(0);
    this.#later.clear();
    this.#wheelCount = 0;
  }

  #toSlot(item: T): void {
    const timeUs = item.timeUs;
    const index = timeUs & WHEEL_MASK;
    const tail = this.#tails[index];
    item.next = undefined;
    if (tail === undefined) {
      this.#heads[index] = item;
      const word = index >>> 5;
      this.#bits[word] |= 1 << (index & 31);
      this.#summary[word >>> 5] |= 1 << (word & 31);
    } else {
      tail.next = item;
    }
    this.#tails[index] = item;
    if (this.#wheelCount === 0 || timeUs < this.#currentUs) this.#currentUs = timeUs;
    this.#wheelCount++;
  }

  #clearSlot(index: number): void {
    this.#heads[index] = undefined;
    this.#tails[index] = undefined;
    const word = index >>> 5;
    const bits = this.#bits[word] & ~(1 << (index & 31));
    this.#bits[word] = bits;
    if (bits === 0) this.#summary[word >>> 5] &= ~(1 << (word & 31));
  }

  /** The slot index of the earliest wheel item (the wheel must not be empty). */
  #settle(): number {
    const current = this.#currentUs & WHEEL_MASK;
    if (this.#heads[current] !== undefined) return current;
    // Slots are cleared as soon as they are used up, so the next set bit is the next item.
    let index = this.#scan(current + 1, WHEEL_SIZE);
    if (index < 0) index = this.#scan(0, current);
    this.#currentUs += (index - current) & WHEEL_MASK;
    return index;
  }

  /** Moves the base to `timeUs` and pulls every later item that now fits into the wheel. */
  #advance(timeUs: number): void {
    this.#baseUs = timeUs;
    const later = this.#later;
    if (later.size === 0) return;
    const limitUs = timeUs + WHEEL_SIZE;
    for (
      let next = later.peek();
      next !== undefined && next.timeUs < limitUs;
      next = later.peek()
    ) {
      this.#toSlot(later.pop()!);
    }
  }

  /** First set bit in [from, to), or -1. */
  #scan(from: number, to: number): number {
    if (from >= to) return -1;
    const lastWord = (to - 1) >>> 5;
    let word = from >>> 5;
    let bits = this.#bits[word] & (~0 << (from & 31));
    while (bits === 0) {
      word++;
      if (word > lastWord) return -1;
      // Skip empty words 32 at a time through the summary.
      let summaryWord = word >>> 5;
      let summary = this.#summary[summaryWord] & (~0 << (word & 31));
      while (summary === 0) {
        summaryWord++;
        if (summaryWord >= SUMMARY_WORDS || summaryWord << 5 > lastWord) return -1;
        summary = this.#summary[summaryWord];
      }
      word = (summaryWord << 5) + ctz(summary);
      if (word > lastWord) return -1;
      bits = this.#bits[word];
    }
    const index = (word << 5) + ctz(bits);
    return index < to ? index : -1;
  }
}

function ctz(value: number): number {
  return 31 - Math.clz32(value & -value);
}
