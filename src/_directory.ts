/**
 * Worker locations that scale: a directory spread over the members by consistent hashing, with
 * a cache at each sender, instead of every node knowing every worker's node.
 *
 * - **Owners.** A worker's entry lives on the `replicas` members that follow its GUID on the
 *   membership's hash ring. The node hosting a worker registers it with those owners (`put`),
 *   and again whenever the owners change (a member joined or left), so a link-up no longer
 *   ships every location and a change moves only the entries of the ring segment it touches.
 * - **Lookups.** A sender asks the first owner (`get`); the answer (`found` / `missing`) is
 *   cached (bounded, least recently used out first). A lookup unanswered after `lookupTimeoutMs`
 *   asks the next owner, up to `maxTries`.
 * - **Never a wrong "unknown".** Right after the membership changed, an owner may not have
 *   received the entries it now owns. Its `missing` then says `settled: false`, and the sender
 *   asks again after `retryMs`, until an owner that has been stable for `settleMs` says the
 *   worker is missing for certain. Only then is the lookup resolved as unknown.
 * - **Moved.** A node that receives a message for a worker it does not host answers so; the
 *   sender calls {@link Directory.invalidate} and looks up again.
 * - **Stamps.** A `put` from another node than the entry's always wins (the worker moved; two
 *   nodes hosting one GUID is the duplicate case the node reports). Between one node's own
 *   `put`s and `remove`s, its stamp (start version, then a counter) orders them, so a late
 *   message of an earlier attachment never undoes a newer one, across restarts too.
 *
 * Pure bookkeeping: the node feeds it membership changes, attachments, messages and ticks
 * through {@link DirectoryHost}, and carries its messages (over links or datagrams: every
 * operation is idempotent and retried, so either works).
 *
 * @module
 */

/** A directory message between nodes. `from` is the sending node's GUID. */
export type DirectoryMessage =
  | {
    readonly kind: "put";
    readonly from: string;
    readonly worker: string;
    readonly node: string;
    readonly stamp: Stamp;
  }
  | {
    readonly kind: "remove";
    readonly from: string;
    readonly worker: string;
    readonly node: string;
    readonly stamp: Stamp;
  }
  | { readonly kind: "get"; readonly from: string; readonly worker: string; readonly id: number }
  | {
    readonly kind: "found";
    readonly from: string;
    readonly worker: string;
    readonly node: string;
    readonly id: number;
  }
  | {
    readonly kind: "missing";
    readonly from: string;
    readonly worker: string;
    readonly id: number;
    /** The owner has been stable long enough that "missing" is certain. */
    readonly settled: boolean;
  };

/** How a lookup ended. */
export type LookupEnd = "found" | "unknown" | "unanswered";

/** Orders one node's registrations: its start version, then a counter. */
export type Stamp = readonly [version: number, seq: number];

/**
 * A worker hosted here: the owners it is registered with, and its put (the same object for
 * every owner and every refresh while it stays, so a transport may encode it once).
 */
interface Hosted {
  owners: readonly string[];
  readonly put: Extract<DirectoryMessage, { kind: "put" }>;
}

/** Whether stamp `a` is later than or equal to `b`. */
function notEarlier(a: Stamp, b: Stamp): boolean {
  return a[0] !== b[0] ? a[0] > b[0] : a[1] >= b[1];
}

/** What the directory needs from its node. */
export interface DirectoryHost {
  now(): number;
  /** The live members that own `worker`'s entry, first owner first (consistent hashing). */
  owners(worker: string, count: number): readonly string[];
  /** Sends a directory message to node `node`. */
  send(node: string, message: DirectoryMessage): void;
  /**
   * A lookup ended: `found` on `node`; `unknown`, certainly on no node; or `unanswered`, the
   * owners did not answer (or not for certain) within the tries and time allowed.
   */
  resolved(worker: string, node: string | undefined, why: LookupEnd): void;
}

/** Tuning; times in ms. */
export interface DirectoryOptions {
  /** This node's GUID. */
  readonly node: string;
  /** This node's start version: stamps of its entries begin above every earlier start's. */
  readonly version: number;
  /** Owners per entry. Default 2. */
  readonly replicas?: number;
  /** Most cached locations. Default 10,000. */
  readonly cacheSize?: number;
  /** An unanswered lookup asks the next owner after this. Default 500. */
  readonly lookupTimeoutMs?: number;
  /** Owner changes younger than this make "missing" uncertain. Default 2000. */
  readonly settleMs?: number;
  /** Delay before asking again after an uncertain "missing". Default 200. */
  readonly retryMs?: number;
  /** Lookups end `unanswered` after this many unanswered tries. Default 6. */
  readonly maxTries?: number;
  /** …or after this long, however the owners answered. Default settleMs + 3 × lookupTimeoutMs. */
  readonly maxWaitMs?: number;
}

