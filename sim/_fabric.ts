/**
 * The fabric: the paths between hosts. It draws each packet's latency, loss and duplication from
 * the network's own seeded stream, asks the packet rule, and keeps the path faults (partitions
 * both ways or one way, holds) with the packets parked on a cut or held path until it opens.
 *
 * What a fault means for a packet is the transport's call (a datagram on a cut path is lost, a
 * stream segment waits), so the fabric only answers which state a path is in, and keeps what
 * waits: per path in arrival order, paths in the order they first had a packet wait. Every draw
 * comes from one stream in the order the transports ask, which is what keeps runs reproducible.
 *
 * @module
 */
import type { Kernel } from "./_kernel.ts";
import type { HostDirectory, HostState } from "./_hosts.ts";
import type { SeededRandom } from "./_random.ts";
import type {
  HostSet,
  NetworkConditions,
  PacketInfo,
  PacketRule,
  PacketVerdict,
  SimHost,
} from "./simulation.ts";

/** A path packets take as usual. */
export const PATH_OPEN = 0;
/** A partitioned path: datagrams are lost, stream segments wait for a heal. */
export const PATH_CUT = 1;
/** A held path: everything waits for a release. */
export const PATH_HELD = 2;

/** How a transport puts a parked packet back on the wire once its path opens. */
export interface Resender<P> {
  resend(packet: P): void;
}

interface Parked {
  readonly packet: unknown;
  readonly via: Resender<unknown>;
}

/**
 * The key of the directed path from one host to another.
 *
 * @example
 * ```ts
 * import { pairKey } from "./_fabric.ts";
 * console.assert(pairKey({ index: 1 }, { index: 2 }) !== pairKey({ index: 2 }, { index: 1 }));
 * ```
 */
export function pairKey(from: { readonly index: number }, to: { readonly index: number }): number {
  return from.index * 1048576 + to.index;
}

/**
 * `conditions` laid over `current`, checked: a `RangeError` names the first bad value.
 *
 * @example
 * ```ts
 * import { mergeConditions } from "./_fabric.ts";
 * const next = mergeConditions(
 *   { latencyMsMin: 1, latencyMsMax: 5, lossProbability: 0, duplicateProbability: 0 },
 *   { lossProbability: 0.5, latencyMsMax: undefined },
 * );
 * console.assert(next.lossProbability === 0.5 && next.latencyMsMax === 5);
 * ```
 */
export function mergeConditions(
  current: NetworkConditions,
  conditions: Partial<NetworkConditions>,
): NetworkConditions {
  const given = definedOnly(conditions);
  const next: NetworkConditions = {
    latencyMsMin: given.latencyMsMin ?? current.latencyMsMin,
    latencyMsMax: given.latencyMsMax ?? current.latencyMsMax,
    lossProbability: given.lossProbability ?? current.lossProbability,
    duplicateProbability: given.duplicateProbability ?? current.duplicateProbability,
  };
  if (
    !(next.latencyMsMin >= 0) || !(next.latencyMsMax >= next.latencyMsMin) ||
    !Number.isFinite(next.latencyMsMax)
  ) {
    throw new RangeError(
      `Cannot set latency ${next.latencyMsMin}..${next.latencyMsMax} ms: need 0 <= min <= max`,
    );
  }
  for (const key of ["lossProbability", "duplicateProbability"] as const) {
    if (!(next[key] >= 0 && next[key] <= 1)) {
      throw new RangeError(`Cannot set ${key} to ${next[key]}: need a probability in [0, 1]`);
    }
  }
  return next;
}

