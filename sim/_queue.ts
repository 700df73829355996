/**
 * The simulator's event queue: a min-heap ordered by (time, sequence), for events beyond the
 * timing wheel's span (see `_wheel.ts`).
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

/**
 * A min-heap of {@link QueueItem}s: four children per node, and the keys kept apart from the
 * items in typed arrays, so that sifting compares numbers side by side in memory instead of
 * reading one event object per comparison (at 10,000 nodes each such read is a cache miss).
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
  #items: (T | undefined)[] = [];
  #times = new Float64Array(64);
  #seqs = new Float64Array(64);
  #size = 0;

  /** How many items are queued. */
  get size(): number {
    return this.#size;
  }

  /** The earliest item without removing it. */
  peek(): T | undefined {
    return this.#size === 0 ? undefined : this.#items[0];
  }

  /** Adds an item. */
  push(item: T): void {
    if (this.#size === this.#times.length) this.#grow();
    const items = this.#items;
    const times = this.#times;
    const seqs = this.#seqs;
    const timeUs = item.timeUs;
    const seq = item.seq;
    let index = this.#size++;
    while (index > 0) {
      const parent = (index - 1) >> 2;
      const parentTime = times[parent];
      if (timeUs > parentTime || (timeUs === parentTime && seq > seqs[parent])) break;
      items[index] = items[parent];
      times[index] = parentTime;
      seqs[index] = seqs[parent];
      index = parent;
    }
    items[index] = item;
    times[index] = timeUs;
    seqs[index] = seq;
  }

  /** Removes and returns the earliest item. */
  pop(): T | undefined {
    if (this.#size === 0) return undefined;
    const items = this.#items;
    const times = this.#times;
    const seqs = this.#seqs;
    const top = items[0];
    const length = --this.#size;
    const last = items[length];
    items[length] = undefined;
    if (length === 0) return top;
    const lastTime = times[length];
    const lastSeq = seqs[length];
    let index = 0;
    for (;;) {
      const first = 4 * index + 1;
      if (first >= length) break;
      // The earliest of up to four children.
      let child = first;
      let childTime = times[first];
      let childSeq = seqs[first];
      const end = first + 4 < length ? first + 4 : length;
      for (let c = first + 1; c < end; c++) {
        const t = times[c];
        if (t < childTime || (t === childTime && seqs[c] < childSeq)) {
          child = c;
          childTime = t;
          childSeq = seqs[c];
        }
      }
      if (childTime > lastTime || (childTime === lastTime && childSeq > lastSeq)) break;
      items[index] = items[child];
      times[index] = childTime;
      seqs[index] = childSeq;
      index = child;
    }
    items[index] = last;
    times[index] = lastTime;
    seqs[index] = lastSeq;
    return top;
  }

  /** Removes every item. */
  clear(): void {
    this.#items = [];
    this.#times = new Float64Array(64);
    this.#seqs = new Float64Array(64);
    this.#size = 0;
  }

  #grow(): void {
    const times = new Float64Array(this.#times.length * 2);
    times.set(this.#times);
    this.#times = times;
    const seqs = new Float64Array(this.#seqs.length * 2);
    seqs.set(this.#seqs);
    this.#seqs = seqs;
  }
}
