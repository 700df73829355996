/**
 * The peer table and dial policy: the nodes this node knows (heard by heartbeat, given as seeds,
 * named in peer lists, or linked), and when it dials them.
 *
 * - A peer is dialled when known and not linked, unless a dial is in flight, the node is at its
 *   link limit, or it is backing off. Of two nodes that hear each other, the lower GUID dials;
 *   the other dials too only after a grace, so a pair makes one connection (where each side
 *   sends on what it dialled, the original's way, both always dial).
 * - A failed dial backs off: from `reconnectMinMs`, doubling up to `reconnectMaxMs`, each delay
 *   drawn in [0.5, 1.5) of it so nodes that failed together do not retry together. A link
 *   resets it. A peer that refused us as a twin backs off on a count of its own that a link
 *   does not reset.
 * - A peer heard of under another incarnation while linked is not believed: the link is probed,
 *   and only its end can say the peer restarted. While linked, the address from the handshake
 *   stands: unauthenticated heartbeats and peer lists cannot redirect the next dial.
 * - An unlinked peer silent past the bound is lost; one that said goodbye is forgotten at once.
 * - Seeds are dialled whether heard or not, until one turns out to be this node.
 *
 * @module
 */
import type { Address, Clock, Logger, Random } from "./platform.ts";
import { parseAddress } from "./platform.ts";

/** How a peer first became known. */
export type PeerVia = "heartbeat" | "seed" | "gossip" | "link";

/** A known node. */
export interface Peer {
  readonly guid: string;
  address: string;
  incarnation: string;
  lastHeardMs: number;
  /** Since when it has been known without a link (for the dial grace of the higher GUID). */
  unlinkedSinceMs: number;
  backoffMs: number;
  nextDialAtMs: number;
  /** The dial in flight to it, if any. */
  pending: object | undefined;
  via: PeerVia;
  /** Whether the node has a link to it: kept in step with the link table. */
  linked: boolean;
  /** Removed from the table (lost or gone): a cached reference to it is stale. */
  forgotten: boolean;
  /** Backoff after it refused us as a twin: grows with each refusal, not reset by a link. */
  refusalBackoffMs: number;
  lastRefusedAtMs: number;
}

/** An address to dial whether heard or not. */
export interface Seed {
  readonly address: Address;
  /** The GUID that answered there, once one did. */
  guid: string | undefined;
  /** Whether it turned out to be this node (never dialled again). */
  self: boolean;
  backoffMs: number;
  nextDialAtMs: number;
  pending: object | undefined;
}

/** What the peer table needs from its node. */
export interface PeerTableHost {
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  /** Whether the node is running (no dials otherwise). */
  running(): boolean;
  /** Connections open or opening (dials in flight count: they may all succeed). */
  connectionCount(): number;
  /** Whether there is a link to `guid`. */
  isLinked(guid: string): boolean;
  /** The incarnation the link to `guid` was made with, if linked. */
  linkIncarnation(guid: string): string | undefined;
  /** Probes the link to `guid` with a keepalive: a dead link's host answers with a reset. */
  probe(guid: string): void;
  /** Dials `address` for a peer or a seed; returns the dial in flight. */
  dial(address: Address, peer: Peer | undefined, seed: Seed | undefined): object;
  onDiscovered(peer: Peer): void;
  onLost(peer: Peer): void;
}

/** The peer table's settings. Durations in ms. */
export interface PeerTableOptions {
  /** This node's GUID. */
  readonly guid: string;
  readonly maxLinks: number;
  readonly dialGraceMs: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** An unlinked peer silent this long is lost. */
  readonly silenceMs: number;
  /** Whether a pair shares one connection (the lower GUID dials first); see `WireProtocol`. */
  readonly sharedConnection: boolean;
  readonly seeds: readonly Address[];
  /**
   * Whether the table dials peers and seeds itself and judges unlinked peers by silence (the
   * mesh). `false` under ring membership: links open on demand and the membership says who is
   * lost, so an unlinked peer is just forgotten. Default true.
   */
  readonly autoDial?: boolean;
}

/**
 * A node's peers and seeds, and its dial policy.
 *
 * @example
 * ```ts
 * import { PeerTable } from "./_peers.ts";
 * const dials: string[] = [];
 * const peers = new PeerTable({
 *   clock: { now: () => 0 } as never,
 *   random: { next: () => 0.5 } as never,
 *   log: { log: () => {} } as never,
 *   running: () => true,
 *   connectionCount: () => 0,
 *   isLinked: () => false,
 *   linkIncarnation: () => undefined,
 *   probe: () => {},
 *   dial: (address) => (dials.push(`${address.host}:${address.port}`), {}),
 *   onDiscovered: () => {},
 *   onLost: () => {},
 * }, {
 *   guid: "A",
 *   maxLinks: 10,
 *   dialGraceMs: 2000,
 *   reconnectMinMs: 250,
 *   reconnectMaxMs: 8000,
 *   silenceMs: 3000,
 *   sharedConnection: true,
 *   seeds: [],
 * });
 * peers.learn("B", "10.0.0.2:8888", "b1", "heartbeat"); // the lower GUID dials at once
 * if (dials.join() !== "10.0.0.2:8888") throw new Error("unexpected");
 * ```
 */