/**
 * The paths between hosts: their conditions, faults and parked packets.
 *
 * @example
 * ```ts
 * import { Kernel } from "./_kernel.ts";
 * import { HostTable } from "./_hosts.ts";
 * import { Fabric, PATH_CUT, PATH_OPEN } from "./_fabric.ts";
 * import { parseSubnet } from "./_ipv4.ts";
 * import { SeededRandom } from "./_random.ts";
 * const kernel = new Kernel({ traceLimit: 0, logLimit: 0, logLevel: "info", hostErrors: "throw" });
 * const hosts = new HostTable(kernel, { seed: 1, subnet: parseSubnet("10.0.0.0/16"), epochMs: 0 });
 * const [a, b] = [hosts.add("a", () => {}, {}), hosts.add("b", () => {}, {})];
 * const fabric = new Fabric(kernel, hosts, {
 *   latencyMsMin: 1, latencyMsMax: 5, lossProbability: 0, duplicateProbability: 0,
 * }, new SeededRandom(1));
 * fabric.partitionOneWay("a", "b");
 * console.assert(fabric.pathBetween(a, b) === PATH_CUT && fabric.pathBetween(b, a) === PATH_OPEN);
 * const latencyUs = fabric.latencyUs();
 * console.assert(latencyUs >= 1000 && latencyUs <= 5000);
 * ```
 */
export class Fabric {
  /** The per-packet hook; while undefined, the transports build no {@link PacketInfo}. */
  rule: PacketRule | undefined = undefined;
  readonly #kernel: Kernel;
  readonly #hosts: HostDirectory;
  readonly #random: SeededRandom;
  readonly #conditions: NetworkConditions;
  #latencyMinUs = 0;
  #latencySpreadUs = 0;
  readonly #blocked = new Set<number>();
  readonly #held = new Set<number>();
  /** Packets waiting for a heal or release, by directed host pair. */
  readonly #parked = new Map<number, Parked[]>();

  /** `conditions` must be checked already ({@link mergeConditions}). */
  constructor(
    kernel: Kernel,
    hosts: HostDirectory,
    conditions: NetworkConditions,
    random: SeededRandom,
  ) {
    this.#kernel = kernel;
    this.#hosts = hosts;
    this.#random = random;
    this.#conditions = { ...conditions };
    this.#applyLatency();
  }

