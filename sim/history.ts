/**
 * The message history of a simulated cluster: every message its nodes sent, delivered to a worker
 * or reported undeliverable, with virtual times, and the checkers that read it.
 *
 * A {@link SimCluster} keeps one (`cluster.history`); the checkers are plain functions over it,
 * so a test can run any of them at any time, and {@link SimCluster.settle} runs the defaults.
 *
 * Messages carry no id of their own, so the history recognises a message by its content (source,
 * destination, fields and data): a delivery goes to the oldest matching send not yet delivered
 * to that worker. Identical messages sent twice are told apart by count: delivered three times
 * is a duplicate.
 *
 * @module
 */
import type { AutoMpiNode } from "../src/node.ts";
import type { MapMessage } from "../src/message.ts";

/** What a history watches: a node, or anything with its GUID, `locate` and events. */
export type WatchedNode = Pick<AutoMpiNode, "guid" | "locate" | "on">;

/** Where and when a message reached a worker. */
export interface Delivery {
  readonly worker: string;
  /** GUID of the node hosting the worker. */
  readonly node: string;
  readonly atMs: number;
  /** Position among every delivery of the history, for ordering checks. */
  readonly order: number;
}

/** An `undeliverable` report about a message. */
export interface Report {
  readonly reason: string;
  readonly detail?: string;
  /** GUID of the node that reported it. */
  readonly node: string;
  readonly atMs: number;
}

/** A later word on a message reported `uncertain`: it was delivered after all, or never. */
export interface Outcome {
  readonly outcome: "delivered" | "not-delivered";
  readonly node: string;
  readonly atMs: number;
}

/** One message sent in the cluster, and what became of it. */
export interface MessageRecord {
  /** Position in sending order, from 0. */
  readonly id: number;
  readonly sentAtMs: number;
  /** GUID of the node it was sent on. */
  readonly node: string;
  readonly source: string;
  readonly destination: string;
  readonly message: Readonly<Record<string, string>>;
  readonly dataBytes: number;
  /**
   * The node that hosted the destination as the sender saw it (the destination itself when it
   * names a node or nobody knew it): whose crash may lose the message without a report.
   */
  readonly hostNode: string;
  readonly deliveries: readonly Delivery[];
  readonly reports: readonly Report[];
  /** `message-outcome` events about it (after an `uncertain` report). */
  readonly outcomes: readonly Outcome[];
}

/** A delivery the history could not match to any send: a forged or replayed message. */
export interface OrphanDelivery extends Delivery {
  readonly source: string;
  readonly destination: string;
  readonly message: Readonly<Record<string, string>>;
}

interface MutableRecord extends MessageRecord {
  readonly key: string;
  readonly deliveries: Delivery[];
  readonly reports: Report[];
  readonly outcomes: Outcome[];
}

const BROADCASTS = new Set(["ALLNodes", "ALLWorkers"]);

/** The content a message is recognised by. */
function keyOf(message: MapMessage): string {
  const fields = Object.keys(message.message).sort().map((k) => `${k}=${message.message[k]}`);
  let hash = 0x811c9dc5;
  const data = message.data;
  if (data !== undefined) {
    for (let i = 0; i < data.length; i++) hash = Math.imul(hash ^ data[i], 0x01000193);
  }
  return `${message.source}\u0000${message.destination}\u0000${fields.join("\u0001")}\u0000${
    data?.length ?? -1
  }:${hash >>> 0}`;
}

/**
 * The record of every message sent, delivered and reported undeliverable in a cluster.
 *
 * @example
 * ```ts
 * import { SimCluster } from "./cluster.ts";
 * import { EchoWorker } from "../src/worker.ts";
 * const cluster = new SimCluster({ nodes: 3, seed: 1 });
 * cluster.each(({ node, index }) => node.attachWorker(new EchoWorker(`echo${index}`)));
 * cluster.settle();
 * cluster.send(0, { destination: "echo2", source: "me", message: { n: "1" } });
 * cluster.run(100);
 * const [record] = cluster.history.records;
 * if (!(record.deliveries[0].worker === "echo2" && record.reports.length === 0)) throw new Error("example failed");
 * ```
 */
export class History {
  readonly #records: MutableRecord[] = [];
  /** Content key → records with that content, oldest first. */
  readonly #byKey = new Map<string, MutableRecord[]>();
  readonly #orphans: OrphanDelivery[] = [];
  readonly #crashes = new Map<string, number[]>();
  readonly #nodes = new Set<string>();
  readonly #now: () => number;
  #deliveries = 0;

  /** A history reading virtual time from `now`. */
  constructor(now: () => number) {
    this.#now = now;
  }

  /** Every message sent, in sending order. */
  get records(): readonly MessageRecord[] {
    return this.#records;
  }

  /** Deliveries that match no send. */
  get orphans(): readonly OrphanDelivery[] {
    return this.#orphans;
  }

  /** How many deliveries were recorded. */
  get deliveries(): number {
    return this.#deliveries;
  }

  /** Virtual times at which the node with this GUID crashed. */
  crashesOf(guid: string): readonly number[] {
    return this.#crashes.get(guid) ?? [];
  }

