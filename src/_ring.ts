/**
 * Ring membership: the node's mode whose cost per node does not grow with the cluster (issue 13;
 * see `docs/scaling.md`). It puts three sans-IO parts to work for the node:
 *
 * - **Who is alive** ({@link Membership}): beats to two ring monitors, probes when a beat is
 *   late, versioned suspicion and refutation, flooding and anti-entropy. Its datagrams go over
 *   one UDP socket on the node's listen host and port (TCP and UDP ports are separate), in the
 *   compact form of `_membership_codec.ts`.
 * - **Where workers are** ({@link Directory}): each worker's entry on the two members after it
 *   on the ring, a cached lookup at each sender. Its messages go over the same socket as JSON
 *   behind a marker byte: they are few, idempotent and retried.
 * - **Links on demand** ({@link LinkPool}): a link opens when there is a message for a node
 *   and closes when idle (never with unconfirmed messages), least recently used first above
 *   the bound.
 *
 * A message whose node has no link yet, or whose worker's node is being looked up, waits here
 * (bounded) and is routed again when the link is up or the lookup ends; every one that cannot
 * go is reported undeliverable, none is dropped silently. Joining: a heartbeat heard from a
 * node this one does not know or holds dead makes it a member (a node alone asks the first it
 * hears for its table), and seeds are joined directly.
 *
 * @module
 */
import { Directory, type DirectoryMessage } from "./_directory.ts";
import { LinkPool } from "./_link_pool.ts";
import {
  beatRound,
  hearRepeat,
  type MemberEvent,
  Membership,
  type MembershipHost,
  type MembershipMessage,
  ROUND_NOT_TAKEN,
  ROUND_TAKEN_SYNC,
} from "./_membership.ts";
import { decodeMembership, encodeMembership, MEMBERSHIP_MARKER } from "./_membership_codec.ts";
import { counter, gauge } from "./_node_metrics.ts";
import { REPORT_WINDOW_MS, ReportLimit } from "./_report_limit.ts";
import type { MapMessage } from "./message.ts";
import type { MetricFamily } from "./metrics.ts";
import type { Address, Clock, DatagramSocket, Logger, Net, Random, Timer } from "./platform.ts";
import { formatAddress, parseAddress } from "./platform.ts";
import type { ClusterAuth, DatagramSeal } from "./_auth.ts";
import type { LinkDownReason, MembershipState, UndeliverableReason } from "./_types.ts";

/** The first byte of a directory datagram (JSON follows). */
export const DIRECTORY_MARKER = 0xc2;
/** Most messages waiting for one node's link or one worker's lookup. */
export const MAX_WAITING = 1024;
/**
 * Heartbeats go out soon after start (the node sends one at a random moment of the first tenth
 * of an interval) and on node tick 1 (a second chance against a lost broadcast): every node of
 * the subnet hears each one, so each round costs the subnet N² deliveries at a cold start.
 */
const BEAT_TICK_JOINING = 1;
/**
 * Hosted workers are registered with their owners again every this many ticks. Owner changes
 * re-register at once (the membership reports them); this only repairs puts that were lost.
 * Nodes started together do it in the same interval: spreading it by hash of each node's GUID
 * measured 0.94-0.95x at 3,000 and 10,000 simulated nodes (`docs/scaling.md`), and an owner
 * gets the same few puts either way.
 */
const REFRESH_TICKS = 30;
/** A node that heard others by the first round joins its seeds at this round. */
const SEED_JOIN_ROUND = 3;
/** A second seed (chosen at random) is joined at this round if the first taught nothing. */
const SEED_RETRY_ROUND = 8;
/**
 * Member addresses parsed for sending, shared by every ring of the process (see #addressOf): an
 * address object is only read, and in a simulated cluster every node sends to the same members'
 * addresses (an anti-entropy digest goes to a random one each time). Bounded: when full it
 * starts again, which only costs parsing.
 */
const parsedAddresses = new Map<string, Address>();
const MAX_ADDRESSES = 1 << 16;
/** Nodes remembered as asked to join within the last interval. */
const MAX_JOIN_ASKED = 256;
/** A node that still knows no one broadcasts again every this many ticks. */
const BEAT_TICKS_ALONE = 16;

/**
 * Membership datagrams already decoded in this process, by the received array itself. Received
 * bytes are read-only (see `platform.ts`) and a decoded message is only read, and a member sends
 * the same array for every beat that carries no news (and for its table pages and its digest
 * while its table stands), so when one process hosts many nodes (a simulated cluster) each is
 * decoded once. Entries go with their arrays.
 */
const decodedMemberships = new WeakMap<Uint8Array, MembershipMessage>();

/**
 * Directory puts already decoded in this process, by the received array, as for memberships: a
 * node sends the same bytes to each owner of its worker and again at every refresh while the
 * worker stays (see #sendDirectory), so each is parsed once. Only puts: other directory
 * messages are new bytes each time.
 */
const decodedPuts = new WeakMap<Uint8Array, DirectoryMessage>();

/**
 * The membership's host: the clock and the randomness are its fields, read by its methods (a
 * reading of the time or a draw goes through no closure and its context).
 */
class MembershipPort implements MembershipHost {
  constructor(
    readonly clock: Clock,
    readonly random: Random,
    readonly send: (address: string, message: MembershipMessage) => void,
    readonly changed: (event: MemberEvent) => void,
  ) {}

  now(): number {
    return this.clock.now();
  }

  randomInt(bound: number): number {
    return this.random.int(0, bound - 1);
  }
}

/** Whether `message` is a beat that carries no news (a member's every round while quiet). */
function isPlainBeat(message: MembershipMessage): boolean {
  return message.kind === "beat" && message.updates.length === 0;
}

