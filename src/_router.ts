/**
 * System messages, routed by kind through two tables built once for the wire protocol: one for
 * what arrives on a link, one for what arrives by datagram. A kind a protocol does not use is
 * in its table as ignored (not unknown); a kind in neither table is logged as unknown.
 *
 * Who may say what: a node's workers are announced by that node itself, over its link, or (on
 * the original protocol) by datagram while linked to it; sessions, peer lists, worker sets,
 * goodbyes and refusals mean something only on a link.
 *
 * @module
 */
import type { Gossip, GossipLink } from "./_gossip.ts";
import type { WorkerLocations } from "./_locations.ts";
import type { SessionLink, Sessions } from "./_sessions.ts";
import type { WireProtocol } from "./_wire.ts";
import type { MapMessage } from "./message.ts";
import type { Address, Logger } from "./platform.ts";
import { SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";

type Fields = Readonly<Record<string, string>>;

/** What the system router needs from its node. */
export interface SystemRouterHost<L extends SessionLink & GossipLink> {
  readonly log: Logger;
  readonly sessions: Pick<Sessions<L>, "onAck" | "onGoodbye" | "onResume" | "onAlign">;
  readonly gossip: Pick<Gossip<L>, "onPeerList" | "onWorkerSet">;
  readonly locations: Pick<WorkerLocations, "learn" | "removed">;
  /** A node's heartbeat (by datagram, or relayed on a link). */
  heartbeat(guid: string, address: string, incarnation: string): void;
  /** Whether there is a link to `guid`. */
  isLinked(guid: string): boolean;
  /** A peer refused our link as a twin's. */
  refused(link: L, fields: Fields): void;
}

const ignore = (): void => {};

/**
 * Routes system messages by kind.
 *
 * @example
 * ```ts
 * import { SystemRouter } from "./_router.ts";
 * import { NATIVE_PROTOCOL } from "./_wire.ts";
 * import { SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";
 * const heard: string[] = [];
 * const router = new SystemRouter({
 *   log: { log: () => {} } as never,
 *   sessions: {} as never,
 *   gossip: {} as never,
 *   locations: {} as never,
 *   heartbeat: (guid) => heard.push(guid),
 *   isLinked: () => false,
 *   refused: () => {},
 * }, NATIVE_PROTOCOL);
 * router.onDatagram({
 *   destination: "",
 *   source: "",
 *   message: {
 *     [SYSTEM_KEY]: SystemKind.NodeLocation,
 *     [SystemField.NodeGuid]: "B",
 *     [SystemField.HostEndpoint]: "10.0.0.2:8888",
 *   },
 * }, { host: "10.0.0.2", port: 9999 });
 * if (heard.join() !== "B") throw new Error("unexpected");
 * ```
 */
export class SystemRouter<L extends SessionLink & GossipLink> {
  readonly #log: Logger;
  readonly #onLink: ReadonlyMap<string, (link: L, fields: Fields) => void>;
  readonly #onDatagram: ReadonlyMap<string, (fields: Fields) => void>;

  /** The tables for `protocol`. */
  constructor(host: SystemRouterHost<L>, protocol: WireProtocol) {
    this.#log = host.log;
    const { sessions, gossip, locations } = host;
    const heartbeat = (fields: Fields) => {
      const guid = fields[SystemField.NodeGuid];
      const address = fields[SystemField.HostEndpoint];
      if (typeof guid === "string" && guid !== "" && typeof address === "string") {
        host.heartbeat(guid, address, fields[SystemField.Incarnation] ?? "");
      }
    };
    this.#onLink = new Map<string, (link: L, fields: Fields) => void>([
      [SystemKind.NodeLocation, (_link, fields) => heartbeat(fields)],
      [SystemKind.ConnectToMe, (_link, fields) => heartbeat(fields)],
      [SystemKind.Ack, (link, fields) => sessions.onAck(link, fields[SystemField.Count])],
      [SystemKind.KeepAlive, ignore],
      [SystemKind.WorkerLocation, (link, fields) => {
        // Only a node may say where its own workers are.
        const node = fields[SystemField.NodeGuid];
        const worker = fields[SystemField.WorkerGuid];
        if (node === link.peerGuid && worker) locations.learn(node, worker);
      }],
      [
        SystemKind.WorkerSet,
        protocol.workerSets ? (link, fields) => gossip.onWorkerSet(link, fields) : ignore,
      ],
      [SystemKind.WorkerRemoved, (link, fields) => {
        const node = fields[SystemField.NodeGuid];
        const worker = fields[SystemField.WorkerGuid];
        if (node === link.peerGuid && worker) locations.removed(node, worker);
      }],
      [SystemKind.PeerList, (link, fields) => gossip.onPeerList(link, fields[SystemField.Peers])],
      [SystemKind.Goodbye, (link, fields) => sessions.onGoodbye(link, fields)],
      [
        SystemKind.Resume,
        protocol.sessions ? (link, fields) => sessions.onResume(link, fields) : ignore,
      ],
      [
        SystemKind.Align,
        protocol.sessions ? (link, fields) => sessions.onAlign(link, fields) : ignore,
      ],
      [
        SystemKind.Refused,
        protocol.refusals ? (link, fields) => host.refused(link, fields) : ignore,
      ],
    ]);
    const announcements = protocol.workerAnnouncements > 0;
    this.#onDatagram = new Map<string, (fields: Fields) => void>([
      [SystemKind.NodeLocation, heartbeat],
      [SystemKind.ConnectToMe, heartbeat],
      [
        SystemKind.WorkerLocation,
        announcements
          ? (fields) => {
            // The original announces workers by datagram: taken from nodes we link.
            const node = fields[SystemField.NodeGuid];
            const worker = fields[SystemField.WorkerGuid];
            if (host.isLinked(node) && worker) locations.learn(node, worker);
          }
          : ignore,
      ],
      // Link traffic means nothing by datagram.
      [SystemKind.Ack, ignore],
      [SystemKind.KeepAlive, ignore],
      [SystemKind.WorkerSet, ignore],
      [SystemKind.WorkerRemoved, ignore],
      [SystemKind.PeerList, ignore],
      [SystemKind.Goodbye, ignore],
      [SystemKind.Resume, ignore],
      [SystemKind.Align, ignore],
      [SystemKind.Refused, ignore],
    ]);
  }

  /** A system message arrived on `link` (from `source`, for the log). */
  onLink(link: L, message: MapMessage, source: string): void {
    const fields = message.message;
    const handler = this.#onLink.get(fields[SYSTEM_KEY]);
    if (handler === undefined) this.#unknown(fields, source);
    else handler(link, fields);
  }

  /** A system message that is not a heartbeat arrived by datagram from `from`. */
  onDatagram(message: MapMessage, from: Address): void {
    const fields = message.message;
    const handler = this.#onDatagram.get(fields[SYSTEM_KEY]);
    if (handler === undefined) this.#unknown(fields, from);
    else handler(fields);
  }

  #unknown(fields: Fields, from: Address | string): void {
    this.#log.log("debug", "system.unknown", { kind: fields[SYSTEM_KEY], from });
  }
}
