/**
 * The membership's table: every member a node knows, in ring order, in about 12 bytes per member.
 *
 * A node of a large cluster knows every member, so a simulator that runs N nodes in one process
 * holds N² entries: at 10,000 nodes, 10⁸. A `Map` of claims plus a sorted array cost about 130
 * bytes an entry (13 GB at 10,000 nodes) and an insert into the sorted array moved half of it.
 * This table keeps live members in one array sorted by ring place with the places beside it in a
 * `Uint32Array` (binary search touches no claim), tombstones in a second sorted array, and no
 * index by GUID: a lookup hashes the GUID and searches. Claims are shared objects (see
 * `claimOf` in `_membership.ts`), so an entry is one reference and one 32-bit place.
 *
 * A batch ({@link MemberTable.batch}) takes many new members at once (a page of a table sent by
 * a seed) and merges them in one pass when it ends, instead of moving the array once for each.
 *
 * @module
 */

/** What the table needs of a claim: its GUID, its ring place, whether it is dead. */
export interface TableClaim {
  readonly guid: string;
  /** The GUID's place on the ring (the table's `place(guid)`), cached. */
  readonly ring: number;
  readonly status: "alive" | "suspect" | "dead";
}

/** 32-bit hash of a string (FNV-1a with a final avalanche), for ring places and digests. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Whether `a` comes before `b` on the ring: by place, then by GUID (places can collide). */
function before(a: TableClaim, ring: number, guid: string): boolean {
  return a.ring < ring || (a.ring === ring && a.guid < guid);
}

/**
 * Claims by GUID, live ones in ring order.
 *
 * @example
 * ```ts
 * import { hash32, MemberTable } from "./_member_table.ts";
 * const claim = (guid: string, status: "alive" | "dead" = "alive") =>
 *   ({ guid, ring: hash32(guid), status });
 * const table = new MemberTable<ReturnType<typeof claim>>();
 * table.set(claim("A"));
 * table.set(claim("B"));
 * table.set(claim("B", "dead"));
 * if (table.liveCount !== 1 || table.size !== 2) throw new Error("B is a tombstone");
 * if (table.get("B")?.status !== "dead") throw new Error("B is dead");
 * ```
 */
export class MemberTable<C extends TableClaim> {
  /** The ring place of a GUID: what every claim's `ring` holds. */
  readonly #place: (guid: string) => number;
  /** Live members (alive or suspect), sorted by (ring, guid). */
  #live: C[] = [];
  /** `#live[i].ring`, for searches that touch no claim; its length is the capacity. */
  #keys = new Uint32Array(16);
  /** Tombstones, sorted by (ring, guid). */
  #dead: C[] = [];
  /** New live members of the batch under way, not yet merged into `#live`. */
  #pending: Map<string, C> | undefined;

  /** A table whose claims' `ring` is `place(guid)` (by default {@link hash32}). */
  constructor(place: (guid: string) => number = hash32) {
    this.#place = place;
  }

  /** Every member: live, pending and tombstones. */
  get size(): number {
    return this.#live.length + this.#dead.length + (this.#pending?.size ?? 0);
  }

  /** Live members (alive or suspect), those of a batch under way included. */
  get liveCount(): number {
    return this.#live.length + (this.#pending?.size ?? 0);
  }

  /** Whether a {@link batch} is under way. */
  get batching(): boolean {
    return this.#pending !== undefined;
  }

  /** How many tombstones. */
  get deadCount(): number {
    return this.#dead.length;
  }

  /** The claim about `guid`, or undefined. */
  get(guid: string): C | undefined {
    const pending = this.#pending;
    if (pending !== undefined && pending.size > 0) {
      const claim = pending.get(guid);
      if (claim !== undefined) return claim;
    }
    const ring = this.#place(guid);
    const live = this.#live;
    for (let i = this.search(ring, guid); i < live.length && this.#keys[i] === ring; i++) {
      if (live[i].guid === guid) return live[i];
    }
    const dead = this.#dead;
    const at = searchClaims(dead, ring, guid);
    return dead[at]?.guid === guid ? dead[at] : undefined;
  }

  /** Stores `claim` in place of the claim about the same member, if any; returns that one. */
  set(claim: C): C | undefined {
    const pending = this.#pending;
    if (pending !== undefined && claim.status !== "dead") {
      const previous = pending.get(claim.guid);
      if (previous !== undefined) {
        pending.set(claim.guid, claim);
        return previous;
      }
    }
    const previous = this.#remove(claim.guid);
    if (claim.status === "dead") {
      this.#dead.splice(searchClaims(this.#dead, claim.ring, claim.guid), 0, claim);
    } else if (pending !== undefined && previous === undefined) {
      pending.set(claim.guid, claim);
    } else {
      this.#insertLive(claim);
    }
    return previous;
  }

