/**
 * Gossip: what a node tells its links about the cluster and about itself.
 *
 * - Peer lists: a new link that was not heard by broadcast gets the list of our other links
 *   (it may not hear the others either); and every few intervals one random link that has not
 *   had our current set of links gets it, so a quiet cluster gossips nothing and a change
 *   reaches every peer in turn. A peer list received teaches us the peers in it and, for the
 *   cluster picture, that the sender links them all.
 * - Worker sets: a new link gets every worker this node hosts; on the native protocol in one
 *   message that replaces what the peer knew of them (so nothing stale survives a link that
 *   was swapped or replaced), on the original's one `WorkerLocation` each, as it sends them.
 *
 * @module
 */
import { ProtocolError } from "./errors.ts";
import type { MapMessage } from "./message.ts";
import type { Random } from "./platform.ts";
import { SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";

/** A link as gossip sees it. */
export interface GossipLink {
  readonly peerGuid: string;
  readonly peerAddress: string;
  readonly peerIncarnation: string;
  /** The version of our link set this peer last got in a peer list (-1 for none). */
  gossipVersion: number;
}

/** What gossip needs from its node. */
export interface GossipHost<L extends GossipLink> {
  readonly random: Random;
  /** The links up now, by peer GUID, in the order they came up. */
  links(): ReadonlyMap<string, L>;
  /** The GUIDs of the workers this node hosts, in attach order. */
  workers(): Iterable<string>;
  /** Writes a message on a link (`transient`: its encoding may live in scratch memory). */
  write(link: L, message: MapMessage, transient: boolean): void;
  /** A peer named in a peer list. */
  learn(guid: string, address: string, incarnation: string): void;
  /** A link sent a malformed peer list or worker set. */
  malformed(link: L, error: ProtocolError): void;
  /** A linked node's whole worker set. */
  workerSet(node: string, workers: ReadonlySet<string>): void;
}

/** What gossip does; see `WireProtocol`. */
export interface GossipOptions {
  /** This node's GUID. */
  readonly guid: string;
  readonly peerLists: boolean;
  readonly workerSets: boolean;
  /** Every this many ticks, one peer list to a stale link; 0 never. */
  readonly gossipIntervals: number;
}

/** A node in the cluster picture. */
export interface ViewNode {
  guid: string;
  address: string;
  self: boolean;
  linked: boolean;
}

/**
 * The system message saying that `worker` lives on `node`.
 *
 * @example
 * ```ts
 * import { workerLocation } from "./_gossip.ts";
 * if (workerLocation("A", "w1").source !== "A") throw new Error("unexpected");
 * ```
 */
export function workerLocation(node: string, worker: string): MapMessage {
  return {
    destination: "",
    source: node,
    message: {
      [SYSTEM_KEY]: SystemKind.WorkerLocation,
      [SystemField.NodeGuid]: node,
      [SystemField.WorkerGuid]: worker,
    },
  };
}

/**
 * A node's peer lists and worker sets.
 *
 * @example
 * ```ts
 * import { Gossip, type GossipLink } from "./_gossip.ts";
 * const b: GossipLink = { peerGuid: "B", peerAddress: "h:2", peerIncarnation: "b", gossipVersion: -1 };
 * const c: GossipLink = { peerGuid: "C", peerAddress: "h:3", peerIncarnation: "c", gossipVersion: -1 };
 * const written: string[] = [];
 * const gossip = new Gossip({
 *   random: { int: (min: number) => min } as never,
 *   links: () => new Map([["B", b], ["C", c]]),
 *   workers: () => [],
 *   write: (link, message) => written.push(`${link.peerGuid} ${Object.values(message.message)[2]}`),
 *   learn: () => {},
 *   malformed: () => {},
 *   workerSet: () => {},
 * }, { guid: "A", peerLists: true, workerSets: true, gossipIntervals: 5 });
 * gossip.sendPeerList(b); // B learns that A links C
 * if (written[0] !== 'B [["C","h:3","c"]]') throw new Error(written[0]);
 * ```
 */
export class Gossip<L extends GossipLink> {
  readonly #host: GossipHost<L>;
  readonly #o: GossipOptions;
  /** Bumped whenever the set of links changes: peer lists are resent only after a change. */
  #linksVersion = 0;
  /** Each linked peer's links, from its latest peer list. */
  readonly #peerLinks = new Map<string, Set<string>>();

  /** Gossip for a node. */
  constructor(host: GossipHost<L>, options: GossipOptions) {
    this.#host = host;
    this.#o = options;
  }

  /** A link came up. */
  linked(): void {
    this.#linksVersion++;
  }

  /** The link to `guid` went down: its peer list no longer stands. */
  unlinked(guid: string): void {
    this.#linksVersion++;
    this.#peerLinks.delete(guid);
  }

  /**
   * The node's `ticks`-th tick: every `gossipIntervals` ticks, a peer list to one random link
   * that has not had our current set of links yet.
   */
  tick(ticks: number): void {
    const o = this.#o;
    if (!o.peerLists || o.gossipIntervals <= 0 || ticks % o.gossipIntervals !== 0) return;
    const links = this.#host.links();
    if (links.size === 0) return;
    const stale = [...links.values()].filter((link) => link.gossipVersion !== this.#linksVersion);
    if (stale.length > 0) {
      this.sendPeerList(stale[this.#host.random.int(0, stale.length - 1)]);
    }
  }

  /** Tells `link` our other links (if the protocol has peer lists, and there are any). */
  sendPeerList(link: L): void {
    if (!this.#o.peerLists) return;
    link.gossipVersion = this.#linksVersion;
    const peers: Array<[string, string, string]> = [];
    for (const other of this.#host.links().values()) {
      if (other !== link) peers.push([other.peerGuid, other.peerAddress, other.peerIncarnation]);
    }
    if (peers.length === 0) return;
    this.#host.write(link, {
      destination: "",
      source: this.#o.guid,
      message: {
        [SYSTEM_KEY]: SystemKind.PeerList,
        [SystemField.NodeGuid]: this.#o.guid,
        [SystemField.Peers]: JSON.stringify(peers),
      },
    }, false);
  }

  /** A peer list arrived on `link`. */
  onPeerList(link: L, text: string | undefined): void {
    let entries: unknown;
    try {
      entries = JSON.parse(text ?? "");
    } catch {
      entries = undefined;
    }
    if (!Array.isArray(entries)) {
      this.#host.malformed(link, new ProtocolError("Cannot use peer list: not a JSON array"));
      return;
    }
    const guid = this.#o.guid;
    const links = this.#host.links();
    const linked = new Set<string>([guid]);
    for (const entry of entries.slice(0, 10_000)) {
      if (!Array.isArray(entry) || entry.length < 3) continue;
      const [peer, address, incarnation] = entry;
      if (
        typeof peer !== "string" || typeof address !== "string" || typeof incarnation !== "string"
      ) continue;
      if (peer === "") continue;
      linked.add(peer);
      if (peer === guid || links.has(peer)) continue;
      this.#host.learn(peer, address, incarnation);
    }
    // The sender links everyone it listed, and us: remembered for the cluster picture.
    this.#peerLinks.set(link.peerGuid, linked);
  }

  /** Tells a new link every worker this node hosts. */
  sendWorkerSet(link: L): void {
    const host = this.#host;
    if (!this.#o.workerSets) {
      for (const worker of host.workers()) {
        host.write(link, workerLocation(this.#o.guid, worker), false);
      }
      return;
    }
    host.write(link, {
      destination: "",
      source: "",
      message: {
        [SYSTEM_KEY]: SystemKind.WorkerSet,
        [SystemField.NodeGuid]: this.#o.guid,
        [SystemField.Workers]: JSON.stringify([...host.workers()]),
      },
    }, true);
  }

  /** A worker set arrived on `link` (taken only from the node it describes). */
  onWorkerSet(link: L, fields: Readonly<Record<string, string>>): void {
    const node = fields[SystemField.NodeGuid];
    if (node !== link.peerGuid) return;
    let list: unknown;
    try {
      list = JSON.parse(fields[SystemField.Workers] ?? "");
    } catch {
      list = undefined;
    }
    if (!Array.isArray(list) || !list.every((w) => typeof w === "string" && w !== "")) {
      this.#host.malformed(
        link,
        new ProtocolError("Cannot use worker set: not a JSON array of GUIDs"),
      );
      return;
    }
    this.#host.workerSet(node, new Set(list as string[]));
  }

  /**
   * The cluster picture: `nodes` (this node first), this node's links, and the links its
   * linked peers reported in their latest peer lists (so it may lag by a few intervals). Each
   * pair once, lower GUID first.
   */
  clusterLinks(nodes: readonly ViewNode[]): Array<[string, string]> {
    const known = new Set(nodes.map((node) => node.guid));
    const edges = new Set<string>();
    const links: Array<[string, string]> = [];
    const add = (a: string, b: string) => {
      if (a === b || !known.has(a) || !known.has(b)) return;
      const [x, y] = a < b ? [a, b] : [b, a];
      const key = `${x}\u0000${y}`;
      if (edges.has(key)) return;
      edges.add(key);
      links.push([x, y]);
    };
    const linkMap = this.#host.links();
    for (const peer of linkMap.keys()) add(this.#o.guid, peer);
    for (const [sender, linked] of this.#peerLinks) {
      if (!linkMap.has(sender)) continue;
      for (const other of linked) add(sender, other);
    }
    return links;
  }
}