/**
 * The short path of repeated plain beats (`hearRepeat`, see `onMessage`), for every ring of the
 * process: whether it is taken, and how many beats took it. Tests switch it off to show that it
 * changes nothing a cluster does (the same run gives the same trace either way).
 */
export const shortBeats = { on: true, taken: 0 };

/**
 * Short rounds (see `#wake`), for every ring of the process: whether they are taken, and how
 * many were. Tests switch them off to show that they change nothing a cluster does.
 */
export const shortRounds = { on: true, taken: 0 };

/**
 * Anti-entropy messages already encoded (table pages and digests sent alone), by the message
 * object, which the membership reuses while its table stands (see `#sendTable`, `#digestOnly`).
 */
const encodedSyncs = new WeakMap<MembershipMessage, Uint8Array>();

/** What ring membership needs from its node. */
export interface RingHost {
  readonly net: Net;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly stats: { datagramErrors: number; authFailures: number; replaysDropped: number };
  /** Whether there is a link (up) to `node`. */
  isLinked(node: string): boolean;
  /** Whether the link to `node` holds messages not yet confirmed (it must stay open). */
  isBusy(node: string): boolean;
  /** Opens a link to `node` at `address`. */
  dial(node: string, address: Address): void;
  /** Closes the link to `node`, if any. */
  closeLink(node: string, reason: LinkDownReason, detail: string): void;
  /**
   * Routes a message again (its link is up, or its worker was found). `node` names the node a
   * waiting broadcast was for: it goes on that node's link only.
   */
  route(message: MapMessage, node?: string): void;
  /** Reports a message undeliverable. */
  undeliverable(message: MapMessage, reason: UndeliverableReason, detail: string): void;
  /** A member became known alive. */
  memberUp(node: string, address: string): void;
  /** A member is held dead. */
  memberDown(node: string, address: string): void;
  /**
   * A datagram that is not one of ours (or not sealed with the cluster key) arrived: called at
   * most once per source per 10 s, the error saying how many were held back since.
   */
  badDatagram(from: Address, error: Error): void;
  /**
   * The membership had its round (once per interval): the node's housekeeping runs in the same
   * wake, so a quiet node wakes once per interval in all. `dueMs` is when the wake was due.
   * Returns how many of the next rounds have nothing for the node to do (before
   * {@link quietUntilMs}) if nothing happens to it first (a link, a message, a member's change:
   * see {@link RingMode.stir}). Those rounds are short, the membership's alone, and counted for
   * the node ({@link RingMode.takeShortRounds}).
   */
  round(dueMs: number): number;
  /**
   * Before this time the node's rounds have nothing to do (asked after a round that returned
   * quiet rounds; its sessions' next look).
   */
  quietUntilMs(): number;
}

/** The node's identity and tuning, as ring membership needs them. */
export interface RingOptions {
  readonly guid: string;
  readonly intervalMs: number;
  /** Most links open at once (the pool's bound). */
  readonly maxLinks: number;
  readonly seeds: readonly Address[];
  /** A dial that has not become a link after this long has failed. */
  readonly dialTimeoutMs: number;
  /** How long a dead member's tombstone is kept. */
  readonly tombstoneMs: number;
  /** With a cluster key, every ring datagram is sealed and only sealed ones are read. */
  readonly auth: ClusterAuth;
}

/**
 * One node's ring membership.
 *
 * @example
 * ```ts
 * import { RingMode } from "./_ring.ts";
 * // The node makes one (see node.ts) and starts it once it listens:
 * export const startRing = (ring: RingMode) => ring.start({ host: "127.0.0.1", port: 7946 }, "127.0.0.1:7946");
 * ```
 */
