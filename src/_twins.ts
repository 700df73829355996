/**
 * Twins: nodes seen claiming a GUID already in use, this node's own or a linked peer's.
 *
 * Every sighting is counted; the last is kept for the state snapshot. A report (an error log
 * line and a `duplicate-guid` event) goes out at most once per claimant and once per 10 s, so a
 * flood of forged incarnations can neither flood the log nor grow memory. A restart racing its
 * own old link looks like a twin once: such first sightings are logged quietly instead.
 *
 * @module
 */
import type { Clock, Logger } from "./platform.ts";

/** A node seen claiming a GUID already in use. */
export interface TwinSighting {
  /** The GUID claimed twice. */
  readonly guid: string;
  /** The other claimant's address (for our own GUID, the node holding links as it). */
  readonly address: string;
  readonly incarnation: string;
  /** On this node's clock. */
  readonly atMs: number;
}

/** What the twin bookkeeping needs from its node. */
export interface TwinsHost {
  readonly clock: Clock;
  readonly log: Logger;
  readonly stats: { duplicateGuids: number };
  /** A twin is reported (at most once per claimant and per 10 s). */
  onReport(guid: string, address: string, incarnation: string): void;
}

/**
 * The twins a node has seen.
 *
 * @example
 * ```ts
 * import { Twins } from "./_twins.ts";
 * const reports: string[] = [];
 * const twins = new Twins({
 *   clock: { now: () => 0 } as never,
 *   log: { log: () => {} } as never,
 *   stats: { duplicateGuids: 0 },
 *   onReport: (guid, address) => reports.push(`${guid}@${address}`),
 * });
 * twins.report("A", "10.0.0.9:8888", "x1");
 * twins.report("A", "10.0.0.9:8888", "x1");
 * if (reports.length !== 1 || twins.last?.address !== "10.0.0.9:8888") throw new Error("unexpected");
 * ```
 */
export class Twins {
  readonly #host: TwinsHost;
  readonly #reported = new Set<string>();
  #reportedAtMs = -Infinity;
  /** "guid/incarnation" of claimants refused as twins → how often (bounded). */
  readonly #refusedClaims = new Map<string, number>();
  #last: TwinSighting | undefined;

  /** Twin bookkeeping for a node. */
  constructor(host: TwinsHost) {
    this.#host = host;
  }

  /** The last twin seen, if any. */
  get last(): TwinSighting | undefined {
    return this.#last;
  }

  /** A node at `address` claims `guid` as incarnation `incarnation`: counted, maybe reported. */
  report(guid: string, address: string, incarnation: string): void {
    this.#host.stats.duplicateGuids++;
    const now = this.#host.clock.now();
    this.#last = { guid, address, incarnation, atMs: now };
    const key = `${address}/${incarnation}`;
    if (this.#reported.has(key) || now - this.#reportedAtMs < 10_000) return;
    if (this.#reported.size >= 256) this.#reported.clear();
    this.#reported.add(key);
    this.#reportedAtMs = now;
    this.#host.log.log("error", "node.duplicate-guid", { guid, address, incarnation });
    this.#host.onReport(guid, address, incarnation);
  }

  /**
   * This node refuses a claimant of a linked peer's GUID (the link to `holderAddress` is alive):
   * the first refusal of a claimant is logged quietly, from the second on it is reported.
   * Returns how often this claimant was refused.
   */
  refuseClaim(
    claimant: { readonly guid: string; readonly address: string; readonly incarnation: string },
    holderAddress: string,
  ): number {
    const key = `${claimant.guid}/${claimant.incarnation}`;
    if (this.#refusedClaims.size >= 256 && !this.#refusedClaims.has(key)) {
      this.#refusedClaims.clear();
    }
    const count = (this.#refusedClaims.get(key) ?? 0) + 1;
    this.#refusedClaims.set(key, count);
    if (count >= 2) {
      this.report(claimant.guid, claimant.address, claimant.incarnation);
    } else {
      this.#host.stats.duplicateGuids++;
      this.#host.log.log("info", "link.refused-claim", {
        peer: claimant.guid,
        address: claimant.address,
        incarnation: claimant.incarnation,
        holder: holderAddress,
      });
    }
    return count;
  }

  /**
   * A peer refused this node (`guid`): it holds a live link to `holder` under our GUID, and
   * has refused us `count` times. Soon after our start, a first refusal most likely comes from
   * our own previous incarnation, whose old link the peer is about to find dead: said once, not
   * reported as a twin yet.
   */
  refusedBy(refusal: {
    readonly peer: string;
    readonly guid: string;
    readonly holder: string;
    readonly incarnation: string;
    readonly count: number;
    readonly soonAfterStart: boolean;
    readonly detail: string;
  }): void {
    if (refusal.count >= 2 || !refusal.soonAfterStart) {
      this.report(refusal.guid, refusal.holder, refusal.incarnation);
    } else {
      this.#host.stats.duplicateGuids++;
      this.#host.log.log("warn", "link.refused", { peer: refusal.peer, detail: refusal.detail });
    }
  }
}
