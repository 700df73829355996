/**
 * The simulator's event queue: a binary min-heap ordered by (time, sequence).
 *
 * Ties on time are broken by the order in which events were pushed, so a run is a pure
 * function of its inputs. Kept separate so the benchmark can measure the bare queue.
 *
 * @module
 */

/** What the queue orders: an integer time and a unique, increasing sequence number. */
export interface QueueItem {
  timeUs: number;
  seq: number;
}

function before(a: QueueItem, b: QueueItem): boolean {
  return a.timeUs < b.timeUs || (a.timeUs === b.timeUs && a.seq < b.seq);
}

/**
 * A min-heap of {@link QueueItem}s.
 *
 * @example
 * ```ts
 * import { EventQueue } from "./_queue.ts";
 * const queue = new EventQueue<{ timeUs: number; seq: number }>();
 * queue.push({ timeUs: 5, seq: 1 });
 * queue.push({ timeUs: 2, seq: 2 });
 * console.assert(queue.pop()?.timeUs === 2);
 * ```
 */
export class EventQueue<T extends QueueItem> {
  #items: T[] = [];

  /** How many items are queued. */
  get size(): number {
    return this.#items.length;
  }

  /** The earliest item without removing it. */
  peek(): T | undefined {
    return this.#items[0];
  }

  /** Adds an item. */
  push(item: T): void {
    const items = this.#items;
    let index = items.length;
    items.push(item);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const up = items[parent];
      if (!before(item, up)) break;
      items[index] = up;
      index = parent;
    }
    items[index] = item;
  }

  /** Removes and returns the earliest item. */
  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    const length = items.length;
    if (length === 0 || last === undefined) return top;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && before(items[right], items[left]) ? right : left;
      const candidate = items[child];
      if (!before(candidate, last)) break;
      items[index] = candidate;
      index = child;
    }
    items[index] = last;
    return top;
  }

  /** Removes every item. */
  clear(): void {
    this.#items = [];
  }
}