/** Counters, for metrics and tests. */
export interface DirectoryStats {
  lookups: number;
  cacheHits: number;
  retries: number;
  putsSent: number;
  entries: number;
}

interface Entry {
  node: string;
  stamp: Stamp;
}

interface Lookup {
  readonly id: number;
  readonly startedMs: number;
  /** When to ask again (timeout or retry). */
  dueMs: number;
  tries: number;
  /** Index of the owner asked last. */
  owner: number;
}

function count(value: number | undefined, fallback: number, name: string, min: number): number {
  const result = value ?? fallback;
  if (!(Number.isFinite(result) && result >= min)) {
    throw new RangeError(`Cannot create directory: ${name} must be a number >= ${min}`);
  }
  return result;
}

/**
 * One node's share of the worker directory, its cache and its lookups.
 *
 * @example
 * ```ts
 * import { Directory, type DirectoryMessage } from "./_directory.ts";
 * const outbox: [string, DirectoryMessage][] = [];
 * const host = {
 *   now: () => 0,
 *   owners: () => ["B"],
 *   send: (node: string, message: DirectoryMessage) => void outbox.push([node, message]),
 *   resolved: () => {},
 * };
 * const a = new Directory(host, { node: "A", version: 1 });
 * a.attach("w1"); // registers w1 with its owner B
 * if (outbox[0][0] !== "B" || outbox[0][1].kind !== "put") throw new Error("no put");
 * ```
 */
export class Directory {
  readonly stats: DirectoryStats = {
    lookups: 0,
    cacheHits: 0,
    retries: 0,
    putsSent: 0,
    entries: 0,
  };
  readonly #host: DirectoryHost;
  readonly #node: string;
  readonly #replicas: number;
  readonly #cacheSize: number;
  readonly #lookupTimeoutMs: number;
  readonly #settleMs: number;
  readonly #retryMs: number;
  readonly #maxTries: number;
  readonly #maxWaitMs: number;
  /** Workers hosted here → the owners they are registered with, and their put. */
  readonly #hosted = new Map<string, Hosted>();
  /** Entries this node owns. */
  readonly #entries = new Map<string, Entry>();
  /** Cached locations, least recently used first. */
  readonly #cache = new Map<string, string>();
  readonly #lookups = new Map<string, Lookup>();
  readonly #version: number;
  #seq = 0;
  #nextId = 0;
  #changedAtMs: number;

