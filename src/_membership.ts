/**
 * Membership that scales: who is in the cluster, and who has failed, at a constant cost per node.
 *
 * Today every node heartbeats every node and keeps a link to each, so the cost of knowing who is
 * alive grows with N². This part replaces that, for large clusters, with:
 *
 * - **Monitors on a ring.** Members are placed on a hash ring by GUID. Each member is watched by
 *   the `monitors` (K, default 2) members that follow it on the ring, and sends each of them a
 *   `beat` once per interval. So each node sends K datagrams and receives K per interval,
 *   whatever N is: half what ping and ack would cost, since a healthy member needs no answer.
 * - **Probes when a beat is late.** A monitor that heard nothing from its subject for `lateMs`
 *   (1.1 intervals; looked at on its rounds and whenever a datagram arrives) pings it and, at
 *   once, asks `indirectProbes` other members to ping it too (`ping-req`), so one broken path
 *   alone does not raise a suspicion.
 * - **Suspicion and refutation with versions.** When `pingTimeoutMs` (0.4 intervals) passes
 *   with no ack, direct or relayed, the monitor suspects the subject. A member that hears itself
 *   suspected or declared dead raises its version above the claim and announces itself alive: a
 *   higher version always wins, and for equal versions dead beats suspect beats alive. A
 *   suspicion not refuted within `suspicionMs` (0.8 intervals) becomes dead. So a crash is known
 *   everywhere at most about 3 intervals after it, like the mesh's silence bound.
 * - **Dissemination by flooding, not by rounds.** An update a node did not know is forwarded at
 *   once to its two ring neighbours and `fanout` random members, so every member has it after about log(N) network hops
 *   (milliseconds), not log(N) intervals. Recent updates also ride on pings and acks, and a
 *   digest-first anti-entropy (`sync`) with one random member every `syncEveryIntervals` repairs
 *   whatever floods and piggybacks missed. Joining is a `sync` with a seed.
 * - **Direct evidence is not flooded.** A discovery broadcast is heard by the whole subnet, so a
 *   member learned from one (`heard`) is not forwarded; cold start on one subnet costs N²
 *   deliveries once, not N² floods.
 *
 * Pure bookkeeping with no I/O and no clock of its own: the node (or a test) feeds it ticks and
 * messages through {@link MembershipHost} and it answers with messages to send and member events.
 * Every random choice goes through the host, in a fixed order, so a seeded run is reproducible.
 *
 * Dead members are kept as tombstones (so a stale "alive" cannot resurrect them) until a newer
 * version from the member itself replaces them, or for `tombstoneMs` (24 hours) after this node
 * learned the death. The digest leaves tombstones out, and the death of a member never known is
 * not stored, so a dropped tombstone does not come back through anti-entropy. A stale "alive"
 * arriving after that (from a node cut off for a day) makes the member live again until its
 * monitors find it gone and it dies once more.
 *
 * @module
 */

import { hash32, MemberTable } from "./_member_table.ts";
import { type Address, formatAddress } from "./platform.ts";

export { hash32 };

/** A sender's address as `host:port` (brackets for IPv6), from the text or the address. */
function addressText(from: string | Address): string {
  return typeof from === "string" ? from : formatAddress(from);
}

/** What a member is believed to be. */
export type MemberStatus = "alive" | "suspect" | "dead";

/** A claim about one member: the unit that is compared, stored and disseminated. */
export interface MemberUpdate {
  readonly guid: string;
  /** Where its datagrams and links go, `host:port`. */
  readonly address: string;
  /**
   * Orders claims about this member. A member starts at a version of its own choosing (the node
   * uses its start time) and raises it only to refute a claim about itself.
   */
  readonly version: number;
  readonly status: MemberStatus;
}

/** A datagram of the membership protocol. Every one names its sender and carries updates. */
export type MembershipMessage =
  | {
    /** "Are you there?" — from a monitor, or on behalf of one (`onBehalfOf`). */
    readonly kind: "ping";
    readonly from: string;
    readonly seq: number;
    /** The member that asked for this probe with a `ping-req`, and its sequence number. */
    readonly onBehalfOf?: { readonly guid: string; readonly address: string; readonly seq: number };
    readonly updates: readonly MemberUpdate[];
  }
  | {
    /** The answer to a ping, sent to whoever asked (or relayed to the original asker). */
    readonly kind: "ack";
    readonly from: string;
    /** The member that was probed (differs from `from` when relayed). */
    readonly subject: string;
    readonly seq: number;
    readonly updates: readonly MemberUpdate[];
  }
  | {
    /** "Please ping `target` for me and send me its ack." */
    readonly kind: "ping-req";
    readonly from: string;
    readonly seq: number;
    readonly target: string;
    readonly targetAddress: string;
    readonly updates: readonly MemberUpdate[];
  }
  | {
    /** "I am alive", to each of the sender's monitors once per interval; no answer. */
    readonly kind: "beat";
    readonly from: string;
    readonly updates: readonly MemberUpdate[];
  }
  | {
    /** New updates being flooded. */
    readonly kind: "gossip";
    readonly from: string;
    readonly updates: readonly MemberUpdate[];
  }
  | {
    /**
     * Anti-entropy and joining. `digest` is the sender's table digest; `updates` is one page of
     * its table when it pushes (`page` of `pages`), or empty for digest-only. `reply` asks the
     * receiver to answer with its own table if the digests differ.
     */
    readonly kind: "sync";
    readonly from: string;
    readonly digest: number;
    readonly reply: boolean;
    readonly page: number;
    readonly pages: number;
    readonly updates: readonly MemberUpdate[];
  };

/** A change in what this node believes about a member. */
export interface MemberEvent {
  readonly type: "member-up" | "member-suspect" | "member-down" | "member-refuted";
  readonly member: MemberUpdate;
  /** Who said so: the GUID of the sender of the message, `self`, or `heard` for discovery. */
  readonly via: string;
}

/** What the membership needs from its node. */
export interface MembershipHost {
  /** Virtual or real time in ms. */
  now(): number;
  /** An integer in [0, bound), from the platform's seeded randomness. */
  randomInt(bound: number): number;
  /** Sends a membership datagram to `address` (`host:port`). */
  send(address: string, message: MembershipMessage): void;
  /** Reports a change; called synchronously, in the order changes happen. */
  changed(event: MemberEvent): void;
}

