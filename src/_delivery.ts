/**
 * Delivery: where a message goes, and what is said when it cannot get there.
 *
 * A message sent goes to a local worker directly; to a remote worker or node over the link to
 * its host (the location table says which node hosts a worker); to `ALLNodes`/`ALLWorkers`
 * over every link and locally. A message received goes to a local worker, to every worker, or
 * to the node's handlers. A node-addressed message naming a service (`SERVICE_FIELD`) goes to
 * that service's handler alone. A message that cannot be delivered is counted by reason and
 * reported: to its service if it has one (the user's listeners do not hear of services'
 * traffic), else as an `undeliverable` event.
 *
 * @module
 */
import type { Frame } from "./_link.ts";
import type { WorkerHost } from "./_workers.ts";
import { ALL_NODES, ALL_WORKERS, type MapMessage } from "./message.ts";
import type { MessageHandler, MessageInfo, UndeliverableReason } from "./_types.ts";
import type { Logger } from "./platform.ts";
import { SYSTEM_KEY } from "./system.ts";

/**
 * The message field naming the node service a node-addressed message is for: such messages go
 * to the handler registered with `AutoMpiNode.handleService` and to no other handler.
 */
export const SERVICE_FIELD = "automp.service";

/** What delivery sees of a link. */
export interface DeliveryLink {
  readonly peerGuid: string;
  readonly conn: { readonly bufferedBytes: number };
  /** Bytes batched for the end of the turn. */
  readonly outLength: number;
}

/** The counters delivery keeps. */
export interface DeliveryStats {
  messagesSent: number;
  messagesReceived: number;
  undeliverable: number;
  unknownService: number;
  listenerErrors: number;
}

/** What delivery needs from its node. */
export interface DeliveryHost<L extends DeliveryLink> {
  readonly log: Logger;
  readonly stats: DeliveryStats;
  readonly workers: Pick<WorkerHost, "get" | "queue" | "queueAll">;
  /** The links up now, by peer GUID. */
  links(): ReadonlyMap<string, L>;
  /** The node hosting a remote worker, if known. */
  locate(worker: string): string | undefined;
  /** Whether a node with this GUID is known. */
  knowsNode(guid: string): boolean;
  /** A message's frame payload (`transient`: see `messageFrame`). */
  frame(message: MapMessage, transient?: boolean): Frame;
  /** Writes a message on a link, in its session; false (reported) if it was refused. */
  write(link: L, message: MapMessage, frame: Frame): boolean;
  /**
   * Ring membership: takes a message with no link to go on, for `node` (the destination node,
   * or its worker's), or for a worker whose node must be looked up (`undefined`); returns false
   * (reported) if it cannot wait. Without it such a message is reported at once.
   */
  readonly unrouted?: (message: MapMessage, node: string | undefined) => boolean;
  /** Ring membership: sends a broadcast to the members no link goes to yet. */
  readonly broadcastUnlinked?: (message: MapMessage) => void;
  /** A message (not a service's) could not be delivered. */
  onUndeliverable(message: MapMessage, reason: UndeliverableReason, detail?: string): void;
  /** The outcome of a message (not a service's) reported `uncertain` became known. */
  onOutcome(message: MapMessage, outcome: "delivered" | "not-delivered"): void;
}

/** Delivery's settings. */
export interface DeliveryOptions {
  /** This node's GUID. */
  readonly guid: string;
  readonly maxFrameBytes: number;
  readonly maxLinkBufferBytes: number;
}

/**
 * A node's message delivery.
 *
 * @example
 * ```ts
 * import { Delivery } from "./_delivery.ts";
 * import { createMessage } from "./message.ts";
 * const reasons: string[] = [];
 * const delivery = new Delivery({
 *   log: { log: () => {} } as never,
 *   stats: { messagesSent: 0, messagesReceived: 0, undeliverable: 0, unknownService: 0, listenerErrors: 0 },
 *   workers: { get: () => undefined } as never,
 *   links: () => new Map(),
 *   locate: () => undefined,
 *   knowsNode: () => false,
 *   frame: () => ({ parts: [], length: 0 }),
 *   write: () => true,
 *   onUndeliverable: (_message, reason) => reasons.push(reason),
 *   onOutcome: () => {},
 * }, { guid: "A", maxFrameBytes: 1 << 20, maxLinkBufferBytes: 1 << 20 });
 * delivery.route(createMessage("nobody", {}));
 * if (reasons.join() !== "unknown-destination") throw new Error(reasons.join());
 * ```
 */