export class RingMode {
  // The fields a repeated beat and a short round read come first, together: V8 lays an
  // object's fields out in the order they are declared, so those paths read two or three cache
  // lines of the ring instead of one in each of eight (at 10,000 nodes each is a miss).
  #closed = false;
  /** The last two plain byte arrays read, and what they decoded to (see #decoded). */
  #recentBytes: Uint8Array | undefined;
  #olderBytes: Uint8Array | undefined;
  /**
   * For each of the two arrays: the watch slot and epoch under which a repeat of it may be taken
   * by `hearRepeat` (slot -1: it may not; see `Membership.beatSlot`).
   */
  #recentSlot = -1;
  #recentEpoch = -1;
  #olderSlot = -1;
  #olderEpoch = -1;
  /**
   * Where the membership's `beats` lie (its slab, shared by many nodes, and the place in it) and
   * the clock, for a repeat that touches nothing else.
   */
  #beatsSlab: Float64Array | undefined;
  #beatsAt = 0;
  #clock: Clock | undefined;
  #timer: Timer | undefined;
  #timerAtMs = Infinity;
  /** The last timer that fired: a clock with `reschedule` sets it again for the next wake. */
  #spent: Timer | undefined;
  /**
   * The one timer's work (one function for every wake: a quiet node allocates none), bound
   * once: a bound function is one object to reach the ring through, an arrow two (itself and
   * its context). Beside the fields a short round reads, as are the next ones.
   */
  readonly #wake: () => void = this.#wakeUp.bind(this);
  /** `intervalMs`, read by every round (the options object is then not touched). */
  readonly #intervalMs: number;
  /** The first two monitor targets and how many there are (see #monitorTargets). */
  #target0: Address | undefined;
  #target1: Address | undefined;
  #targetCount = 0;
  #membership: Membership | undefined;
  /**
   * How many of the next rounds may be short, and before what time: the node's round and the
   * ring's tick would find nothing to do in them. Worked out by the last full round; anything
   * that happens to the node since sets the count to 0 (`stir`).
   */
  #quietRounds = 0;
  #quietUntilMs = -Infinity;
  /** Before this time the link pool has no link to close (see `LinkPool.nextLookMs`). */
  #poolLookMs = -Infinity;
  /** This node's beat when it carries no news: the same bytes every round. */
  #plainBeat: Uint8Array | undefined;
  /** The last directory put sent, and its bytes. */
  #lastPut: DirectoryMessage | undefined;
  #lastPutBytes: Uint8Array | undefined;
  /**
   * The membership's monitors, parsed, and the epoch they are of (see `beatRound`): a short
   * round sends them the plain beat itself.
   */
  #monitorTargets: Address[] = [];
  #monitorEpoch = -1;
  #socket: DatagramSocket | undefined;
  /** This run's seal of ring datagrams under the cluster key; none without one. */
  #seal: DatagramSeal | undefined;
  /** Short rounds since the node last took the count (see takeShortRounds). */
  #shortRounds = 0;
  #ticks = 0;
  readonly #o: RingOptions;
  readonly #host: RingHost;
  #directory: Directory | undefined;
  readonly #pool: LinkPool;
  /**
   * The first round's time: a random moment of the first interval, so nodes started together
   * do not all wake at the same instants.
   */
  #firstRoundMs = 0;
  /** Messages waiting for a link to their node, and when the dial went out. */
  readonly #waitingLink = new Map<string, { messages: MapMessage[]; dialledMs: number }>();
  /** Whether `#waitingLink` may hold anything (set when a dial starts, cleared by a tick). */
  #dialsWaiting = false;
  /** Messages waiting for their worker's lookup. */
  readonly #waitingLookup = new Map<string, MapMessage[]>();
  /** Nodes heard by heartbeat that we asked to join, and when (once per interval each). */
  readonly #joinAsked = new Map<string, number>();
  /** Workers attached before the directory started (the node attaches before it listens). */
  readonly #early = new Set<string>();
  /** Unreadable datagrams are reported at most once per source per window. */
  readonly #reports = new ReportLimit(REPORT_WINDOW_MS);
  /** The last two addresses sent to, with their parsed forms (see #addressOf). */
  #recentTo: string | undefined;
  #recentAddress: Address | undefined;
  #olderTo: string | undefined;
  #olderAddress: Address | undefined;
  /** What the two arrays read last decoded to (see #recentBytes). */
  #recentMessage: MembershipMessage | undefined;
  #olderMessage: MembershipMessage | undefined;
  /** Whether a membership datagram is being read (its member-ups then wait for its end). */
  #receiving = false;
  /** Whether members came up while reading it: the directory's owners are worked out after. */
  #ownersDue = false;
  /** Whether the membership reported any change while a datagram was read. */
  #changedWhileReceiving = false;
  /** The seeds' `host:port`, this node's own left out. */
  #seedAddresses: string[] = [];
  #seedsJoined = false;
  /** How many members were live when this node last joined a seed. */
  #liveAtSeedJoin = 0;
  readonly #textEncoder = new TextEncoder();
  readonly #textDecoder = new TextDecoder();

  /**
   * This node's membership version: its start time, so a restarted node's claims win over what
   * the cluster held about its earlier run. Its heartbeats carry it.
   */
  readonly version: number;