/** Tuning; every time is in ms. */
export interface MembershipOptions {
  readonly guid: string;
  readonly address: string;
  /** This member's starting version (the node passes its start time). */
  readonly version: number;
  /** The protocol period: pings go out once per interval. */
  readonly intervalMs: number;
  /** K: how many members watch each member (each gets its beats). Default 2. */
  readonly monitors?: number;
  /** How many members are asked to probe a silent subject. Default 2. */
  readonly indirectProbes?: number;
  /** A subject not heard from for this long is probed. Default 1.1 intervals (looked at on rounds and arrivals). */
  readonly lateMs?: number;
  /** A probe with no ack, direct or relayed, after this long: suspect. Default 0.4 intervals. */
  readonly pingTimeoutMs?: number;
  /** A suspicion not refuted for this long: dead. Default 0.8 intervals. */
  readonly suspicionMs?: number;
  /** How many random members a new update is forwarded to. Default 3. */
  readonly fanout?: number;
  /** Most updates carried by one ping, ack or gossip. Default 8. */
  readonly maxPiggyback?: number;
  /**
   * Most claims this member floods (sends on at once to its neighbours and `fanout` random
   * members) per interval. Default 8. Past it, news only rides on later datagrams and
   * anti-entropy: when many members join at once (a cold start), flooding each one's claim
   * would cost every member `fanout` datagrams per joiner.
   */
  readonly floodsPerInterval?: number;
  /** An anti-entropy digest goes to one random member every this many intervals. Default 5. */
  readonly syncEveryIntervals?: number;
  /** Most updates in one sync page (keeps datagrams well under 64 KiB). Default 200. */
  readonly syncPageSize?: number;
  /**
   * How long a dead member's tombstone is kept after this node learned of the death; then it is
   * dropped, so a churning cluster's tables do not grow without end. A member restarted after
   * that is simply new. Default 24 hours.
   */
  readonly tombstoneMs?: number;
}

/** Counters, for metrics and tests. */
export interface MembershipStats {
  beatsSent: number;
  pingsSent: number;
  acksSent: number;
  pingReqsSent: number;
  gossipSent: number;
  syncsSent: number;
  updatesApplied: number;
  suspicions: number;
  refutations: number;
  deaths: number;
  /** Tombstones dropped after `tombstoneMs`. */
  tombstonesExpired: number;
}

interface Claim extends MemberUpdate {
  /** Ring position, cached. */
  readonly ring: number;
  /** The digest term of this claim, cached. */
  readonly term: number;
}

/*
 * The layout of `Membership.beats`: what a repeat of a watched member's plain beat needs, in one
 * small array, so that taking it touches this array and nothing else of the membership (see
 * `hearRepeat`).
 */
/** The earliest heard time among watched members not being probed (see #noteWatchDue). */
const B_HEARD_DUE = 0;
/** The earliest probe time among watched members being probed (see #noteWatchDue). */
const B_PROBED_DUE = 1;
/** `lateMs`. */
const B_LATE = 2;
/**
 * Changes whenever a repeat may no longer be taken as before: the watches changed, a watch
 * started probing, a member was probed out of turn, or the membership closed.
 */
const B_EPOCH = 3;
/** How many members this node watches. */
const B_WATCHES = 4;
/**
 * 1 when the piggyback queue, the tombstones, the suspicions or the probes out of turn may hold
 * entries (set whenever one gets one, cleared by a tick that finds all four empty), else 0: a
 * quiet node's rounds and arrivals then look at none of those maps.
 */
const B_BUSY = 5;
/** When the last round of beats was (-1 before the first). */
const B_LAST_ROUND = 6;
/** How many rounds of beats there were. */
const B_ROUNDS = 7;
/** `intervalMs`. */
const B_INTERVAL = 8;
/** Every this many rounds is an anti-entropy sync (`syncEveryIntervals`). */
const B_SYNC_EVERY = 9;
/**
 * Changes whenever the monitors (who get this node's beats) or their addresses change: what
 * {@link beatRound}'s caller sends to must be the monitors of this epoch.
 */
const B_MONITORS = 10;
/** Beats sent by {@link beatRound}'s callers, not yet counted in `stats.beatsSent`. */
const B_BEATS_SENT = 11;
/** Where the watches' heard times start: watch `slot`'s is at `B_HEARD + slot`. */
const B_HEARD = 12;

/**
 * Takes a repeat of a plain beat (no updates) from the member watched in `slot` of a membership
 * whose {@link Membership.beats} lies in `slab` from `at` (its {@link Membership.beatsSlab} and
 * {@link Membership.beatsAt}: the shared slab, not the view, so that the call reads no object
 * of the membership's own), at `now`, as {@link Membership.receive} would:
 * notes that member heard. It does so only while `epoch` is still the one
 * {@link Membership.beatSlot} was asked at, and only if no other watched member is late (a late
 * one must be probed, which `receive` does); otherwise it changes nothing and returns false, and
 * the caller hands the message to `receive`. A simulated node's subjects send it the same bytes
 * every round, so most datagrams of a quiet cluster end here.
 */
export function hearRepeat(
  slab: Float64Array,
  at: number,
  slot: number,
  epoch: number,
  now: number,
): boolean {
  if (slab[at + B_EPOCH] !== epoch) return false;
  const late = slab[at + B_LATE];
  const heard = at + B_HEARD;
  const end = heard + slab[at + B_WATCHES];
  for (let i = heard; i < end; i++) {
    if (i !== heard + slot && now - slab[i] >= late) return false;
  }
  slab[heard + slot] = now;
  return true;
}

/** {@link beatRound}'s answer: the round is not taken; the caller calls `tick`. */
export const ROUND_NOT_TAKEN = 0;
/** {@link beatRound}'s answer: the round is taken; the caller sends the plain beats. */
export const ROUND_TAKEN = 1;
/**
 * {@link beatRound}'s answer: the round is taken and is a sync round; the caller sends the plain
 * beats, then calls {@link Membership.syncRound}.
 */
export const ROUND_TAKEN_SYNC = 2;

/**
 * Takes a round of a membership whose {@link Membership.beats} lies in `slab` from `at` (as for
 * {@link hearRepeat}) at `now`, if that
 * round would only send a plain beat (no news) to each monitor, and on a sync round a digest to
 * a random member, as {@link Membership.tick} would: it is due, nothing waits (no news,
 * tombstone, suspicion or probe), no watched member is late, and the monitors are still those of
 * `monitorEpoch` (see {@link Membership.monitorEpoch}; `monitors` is how many). Then it counts
 * the round and the beats and returns {@link ROUND_TAKEN} (or {@link ROUND_TAKEN_SYNC} on a sync
 * round), and the caller sends the membership's plain beat to each of the
 * {@link Membership.monitorAddresses} it noted at that epoch (then, on a sync round, calls
 * {@link Membership.syncRound}). Otherwise it changes nothing, returns {@link ROUND_NOT_TAKEN},
 * and the caller calls `tick`. A quiet node's rounds end here, touching nothing else of the
 * membership but, one round in `syncEveryIntervals`, what the digest needs.
 */
export function beatRound(
  slab: Float64Array,
  at: number,
  now: number,
  monitors: number,
  monitorEpoch: number,
): number {
  if (slab[at + B_MONITORS] !== monitorEpoch) return ROUND_NOT_TAKEN;
  if (slab[at + B_BUSY] !== 0 || slab[at + B_PROBED_DUE] !== Infinity) return ROUND_NOT_TAKEN;
  const last = slab[at + B_LAST_ROUND];
  if (last < 0 || now - last < slab[at + B_INTERVAL]) return ROUND_NOT_TAKEN;
  const late = slab[at + B_LATE];
  const heard = at + B_HEARD;
  const end = heard + slab[at + B_WATCHES];
  for (let i = heard; i < end; i++) if (now - slab[i] >= late) return ROUND_NOT_TAKEN;
  const rounds = slab[at + B_ROUNDS] + 1;
  slab[at + B_LAST_ROUND] = now;
  slab[at + B_ROUNDS] = rounds;
  slab[at + B_BEATS_SENT] += monitors;
  return rounds % slab[at + B_SYNC_EVERY] === 0 ? ROUND_TAKEN_SYNC : ROUND_TAKEN;
}