  /** The current network conditions (a copy). */
  get conditions(): NetworkConditions {
    return { ...this.#conditions };
  }

  /** Changes network conditions from now on; a `RangeError` leaves them as they were. */
  setConditions(conditions: Partial<NetworkConditions>): void {
    Object.assign(this.#conditions, mergeConditions(this.#conditions, conditions));
    this.#applyLatency();
  }

  /** A packet's one-way latency in microseconds, drawn uniformly in [min, max]. */
  latencyUs(): number {
    const spread = this.#latencySpreadUs;
    return spread > 0 ? this.#latencyMinUs + this.#random.below(spread + 1) : this.#latencyMinUs;
  }

  /** Whether this datagram is lost; a probability of 0 or 1 takes no draw. */
  drawLoss(): boolean {
    return this.#chance(this.#conditions.lossProbability);
  }

  /** Whether this datagram is delivered twice. */
  drawDuplicate(): boolean {
    return this.#chance(this.#conditions.duplicateProbability);
  }

  /** The packet rule's verdict on a packet (`"pass"` without a rule); `info` is built only then. */
  verdict(info: () => PacketInfo): PacketVerdict {
    const rule = this.rule;
    if (rule === undefined) return "pass";
    const verdict = rule(info());
    if (verdict === undefined || verdict === null) return "pass";
    if (
      verdict !== "pass" && verdict !== "drop" && verdict !== "duplicate" &&
      !(typeof verdict === "object" && verdict.delayMs >= 0)
    ) {
      throw new TypeError(`Cannot apply packet rule verdict ${JSON.stringify(verdict)}`);
    }
    return verdict;
  }

  /** Whether any path is cut or held: when not, arrivals skip the path lookup. */
  get hasFaults(): boolean {
    return this.#blocked.size > 0 || this.#held.size > 0;
  }

  /** The state of the path from `from` to `to`: open, cut or held (a cut wins over a hold). */
  pathBetween(from: HostState, to: HostState): number {
    const key = pairKey(from, to);
    if (this.#blocked.has(key)) return PATH_CUT;
    return this.#held.has(key) ? PATH_HELD : PATH_OPEN;
  }

  /** Keeps a packet until the path from `from` to `to` opens; `via` then sends it again. */
  park<P>(from: HostState, to: HostState, packet: P, via: Resender<P>): void {
    const key = pairKey(from, to);
    let list = this.#parked.get(key);
    if (!list) this.#parked.set(key, list = []);
    list.push({ packet, via: via as Resender<unknown> });
  }

  /** Cuts both ways between two hosts (or two groups). */
  partition(a: HostSet, b: HostSet): void {
    for (const x of this.#hosts.resolveSet(a)) {
      for (const y of this.#hosts.resolveSet(b)) {
        if (x === y) continue;
        this.#blocked.add(pairKey(x, y));
        this.#blocked.add(pairKey(y, x));
      }
    }
    this.#kernel.hash.word(0x9a27);
  }

  /** Cuts the paths from `from` to `to` only. */
  partitionOneWay(from: HostSet, to: HostSet): void {
    for (const x of this.#hosts.resolveSet(from)) {
      for (const y of this.#hosts.resolveSet(to)) {
        if (x !== y) this.#blocked.add(pairKey(x, y));
      }
    }
    this.#kernel.hash.word(0x9a28);
  }

  /** Removes cuts: all, those touching `a`, or those between `a` and `b`; sends what waited. */
  heal(a?: HostSet, b?: HostSet): void {
    this.#unset(this.#blocked, a, b);
    this.#kernel.hash.word(0x9a29);
    this.#flushParked();
  }

  /** Holds both ways between two hosts (or groups). */
  hold(a: HostSet, b: HostSet): void {
    for (const x of this.#hosts.resolveSet(a)) {
      for (const y of this.#hosts.resolveSet(b)) {
        if (x === y) continue;
        this.#held.add(pairKey(x, y));
        this.#held.add(pairKey(y, x));
      }
    }
    this.#kernel.hash.word(0x401d);
  }

  /** Removes holds: all, those of `a`, or those between `a` and `b`; sends what waited. */
  release(a?: HostSet, b?: HostSet): void {
    this.#unset(this.#held, a, b);
    this.#kernel.hash.word(0x401e);
    this.#flushParked();
  }

  /** Whether the path from `from` to `to` is cut. */
  isPartitioned(from: string | SimHost, to: string | SimHost): boolean {
    return this.#blocked.has(pairKey(this.#hosts.resolve(from), this.#hosts.resolve(to)));
  }

  #applyLatency(): void {
    this.#latencyMinUs = Math.round(this.#conditions.latencyMsMin * 1000);
    this.#latencySpreadUs = Math.round(this.#conditions.latencyMsMax * 1000) -
      this.#latencyMinUs;
  }

  #chance(probability: number): boolean {
    if (probability <= 0) return false;
    if (probability >= 1) return true;
    return this.#random.next() < probability;
  }

  #unset(pairs: Set<number>, a?: HostSet, b?: HostSet): void {
    if (a === undefined) {
      pairs.clear();
      return;
    }
    const left = this.#hosts.resolveSet(a);
    const right = b === undefined ? this.#hosts.list : this.#hosts.resolveSet(b);
    for (const x of left) {
      for (const y of right) {
        pairs.delete(pairKey(x, y));
        pairs.delete(pairKey(y, x));
      }
    }
  }

  #flushParked(): void {
    // Pairs are visited in the order they were first parked; packets in the order they waited.
    for (const [key, packets] of this.#parked) {
      if (this.#blocked.has(key) || this.#held.has(key)) continue;
      this.#parked.delete(key);
      for (const { packet, via } of packets) via.resend(packet);
    }
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) (out as Record<string, unknown>)[key] = item;
  }
  return out;
}