  constructor(host: RingHost, options: RingOptions) {
    this.#host = host;
    this.#o = options;
    this.#intervalMs = options.intervalMs;
    this.version = host.clock.wallNow();
    this.#pool = new LinkPool({
      maxLinks: options.maxLinks,
      idleMs: Math.max(30_000, 30 * options.intervalMs),
    });
  }

  /** Starts: binds the ring socket on `listen`, joins the seeds. `address` is ours, advertised. */
  start(listen: Address, address: string): void {
    if (this.#closed) return; // closed before it started (a "started" listener closed the node)
    const host = this.#host;
    const version = this.version;
    this.#seal = this.#o.auth.datagramSeal(host.random);
    const clock = host.clock;
    this.#membership = new Membership(
      new MembershipPort(
        clock,
        host.random,
        (to, message) => this.#sendMembership(to, message),
        (event) => this.#changed(event),
      ),
      {
        guid: this.#o.guid,
        address,
        version,
        intervalMs: this.#o.intervalMs,
        tombstoneMs: this.#o.tombstoneMs,
      },
    );
    const membership = this.#membership;
    this.#beatsSlab = membership.beatsSlab;
    this.#beatsAt = membership.beatsAt;
    this.#clock = clock;
    this.#directory = new Directory({
      now: () => host.clock.now(),
      owners: (worker, count) => membership.successorsOf(worker, count).map((m) => m.guid),
      send: (node, message) => this.#sendDirectory(node, message),
      resolved: (worker, node, why) => this.#resolved(worker, node, why),
    }, {
      node: this.#o.guid,
      version,
      // On the membership's time scale (the defaults are for 1 s intervals).
      settleMs: 2 * this.#o.intervalMs,
      lookupTimeoutMs: this.#o.intervalMs / 2,
      retryMs: this.#o.intervalMs / 5,
    });
    // The ring is its socket's handlers: an arriving datagram reaches it with no closure between.
    this.#socket = host.net.bindDatagram({ host: listen.host, port: listen.port }, this);
    this.#firstRoundMs = host.clock.now() + host.random.next() * this.#o.intervalMs;
    for (const worker of this.#early) this.#directory.attach(worker);
    this.#early.clear();
    this.#seedAddresses = this.#o.seeds.map(formatAddress)
      .filter((text) => text !== address);
    this.#rearm();
  }

  /**
   * Joins a seed after this node's round: at the first round if it has heard no one yet (then
   * every seed: they are its only way in), else one seed at the third round, once the
   * heartbeats of its own subnet are in, and another at the eighth if that one taught it
   * nothing (it may be down); then again every {@link BEAT_TICKS_ALONE} rounds while it knows
   * no one. Joining later
   * when a subnet is there matters at scale: each join swaps whole tables, and a seed that
   * already knows its subnet answers every joiner with all of it at once instead of a little
   * at a time.
   */
  #joinSeeds(membership: Membership): void {
    const seeds = this.#seedAddresses;
    if (seeds.length === 0) return;
    const rounds = membership.rounds;
    const alone = membership.liveCount <= 1;
    const due = this.#seedsJoined
      ? (alone && rounds % BEAT_TICKS_ALONE === 0) ||
        // The first seed taught nothing: it may be down, try another.
        (rounds === SEED_RETRY_ROUND && membership.liveCount <= this.#liveAtSeedJoin)
      : alone || rounds >= SEED_JOIN_ROUND;
    if (!due) return;
    this.#liveAtSeedJoin = membership.liveCount;
    // One seed, chosen at random, then another each time it is due: a cluster of thousands
    // joining every seed would have every seed send its whole table to every node.
    const first = !this.#seedsJoined;
    this.#seedsJoined = true;
    const seed = seeds[this.#host.random.int(0, seeds.length - 1)];
    membership.join(seed);
    if (first && alone) {
      for (const other of seeds) if (other !== seed) membership.join(other);
    }
  }

  /** Stops all work and closes the socket; waiting messages are reported. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer?.cancel();
    this.#membership?.close();
    this.#socket?.close();
    for (const [node, waiting] of this.#waitingLink) {
      for (const message of waiting.messages) {
        this.#host.undeliverable(message, "node-closed", `closed while waiting for node ${node}`);
      }
    }
    this.#waitingLink.clear();
    for (const messages of this.#waitingLookup.values()) {
      for (const message of messages) {
        this.#host.undeliverable(message, "node-closed", "closed while looking up the worker");
      }
    }
    this.#waitingLookup.clear();
  }

  /**
   * Whether the node should broadcast a heartbeat on its tick number `ticks` (one went soon
   * after start): on tick 1, then only while it knows no other member. A broadcast reaches
   * every node of the subnet, so steady heartbeats would cost each node N deliveries per beat;
   * partitions heal through the membership's syncs with members held dead instead.
   */
  shouldBeat(ticks: number): boolean {
    if (ticks <= BEAT_TICK_JOINING) return ticks === BEAT_TICK_JOINING;
    return ticks % BEAT_TICKS_ALONE === 0 && (this.#membership?.liveCount ?? 0) <= 1;
  }

  /**
   * A discovery heartbeat from `node` at `address` was heard, carrying its membership version
   * (0 if it carried none).
   */
  heard(node: string, address: string, version: number): void {
    const membership = this.#membership;
    if (membership === undefined || node === this.#o.guid) return;
    const known = membership.get(node);
    if (known !== undefined && known.status === "alive" && known.version >= version) return;
    this.stir();
    // Its own claim about itself (not flooded: the subnet heard the same broadcast), unless we
    // hold a newer one.
    membership.heard({ guid: node, address, version, status: "alive" });
    // Alone (just started), or it was held dead (it restarted, or a partition healed): swap
    // tables with it, once per interval at most.
    if (membership.liveCount <= 2 || known?.status === "dead") {
      const now = this.#host.clock.now();
      const asked = this.#joinAsked.get(node);
      if (asked === undefined || now - asked >= this.#o.intervalMs) {
        this.#joinAsked.set(node, now);
        if (this.#joinAsked.size > MAX_JOIN_ASKED) this.#joinAsked.clear();
        membership.join(address);
      }
    }
    this.#rearm();
  }

  /** Whether `guid` is a live member (a node, not a worker). */
  isMember(guid: string): boolean {
    const member = this.#membership?.get(guid);
    return member !== undefined && member.status !== "dead";
  }

  /** The live members other than this node. */
  liveMembers(): string[] {
    const result: string[] = [];
    for (const member of this.#membership?.live() ?? []) {
      if (member.guid !== this.#o.guid) result.push(member.guid);
    }
    return result;
  }

  /** Where a worker is, as far as known now (no lookup). */
  located(worker: string): string | undefined {
    return this.#directory?.cached(worker);
  }

  /** A worker attached here: registered with its owners. */
  attached(worker: string): void {
    this.stir();
    if (this.#directory === undefined) this.#early.add(worker);
    else this.#directory.attach(worker);
    this.#rearm();
  }

  /** A worker left this node. */
  detached(worker: string): void {
    this.stir();
    this.#early.delete(worker);
    this.#directory?.detach(worker);
  }

  /**
   * Sends a message that has no route yet: to a node (`node` set, the destination itself or
   * its worker's node) over a link opened for it, or to a worker whose node is looked up first.
   * Returns false (reported) when it cannot wait.
   */
  send(message: MapMessage, node: string | undefined): boolean {
    this.stir();
    const host = this.#host;
    if (node === undefined) {
      const directory = this.#directory;
      if (directory === undefined) {
        host.undeliverable(message, "unknown-destination", "ring membership not started");
        return false;
      }
      const worker = message.destination;
      const waiting = this.#waitingLookup.get(worker);
      if (waiting !== undefined) {
        if (waiting.length >= MAX_WAITING) {
          host.undeliverable(
            message,
            "link-buffer-full",
            `${MAX_WAITING} messages already wait for the lookup of "${worker}"`,
          );
          return false;
        }
        waiting.push(message);
        return true;
      }
      // Waiting before asking: an answer may come at once (this node owns the entry).
      this.#waitingLookup.set(worker, [message]);
      const found = directory.locate(worker);
      if (found !== undefined) this.#resolved(worker, found, "found");
      this.#rearm();
      return true;
    }
    if (node === this.#o.guid) {
      // Located here, yet not hosted here (it just left): no use dialling ourselves.
      this.#directory?.invalidate(message.destination, node);
      host.undeliverable(message, "not-here", `no worker "${message.destination}" on this node`);
      return false;
    }
    if (host.isLinked(node)) {
      host.route(message, node);
      return true;
    }
    const member = this.#membership?.get(node);
    if (member === undefined || member.status === "dead") {
      host.undeliverable(message, "no-link", `node ${node} is not a live member`);
      return false;
    }
    let waiting = this.#waitingLink.get(node);
    if (waiting === undefined) {
      waiting = { messages: [], dialledMs: host.clock.now() };
      this.#waitingLink.set(node, waiting);
      this.#dialsWaiting = true;
      let address: Address;
      try {
        address = parseAddress(member.address);
      } catch {
        this.#waitingLink.delete(node);
        host.undeliverable(message, "no-link", `node ${node} has no address to dial`);
        return false;
      }
      host.dial(node, address);
    }
    if (waiting.messages.length >= MAX_WAITING) {
      host.undeliverable(
        message,
        "link-buffer-full",
        `${MAX_WAITING} messages already wait for a link to node ${node}`,
      );
      return false;
    }
    waiting.messages.push(message);
    return true;
  }

  /** Routes a message again through the node (its link to `node` went down before writing it). */
  route(message: MapMessage, node: string): void {
    this.stir();
    if (this.#host.isLinked(node)) this.#host.route(message, node);
    else this.send(message, node);
  }

  /** The node's links carried something to or from `node`. */
  used(node: string): void {
    this.#touchPool(node);
  }

  /** A link to `node` is up: what waited for it goes now. */
  linkUp(node: string): void {
    this.stir();
    this.#touchPool(node);
    const waiting = this.#waitingLink.get(node);
    if (waiting === undefined) return;
    this.#waitingLink.delete(node);
    for (const message of waiting.messages) this.#host.route(message, node);
  }

  /**
   * The link to `node` is down. One that ended without a goodbye (`eof`, `reset`) may mean its
   * process died: the membership probes it now rather than at its monitors' next look.
   */
  linkDown(node: string, reason?: LinkDownReason): void {
    this.stir();
    this.#closedInPool(node);
    if (reason === "eof" || reason === "reset") {
      this.#membership?.probe(node);
      this.#rearm();
    }
  }

  /**
   * Housekeeping on the node's tick: idle links closed, dials that never came up reported, and
   * every 30th tick the hosted workers registered again with their owners.
   */
  tick(now: number): void {
    const host = this.#host;
    if (++this.#ticks % REFRESH_TICKS === 0) this.#directory?.refresh();
    // The pool and the waiting dials are looked at only when they may have work: on a quiet
    // node of a large cluster each look is a cache miss, every round.
    if (now >= this.#poolLookMs) {
      for (const node of this.#pool.toClose(now, this.#isBusy)) {
        host.closeLink(node, "idle", "no traffic for a while");
      }
      this.#poolLookMs = this.#pool.nextLookMs;
    }
    if (!this.#dialsWaiting) return;
    if (this.#waitingLink.size === 0) {
      this.#dialsWaiting = false;
      return;
    }
    for (const [node, waiting] of this.#waitingLink) {
      if (host.isLinked(node)) {
        this.linkUp(node);
        continue;
      }
      if (now - waiting.dialledMs < this.#o.dialTimeoutMs) continue;
      this.#waitingLink.delete(node);
      for (const message of waiting.messages) {
        host.undeliverable(message, "no-link", `no link to node ${node} came up`);
      }
    }
  }

  /** Traffic on the link to `node`; notes when the pool next needs a look (see `tick`). */
  #touchPool(node: string): void {
    this.#pool.touch(node, this.#host.clock.now());
    this.#poolLookMs = this.#pool.nextLookMs;
  }

  /** The link to `node` closed; notes when the pool next needs a look (see `tick`). */
  #closedInPool(node: string): void {
    this.#pool.closed(node);
    this.#poolLookMs = this.#pool.nextLookMs;
  }

  /** What the membership holds, for `state()`. */
  state(): MembershipState {
    const m = this.#membership;
    const suspect = m?.suspectCount ?? 0;
    const alive = (m?.liveCount ?? 0) - suspect;
    const dead = (m?.knownCount ?? 0) - (m?.liveCount ?? 0);
    return {
      mode: "ring",
      alive,
      suspect,
      dead,
      directoryEntries: this.#directory?.entryCount ?? 0,
      cachedLocations: this.#directory?.cacheCount ?? 0,
    };
  }

  /** The membership's and directory's metric families. */
  metrics(): MetricFamily[] {
    const state = this.state();
    const stats = this.#membership?.stats;
    const directory = this.#directory?.stats;
    return [
      {
        name: "automp_members",
        help: "Members of the ring membership by status, this node included.",
        type: "gauge",
        samples: [
          { labels: { status: "alive" }, value: state.alive ?? 0 },
          { labels: { status: "suspect" }, value: state.suspect ?? 0 },
          { labels: { status: "dead" }, value: state.dead ?? 0 },
        ],
      },
      counter(
        "automp_membership_suspicions",
        "Members this node suspected after unanswered probes.",
        stats?.suspicions ?? 0,
      ),
      counter(
        "automp_membership_refutations",
        "Times this node refuted a claim that it was suspect or dead.",
        stats?.refutations ?? 0,
      ),
      counter(
        "automp_membership_tombstones_expired",
        "Tombstones of dead members this node dropped after tombstoneMs.",
        stats?.tombstonesExpired ?? 0,
      ),
      gauge(
        "automp_directory_entries",
        "Worker locations this node holds as one of their directory owners.",
        state.directoryEntries ?? 0,
      ),
      counter(
        "automp_directory_lookups",
        "Worker lookups this node started.",
        directory?.lookups ?? 0,
      ),
      counter(
        "automp_directory_cache_hits",
        "Worker locations found in this node's cache.",
        directory?.cacheHits ?? 0,
      ),
      counter(
        "automp_directory_puts_sent",
        "Registrations of hosted workers this node sent to their owners (refreshes included).",
        directory?.putsSent ?? 0,
      ),
    ];
  }

  /** Its socket's handler: the socket failed. */
  onError(error: Error): void {
    this.#host.log.log("error", "ring.socket-error", { error: error.message });
  }

  /**
   * Its socket's handler: a ring datagram arrived, at `atMs` on the node's clock where the
   * platform says (see `DatagramHandlers.onMessage`).
   */
  onMessage(sealed: Uint8Array, from: Address, atMs?: number): void {
    if (this.#closed) return;
    // The same plain beat again from a watched subject (the bytes of the last two arrays read;
    // never with a cluster key, whose opened payloads are new arrays each time): noted in the
    // membership's `beats` alone, touching none of its objects. This is most datagrams of a
    // quiet simulated cluster; a real socket's datagrams are new arrays, and never repeats.
    // (Two branches on purpose: one call with the slot and epoch chosen by conditionals ran
    // 0.85-0.93x at 1,000 nodes in `bench/ab_sim.ts`.)
    if (sealed === this.#recentBytes) {
      if (
        this.#recentSlot >= 0 && shortBeats.on &&
        hearRepeat(
          this.#beatsSlab!,
          this.#beatsAt,
          this.#recentSlot,
          this.#recentEpoch,
          atMs ?? this.#clock!.now(),
        )
      ) {
        shortBeats.taken++;
        return;
      }
    } else if (sealed === this.#olderBytes) {
      if (
        this.#olderSlot >= 0 && shortBeats.on &&
        hearRepeat(
          this.#beatsSlab!,
          this.#beatsAt,
          this.#olderSlot,
          this.#olderEpoch,
          atMs ?? this.#clock!.now(),
        )
      ) {
        shortBeats.taken++;
        return;
      }
    }
    let data = sealed;
    if (this.#seal !== undefined) {
      let opened: Uint8Array | "replayed";
      try {
        opened = this.#seal.open(sealed);
      } catch (error) {
        this.#host.stats.authFailures++;
        this.#reportBad(from, error);
        return;
      }
      if (opened === "replayed") {
        this.#host.stats.replaysDropped++;
        return;
      }
      data = opened;
    }
    try {
      if (data[0] === MEMBERSHIP_MARKER) {
        // Opened payloads are new arrays each time: only plain ones are worth remembering.
        let message = data === sealed ? this.#decoded(data) : undefined;
        if (message === undefined) {
          message = decodeMembership(data);
          // Only arrays a sender sends again are worth remembering: its plain beat, its table
          // pages and its digest (see #sendMembership); every other message is new bytes.
          if (data === sealed && (message.kind === "sync" || isPlainBeat(message))) {
            decodedMemberships.set(data, message);
            this.#keep(data, message);
          }
        }
        const membership = this.#membership;
        if (membership === undefined) return;
        const deadlines = membership.deadlinesSet;
        this.#receiving = true;
        this.#changedWhileReceiving = false;
        try {
          membership.receive(message, from);
          // Only a beat kept in one of the two places (never a sealed or a real socket's
          // datagram) can come again as the same array: only then is its slot worth asking.
          if (data === this.#recentBytes) {
            this.#recentSlot = membership.beatSlot(message);
            this.#recentEpoch = membership.beatEpoch;
          } else if (data === this.#olderBytes) {
            this.#olderSlot = membership.beatSlot(message);
            this.#olderEpoch = membership.beatEpoch;
          }
        } finally {
          this.#receiving = false;
          if (this.#ownersDue) {
            this.#ownersDue = false;
            this.#directory?.membershipChanged();
          }
        }
        // The usual datagram (a beat) set no deadline and changed no member: the timer stands.
        if (
          this.#timer !== undefined && membership.deadlinesSet === deadlines &&
          !this.#changedWhileReceiving
        ) return;
      } else if (data[0] === DIRECTORY_MARKER) {
        let message = data === sealed ? decodedPuts.get(data) : undefined;
        if (message === undefined) {
          message = JSON.parse(this.#textDecoder.decode(data.subarray(1))) as DirectoryMessage;
          if (data === sealed && message?.kind === "put") decodedPuts.set(data, message);
        }
        const directory = this.#directory;
        directory?.receive(message);
        // Puts and their answers change no round's work; a lookup it started would (quiet
        // rounds are worked out with none waiting).
        if (directory !== undefined && directory.nextWakeMs() !== Infinity) this.stir();
      } else {
        throw new Error("Cannot read ring datagram: not a membership or directory message");
      }
    } catch (error) {
      this.#host.stats.datagramErrors++;
      this.#reportBad(from, error);
      return;
    }
    this.#rearm();
  }

  /**
   * What `data` was decoded to, if the same array was read before. A node's subjects send it
   * the same plain-beat bytes every round: the last two arrays read are kept on the ring itself,
   * the rest in one map shared by every node of the process.
   */
  #decoded(data: Uint8Array): MembershipMessage | undefined {
    if (data === this.#recentBytes) return this.#recentMessage;
    const message = data === this.#olderBytes ? this.#olderMessage : decodedMemberships.get(data);
    if (message !== undefined) this.#keep(data, message);
    return message;
  }

  /**
   * Makes `data` the most recent array read (see #decoded), if it is a beat: the two places are
   * for the subjects' beats, and an anti-entropy digest or a table page kept there would push
   * one out (its next beat would then miss the short path).
   */
  #keep(data: Uint8Array, message: MembershipMessage): void {
    if (data === this.#recentBytes || message.kind !== "beat") return;
    this.#olderBytes = this.#recentBytes;
    this.#olderMessage = this.#recentMessage;
    this.#olderSlot = this.#recentSlot;
    this.#olderEpoch = this.#recentEpoch;
    this.#recentBytes = data;
    this.#recentMessage = message;
    this.#recentSlot = -1;
    this.#recentEpoch = -1;
  }

  /**
   * A datagram that could not be read (counted by the caller) is reported at most once per
   * source per window: a sender spraying junk or forgeries must not flood the node's events.
   */
  #reportBad(from: Address, error: unknown): void {
    const source = formatAddress(from);
    const text = this.#reports.text(source, this.#host.clock.now(), error);
    if (text === undefined) return;
    this.#host.log.log("warn", "ring.bad-datagram", { from: source, error: text });
    this.#host.badDatagram(from, new Error(text));
  }

  #sendMembership(to: string, message: MembershipMessage): void {
    const socket = this.#socket;
    const address = socket === undefined ? undefined : this.#addressOf(to);
    if (address === undefined) return;
    let bytes: Uint8Array;
    if (isPlainBeat(message)) {
      bytes = this.#plainBeat ??= encodeMembership(message);
    } else if (message.kind === "sync") {
      // Table pages and digests are reused by the membership while the table stands: so are
      // their bytes (a digest's receivers then decode it once between them; see onMessage).
      let encoded = encodedSyncs.get(message);
      if (encoded === undefined) encodedSyncs.set(message, encoded = encodeMembership(message));
      bytes = encoded;
    } else {
      bytes = encodeMembership(message);
    }
    socket!.send(this.#seal === undefined ? bytes : this.#seal.seal(bytes), address);
  }

  #sendDirectory(node: string, message: DirectoryMessage): void {
    const member = this.#membership?.get(node);
    if (member === undefined) return;
    const socket = this.#socket;
    const address = socket === undefined ? undefined : this.#addressOf(member.address);
    if (address === undefined) return;
    let bytes: Uint8Array;
    if (message === this.#lastPut) bytes = this.#lastPutBytes!;
    else {
      const json = this.#textEncoder.encode(JSON.stringify(message));
      bytes = new Uint8Array(json.length + 1);
      bytes[0] = DIRECTORY_MARKER;
      bytes.set(json, 1);
      // A hosted worker's put is one object while it stays (sent again at each refresh).
      if (message.kind === "put") {
        this.#lastPut = message;
        this.#lastPutBytes = bytes;
      }
    }
    socket!.send(this.#seal === undefined ? bytes : this.#seal.seal(bytes), address);
  }

  /**
   * A member's `host:port` as an address, parsed once while it is among the few kept (its
   * monitors and the members it probes); undefined for one that does not parse (it gets
   * nothing).
   */
  #addressOf(to: string): Address | undefined {
    // The last two asked for, first: a round's beats go to the same two monitors, by the same
    // strings, so these hits cost no lookup.
    if (to === this.#recentTo) return this.#recentAddress;
    if (to === this.#olderTo) return this.#olderAddress;
    let address = parsedAddresses.get(to);
    if (address === undefined) {
      try {
        address = Object.freeze(parseAddress(to));
      } catch {
        return undefined;
      }
      if (parsedAddresses.size >= MAX_ADDRESSES) parsedAddresses.clear();
      parsedAddresses.set(to, address);
    }
    this.#olderTo = this.#recentTo;
    this.#olderAddress = this.#recentAddress;
    this.#recentTo = to;
    this.#recentAddress = address;
    return address;
  }

  #changed(event: MemberEvent): void {
    this.#changedWhileReceiving = true;
    this.stir();
    const { guid, address } = event.member;
    if (guid === this.#o.guid) return;
    if (event.type === "member-up") {
      // Many arrive at once from a page of a table: the directory works out its owners once,
      // when the datagram has been read (see onMessage), not once for each.
      if (this.#receiving) this.#ownersDue = true;
      else this.#directory?.membershipChanged();
      this.#host.memberUp(guid, address);
    } else if (event.type === "member-down") {
      this.#directory?.membershipChanged([guid]);
      this.#closedInPool(guid);
      const waiting = this.#waitingLink.get(guid);
      this.#waitingLink.delete(guid);
      for (const message of waiting?.messages ?? []) {
        this.#host.undeliverable(message, "no-link", `node ${guid} is down`);
      }
      this.#host.closeLink(guid, "member-down", "the membership holds it dead");
      this.#host.memberDown(guid, address);
    }
  }

  #resolved(worker: string, node: string | undefined, why: string): void {
    const waiting = this.#waitingLookup.get(worker);
    if (waiting === undefined) return;
    this.#waitingLookup.delete(worker);
    for (const message of waiting) {
      if (node !== undefined) {
        this.#host.route(message);
      } else if (why === "unknown") {
        this.#host.undeliverable(
          message,
          "unknown-destination",
          `no worker or node "${worker}" is known`,
        );
      } else {
        this.#host.undeliverable(
          message,
          "lookup-failed",
          `the directory did not answer where "${worker}" is`,
        );
      }
    }
  }

  /** Sets the one timer for the next membership or directory work, if sooner than set. */
  #rearm(now?: number): void {
    const membership = this.#membership;
    if (this.#closed || membership === undefined) return;
    // Quiet rounds were worked out with no lookup waiting, and a lookup stirs the ring.
    const lookups = this.#quietRounds > 0 ? Infinity : this.#directory?.nextWakeMs() ?? Infinity;
    let wake = Math.min(membership.nextWakeMs(), lookups);
    if (membership.rounds === 0) wake = Math.max(wake, this.#firstRoundMs);
    if (this.#timer !== undefined && wake >= this.#timerAtMs) return;
    this.#timer?.cancel();
    now ??= this.#host.clock.now();
    const dueMs = Math.max(wake, now);
    this.#timerAtMs = dueMs;
    this.#timer = this.#schedule(Math.max(1, wake - now));
  }

  /** The wake timer, `delayMs` from now: the spent one set again where the clock can. */
  #schedule(delayMs: number): Timer {
    const clock = this.#clock!;
    const spent = this.#spent;
    return spent !== undefined && clock.reschedule !== undefined
      ? clock.reschedule(spent, delayMs, this.#wake)
      : clock.schedule(delayMs, this.#wake);
  }

  /** Whether the link to `peer` carries something now (bound once: ticks allocate none). */
  readonly #isBusy = (peer: string): boolean => this.#host.isBusy(peer);

  /** The one timer's work (see #wake). */
  #wakeUp(): void {
    const dueMs = this.#timerAtMs;
    this.#spent = this.#timer;
    this.#timer = undefined;
    this.#timerAtMs = Infinity;
    const membership = this.#membership;
    // The node closes its ring when it stops running: no need to ask it on every wake.
    if (this.#closed || membership === undefined) return;
    // One reading of the clock for the round and the timer after it.
    const now = this.#clock!.now();
    // A short round: nothing happened to the node since a full round found that the next ones
    // have nothing to do (no link, lookup, waiting dial or seed to join; no session, link pool
    // or ring refresh due), and this one is on time. The node counts it at its next full round.
    const quiet = this.#quietRounds > 0 && shortRounds.on && now <= dueMs &&
      now < this.#quietUntilMs && now < this.#poolLookMs;
    const plain = this.#plainBeat;
    if (quiet && plain !== undefined) {
      // Usually the membership's round is only its plain beat to each monitor: sent from
      // here, touching nothing of the membership but its beats array.
      const targets = this.#monitorTargets;
      const count = this.#targetCount;
      const taken = beatRound(this.#beatsSlab!, this.#beatsAt, now, count, this.#monitorEpoch);
      if (taken !== ROUND_NOT_TAKEN) {
        const socket = this.#socket!;
        const seal = this.#seal;
        if (count > 0) socket.send(seal === undefined ? plain : seal.seal(plain), this.#target0!);
        if (count > 1) socket.send(seal === undefined ? plain : seal.seal(plain), this.#target1!);
        for (let i = 2; i < count; i++) {
          socket.send(seal === undefined ? plain : seal.seal(plain), targets[i]);
        }
        // One round in a few is a sync: its digest goes through the membership, after the
        // beats, as in its tick.
        if (taken === ROUND_TAKEN_SYNC) membership.syncRound();
        this.#shortRound();
        this.#rearmAfterRound(now);
        return;
      }
    }
    const rounds = membership.rounds;
    membership.tick(now);
    if (membership.rounds !== rounds) {
      if (membership.monitorEpoch !== this.#monitorEpoch) this.#noteMonitors(membership);
      if (quiet && this.#quietRounds > 0) {
        this.#shortRound();
        this.#rearm(now);
        return;
      }
      this.#directory?.tick();
      this.#joinSeeds(membership);
      const quietRounds = Math.min(this.#host.round(dueMs), this.#ringQuietRounds(membership));
      this.#quietRounds = quietRounds;
      if (quietRounds > 0) this.#quietUntilMs = this.#host.quietUntilMs();
    } else this.#directory?.tick();
    this.#rearm();
  }

  /** Counts a short round (see #wake). */
  #shortRound(): void {
    this.#quietRounds--;
    this.#shortRounds++;
    this.#ticks++;
    shortRounds.taken++;
  }

  /**
   * The timer after a round that `beatRound` took: what #rearm would set (the next round is
   * the membership's next work, and a quiet node waits for no lookup), without asking.
   */
  #rearmAfterRound(now: number): void {
    const interval = this.#intervalMs;
    this.#timerAtMs = now + interval;
    this.#timer = this.#schedule(interval);
  }

  /** Notes the membership's monitors for short rounds (see #wake). */
  #noteMonitors(membership: Membership): void {
    const targets: Address[] = [];
    for (const address of membership.monitorAddresses()) {
      const target = this.#addressOf(address);
      if (target === undefined) {
        // One that cannot be sent to: beats go through the membership, which notes it.
        this.#monitorEpoch = -1;
        return;
      }
      targets.push(target);
    }
    this.#monitorTargets = targets;
    this.#target0 = targets[0];
    this.#target1 = targets[1];
    this.#targetCount = targets.length;
    this.#monitorEpoch = membership.monitorEpoch;
  }

  /**
   * Takes the count of short rounds since the last take: the node adds them to its own count
   * of rounds (they had nothing for it to do; see RingHost.round).
   */
  takeShortRounds(): number {
    const rounds = this.#shortRounds;
    this.#shortRounds = 0;
    return rounds;
  }

  /** Something happened that the next round must look at: it is a full one. */
  stir(): void {
    this.#quietRounds = 0;
  }

  /**
   * How many of the next rounds the ring's tick and seed joins would have nothing to do in, if
   * nothing happens before them (asked after a full round).
   */
  #ringQuietRounds(membership: Membership): number {
    if (this.#closed || this.#dialsWaiting || membership.liveCount <= 1) return 0;
    if (this.#directory !== undefined && this.#directory.nextWakeMs() !== Infinity) return 0;
    if (
      this.#seedAddresses.length > 0 &&
      (!this.#seedsJoined || membership.rounds <= SEED_RETRY_ROUND)
    ) return 0;
    // The refresh comes on the tick whose count is a multiple of REFRESH_TICKS.
    return REFRESH_TICKS - 1 - (this.#ticks % REFRESH_TICKS);
  }
}