  /**
   * Records what `node` sends, delivers and reports from now on; returns a function that stops.
   * A {@link SimCluster} watches each of its nodes on each start unless told not to.
   */
  watch(node: WatchedNode): () => void {
    this.#nodes.add(node.guid);
    const offs = [
      node.on("message-sent", ({ message }) => this.#sent(node, message)),
      node.on("message-delivered", ({ worker, message }) => this.#delivered(node, worker, message)),
      node.on(
        "undeliverable",
        ({ message, reason, detail }) => this.#reported(node, message, reason, detail),
      ),
      node.on("message-outcome", ({ message, outcome }) => this.#outcome(node, message, outcome)),
    ];
    return () => offs.forEach((off) => off());
  }

  /** Notes that the node with this GUID crashed now: what it held may vanish unreported. */
  noteCrash(guid: string): void {
    this.#crashes.set(guid, [...this.crashesOf(guid), this.#now()]);
  }

  /** Whether `guid` names a node this history watched. */
  isNode(guid: string): boolean {
    return this.#nodes.has(guid);
  }

  /** Whether `guid` crashed at or after `atMs`. */
  crashedSince(guid: string, atMs: number): boolean {
    return this.crashesOf(guid).some((t) => t >= atMs);
  }

  #sent(node: WatchedNode, message: MapMessage): void {
    const key = keyOf(message);
    const record: MutableRecord = {
      id: this.#records.length,
      sentAtMs: this.#now(),
      node: node.guid,
      source: message.source,
      destination: message.destination,
      message: { ...message.message },
      dataBytes: message.data?.length ?? 0,
      hostNode: node.locate(message.destination) ?? message.destination,
      deliveries: [],
      reports: [],
      outcomes: [],
      key,
    };
    this.#records.push(record);
    const list = this.#byKey.get(key);
    if (list === undefined) this.#byKey.set(key, [record]);
    else list.push(record);
  }

  #delivered(node: WatchedNode, worker: string, message: MapMessage): void {
    const delivery: Delivery = {
      worker,
      node: node.guid,
      atMs: this.#now(),
      order: this.#deliveries++,
    };
    const list = this.#byKey.get(keyOf(message));
    if (list === undefined) {
      this.#orphans.push({
        ...delivery,
        source: message.source,
        destination: message.destination,
        message: { ...message.message },
      });
      return;
    }
    // The oldest send not yet delivered to this worker; if every one was, it is a duplicate of
    // the last (the duplicate checker counts deliveries per worker).
    const record = list.find((r) => !r.deliveries.some((d) => d.worker === worker)) ??
      list[list.length - 1];
    record.deliveries.push(delivery);
  }

  #outcome(node: WatchedNode, message: MapMessage, outcome: Outcome["outcome"]): void {
    const list = this.#byKey.get(keyOf(message));
    if (list === undefined) return;
    // The oldest reported uncertain without an outcome yet.
    const record =
      list.find((r) =>
        r.reports.some((p) => p.reason === "uncertain") && r.outcomes.length === 0
      ) ?? list[list.length - 1];
    record.outcomes.push({ outcome, node: node.guid, atMs: this.#now() });
  }

  #reported(node: WatchedNode, message: MapMessage, reason: string, detail?: string): void {
    const list = this.#byKey.get(keyOf(message));
    if (list === undefined) return; // a send the history did not see (before it watched)
    const record = list.find((r) => r.deliveries.length === 0 && r.reports.length === 0) ??
      list.find((r) => r.reports.length === 0) ?? list[list.length - 1];
    record.reports.push({
      reason,
      ...(detail === undefined ? {} : { detail }),
      node: node.guid,
      atMs: this.#now(),
    });
  }
}

/** A check over a history: returns one line per violation, none when it holds. */
export type HistoryCheck = (history: History) => string[];

function describe(record: MessageRecord): string {
  return `message #${record.id} (${
    record.source || "?"
  } on ${record.node} -> ${record.destination}, sent at ${record.sentAtMs} ms)`;
}

/**
 * No worker got the same message twice, and no worker got a message nobody sent.
 *
 * @example
 * ```ts
 * import { History, noDuplicateDelivery } from "./history.ts";
 * if (!(noDuplicateDelivery(new History(() => 0)).length === 0)) throw new Error("example failed");
 * ```
 */
export function noDuplicateDelivery(history: History): string[] {
  const violations: string[] = [];
  for (const record of history.records) {
    const seen = new Map<string, number>();
    for (const { worker } of record.deliveries) seen.set(worker, (seen.get(worker) ?? 0) + 1);
    for (const [worker, count] of seen) {
      if (count > 1) violations.push(`${describe(record)} delivered ${count} times to ${worker}`);
    }
  }
  for (const orphan of history.orphans) {
    violations.push(
      `a message ${orphan.source} -> ${orphan.destination} delivered to ${orphan.worker} at ${orphan.atMs} ms was never sent`,
    );
  }
  return violations;
}

