/**
 * Links on demand: which links a node keeps open when it no longer links to every member.
 *
 * A node opens a link when it has something to send to a member (or a member opens one to it),
 * and this pool decides when to close them again: a link idle for `idleMs` closes, and when
 * more than `maxLinks` are open the least recently used idle one closes. A link is busy, and
 * never closed by the pool, while it has messages the peer has not confirmed or the node pins
 * it (an original-protocol peer, say, which expects its link to stay). So an idle pair of nodes
 * costs nothing: no link, no keepalives.
 *
 * Pure bookkeeping; the node reports activity and asks what to close.
 *
 * @module
 */

/** Tuning of a {@link LinkPool}. */
export interface LinkPoolOptions {
  /** Most open links before idle ones are closed, least recently used first. Default 64. */
  readonly maxLinks?: number;
  /** A link with no traffic for this long closes. Default 30,000. */
  readonly idleMs?: number;
}

/** What {@link LinkPool.toClose} returns on most calls: one array for all. */
const NONE: readonly string[] = Object.freeze([]);

/**
 * The open links of one node, least recently used first.
 *
 * @example
 * ```ts
 * import { LinkPool } from "./_link_pool.ts";
 * const pool = new LinkPool({ maxLinks: 2, idleMs: 1000 });
 * pool.touch("A", 0);
 * pool.touch("B", 10);
 * pool.touch("C", 20); // three links, two allowed: A, the least recently used, goes
 * const close = pool.toClose(20, () => false);
 * if (close.join() !== "A") throw new Error(`closed ${close}`);
 * ```
 */
export class LinkPool {
  readonly #maxLinks: number;
  readonly #idleMs: number;
  /** Peer → last activity, least recently used first. */
  readonly #lastUsed = new Map<string, number>();
  readonly #pinned = new Set<string>();
  /**
   * No link can be idle before this time, as the last look found (activity only ever makes a
   * link's idle time later): until then, while within bounds, there is nothing to look at.
   */
  #nothingIdleBeforeMs = 0;

  /** A pool with the given bounds. */
  constructor(options: LinkPoolOptions = {}) {
    const maxLinks = options.maxLinks ?? 64;
    const idleMs = options.idleMs ?? 30_000;
    if (!(Number.isInteger(maxLinks) && maxLinks >= 1)) {
      throw new RangeError("Cannot create link pool: maxLinks must be a whole number >= 1");
    }
    if (!(idleMs > 0 && Number.isFinite(idleMs))) {
      throw new RangeError("Cannot create link pool: idleMs must be a positive number of ms");
    }
    this.#maxLinks = maxLinks;
    this.#idleMs = idleMs;
  }

  /** How many links the pool tracks. */
  get size(): number {
    return this.#lastUsed.size;
  }

  /**
   * Before this time {@link toClose} has nothing to return (Infinity: not until traffic comes;
   * -Infinity: look now). It changes only through this pool's methods, so a caller that reads it
   * after each call may skip `toClose` until then.
   */
  get nextLookMs(): number {
    return this.#lastUsed.size > this.#maxLinks ? -Infinity : this.#nothingIdleBeforeMs;
  }

  /** Traffic on the link to `peer` (or a new link) at `nowMs`. */
  touch(peer: string, nowMs: number): void {
    this.#lastUsed.delete(peer);
    this.#lastUsed.set(peer, nowMs);
    const idleAtMs = nowMs + this.#idleMs;
    if (idleAtMs < this.#nothingIdleBeforeMs) this.#nothingIdleBeforeMs = idleAtMs;
  }

  /** Keeps the link to `peer` whatever its use (or stops keeping it). */
  pin(peer: string, pinned = true): void {
    if (pinned) this.#pinned.add(peer);
    else if (this.#pinned.delete(peer)) this.#nothingIdleBeforeMs = 0; // it may be idle already
  }

  /** The link to `peer` closed (for any reason). */
  closed(peer: string): void {
    this.#lastUsed.delete(peer);
    this.#pinned.delete(peer);
  }

  /**
   * The peers whose links should close now: idle past `idleMs`, then the least recently used
   * while over `maxLinks`. Busy (`isBusy`) and pinned links are never chosen. The chosen peers
   * leave the pool.
   */
  toClose(nowMs: number, isBusy: (peer: string) => boolean): readonly string[] {
    let open = this.#lastUsed.size;
    if (open <= this.#maxLinks && nowMs < this.#nothingIdleBeforeMs) return NONE;
    const close: string[] = [];
    // Busy and pinned links may be idle already: while there are any, look every time.
    let skipped = false;
    let nextIdleMs = Infinity;
    for (const [peer, lastMs] of this.#lastUsed) {
      if (this.#pinned.has(peer) || isBusy(peer)) {
        skipped = true;
        continue;
      }
      if (nowMs - lastMs >= this.#idleMs || open > this.#maxLinks) {
        close.push(peer);
        open--;
      } else if (open <= this.#maxLinks) {
        nextIdleMs = lastMs + this.#idleMs;
        break; // the rest were used more recently still
      }
    }
    this.#nothingIdleBeforeMs = skipped ? 0 : nextIdleMs;
    for (const peer of close) this.#lastUsed.delete(peer);
    return close;
  }
}