interface Watch {
  readonly guid: string;
  /**
   * Its place among the watches: when the subject was last heard from (any datagram from it,
   * or an ack about it) is `beats[B_HEARD + slot]`.
   */
  slot: number;
  /** Whether probes are out since it was last heard from. */
  probing: boolean;
  /**
   * The last message from it that was looked up by GUID. A member's plain beats are one message
   * object while its bytes stay the same (the ring decodes each sender's bytes once), so the
   * next beat is found by identity, without a lookup.
   */
  lastMessage: MembershipMessage | undefined;
  /** When the probes went out. */
  probeSentMs: number;
}

interface Piggyback {
  readonly update: MemberUpdate;
  left: number;
  beatRounds: number;
}

/**
 * The piggyback queue holds at most this many times `maxPiggyback` updates: the newest. When a
 * cold start brings more news than datagrams can carry, the oldest are left to anti-entropy
 * rather than ride on every beat for minutes after the cluster settled.
 */
const PIGGYBACK_QUEUE = 4;
/** Rounds of beats an update rides on: its monitors hear it twice, in case one beat is lost. */
const PIGGYBACK_BEAT_ROUNDS = 2;

/** What a message without news carries: one array for all (messages are read-only). */
const NO_UPDATES: readonly MemberUpdate[] = Object.freeze([]);

/** A datagram with this many updates or more is applied as one batch of the table. */
const BATCH_UPDATES = 5;

const RANK: Readonly<Record<MemberStatus, number>> = { alive: 0, suspect: 1, dead: 2 };

/** Whether claim `a` supersedes claim `b` about the same member. */
export function supersedes(a: MemberUpdate, b: MemberUpdate): boolean {
  if (a.version !== b.version) return a.version > b.version;
  if (a.status !== b.status) return RANK[a.status] > RANK[b.status];
  // Two claims that differ only in address: a fixed tie-break, so every table ends up the same.
  return a.address > b.address;
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  const result = value ?? fallback;
  if (!(Number.isInteger(result) && result >= 0)) {
    throw new RangeError(`Cannot create membership: ${name} must be a whole number >= 0`);
  }
  return result;
}

function positiveMs(value: number | undefined, fallback: number, name: string): number {
  const result = value ?? fallback;
  if (!(typeof result === "number" && result > 0 && Number.isFinite(result))) {
    throw new RangeError(`Cannot create membership: ${name} must be a positive number of ms`);
  }
  return result;
}

/**
 * One node's view of the cluster's membership, and its part in watching the others.
 *
 * @example
 * ```ts
 * import { Membership, type MembershipMessage } from "./_membership.ts";
 * const sent: [string, MembershipMessage][] = [];
 * let now = 0;
 * const host = {
 *   now: () => now,
 *   randomInt: (bound: number) => 0,
 *   send: (to: string, message: MembershipMessage) => void sent.push([to, message]),
 *   changed: () => {},
 * };
 * const a = new Membership(host, { guid: "A", address: "a:1", version: 1, intervalMs: 1000 });
 * a.heard({ guid: "B", address: "b:1", version: 1, status: "alive" });
 * now = 1000;
 * a.tick(); // B watches A (the only other member): A sends it a beat
 * if (!sent.some(([to, m]) => to === "b:1" && m.kind === "beat")) throw new Error("no beat");
 * now = 2250;
 * a.tick(); // …and A watches B, whose beats did not come for 1.1 intervals: A pings it
 * if (!sent.some(([to, m]) => to === "b:1" && m.kind === "ping")) throw new Error("no ping");
 * ```
 */