  /** A directory share for node `options.node`. */
  constructor(host: DirectoryHost, options: DirectoryOptions) {
    if (typeof options.node !== "string" || options.node === "") {
      throw new TypeError("Cannot create directory: node must be a non-empty string");
    }
    this.#host = host;
    this.#node = options.node;
    this.#replicas = Math.floor(count(options.replicas, 2, "replicas", 1));
    this.#cacheSize = Math.floor(count(options.cacheSize, 10_000, "cacheSize", 0));
    this.#lookupTimeoutMs = count(options.lookupTimeoutMs, 500, "lookupTimeoutMs", 1);
    this.#settleMs = count(options.settleMs, 2000, "settleMs", 0);
    this.#retryMs = count(options.retryMs, 200, "retryMs", 1);
    this.#maxTries = Math.floor(count(options.maxTries, 6, "maxTries", 1));
    this.#maxWaitMs = count(
      options.maxWaitMs,
      this.#settleMs + 3 * this.#lookupTimeoutMs,
      "maxWaitMs",
      1,
    );
    this.#version = count(options.version, 0, "version", 0);
    this.#changedAtMs = host.now();
  }

  /** How many entries this node owns. */
  get entryCount(): number {
    return this.#entries.size;
  }

  /** How many locations are cached. */
  get cacheCount(): number {
    return this.#cache.size;
  }

  /** The node owning-side entry for `worker`, if this node holds it (for tests and state). */
  entry(worker: string): string | undefined {
    return this.#entries.get(worker)?.node;
  }

  /** Registers a worker now hosted on this node with its owners. */
  attach(worker: string): void {
    const stamp: Stamp = [this.#version, ++this.#seq];
    const owners = this.#host.owners(worker, this.#replicas);
    const put: Hosted["put"] = { kind: "put", from: this.#node, worker, node: this.#node, stamp };
    this.#hosted.set(worker, { owners, put });
    this.#cache.delete(worker);
    for (const owner of owners) this.#put(owner, put);
  }

  /** Unregisters a worker that left this node. */
  detach(worker: string): void {
    const hosted = this.#hosted.get(worker);
    if (!hosted) return;
    this.#hosted.delete(worker);
    const stamp: Stamp = [this.#version, ++this.#seq];
    for (const owner of hosted.owners) {
      this.#send(owner, { kind: "remove", from: this.#node, worker, node: this.#node, stamp });
    }
  }

  /**
   * The membership changed (a member joined, left or died): registers hosted workers with any
   * new owner, and forgets entries and cached locations on nodes that are gone.
   */
  membershipChanged(gone: readonly string[] = []): void {
    this.#changedAtMs = this.#host.now();
    for (const node of gone) {
      for (const [worker, entry] of this.#entries) {
        if (entry.node === node) this.#entries.delete(worker);
      }
      for (const [worker, location] of this.#cache) {
        if (location === node) this.#cache.delete(worker);
      }
    }
    // Entries this node no longer owns would only go stale: their new owners get them from the
    // hosting nodes below.
    for (const worker of this.#entries.keys()) {
      if (!this.#host.owners(worker, this.#replicas).includes(this.#node)) {
        this.#entries.delete(worker);
      }
    }
    for (const [worker, hosted] of this.#hosted) {
      const owners = this.#host.owners(worker, this.#replicas);
      const added = owners.filter((owner) => !hosted.owners.includes(owner));
      hosted.owners = owners;
      for (const owner of added) this.#put(owner, hosted.put);
    }
    this.stats.entries = this.#entries.size;
  }

  /**
   * Registers every hosted worker with its owners again, as the membership sees them now:
   * anti-entropy for entries an owner dropped or never got while views of the membership
   * differed (a partition, a burst of changes). Call it now and then (the node: every 30
   * intervals); the puts are idempotent.
   */
  refresh(): void {
    for (const [worker, hosted] of this.#hosted) {
      hosted.owners = this.#host.owners(worker, this.#replicas);
      for (const owner of hosted.owners) this.#put(owner, hosted.put);
    }
  }

  /**
   * Where `worker` is: this node, a cached node, or `undefined` while a lookup runs (the result
   * comes through `host.resolved`).
   */
  locate(worker: string): string | undefined {
    if (this.#hosted.has(worker)) return this.#node;
    const cached = this.#cache.get(worker);
    if (cached !== undefined) {
      this.stats.cacheHits++;
      this.#cache.delete(worker);
      this.#cache.set(worker, cached);
      return cached;
    }
    if (!this.#lookups.has(worker)) {
      this.stats.lookups++;
      const lookup: Lookup = {
        id: ++this.#nextId,
        startedMs: this.#host.now(),
        dueMs: 0,
        tries: 0,
        owner: -1,
      };
      this.#lookups.set(worker, lookup);
      this.#ask(worker, lookup, true);
    }
    return undefined;
  }

  /** Where `worker` is as far as this node knows now (hosted here or cached); no lookup. */
  cached(worker: string): string | undefined {
    return this.#hosted.has(worker) ? this.#node : this.#cache.get(worker);
  }

  /** A message to `worker` reached `node`, which does not host it: forget and look up again. */
  invalidate(worker: string, node: string): void {
    if (this.#cache.get(worker) === node) this.#cache.delete(worker);
  }

  /** Handles a directory message from node `from`. */
  receive(message: DirectoryMessage): void {
    if (!validMessage(message)) return;
    switch (message.kind) {
      case "put": {
        const entry = this.#entries.get(message.worker);
        if (!entry || entry.node !== message.node || notEarlier(message.stamp, entry.stamp)) {
          // A refresh of the entry as it stands (the same decoded put again) changes nothing.
          if (entry?.stamp === message.stamp && entry.node === message.node) break;
          this.#entries.set(message.worker, { node: message.node, stamp: message.stamp });
        }
        break;
      }
      case "remove": {
        const entry = this.#entries.get(message.worker);
        if (entry && entry.node === message.node && notEarlier(message.stamp, entry.stamp)) {
          this.#entries.delete(message.worker);
        }
        break;
      }
      case "get": {
        const entry = this.#entries.get(message.worker);
        if (entry) {
          this.#send(message.from, {
            kind: "found",
            from: this.#node,
            worker: message.worker,
            node: entry.node,
            id: message.id,
          });
        } else {
          this.#send(message.from, {
            kind: "missing",
            from: this.#node,
            worker: message.worker,
            id: message.id,
            settled: this.#host.now() - this.#changedAtMs >= this.#settleMs,
          });
        }
        break;
      }
      case "found": {
        const lookup = this.#lookups.get(message.worker);
        if (!lookup || lookup.id !== message.id) return;
        this.#lookups.delete(message.worker);
        this.#remember(message.worker, message.node);
        this.#host.resolved(message.worker, message.node, "found");
        break;
      }
      case "missing": {
        const lookup = this.#lookups.get(message.worker);
        if (!lookup || lookup.id !== message.id) return;
        if (message.settled) {
          this.#lookups.delete(message.worker);
          this.#host.resolved(message.worker, undefined, "unknown");
        } else {
          // The owner may not have the entry yet: ask it again soon. Not counted as a try, so
          // only maxWaitMs bounds this.
          lookup.dueMs = this.#host.now() + this.#retryMs;
          lookup.owner--;
          lookup.tries--;
        }
        break;
      }
    }
    this.stats.entries = this.#entries.size;
  }

  /** Retries lookups that timed out or were told to wait; call it every ~100 ms. */
  tick(): void {
    if (this.#lookups.size === 0) return; // the usual wake: no clock read, no iterator
    const now = this.#host.now();
    for (const [worker, lookup] of this.#lookups) {
      if (now < lookup.dueMs) continue;
      this.stats.retries++;
      this.#ask(worker, lookup, false);
    }
  }

  /** The earliest time {@link tick} has work, or `Infinity`. */
  nextWakeMs(): number {
    let wake = Infinity;
    if (this.#lookups.size === 0) return wake;
    for (const lookup of this.#lookups.values()) wake = Math.min(wake, lookup.dueMs);
    return wake;
  }

  #ask(worker: string, lookup: Lookup, first: boolean): void {
    const now = this.#host.now();
    if (!first && (lookup.tries >= this.#maxTries || now - lookup.startedMs >= this.#maxWaitMs)) {
      this.#lookups.delete(worker);
      this.#host.resolved(worker, undefined, "unanswered");
      return;
    }
    const owners = this.#host.owners(worker, this.#replicas);
    if (owners.length === 0) {
      this.#lookups.delete(worker);
      this.#host.resolved(worker, undefined, "unanswered");
      return;
    }
    lookup.tries++;
    lookup.owner = (lookup.owner + 1) % owners.length;
    lookup.dueMs = now + this.#lookupTimeoutMs;
    const owner = owners[lookup.owner];
    if (owner === this.#node) {
      // This node owns the entry: answer locally.
      this.receive({ kind: "get", from: this.#node, worker, id: lookup.id });
      return;
    }
    this.#send(owner, { kind: "get", from: this.#node, worker, id: lookup.id });
  }

  /** Sends a hosted worker's put (one message object while its stamp stands) to `owner`. */
  #put(owner: string, put: Hosted["put"]): void {
    this.stats.putsSent++;
    this.#send(owner, put);
  }

  #send(node: string, message: DirectoryMessage): void {
    if (node === this.#node) this.receive(message);
    else this.#host.send(node, message);
  }

  #remember(worker: string, node: string): void {
    if (this.#cacheSize === 0) return;
    this.#cache.delete(worker);
    this.#cache.set(worker, node);
    if (this.#cache.size > this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
  }
}

function validMessage(message: DirectoryMessage): boolean {
  if (message === null || typeof message !== "object") return false;
  if (typeof message.from !== "string" || typeof message.worker !== "string") return false;
  switch (message.kind) {
    case "put":
    case "remove":
      return typeof message.node === "string" && Array.isArray(message.stamp) &&
        message.stamp.length === 2 && Number.isFinite(message.stamp[0]) &&
        Number.isFinite(message.stamp[1]);
    case "get":
    case "missing":
      return Number.isInteger(message.id);
    case "found":
      return typeof message.node === "string" && Number.isInteger(message.id);
    default:
      return false;
  }
}