/**
 * Messages sent from one node to one worker reach it in the order they were sent (those that
 * reach it at all).
 *
 * @example
 * ```ts
 * import { History, perSenderOrder } from "./history.ts";
 * if (!(perSenderOrder(new History(() => 0)).length === 0)) throw new Error("example failed");
 * ```
 */
export function perSenderOrder(history: History): string[] {
  const violations: string[] = [];
  /** "node>worker" → the record last delivered there, by delivery order. */
  const pairs = new Map<string, Array<{ record: MessageRecord; order: number }>>();
  for (const record of history.records) {
    if (BROADCASTS.has(record.destination)) continue;
    const first = record.deliveries[0];
    if (first === undefined) continue;
    const key = `${record.node}>${first.worker}`;
    const list = pairs.get(key);
    if (list === undefined) pairs.set(key, [{ record, order: first.order }]);
    else list.push({ record, order: first.order });
  }
  for (const [key, list] of pairs) {
    // Records are in sending order; their deliveries must be too.
    let last = list[0];
    for (const item of list.slice(1)) {
      if (item.order < last.order) {
        violations.push(
          `order: ${key.split(">")[1]} got ${describe(item.record)} before #${last.record.id}`,
        );
      }
      if (item.order > last.order) last = item;
    }
  }
  return violations;
}

/**
 * Every message to a worker or node was delivered or reported undeliverable: nothing vanished
 * silently. Exempt: `ALLNodes`/`ALLWorkers` (no fixed set of receivers), messages to a node's
 * own handlers (not workers), and messages whose sending node or destination's host crashed
 * after they were sent (a crash loses a process's memory).
 *
 * @example
 * ```ts
 * import { History, nothingSilentlyLost } from "./history.ts";
 * if (!(nothingSilentlyLost(new History(() => 0)).length === 0)) throw new Error("example failed");
 * ```
 */
export function nothingSilentlyLost(history: History): string[] {
  const violations: string[] = [];
  for (const record of history.records) {
    if (BROADCASTS.has(record.destination)) continue;
    if (record.deliveries.length > 0 || record.reports.length > 0) continue;
    // Addressed to a node (its handlers, not a worker): no delivery event to expect.
    if (history.isNode(record.destination)) continue;
    if (
      history.crashedSince(record.node, record.sentAtMs) ||
      history.crashedSince(record.hostNode, record.sentAtMs)
    ) {
      continue;
    }
    violations.push(`${describe(record)} neither delivered nor reported`);
  }
  return violations;
}

/**
 * Stricter than {@link nothingSilentlyLost}: a message reported undeliverable for certain is
 * never delivered afterwards (a sender that retries on such a report would make a duplicate);
 * only an `uncertain` one may be, and then no `message-outcome` may contradict what happened.
 *
 * @example
 * ```ts
 * import { History, noDeliveryAfterReport } from "./history.ts";
 * if (noDeliveryAfterReport(new History(() => 0)).length !== 0) throw new Error("unexpected");
 * ```
 */
export function noDeliveryAfterReport(history: History): string[] {
  const violations: string[] = [];
  for (const record of history.records) {
    if (BROADCASTS.has(record.destination) || record.reports.length === 0) continue;
    const reported = record.reports[0];
    const late = record.deliveries.find((d) => d.atMs >= reported.atMs);
    const outcome = record.outcomes[0]?.outcome;
    // An uncertain report says "may or may not": a delivery after it is fine, unless an outcome
    // said otherwise (an outcome may never come, if the reporter's incarnation ended first).
    if (late !== undefined && !(reported.reason === "uncertain" && outcome !== "not-delivered")) {
      violations.push(
        `${
          describe(record)
        } reported ${reported.reason} at ${reported.atMs} ms, then delivered to ${late.worker} at ${late.atMs} ms${
          reported.reason === "uncertain" ? ` with outcome ${outcome ?? "none"}` : ""
        }`,
      );
    }
    if (outcome === "not-delivered" && record.deliveries.length > 0) {
      violations.push(`${describe(record)} has outcome not-delivered but was delivered`);
    }
    if (outcome === "delivered" && record.deliveries.length === 0) {
      violations.push(`${describe(record)} has outcome delivered but was never delivered`);
    }
  }
  return violations;
}

/**
 * The checks {@link SimCluster.settle} runs unless told otherwise: all four above.
 *
 * @example
 * ```ts
 * import { DEFAULT_CHECKS, type HistoryCheck } from "./history.ts";
 * import { SimCluster } from "./cluster.ts";
 * // The defaults, plus one of your own, by name:
 * const noAllWorkers: HistoryCheck = (history) =>
 *   history.records.filter((r) => r.destination === "ALLWorkers").map((r) => `#${r.id} broadcast`);
 * const cluster = new SimCluster({ nodes: 2, checks: { ...DEFAULT_CHECKS, "no ALLWorkers": noAllWorkers } });
 * cluster.settle();
 * ```
 */
export const DEFAULT_CHECKS: Readonly<Record<string, HistoryCheck>> = {
  "no duplicate delivery": noDuplicateDelivery,
  "per-sender order": perSenderOrder,
  "nothing silently lost": nothingSilentlyLost,
  "no delivery after a report": noDeliveryAfterReport,
};