export class Membership {
  readonly #stats: MembershipStats = {
    beatsSent: 0,
    pingsSent: 0,
    acksSent: 0,
    pingReqsSent: 0,
    gossipSent: 0,
    syncsSent: 0,
    updatesApplied: 0,
    suspicions: 0,
    refutations: 0,
    deaths: 0,
    tombstonesExpired: 0,
  };
  readonly #host: MembershipHost;
  readonly #guid: string;
  #self: Claim;
  readonly #intervalMs: number;
  readonly #monitors: number;
  readonly #indirect: number;
  readonly #lateMs: number;
  readonly #pingTimeoutMs: number;
  readonly #suspicionMs: number;
  readonly #fanout: number;
  readonly #maxPiggyback: number;
  readonly #floodsPerInterval: number;
  #floodsLeft: number;
  /** The round `#floodsLeft` counts floods of (it starts again at each round: see #spread). */
  #floodsRound = -1;
  readonly #syncEvery: number;
  readonly #pageSize: number;
  readonly #tombstoneMs: number;
  /** When this node learned each tombstone, oldest first. */
  readonly #deadSince = new Map<string, number>();
  /**
   * Every member this node knows of, itself included, dead ones as tombstones; live ones in ring
   * order.
   */
  readonly #table = new MemberTable<Claim>();
  /** Whether whom this node watches must be worked out again when the batch under way ends. */
  #rewatchDue = false;
  /** Member events of the batch under way, reported when it ends. */
  #batchEvents: MemberEvent[] = [];
  /**
   * XOR of every live record's term: tables that agree on who is alive or suspect, and on their
   * versions, have equal digests. Tombstones are left out: one node may have dropped a tombstone
   * another still keeps, or never have known that member, and that is no difference to repair.
   */
  #digest = 0;
  /**
   * Members this node monitors (its K predecessors on the ring): K is small, so a list, looked
   * through by GUID, and loops over it allocate no iterator.
   */
  #watches: Watch[] = [];
  /**
   * The watches' heard times and what a repeated plain beat needs besides them (`B_…` above),
   * for {@link hearRepeat}. Only this module reads or writes it.
   */
  readonly beats: Float64Array;
  /** The slab {@link beats} is cut from (itself when it has none), for {@link hearRepeat}. */
  readonly beatsSlab: Float64Array;
  /** Where {@link beats} starts in {@link beatsSlab}. */
  readonly beatsAt: number;
  /** The earliest heard time among watched members not being probed (see #noteWatchDue). */
  get #watchHeardMs(): number {
    return this.beats[B_HEARD_DUE];
  }
  set #watchHeardMs(ms: number) {
    this.beats[B_HEARD_DUE] = ms;
  }
  /** The earliest `probeSentMs` among watched members being probed (see #noteWatchDue). */
  get #watchProbedMs(): number {
    return this.beats[B_PROBED_DUE];
  }
  set #watchProbedMs(ms: number) {
    this.beats[B_PROBED_DUE] = ms;
  }
  /** Members that monitor this node (its K successors on the ring): they get its beats. */
  #monitoredBy: Claim[] = [];
  /**
   * The table's pages as last sent, reused while the table and the round are the same: a seed
   * that many join at once sends the same messages (the node's transport may then send the
   * same bytes) instead of building them for each joiner. Dropped at the next round.
   */
  /** The last digest sent alone (see #digestOnly). */
  #digestMessage: Extract<MembershipMessage, { kind: "sync" }> | undefined;
  #tablePages:
    | {
      digest: number;
      reply: boolean;
      round: number;
      size: number;
      messages: readonly MembershipMessage[];
    }
    | undefined;
  /** Members probed out of turn (see {@link probe}) → when the ping went. */
  readonly #probedNow = new Map<string, number>();
  /** When each current suspicion started, by GUID. */
  readonly #suspectedAt = new Map<string, number>();
  /**
   * Recent updates still to piggyback, oldest first, at most {@link PIGGYBACK_QUEUE} times
   * `maxPiggyback` of them: how many more datagrams each rides on, and on how many more rounds
   * of beats (which go to the same monitors every round, so riding on them again and again
   * would tell those monitors nothing new).
   */
  readonly #piggyback = new Map<string, Piggyback>();
  /** Pings relayed for others: our seq → whom to send the ack to. */
  readonly #relays = new Map<number, { guid: string; address: string; seq: number }>();
  /** A beat without news: the same message every round (messages are read-only). */
  readonly #plainBeat: MembershipMessage;
  #seq = 0;
  /** Counts deadlines set (probes sent, suspicions begun): see {@link deadlinesSet}. */
  #deadlines = 0;
  #closed = false;

  /** A membership for the node `options.guid` at `options.address`; it knows only itself. */
  constructor(host: MembershipHost, options: MembershipOptions) {
    if (typeof options.guid !== "string" || options.guid === "") {
      throw new TypeError("Cannot create membership: guid must be a non-empty string");
    }
    if (typeof options.address !== "string" || options.address === "") {
      throw new TypeError("Cannot create membership: address must be a non-empty string");
    }
    if (!Number.isFinite(options.version)) {
      throw new RangeError("Cannot create membership: version must be a finite number");
    }
    this.#host = host;
    this.#guid = options.guid;
    this.#plainBeat = { kind: "beat", from: options.guid, updates: NO_UPDATES };
    this.#intervalMs = positiveMs(options.intervalMs, 1000, "intervalMs");
    this.#indirect = positiveInt(options.indirectProbes, 2, "indirectProbes");
    this.#lateMs = positiveMs(options.lateMs, this.#intervalMs * 1.1, "lateMs");
    this.#pingTimeoutMs = positiveMs(
      options.pingTimeoutMs,
      this.#intervalMs * 0.4,
      "pingTimeoutMs",
    );
    this.#monitors = Math.max(1, positiveInt(options.monitors, 2, "monitors"));
    const length = B_HEARD + this.#monitors;
    const place = beatsPlace(length);
    this.beatsSlab = place.slab;
    this.beatsAt = place.at;
    this.beats = place.slab.subarray(place.at, place.at + length);
    this.beats[B_HEARD_DUE] = Infinity;
    this.beats[B_PROBED_DUE] = Infinity;
    this.beats[B_LATE] = this.#lateMs;
    this.beats[B_LAST_ROUND] = -1;
    this.beats[B_INTERVAL] = this.#intervalMs;
    this.#suspicionMs = positiveMs(options.suspicionMs, this.#intervalMs * 0.8, "suspicionMs");
    this.#fanout = positiveInt(options.fanout, 3, "fanout");
    this.#maxPiggyback = positiveInt(options.maxPiggyback, 8, "maxPiggyback");
    this.#floodsPerInterval = positiveInt(options.floodsPerInterval, 8, "floodsPerInterval");
    this.#floodsLeft = this.#floodsPerInterval;
    this.#syncEvery = Math.max(1, positiveInt(options.syncEveryIntervals, 5, "syncEveryIntervals"));
    this.beats[B_SYNC_EVERY] = this.#syncEvery;
    this.#pageSize = Math.max(1, positiveInt(options.syncPageSize, 200, "syncPageSize"));
    this.#tombstoneMs = positiveMs(options.tombstoneMs, 24 * 3600_000, "tombstoneMs");
    this.#self = this.#store({
      guid: options.guid,
      address: options.address,
      version: options.version,
      status: "alive",
    });
  }

  /** This node's own current claim. */
  get self(): MemberUpdate {
    return this.#self;
  }

  /** The digest of the whole table; two nodes that agree on everything have equal digests. */
  get digest(): number {
    return this.#digest;
  }

  /** How many rounds of beats this node has had (one per interval once it runs). */
  get rounds(): number {
    return this.beats[B_ROUNDS];
  }

  /** What it counted (beats sent by {@link beatRound}'s callers included). */
  get stats(): MembershipStats {
    const stats = this.#stats;
    const sent = this.beats[B_BEATS_SENT];
    if (sent !== 0) {
      stats.beatsSent += sent;
      this.beats[B_BEATS_SENT] = 0;
    }
    return stats;
  }

  /** Changes whenever {@link monitorAddresses} does (see {@link beatRound}). */
  get monitorEpoch(): number {
    return this.beats[B_MONITORS];
  }

  /** The addresses of the members this node's beats go to. */
  monitorAddresses(): string[] {
    return this.#monitoredBy.map((monitor) => monitor.address);
  }

  /**
   * How many deadlines (a probe's timeout, a suspicion's end) were set so far. {@link nextWakeMs}
   * can only come sooner when this grows, or when a round passes: the node need not look again
   * after each datagram that set none.
   */
  get deadlinesSet(): number {
    return this.#deadlines;
  }

  /** How many members are alive or suspect, this node included. */
  get liveCount(): number {
    return this.#table.liveCount;
  }

  /** How many members are suspect now. */
  get suspectCount(): number {
    return this.#suspectedAt.size;
  }

  /** How many members this node knows of, tombstones and itself included. */
  get knownCount(): number {
    return this.#table.size;
  }

  /** What this node believes about `guid`, or undefined if it never heard of it. */
  get(guid: string): MemberUpdate | undefined {
    return this.#table.get(guid);
  }

  /** Live members (alive or suspect), this node included, in ring order. */
  live(): readonly MemberUpdate[] {
    return this.#table.live();
  }

  /** Every known member including tombstones: live ones in ring order, then tombstones. */
  all(): IterableIterator<MemberUpdate> {
    return this.#table.values();
  }

  /** The members this node watches (its K predecessors on the ring). */
  watching(): string[] {
    return this.#watches.map((watch) => watch.guid);
  }

  /**
   * The `count` live members that follow `key` on the ring (the owners of a directory key):
   * consistent hashing over the membership.
   */
  successorsOf(key: string, count = 1): MemberUpdate[] {
    const ring = this.#table.live();
    if (ring.length === 0) return [];
    const start = this.#table.search(hash32(key), key);
    const result: MemberUpdate[] = [];
    for (let i = 0; i < Math.min(count, ring.length); i++) {
      result.push(ring[(start + i) % ring.length]);
    }
    return result;
  }

  /**
   * Direct evidence that a member is alive, from a discovery heartbeat: stored, reported, but not
   * flooded (the whole subnet heard the same broadcast).
   */
  heard(update: MemberUpdate): void {
    this.#apply(update, "heard", false);
  }

  /** Joins through a seed: pushes this node's table to `address` and asks for its table. */
  join(address: string): void {
    this.#sendTable(address, true);
  }

  /**
   * When {@link tick} next has work: the next round of beats, a probe's timeout, or a
   * suspicion's end (late subjects are noticed on rounds and arrivals, not by a timer). The node
   * sets a timer for it after each tick and each datagram, so a quiet cluster wakes each node
   * once per interval.
   */
  nextWakeMs(): number {
    const beats = this.beats;
    const last = beats[B_LAST_ROUND];
    let wake = last < 0 ? this.#host.now() : last + this.#intervalMs;
    // Lateness is looked at on rounds and arrivals; only probes have timeouts to wake for.
    if (beats[B_PROBED_DUE] !== Infinity) {
      const watches = this.#watches;
      for (let i = 0; i < watches.length; i++) {
        const watch = watches[i];
        if (!watch.probing) continue;
        const due = watch.probeSentMs + this.#pingTimeoutMs;
        if (due < wake) wake = due;
      }
    }
    if (beats[B_BUSY] === 0) return wake;
    // Usually both are empty: no iterator is made for them.
    if (this.#probedNow.size > 0) {
      for (const sentMs of this.#probedNow.values()) {
        wake = Math.min(wake, sentMs + this.#pingTimeoutMs);
      }
    }
    if (this.#suspectedAt.size > 0) {
      for (const since of this.#suspectedAt.values()) {
        wake = Math.min(wake, since + this.#suspicionMs);
      }
    }
    return wake;
  }

  /**
   * Once per interval sends beats to this node's monitors; probes watched members that are late
   * and suspects those whose probes went unanswered. Call it at {@link nextWakeMs} (more often
   * is harmless; later coarsens detection), with the time now if the caller has just read it.
   */
  tick(now: number = this.#host.now()): void {
    if (this.#closed) return;
    const beats = this.beats;
    const last = beats[B_LAST_ROUND];
    const round = last < 0 || now - last >= this.#intervalMs;
    const busy = beats[B_BUSY] !== 0;
    if (round) {
      beats[B_LAST_ROUND] = now;
      beats[B_ROUNDS]++;
      // (The floods allowed start again on the round's first flood: see #spread.)
      this.#tablePages = undefined;
      if (this.#monitoredBy.length > 0) {
        // The same beat to each monitor: news rides on it once per round, not once per monitor.
        const updates = busy ? this.#takePiggyback(true) : NO_UPDATES;
        const beat: MembershipMessage = updates.length === 0
          ? this.#plainBeat
          : { kind: "beat", from: this.#guid, updates };
        for (const monitor of this.#monitoredBy) {
          this.#stats.beatsSent++;
          this.#send(monitor.address, beat);
        }
      }
    }
    if (round && busy && this.#deadSince.size > 0) this.#expireTombstones(now);
    this.#checkWatched(now);
    // Suspicions that were not refuted in time become deaths.
    if (busy && this.#suspectedAt.size > 0) {
      for (const [guid, since] of this.#suspectedAt) {
        if (now - since < this.#suspicionMs) continue;
        const record = this.#table.get(guid)!;
        this.#stats.deaths++;
        this.#apply({ ...record, status: "dead" }, "self", true);
      }
    }
    if (round && beats[B_ROUNDS] % this.#syncEvery === 0) this.#sync();
    if (
      busy && this.#piggyback.size === 0 && this.#deadSince.size === 0 &&
      this.#suspectedAt.size === 0 && this.#probedNow.size === 0
    ) this.beats[B_BUSY] = 0;
  }

  /**
   * The rest of a sync round that {@link beatRound} took (it returned {@link ROUND_TAKEN_SYNC}),
   * right after its beats: the anti-entropy digest, as {@link tick} sends it.
   */
  syncRound(): void {
    if (this.#closed) return;
    this.#sync();
  }

  /** A sync round's digest, to a random member. */
  #sync(): void {
    const ticks = this.beats[B_ROUNDS];
    // Every other time, a member held dead: if it is back (a partition healed, or it restarted
    // where no broadcast reaches), the tables merge and it refutes its death.
    const partner = (ticks / this.#syncEvery) % 2 === 0 && this.#table.deadCount > 0
      ? this.#table.randomDead((bound) => this.#host.randomInt(bound))
      : this.#randomOther();
    if (partner) this.#send(partner.address, this.#digestOnly(true));
  }

  /** Drops the tombstones learned `tombstoneMs` ago or longer (they are kept oldest first). */
  #expireTombstones(now: number): void {
    for (const [guid, since] of this.#deadSince) {
      if (now - since < this.#tombstoneMs) return;
      this.#deadSince.delete(guid);
      if (this.#table.removeDead(guid) !== undefined) this.#stats.tombstonesExpired++;
    }
  }

  /**
   * Probes `guid` now, out of turn: the node saw a sign it may be gone (its link ended without
   * a goodbye, as when its process is killed). A watched member is probed as if late; any other
   * live member is pinged, and suspected (flooded, as a monitor would) if nothing comes from it
   * within the ping timeout. At most once per ping timeout per member.
   */
  probe(guid: string): void {
    if (this.#closed || guid === this.#guid) return;
    const subject = this.#table.get(guid);
    if (subject === undefined || subject.status === "dead") return;
    const now = this.#host.now();
    const watch = this.#watchOf(guid);
    if (watch !== undefined) {
      if (watch.probing) return;
      watch.probing = true;
      this.beats[B_EPOCH]++;
      watch.probeSentMs = now;
      this.#watchProbedMs = Math.min(this.#watchProbedMs, now);
    } else {
      if (this.#probedNow.has(guid)) return;
      this.#probedNow.set(guid, now);
      this.beats[B_BUSY] = 1;
      this.beats[B_EPOCH]++;
    }
    this.#deadlines++;
    this.#ping(subject.address);
    this.#probeIndirectly(subject);
  }

  /**
   * Probes watched members that are late and suspects those whose probes went unanswered.
   * Lateness is looked at on each round and on each datagram that arrives (a monitor hears a
   * beat from each of its K subjects every interval, so looks come several times an interval)
   * rather than at a timer of its own: in a healthy cluster such a timer would always find the
   * beat already there, and cost every node a wake per subject per interval.
   */
  #checkWatched(now: number): void {
    const beats = this.beats;
    if (beats[B_PROBED_DUE] === Infinity) {
      // No watch is being probed (see #noteWatchDue and probe): look only if one is late.
      const end = B_HEARD + beats[B_WATCHES];
      for (let i = B_HEARD; i < end; i++) {
        if (now - beats[i] < this.#lateMs) continue;
        this.#lookAtWatched(now);
        break;
      }
    } else if (
      now - this.#watchHeardMs >= this.#lateMs || now - this.#watchProbedMs >= this.#pingTimeoutMs
    ) this.#lookAtWatched(now);
    // The usual case, on every round and datagram: no map is looked at.
    if (beats[B_BUSY] === 0 || this.#probedNow.size === 0) return;
    for (const [guid, sentMs] of this.#probedNow) {
      if (now - sentMs < this.#pingTimeoutMs) continue;
      this.#probedNow.delete(guid);
      const subject = this.#table.get(guid);
      if (subject?.status === "alive") {
        this.#stats.suspicions++;
        this.#apply({ ...subject, status: "suspect" }, "self", true);
      }
    }
  }

  /**
   * Probes the watched members that are late, and suspects those whose probes went unanswered;
   * notes when the next of them is due, so that datagrams before then need not look.
   */
  #lookAtWatched(now: number): void {
    const watches = this.#watches;
    for (let i = 0; i < watches.length; i++) {
      const watch = watches[i];
      if (!watch.probing) {
        if (now - this.beats[B_HEARD + watch.slot] < this.#lateMs) continue;
        // Late: ask it directly and through others at once.
        const subject = this.#table.get(watch.guid)!;
        watch.probing = true;
        this.beats[B_EPOCH]++;
        watch.probeSentMs = now;
        this.#deadlines++;
        this.#ping(subject.address);
        this.#probeIndirectly(subject);
      } else if (now - watch.probeSentMs >= this.#pingTimeoutMs) {
        const subject = this.#table.get(watch.guid)!;
        watch.probing = false;
        this.beats[B_HEARD + watch.slot] = now; // a fresh wait before probing again (it stays suspect meanwhile)
        if (subject.status === "alive") {
          this.#stats.suspicions++;
          this.#apply({ ...subject, status: "suspect" }, "self", true);
        }
      }
    }
    this.#noteWatchDue();
  }

  /**
   * Notes the earliest `heardMs` of the watched members not being probed and the earliest
   * `probeSentMs` of those that are: a look finds nothing to do while neither is old enough.
   * A later beat only makes them too early, which costs a look, never a missed one.
   */
  #noteWatchDue(): void {
    let heard = Infinity;
    let probed = Infinity;
    const watches = this.#watches;
    for (let i = 0; i < watches.length; i++) {
      const watch = watches[i];
      if (watch.probing) probed = Math.min(probed, watch.probeSentMs);
      else heard = Math.min(heard, this.beats[B_HEARD + watch.slot]);
    }
    this.#watchHeardMs = heard;
    this.#watchProbedMs = probed;
  }

  /**
   * Handles a membership datagram that arrived from `from` (`host:port`, or the address itself:
   * it is written out only for the few kinds that are answered, not for each beat).
   */
  receive(message: MembershipMessage, from: string | Address): void {
    if (this.#closed) return;
    if (message.updates.length >= BATCH_UPDATES) {
      // Many at once (a page of a table): new members join the ring in one merge at the end.
      try {
        this.#table.batch(() => this.#applyAll(message));
      } finally {
        if (this.#rewatchDue) {
          this.#rewatchDue = false;
          this.#rewatch();
        }
        const events = this.#batchEvents;
        this.#batchEvents = [];
        for (const event of events) this.#host.changed(event);
      }
    } else if (message.updates.length > 0) {
      this.#applyAll(message);
    }
    // Any datagram from a watched member shows it alive (an ack about it is handled below).
    const now = this.#host.now();
    const sender = this.#watcherOf(message);
    if (sender !== undefined) this.#heard(sender, now);
    if (this.beats[B_BUSY] !== 0 && this.#probedNow.size > 0) {
      this.#probedNow.delete(message.from);
      if (message.kind === "ack") this.#probedNow.delete(message.subject);
    }
    switch (message.kind) {
      case "ping": {
        const fromAddress = addressText(from);
        this.#stats.acksSent++;
        // On behalf of another member, the ack goes to the relay, which passes it on.
        this.#send(fromAddress, {
          kind: "ack",
          from: this.#guid,
          subject: this.#guid,
          seq: message.seq,
          updates: this.#takePiggyback(),
        });
        break;
      }
      case "ack": {
        const relay = this.#relays.get(message.seq);
        if (relay && message.subject !== this.#guid) {
          this.#relays.delete(message.seq);
          this.#send(relay.address, {
            kind: "ack",
            from: this.#guid,
            subject: message.subject,
            seq: relay.seq,
            updates: this.#takePiggyback(),
          });
        }
        const watch = this.#watchOf(message.subject);
        if (watch) this.#heard(watch, now);
        break;
      }
      case "ping-req": {
        const fromAddress = addressText(from);
        const seq = ++this.#seq;
        this.#relays.set(seq, { guid: message.from, address: fromAddress, seq: message.seq });
        if (this.#relays.size > 1024) {
          // Unanswered relays: keep the newest.
          this.#relays.delete(this.#relays.keys().next().value!);
        }
        this.#stats.pingsSent++;
        this.#send(message.targetAddress, {
          kind: "ping",
          from: this.#guid,
          seq,
          onBehalfOf: { guid: message.from, address: fromAddress, seq: message.seq },
          updates: this.#takePiggyback(),
        });
        break;
      }
      case "beat":
      case "gossip":
        break;
      case "sync":
        // Push-pull: a digest-only request gets our table and a request for theirs if they
        // still differ after merging it; a pushed table gets ours without a request.
        if (message.reply && message.digest !== this.#digest && message.page + 1 >= message.pages) {
          this.#sendTable(
            addressText(from),
            message.updates.length === 0 && message.pages === 1,
          );
        }
        break;
    }
    this.#checkWatched(now);
  }

  /**
   * Applies a datagram's updates. Updates in a sync are old news (anti-entropy) except the
   * sender's claim about itself, which is how a joiner becomes known: only that one is flooded.
   */
  #applyAll(message: MembershipMessage): void {
    const syncing = message.kind === "sync";
    for (const update of message.updates) {
      this.#apply(update, message.from, !syncing || update.guid === message.from);
    }
  }

  /** Stops all work; later ticks and messages are ignored. */
  close(): void {
    this.#closed = true;
    this.beats[B_EPOCH]++;
    this.beats[B_MONITORS]++;
  }

  /** What {@link hearRepeat} must be given: the epoch now (see {@link beatSlot}). */
  get beatEpoch(): number {
    return this.beats[B_EPOCH];
  }

  /**
   * Right after `message` was received: the slot under which {@link hearRepeat} may take a
   * repeat of it (the same message again), or -1 if a repeat must go to {@link receive}. Only
   * a plain beat from a watched member qualifies, and only while no watch is being probed and
   * no member is probed out of turn (a beat then ends a probe, which `receive` does).
   */
  beatSlot(message: MembershipMessage): number {
    if (this.#closed || message.kind !== "beat" || message.updates.length > 0) return -1;
    if (this.#probedNow.size > 0) return -1;
    const watches = this.#watches;
    let slot = -1;
    for (let i = 0; i < watches.length; i++) {
      const watch = watches[i];
      if (watch.probing) return -1;
      if (watch.lastMessage === message) slot = watch.slot;
    }
    return slot;
  }

  /** The watch of the member that sent `message`, if this node watches it. */
  #watcherOf(message: MembershipMessage): Watch | undefined {
    const watches = this.#watches;
    for (let i = 0; i < watches.length; i++) {
      if (watches[i].lastMessage === message) return watches[i];
    }
    const watch = this.#watchOf(message.from);
    if (watch !== undefined) watch.lastMessage = message;
    return watch;
  }

  #heard(watch: Watch, now: number): void {
    this.beats[B_HEARD + watch.slot] = now;
    if (watch.probing) {
      watch.probing = false;
      this.#watchHeardMs = Math.min(this.#watchHeardMs, now);
    }
  }

  #ping(address: string): void {
    this.#stats.pingsSent++;
    this.#send(address, {
      kind: "ping",
      from: this.#guid,
      seq: ++this.#seq,
      updates: this.#takePiggyback(),
    });
  }

  #probeIndirectly(subject: Claim): void {
    const exclude = [this.#guid, subject.guid];
    for (let i = 0; i < this.#indirect; i++) {
      const helper = this.#randomLive(exclude);
      if (!helper) return;
      exclude.push(helper.guid);
      this.#stats.pingReqsSent++;
      this.#send(helper.address, {
        kind: "ping-req",
        from: this.#guid,
        seq: ++this.#seq,
        target: subject.guid,
        targetAddress: subject.address,
        updates: this.#takePiggyback(),
      });
    }
  }

  #digestOnly(reply: boolean): MembershipMessage {
    this.#stats.syncsSent++;
    // One message while the digest and the request stand (the transport may then send the same
    // bytes again, as for table pages).
    const cached = this.#digestMessage;
    if (cached !== undefined && cached.digest === this.#digest && cached.reply === reply) {
      return cached;
    }
    return this.#digestMessage = {
      kind: "sync",
      from: this.#guid,
      digest: this.#digest,
      reply,
      page: 0,
      pages: 1,
      updates: NO_UPDATES,
    };
  }

  /** Pushes the whole table in pages; the last page asks for a reply when `reply`. */
  #sendTable(address: string, reply: boolean): void {
    const cached = this.#tablePages;
    let messages: readonly MembershipMessage[];
    if (
      cached !== undefined && cached.digest === this.#digest && cached.reply === reply &&
      cached.round === this.beats[B_ROUNDS] && cached.size === this.#table.size
    ) {
      messages = cached.messages;
    } else {
      // Claims are immutable and carry the update's fields: they go as they are.
      const all: MemberUpdate[] = [...this.#table.values()];
      const pages = Math.max(1, Math.ceil(all.length / this.#pageSize));
      const built: MembershipMessage[] = [];
      for (let page = 0; page < pages; page++) {
        built.push({
          kind: "sync",
          from: this.#guid,
          digest: this.#digest,
          reply,
          page,
          pages,
          updates: all.slice(page * this.#pageSize, (page + 1) * this.#pageSize),
        });
      }
      messages = built;
      this.#tablePages = {
        digest: this.#digest,
        reply,
        round: this.beats[B_ROUNDS],
        size: this.#table.size,
        messages,
      };
    }
    for (const message of messages) {
      this.#stats.syncsSent++;
      this.#send(address, message);
    }
  }

  #send(address: string, message: MembershipMessage): void {
    this.#host.send(address, message);
  }

  /** Applies a claim if it is news; floods it when `flood`. */
  #apply(update: MemberUpdate, via: string, flood: boolean): void {
    if (!validUpdate(update)) return;
    if (update.guid === this.#guid) {
      if (update.status !== "alive" && update.version >= this.#self.version) {
        // Someone believes this node is suspect or dead: refute with a higher version.
        this.#stats.refutations++;
        this.#self = this.#store({ ...this.#self, version: update.version + 1 });
        this.#spread(this.#self, this.#guid);
        this.#host.changed({ type: "member-refuted", member: this.#self, via });
      }
      return;
    }
    const known = this.#table.get(update.guid);
    if (known && !supersedes(update, known)) return;
    // The death of a member this node never knew (or whose tombstone it dropped) is no news:
    // kept, it would only come back to those that dropped it.
    if (known === undefined && update.status === "dead") return;
    this.#stats.updatesApplied++;
    const record = this.#store(strip(update));
    const wasLive = known !== undefined && known.status !== "dead";
    const isLive = record.status !== "dead";
    if (record.status === "suspect") {
      this.#suspectedAt.set(record.guid, this.#host.now());
      this.beats[B_BUSY] = 1;
      this.#deadlines++;
    } else this.#suspectedAt.delete(record.guid);
    if (wasLive !== isLive) {
      if (this.#table.batching) this.#rewatchDue = true;
      else if (this.#nearSelf(record)) this.#rewatch();
    }
    const watch = this.#watchOf(record.guid);
    // A refutation proves the subject alive through others: a fresh grace before suspecting it.
    if (watch && record.status === "alive") this.#heard(watch, this.#host.now());
    if (flood) this.#spread(record, via);
    const type = record.status === "alive"
      ? "member-up"
      : record.status === "suspect"
      ? "member-suspect"
      : "member-down";
    if (
      record.status === "alive" && known?.status === "alive" && known.address === record.address
    ) {
      return; // a refutation or restart that changes nothing observable
    }
    const event: MemberEvent = { type, member: record, via };
    // In a batch the ring is not whole until it ends: whoever acts on the event (the directory
    // works out owners from the ring) hears of it then.
    if (this.#table.batching) this.#batchEvents.push(event);
    else this.#host.changed(event);
  }

  /** Stores a claim, keeping the ring and the digest in step. */
  #store(update: MemberUpdate): Claim {
    const record = claimOf(update);
    const known = this.#table.set(record);
    if (known !== undefined && known.status !== "dead") this.#digest ^= known.term;
    const monitors = this.#monitoredBy;
    for (let i = 0; i < monitors.length; i++) {
      if (monitors[i].guid !== record.guid) continue;
      monitors[i] = record; // a new address, say
      this.beats[B_MONITORS]++;
    }
    if (record.status !== "dead") {
      this.#digest ^= record.term;
      if (known?.status === "dead") this.#deadSince.delete(record.guid);
    } else {
      this.#deadSince.delete(record.guid);
      this.#deadSince.set(record.guid, this.#host.now());
      this.beats[B_BUSY] = 1;
    }
    return record;
  }

  /**
   * Whether a member that joined or left the ring sits within K places of this node: only then
   * can whom it watches, or who watches it, have changed (a cold start of N members would
   * otherwise recompute them N times).
   */
  #nearSelf(record: Claim): boolean {
    const length = this.#table.live().length;
    if (length <= 2 * this.#monitors + 2) return true;
    const me = this.#table.search(this.#self.ring, this.#guid);
    const at = this.#table.search(record.ring, record.guid);
    const apart = Math.abs(at - me);
    return Math.min(apart, length - apart) <= this.#monitors + 1;
  }

  /**
   * Recomputes whom this node watches (its K predecessors on the ring) and who watches it (its
   * K successors, who get its beats). A newly watched member gets a whole `lateMs` before it is
   * probed: its beats may still be going to its previous monitor.
   */
  #rewatch(): void {
    const ring = this.#table.live();
    const me = this.#table.search(this.#self.ring, this.#guid);
    const count = Math.min(this.#monitors, ring.length - 1);
    const next = new Set<string>();
    const monitoredBy: Claim[] = [];
    for (let i = 1; i <= count; i++) {
      next.add(ring[(me - i + ring.length) % ring.length].guid);
      monitoredBy.push(ring[(me + i) % ring.length]);
    }
    this.#monitoredBy = monitoredBy;
    this.beats[B_MONITORS]++;
    // Watches that stay keep their state (and their order); new ones come after them.
    const watches = this.#watches.filter((watch) => next.has(watch.guid));
    const heard = watches.map((watch) => this.beats[B_HEARD + watch.slot]);
    const now = this.#host.now();
    for (const guid of next) {
      if (watches.some((watch) => watch.guid === guid)) continue;
      watches.push({ guid, slot: -1, probing: false, probeSentMs: 0, lastMessage: undefined });
      heard.push(now);
      this.#watchHeardMs = Math.min(this.#watchHeardMs, now);
    }
    this.#watches = watches;
    for (let i = 0; i < watches.length; i++) {
      watches[i].slot = i;
      this.beats[B_HEARD + i] = heard[i];
    }
    this.beats[B_WATCHES] = watches.length;
    this.beats[B_EPOCH]++;
  }

  /** The watch of `guid`, if this node monitors it. */
  #watchOf(guid: string): Watch | undefined {
    const watches = this.#watches;
    for (let i = 0; i < watches.length; i++) {
      if (watches[i].guid === guid) return watches[i];
    }
    return undefined;
  }

  /** Floods a new claim to `fanout` random live members and queues it for piggybacking. */
  #spread(update: MemberUpdate, via: string): void {
    const claim = strip(update);
    const rides = Math.ceil(Math.log2(this.#table.liveCount + 1)) + 1;
    const queue = this.#piggyback;
    queue.delete(claim.guid);
    queue.set(claim.guid, { update: claim, left: rides, beatRounds: PIGGYBACK_BEAT_ROUNDS });
    this.beats[B_BUSY] = 1;
    if (queue.size > this.#maxPiggyback * PIGGYBACK_QUEUE) queue.delete(queue.keys().next().value!);
    // So many floods per round: the count starts again at the round's first.
    const round = this.beats[B_ROUNDS];
    if (this.#floodsRound !== round) {
      this.#floodsRound = round;
      this.#floodsLeft = this.#floodsPerInterval;
    }
    if (this.#floodsLeft <= 0) return; // it rides along and anti-entropy brings it
    this.#floodsLeft--;
    const exclude = [this.#guid, via, claim.guid];
    // The ring neighbours first: a member that random choices missed still hears it from the
    // members beside it, so coverage does not rest on luck alone.
    const ring = this.#table.live();
    if (ring.length > 1) {
      const me = this.#table.search(this.#self.ring, this.#guid);
      for (const index of [me + 1, me - 1 + ring.length]) {
        const neighbour = ring[index % ring.length];
        if (exclude.includes(neighbour.guid)) continue;
        exclude.push(neighbour.guid);
        this.#stats.gossipSent++;
        this.#send(neighbour.address, { kind: "gossip", from: this.#guid, updates: [claim] });
      }
    }
    for (let i = 0; i < this.#fanout; i++) {
      const target = this.#randomLive(exclude);
      if (!target) break;
      exclude.push(target.guid);
      this.#stats.gossipSent++;
      this.#send(target.address, { kind: "gossip", from: this.#guid, updates: [claim] });
    }
  }

  /** The newest updates still to ride along, at most `maxPiggyback`; `beat` for a round's beat. */
  #takePiggyback(beat = false): readonly MemberUpdate[] {
    const queue = this.#piggyback;
    if (queue.size === 0 || this.#maxPiggyback === 0) return NO_UPDATES;
    const entries = [...queue.values()];
    const updates: MemberUpdate[] = [];
    for (let i = entries.length - 1; i >= 0 && updates.length < this.#maxPiggyback; i--) {
      const entry = entries[i];
      updates.push(entry.update);
      entry.left--;
      if (beat) entry.beatRounds--;
      if (entry.left <= 0 || entry.beatRounds <= 0) queue.delete(entry.update.guid);
    }
    return updates;
  }

  /** A random live member not in `exclude`, or undefined; a bounded number of draws. */
  #randomLive(exclude: readonly string[]): MemberUpdate | undefined {
    const ring = this.#table.live();
    // No draw when no member can be chosen (looked at only when the ring is that small).
    if (ring.length <= exclude.length) {
      const excludedLive = new Set(exclude.filter((guid) => this.#isLive(guid))).size;
      if (ring.length - excludedLive <= 0) return undefined;
    }
    const start = this.#host.randomInt(ring.length);
    for (let i = 0; i < ring.length; i++) {
      const record = ring[(start + i) % ring.length];
      if (!exclude.includes(record.guid)) return record;
    }
    return undefined;
  }

  /**
   * `#randomLive([guid])` with the same draw, told apart from this node by identity (its claim
   * in the table is `#self`), so no other member's GUID is read.
   */
  #randomOther(): MemberUpdate | undefined {
    const ring = this.#table.live();
    const self = this.#self;
    if (ring.length === 0 || (ring.length === 1 && ring[0] === self)) return undefined;
    const start = this.#host.randomInt(ring.length);
    const record = ring[start];
    return record !== self ? record : ring[(start + 1) % ring.length];
  }

  #isLive(guid: string): boolean {
    const record = this.#table.get(guid);
    return record !== undefined && record.status !== "dead";
  }
}

/**
 * Memberships' `beats` arrays are cut from shared slabs, each in whole cache lines: a simulated
 * cluster's beats then lie side by side (at 10,000 nodes, about a megabyte), where each of its
 * events reads one without a trip to memory, instead of each in an allocation of its own.
 */
const SLAB_DOUBLES = 1 << 16;
let slab = new Float64Array(0);
let slabUsed = 0;

/**
 * A place for a zeroed array of `length` doubles in the current slab (a new slab when it is
 * full; one of its own when longer than a slab).
 */
function beatsPlace(length: number): { slab: Float64Array; at: number } {
  const stride = Math.ceil(length / 8) * 8;
  if (stride > SLAB_DOUBLES) return { slab: new Float64Array(length), at: 0 };
  if (slabUsed + stride > slab.length) {
    slab = new Float64Array(SLAB_DOUBLES);
    slabUsed = 0;
  }
  const at = slabUsed;
  slabUsed += stride;
  return { slab, at };
}

/**
 * Claims made before, each kept once per process. A claim never changes once made, and in a
 * settled cluster every member holds the same claim about each member; a simulator runs many
 * members in one process, so without this each would keep its own copy of every claim (at
 * 1,000 members, a million objects). Bounded: when full it starts again, which only loses
 * sharing.
 */
const claims = new Map<string, Claim>();
const CLAIMS_MAX = 1 << 18;

function claimOf(update: MemberUpdate): Claim {
  const key = `${update.guid}|${update.version}|${update.status}|${update.address}`;
  const known = claims.get(key);
  if (known !== undefined) return known;
  if (claims.size >= CLAIMS_MAX) claims.clear();
  const claim: Claim = Object.freeze({
    guid: update.guid,
    address: update.address,
    version: update.version,
    status: update.status,
    ring: hash32(update.guid),
    term: hash32(key),
  });
  claims.set(key, claim);
  return claim;
}

function strip(update: MemberUpdate): MemberUpdate {
  return {
    guid: update.guid,
    address: update.address,
    version: update.version,
    status: update.status,
  };
}

function validUpdate(update: MemberUpdate): boolean {
  return update !== null && typeof update === "object" && typeof update.guid === "string" &&
    update.guid !== "" && typeof update.address === "string" &&
    typeof update.version === "number" && Number.isFinite(update.version) &&
    (update.status === "alive" || update.status === "suspect" || update.status === "dead");
}