  /**
   * Runs `fn` as a batch: members new to the table join the ring when it ends, all in one merge.
   * Meanwhile {@link get}, {@link size} and {@link liveCount} count them; ring walks
   * ({@link live}, {@link search}) do not yet. Returns whether any joined.
   */
  batch(fn: () => void): boolean {
    if (this.#pending !== undefined) {
      fn();
      return false;
    }
    const pending = this.#pending = new Map<string, C>();
    try {
      fn();
    } finally {
      this.#pending = undefined;
      if (pending.size > 0) this.#merge([...pending.values()]);
    }
    return pending.size > 0;
  }

  /** Live members in ring order (not those of a batch under way). Read only. */
  live(): readonly C[] {
    return this.#live;
  }

  /** Index in {@link live} of the first member at or after (`ring`, `guid`); may equal its length. */
  search(ring: number, guid: string): number {
    const keys = this.#keys;
    let lo = 0;
    let hi = this.#live.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid] < ring) lo = mid + 1;
      else hi = mid;
    }
    const live = this.#live;
    while (lo < live.length && keys[lo] === ring && live[lo].guid < guid) lo++;
    return lo;
  }

  /** A tombstone chosen with `randomInt`, or undefined if there is none. */
  randomDead(randomInt: (bound: number) => number): C | undefined {
    const dead = this.#dead;
    return dead.length === 0 ? undefined : dead[randomInt(dead.length)];
  }

  /** Every member: live ones in ring order, then those of a batch under way, then tombstones. */
  *values(): IterableIterator<C> {
    yield* this.#live;
    if (this.#pending !== undefined) yield* this.#pending.values();
    yield* this.#dead;
  }

  /** Drops `guid`'s tombstone; returns it, or undefined if `guid` is not one. */
  removeDead(guid: string): C | undefined {
    return this.#removeDead(this.#place(guid), guid);
  }

  #removeDead(ring: number, guid: string): C | undefined {
    const dead = this.#dead;
    const at = searchClaims(dead, ring, guid);
    if (dead[at]?.guid !== guid) return undefined;
    return dead.splice(at, 1)[0];
  }

  #remove(guid: string): C | undefined {
    const pending = this.#pending;
    if (pending !== undefined && pending.size > 0) {
      const claim = pending.get(guid);
      if (claim !== undefined) {
        pending.delete(guid);
        return claim;
      }
    }
    const ring = this.#place(guid);
    const live = this.#live;
    for (let i = this.search(ring, guid); i < live.length && this.#keys[i] === ring; i++) {
      if (live[i].guid !== guid) continue;
      const claim = live[i];
      this.#keys.copyWithin(i, i + 1, live.length);
      live.splice(i, 1);
      return claim;
    }
    return this.#removeDead(ring, guid);
  }

  #insertLive(claim: C): void {
    const live = this.#live;
    const at = this.search(claim.ring, claim.guid);
    this.#room(live.length + 1);
    this.#keys.copyWithin(at + 1, at, live.length);
    this.#keys[at] = claim.ring;
    live.splice(at, 0, claim);
  }

  /** Merges claims new to the table into the ring, from the back, in place. */
  #merge(added: C[]): void {
    added.sort((a, b) => a.ring - b.ring || (a.guid < b.guid ? -1 : a.guid > b.guid ? 1 : 0));
    const live = this.#live;
    let i = live.length - 1;
    let j = added.length - 1;
    this.#room(live.length + added.length);
    const keys = this.#keys;
    for (let k = 0; k < added.length; k++) live.push(added[0]); // room, overwritten below
    for (let w = live.length - 1; j >= 0; w--) {
      const next = added[j];
      if (i >= 0 && !before(live[i], next.ring, next.guid)) {
        live[w] = live[i];
        keys[w] = keys[i];
        i--;
      } else {
        live[w] = next;
        keys[w] = next.ring;
        j--;
      }
    }
  }

  #room(length: number): void {
    if (length <= this.#keys.length) return;
    let capacity = this.#keys.length;
    while (capacity < length) capacity *= 2;
    const keys = new Uint32Array(capacity);
    keys.set(this.#keys.subarray(0, this.#live.length));
    this.#keys = keys;
  }
}

/** Index of the first claim of `claims` (sorted) at or after (`ring`, `guid`). */
function searchClaims(claims: readonly TableClaim[], ring: number, guid: string): number {
  let lo = 0;
  let hi = claims.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(claims[mid], ring, guid)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