export class Delivery<L extends DeliveryLink> {
  readonly #host: DeliveryHost<L>;
  readonly #o: DeliveryOptions;
  readonly #handlers: MessageHandler[] = [];
  readonly #services = new Map<string, MessageHandler>();
  readonly #serviceMisses = new Map<
    string,
    (message: MapMessage, reason: UndeliverableReason) => void
  >();
  /** Undeliverable messages by reason, for metrics. */
  readonly undeliverableByReason: Map<string, number> = new Map();

  /** Delivery for a node. */
  constructor(host: DeliveryHost<L>, options: DeliveryOptions) {
    this.#host = host;
    this.#o = options;
  }

  /** Adds a message handler; returns a function that removes it. */
  addHandler(handler: MessageHandler): () => void {
    this.#handlers.push(handler);
    return () => {
      const index = this.#handlers.indexOf(handler);
      if (index >= 0) this.#handlers.splice(index, 1);
    };
  }

  /** Registers a node service's handler; returns a function that unregisters it. */
  addService(
    name: string,
    handler: MessageHandler,
    onUndeliverable?: (message: MapMessage, reason: UndeliverableReason) => void,
  ): () => void {
    if (this.#services.has(name)) {
      throw new Error(`Cannot register service "${name}": it is already registered`);
    }
    this.#services.set(name, handler);
    if (onUndeliverable !== undefined) this.#serviceMisses.set(name, onUndeliverable);
    return () => {
      if (this.#services.get(name) !== handler) return;
      this.#services.delete(name);
      this.#serviceMisses.delete(name);
    };
  }

  /**
   * Routes a message this node sends (checked, node running): to a local worker, over links,
   * or to the handlers. Returns `false` if it could not be handed on anywhere (reported).
   */
  route(message: MapMessage): boolean {
    this.#host.stats.messagesSent++;
    return this.reroute(message);
  }

  /**
   * Routes a message again, counted once already: one that waited for its link or its
   * worker's lookup (ring membership).
   */
  reroute(message: MapMessage): boolean {
    const host = this.#host;
    const o = this.#o;
    const destination = message.destination;
    const local = host.workers.get(destination);
    if (local !== undefined) return host.workers.queue(local, message);
    if (destination === ALL_NODES || destination === ALL_WORKERS) {
      const frame = host.frame(message);
      if (frame.length > o.maxFrameBytes) return this.tooLarge(message, frame);
      for (const link of host.links().values()) {
        if (link.conn.bufferedBytes + link.outLength > o.maxLinkBufferBytes) {
          // Every other node still gets it; this one's miss is reported, not hidden.
          this.undeliverable(
            message,
            "link-buffer-full",
            `link to ${link.peerGuid} has a full buffer`,
          );
        } else {
          host.write(link, message, frame);
        }
      }
      host.broadcastUnlinked?.(message);
      if (destination === ALL_WORKERS) {
        host.workers.queueAll(message);
      } else {
        this.toHandlers(message, { fromNode: undefined, via: "local" });
      }
      return true;
    }
    if (destination === o.guid) {
      this.toHandlers(message, { fromNode: undefined, via: "local" });
      return true;
    }
    const located = host.locate(destination);
    const node = located ?? destination;
    const link = host.links().get(node);
    if (link === undefined) {
      if (host.unrouted !== undefined) {
        return host.unrouted(
          message,
          located !== undefined || host.knowsNode(destination) ? node : undefined,
        );
      }
      const known = node !== destination || host.knowsNode(destination);
      return this.undeliverable(
        message,
        known ? "no-link" : "unknown-destination",
        known ? `no link to node ${node}` : `no worker or node "${destination}" is known`,
      );
    }
    if (link.conn.bufferedBytes + link.outLength > o.maxLinkBufferBytes) {
      return this.undeliverable(message, "link-buffer-full", `link to ${node} has a full buffer`);
    }
    const frame = host.frame(message, true);
    if (frame.length > o.maxFrameBytes) return this.tooLarge(message, frame);
    return host.write(link, message, frame);
  }

  /** Writes a message on the link to `node` only (a broadcast that waited for that link). */
  toLink(node: string, message: MapMessage): boolean {
    const host = this.#host;
    const link = host.links().get(node);
    if (link === undefined) {
      return this.undeliverable(message, "no-link", `no link to node ${node}`);
    }
    if (link.conn.bufferedBytes + link.outLength > this.#o.maxLinkBufferBytes) {
      return this.undeliverable(message, "link-buffer-full", `link to ${node} has a full buffer`);
    }
    const frame = host.frame(message, true);
    if (frame.length > this.#o.maxFrameBytes) return this.tooLarge(message, frame);
    return host.write(link, message, frame);
  }

  /** A message arrived (over `link`, or by datagram): to a local worker, every one, or handlers. */
  receive(message: MapMessage, link: L | undefined): void {
    const host = this.#host;
    host.stats.messagesReceived++;
    const destination = message.destination;
    const local = host.workers.get(destination);
    if (local !== undefined) {
      host.workers.queue(local, message);
      return;
    }
    if (destination === ALL_WORKERS) {
      host.workers.queueAll(message);
      return;
    }
    if (destination === ALL_NODES || destination === this.#o.guid || destination === "") {
      this.toHandlers(message, {
        fromNode: link?.peerGuid,
        via: link ? "link" : "datagram",
      });
      return;
    }
    this.undeliverable(message, "not-here", `no worker "${destination}" on node ${this.#o.guid}`);
  }

  /** Hands a node-addressed message to its service's handler, or to every handler. */
  toHandlers(message: MapMessage, info: MessageInfo): void {
    const host = this.#host;
    const service = message.message[SERVICE_FIELD];
    if (service !== undefined) {
      const handler = this.#services.get(service);
      if (handler === undefined) {
        host.stats.unknownService++;
        host.log.log("debug", "service.unknown", {
          service,
          from: info.fromNode ?? this.#o.guid,
        });
        return;
      }
      try {
        handler(message, info);
      } catch (error) {
        host.stats.listenerErrors++;
        host.log.log("error", "service.error", { service, error: String(error) });
      }
      return;
    }
    for (const handler of [...this.#handlers]) {
      try {
        handler(message, info);
      } catch (error) {
        host.stats.listenerErrors++;
        host.log.log("error", "handler.error", { error: String(error) });
      }
    }
  }

  /** A message could not be delivered: counted, logged, reported; returns false. */
  undeliverable(message: MapMessage, reason: UndeliverableReason, detail?: string): false {
    const host = this.#host;
    host.stats.undeliverable++;
    this.undeliverableByReason.set(reason, (this.undeliverableByReason.get(reason) ?? 0) + 1);
    host.log.log("debug", "message.undeliverable", {
      destination: message.destination,
      reason,
    });
    const service = message.message[SERVICE_FIELD];
    if (service !== undefined) {
      // A service's own traffic is its business: it hears of the miss, the user's listeners do not.
      const onMiss = this.#serviceMisses.get(service);
      if (onMiss !== undefined) {
        try {
          onMiss(message, reason);
        } catch (error) {
          host.stats.listenerErrors++;
          host.log.log("error", "service.error", { service, error: String(error) });
        }
      }
      return false;
    }
    host.onUndeliverable(message, reason, detail);
    return false;
  }

  /** A message's frame is over the limit: reported; returns false. */
  tooLarge(message: MapMessage, frame: Frame): false {
    return this.undeliverable(
      message,
      "too-large",
      `its frame of ${frame.length} bytes exceeds maxFrameBytes ${this.#o.maxFrameBytes}`,
    );
  }

  /** The outcome of a message reported `uncertain` became known (services' are not told). */
  outcome(message: MapMessage, outcome: "delivered" | "not-delivered"): void {
    if (message.message[SERVICE_FIELD] !== undefined) return;
    this.#host.log.log("debug", "message.outcome", {
      destination: message.destination,
      outcome,
    });
    this.#host.onOutcome(message, outcome);
  }
}

/**
 * Checks that a value is a well-formed MapMessage to send; throws a `TypeError` naming the
 * first problem.
 */
export function checkMessage(message: MapMessage): void {
  if (message === null || typeof message !== "object") {
    throw new TypeError("Cannot send: the message is not an object");
  }
  if (typeof message.destination !== "string" || message.destination === "") {
    throw new TypeError("Cannot send: destination must be a non-empty string");
  }
  if (typeof message.source !== "string") {
    throw new TypeError("Cannot send: source must be a string");
  }
  const fields = message.message;
  if (fields === null || typeof fields !== "object") {
    throw new TypeError("Cannot send: message must be an object of strings");
  }
  for (const key in fields) {
    if (typeof fields[key] !== "string") {
      throw new TypeError(`Cannot send: message["${key}"] is not a string`);
    }
  }
  if (fields[SYSTEM_KEY] !== undefined) {
    throw new TypeError(`Cannot send: "${SYSTEM_KEY}" is reserved for the nodes' own messages`);
  }
  if (message.data !== undefined && !(message.data instanceof Uint8Array)) {
    throw new TypeError("Cannot send: data must be a Uint8Array");
  }
}