export class PeerTable {
  readonly #host: PeerTableHost;
  readonly #o: PeerTableOptions;
  readonly #peers = new Map<string, Peer>();
  readonly #seeds: Seed[] = [];

  /** A table with no peers yet, and the seeds of `options`. */
  constructor(host: PeerTableHost, options: PeerTableOptions) {
    this.#host = host;
    this.#o = options;
    for (const address of options.seeds) {
      this.#seeds.push({
        address,
        guid: undefined,
        self: false,
        backoffMs: 0,
        nextDialAtMs: 0,
        pending: undefined,
      });
    }
  }

  /** How many peers are known. */
  get size(): number {
    return this.#peers.size;
  }

  /** The peer with this GUID, if known. */
  get(guid: string): Peer | undefined {
    return this.#peers.get(guid);
  }

  /** Whether a peer with this GUID is known. */
  has(guid: string): boolean {
    return this.#peers.has(guid);
  }

  /** The known peers, in the order they became known. */
  values(): IterableIterator<Peer> {
    return this.#peers.values();
  }

  /**
   * A peer was heard of (by heartbeat, from a seed, in a peer list, or over a link): noted,
   * discovered if new, and dialled if it should be (except when heard over a link).
   */
  learn(guid: string, address: string, incarnation: string, via: PeerVia): Peer {
    const host = this.#host;
    const now = host.clock.now();
    let peer = this.#peers.get(guid);
    if (
      peer !== undefined && via === "heartbeat" && peer.incarnation === incarnation &&
      peer.address === address
    ) {
      // The common case, a linked peer's heartbeat: note it and go.
      peer.lastHeardMs = now;
      if (!host.isLinked(guid)) this.maybeDial(peer);
      return peer;
    }
    if (peer === undefined) {
      peer = {
        guid,
        address,
        incarnation,
        lastHeardMs: now,
        unlinkedSinceMs: now,
        backoffMs: 0,
        nextDialAtMs: 0,
        pending: undefined,
        via,
        linked: false,
        forgotten: false,
        refusalBackoffMs: 0,
        lastRefusedAtMs: -Infinity,
      };
      this.#peers.set(guid, peer);
      host.log.log("info", "peer.discovered", { peer: guid, address, via });
      host.onDiscovered(peer);
    } else {
      if (via !== "gossip" && incarnation !== "" && peer.incarnation !== incarnation) {
        const linkIncarnation = host.linkIncarnation(guid);
        if (linkIncarnation !== undefined && linkIncarnation !== incarnation) {
          // Another incarnation while linked: the peer restarted, or a twin claims its GUID.
          // Only the link's end may say which: a keepalive probes it (a restarted host resets
          // the old connection at once), and until the link ends its incarnation stands, so a
          // twin's heartbeats cannot make us switch (nor can spoofed or replayed ones).
          host.probe(guid);
        } else {
          peer.incarnation = incarnation;
          peer.backoffMs = 0;
          peer.nextDialAtMs = 0;
        }
      }
      // While linked, the address the peer gave in its handshake stands: a heartbeat or a peer
      // list (unauthenticated without a cluster key) must not redirect our next dial.
      if (!host.isLinked(guid) && address !== "" && peer.address !== address) {
        peer.address = address;
        peer.nextDialAtMs = 0;
      }
      peer.lastHeardMs = now;
    }
    if (via !== "link") this.maybeDial(peer);
    return peer;
  }

  /** Dials `peer` if it should be dialled now. */
  maybeDial(peer: Peer): void {
    if (this.#o.autoDial === false) return;
    const host = this.#host;
    // Dials in flight count too: they may all succeed.
    if (host.connectionCount() >= this.#o.maxLinks) return;
    if (!host.running() || host.isLinked(peer.guid) || peer.pending !== undefined) return;
    const now = host.clock.now();
    if (now < peer.nextDialAtMs) return;
    // The lower GUID dials; the higher one waits a grace period so a pair makes one connection.
    // (Where each side sends only on what it dialled, the original's way, both always dial.)
    if (
      this.#o.sharedConnection && this.#o.guid > peer.guid &&
      now - peer.unlinkedSinceMs < this.#o.dialGraceMs
    ) return;
    let address: Address;
    try {
      address = parseAddress(peer.address);
    } catch {
      // Not dialable (yet): an original-protocol peer that dialled us is known by GUID only
      // until its heartbeat brings its address.
      if (peer.address !== "") {
        host.log.log("warn", "peer.bad-address", { peer: peer.guid, address: peer.address });
        this.backoff(peer);
      }
      return;
    }
    peer.pending = host.dial(address, peer, undefined);
  }

  /** Dials `peer` now if it is not linked, whatever its backoff. */
  dialNow(peer: Peer): void {
    if (this.#host.isLinked(peer.guid)) return;
    peer.nextDialAtMs = 0;
    this.maybeDial(peer);
  }

  /** Dials every seed that should be dialled now. */
  dialSeeds(): void {
    if (this.#o.autoDial === false) return;
    for (const seed of this.#seeds) this.#dialSeed(seed);
  }

  #dialSeed(seed: Seed): void {
    const host = this.#host;
    if (host.connectionCount() >= this.#o.maxLinks) return;
    if (!host.running() || seed.self || seed.pending !== undefined) return;
    if (
      seed.guid !== undefined && (host.isLinked(seed.guid) || this.#peers.get(seed.guid)?.pending)
    ) return;
    if (host.clock.now() < seed.nextDialAtMs) return;
    seed.pending = host.dial(seed.address, undefined, seed);
  }

  /**
   * Housekeeping: unlinked peers silent past the bound are lost, the others dialled if they
   * should be; then the seeds.
   */
  tick(now: number): void {
    if (this.#peers.size > 0) this.#tickPeers(now);
    this.dialSeeds();
  }

  #tickPeers(now: number): void {
    const host = this.#host;
    // Linked or being dialled, as under ring membership usually: nothing to do, nothing copied.
    let idle = false;
    for (const peer of this.#peers.values()) {
      if (!host.isLinked(peer.guid) && peer.pending === undefined) {
        idle = true;
        break;
      }
    }
    if (!idle) return;
    for (const peer of [...this.#peers.values()]) {
      if (host.isLinked(peer.guid) || peer.pending !== undefined) continue;
      if (this.#o.autoDial === false) {
        this.#peers.delete(peer.guid);
        peer.forgotten = true;
        continue;
      }
      if (now - peer.lastHeardMs > this.#o.silenceMs) {
        this.#peers.delete(peer.guid);
        peer.forgotten = true;
        this.announceLost(peer);
      } else {
        this.maybeDial(peer);
      }
    }
  }

  /** Says a peer is lost (a log line, then the host's `onLost`). */
  announceLost(peer: Peer): void {
    this.#host.log.log("info", "peer.lost", { peer: peer.guid, address: peer.address });
    this.#host.onLost(peer);
  }

  /** Backs `target` off after a failed dial. */
  backoff(target: { backoffMs: number; nextDialAtMs: number }): void {
    target.backoffMs = Math.min(
      this.#o.reconnectMaxMs,
      target.backoffMs === 0 ? this.#o.reconnectMinMs : target.backoffMs * 2,
    );
    // Jitter in [0.5, 1.5) so that nodes that failed together do not retry together.
    target.nextDialAtMs = this.#host.clock.now() +
      target.backoffMs * (0.5 + this.#host.random.next());
  }

  /** A link to `peer` came up (through `seed`, if dialled as one): backoffs are reset. */
  linked(peer: Peer, seed: Seed | undefined): void {
    peer.backoffMs = 0;
    peer.nextDialAtMs = 0;
    if (seed) seed.backoffMs = 0;
  }

  /**
   * The link to `guid` went down: the peer waits out a backoff before it is dialled again,
   * unless it left on purpose (`goodbye`: forgotten now rather than redialled; `closing`: we
   * are). Returns the peer, if known.
   */
  unlinked(guid: string, reason: string): Peer | undefined {
    const peer = this.#peers.get(guid);
    if (peer === undefined) return undefined;
    peer.linked = false;
    peer.unlinkedSinceMs = this.#host.clock.now();
    if (reason === "goodbye" || reason === "closing") {
      if (reason === "goodbye") {
        this.#peers.delete(guid);
        peer.forgotten = true;
      }
    } else {
      this.backoff(peer);
    }
    return peer;
  }

  /**
   * `peer` refused us as a twin (at `nowMs`): it is dialled again only after a backoff that
   * grows with each refusal and resets after a long quiet.
   */
  refusedBy(peer: Peer | undefined, nowMs: number): void {
    if (peer === undefined || peer.forgotten) return;
    const o = this.#o;
    if (nowMs - peer.lastRefusedAtMs > 2 * o.reconnectMaxMs) peer.refusalBackoffMs = 0;
    peer.lastRefusedAtMs = nowMs;
    peer.refusalBackoffMs = Math.min(
      o.reconnectMaxMs,
      peer.refusalBackoffMs === 0 ? o.reconnectMinMs : peer.refusalBackoffMs * 2,
    );
    peer.backoffMs = peer.refusalBackoffMs;
    peer.nextDialAtMs = nowMs + peer.refusalBackoffMs * (0.5 + this.#host.random.next());
  }
}
