/**
 * The link table: every connection a node holds, from dial or accept through the handshake to
 * close, and which of them is the link to each peer.
 *
 * - A connection opens, says hello (the cluster auth's), and reads the peer's: a hello that
 *   takes effect makes it the link to that peer (the node activates it), unless a link to the
 *   peer exists. Then: another incarnation while the link we hold is alive by its own rhythm is
 *   a twin, refused and told why; one whose link went quiet restarted, and replaces it; the
 *   same side dialling again replaces it; both sides dialling at once keep the connection the
 *   lower GUID dialled. Where each side sends on what it dialled (the original's protocol), an
 *   accepted connection is only read, and this node dials back.
 * - Every connection ends through one teardown path, whether this side closes it or the peer
 *   does: the link (if it was one) goes down, a dial that never got through backs off, and the
 *   session hears of it.
 * - Each tick: links silent past the bound are dropped, idle ones get a keepalive (where the
 *   protocol has them), handshakes and dials past their time are abandoned.
 *
 * @module
 */
import type { ClusterAuth } from "./_auth.ts";
import {
  isKeepAliveFrame,
  isKeepAlivePayload,
  KEEPALIVE_FRAME,
  Link,
  type LinkOutput,
  messageFrame,
} from "./_link.ts";
import type { Peer, PeerTable, Seed } from "./_peers.ts";
import type { Sessions } from "./_sessions.ts";
import type { Twins } from "./_twins.ts";
import type { HelloIdentity, WireProtocol } from "./_wire.ts";
import { type Codec, codecByName, jsonCodec } from "./codec.ts";
import type { MapMessage } from "./message.ts";
import type { LinkDownReason, LinkState } from "./_types.ts";
import {
  type Address,
  type Clock,
  formatAddress,
  type Logger,
  type Net,
  type Random,
  type StreamConn,
  type StreamHandlers,
} from "./platform.ts";
import { HandshakeError, type Hello, SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";

/** The counters the link table keeps. */
export interface LinkTableStats {
  framesIn: number;
  protocolErrors: number;
  authFailures: number;
  connectionsRefused: number;
}

/** What the link table needs from its node. */
export interface LinkTableHost {
  readonly net: Net;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly stats: LinkTableStats;
  readonly output: LinkOutput;
  readonly peers: Pick<PeerTable, "get" | "learn" | "dialNow" | "backoff" | "refusedBy">;
  readonly twins: Pick<Twins, "report" | "refuseClaim" | "refusedBy">;
  readonly sessions: Pick<Sessions<Link>, "start" | "sayGoodbye" | "linkClosed">;
  /** Whether the node is running (connections are refused otherwise). */
  running(): boolean;
  /** When the node started (a refusal soon after is most likely our own previous run's). */
  startedAtMs(): number;
  /** A hello took effect on a new connection: make it the link to its peer. */
  activate(link: Link): void;
  /** The link to `link.peerGuid` went down (already out of the table). */
  onLinkDown(link: Link, reason: LinkDownReason, detail: string | undefined): void;
  /** A message arrived on a link (after its handshake). */
  onMessage(link: Link, message: MapMessage): void;
  /** A link or handshake broke the protocol (already logged and counted). */
  onProtocolError(address: string, stage: "handshake" | "frame", error: string): void;
  /** A link replaced another: tell the peer every worker this node hosts again. */
  resendWorkerSet(link: Link): void;
  /** A peer we only read from is gone, and without a link: forget its workers. */
  forgetLocations(guid: string): void;
}

/** The link table's settings (a node's resolved options). Durations in ms. */
export interface LinkTableOptions {
  readonly guid: string;
  readonly incarnation: string;
  readonly codec: Codec;
  readonly protocol: WireProtocol;
  readonly auth: ClusterAuth;
  readonly intervalMs: number;
  readonly peerSilenceMs: number;
  readonly silenceMs: number;
  readonly keepAliveMs: number;
  readonly holderAliveMs: number;
  readonly handshakeTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly maxLinks: number;
  readonly maxPendingHandshakes: number;
  /**
   * Under `"ring"` membership idle links get no keepalives and are not closed for silence: the
   * membership says when a peer is gone (and its link then closes), so a pool of idle links
   * costs nothing. Under `"mesh"` each link watches itself.
   */
  readonly membership: "mesh" | "ring";
}

/** How a teardown treats the socket. */
type SocketEnd = "end" | "destroy" | "closed-by-peer";

/**
 * A node's connections and links: the one place a connection is made, handshaken, made a link
 * (by the node, through `activate`) and torn down. See `_links_test.ts` for it at work with a
 * fake network.
 */
export class LinkTable {
  readonly #host: LinkTableHost;
  readonly #o: LinkTableOptions;
  /** Every connection open or opening. */
  readonly connections: Set<Link> = new Set();
  /** The link to each peer, by GUID, in the order they came up. */
  readonly links: Map<string, Link> = new Map();
  /**
   * Connections peers dialled to us when each side sends on its own (the original protocol):
   * they send on these, we only read.
   */
  readonly #acceptedLinks = new Map<string, Link>();
  /** Accepted connections that were handshaking when last looked at (see maxPendingHandshakes). */
  readonly #inboundHandshakes = new Set<Link>();
  /** Bytes of connections closed so far, in and out. */
  closedBytesIn = 0;
  closedBytesOut = 0;
  #identity: HelloIdentity | undefined;
  #helloFrame: Uint8Array | undefined;
  /** What a hello that took effect does: chosen once from the wire protocol. */
  readonly #onHello: (link: Link, hello: Hello) => void;

  /** An empty table. */
  constructor(host: LinkTableHost, options: LinkTableOptions) {
    this.#host = host;
    this.#o = options;
    this.#onHello = options.protocol.sharedConnection
      ? (link, hello) => this.#onSharedHello(link, hello)
      : (link, hello) => this.#onOneWayHello(link, hello);
  }

  /** The node is listening as `identity`: hellos can be said from now on. */
  start(identity: HelloIdentity): void {
    this.#identity = identity;
    this.#helloFrame = this.#o.protocol.helloFrame(identity);
  }

  /** A snapshot of each link, as the node's state shows it. */
  states(now: number): LinkState[] {
    const states: LinkState[] = [];
    for (const link of this.links.values()) {
      states.push({
        peer: link.peerGuid,
        address: link.peerAddress,
        incarnation: link.peerIncarnation,
        direction: link.direction,
        ageMs: now - link.activeAtMs,
        lastHeardMs: now - link.lastReceivedMs,
        bytesIn: link.bytesIn,
        bytesOut: link.bytesOut,
        framesIn: link.framesIn,
        framesOut: link.framesOut,
        bufferedBytes: link.conn.bufferedBytes,
        unacked: link.session?.window.length ?? 0,
      });
    }
    return states;
  }

  /** Dials `address` for a peer or a seed; returns the connection. */
  dial(address: Address, peer: Peer | undefined, seed: Seed | undefined): Link {
    const link = new Link("out", this.#host.output, this.#o.maxFrameBytes);
    link.peer = peer;
    link.seed = seed;
    link.dialled = formatAddress(address);
    this.connections.add(link);
    link.conn = this.#host.net.connect(address, this.#streamHandlers(link));
    return link;
  }

  /** A peer connected to us: refused at a limit, else greeted. */
  accept(conn: StreamConn): StreamHandlers {
    const host = this.#host;
    const link = new Link("in", host.output, this.#o.maxFrameBytes);
    link.conn = conn;
    if (!host.running()) {
      conn.destroy();
      link.state = "closed";
      return this.#streamHandlers(link);
    }
    // Pruned here rather than at each state change: it never holds more than the limit + 1.
    for (const waiting of this.#inboundHandshakes) {
      if (waiting.state !== "handshaking") this.#inboundHandshakes.delete(waiting);
    }
    const pending = this.#inboundHandshakes.size;
    if (pending >= this.#o.maxPendingHandshakes || this.links.size >= this.#o.maxLinks) {
      host.stats.connectionsRefused++;
      host.log.log("warn", "link.refused", {
        address: formatAddress(conn.remote),
        reason: this.links.size >= this.#o.maxLinks
          ? `${this.links.size} links, the limit`
          : `${pending} handshakes pending, the limit`,
      });
      conn.destroy();
      link.state = "closed";
      return this.#streamHandlers(link);
    }
    this.connections.add(link);
    this.#inboundHandshakes.add(link);
    link.state = "handshaking";
    this.#sendHello(link);
    return this.#streamHandlers(link);
  }

  #streamHandlers(link: Link): StreamHandlers {
    return {
      onOpen: () => {
        if (link.state !== "connecting") return;
        link.state = "handshaking";
        link.lastReceivedMs = this.#host.clock.now();
        this.#sendHello(link);
      },
      onData: (_conn, data) => this.#onBytes(link, data),
      onClose: (_conn, reason, error) => this.#onClosed(link, reason, error),
    };
  }

  /** Our hello; with a cluster key, one of its own with a fresh nonce for the peer to sign. */
  #sendHello(link: Link): void {
    link.writeRaw(
      this.#o.auth.hello(link, this.#helloFrame!, this.#identity!, this.#host.random),
    );
  }

  #onBytes(link: Link, data: Uint8Array): void {
    if (link.state === "closed" || link.refused) return;
    link.bytesIn += data.length;
    link.lastReceivedMs = this.#host.clock.now();
    if (link.state === "active" && link.decoder.bufferedBytes === 0) {
      if (isKeepAliveFrame(link.peerCodec.name, data)) {
        link.framesIn++;
        this.#host.stats.framesIn++;
        if (link.peer !== undefined) link.peer.lastHeardMs = link.lastReceivedMs;
        return;
      }
    }
    let frames: Uint8Array[];
    try {
      frames = link.decoder.push(data);
    } catch (error) {
      const preceding = (error as { precedingFrames?: Uint8Array[] }).precedingFrames ?? [];
      for (const frame of preceding) {
        this.#onFrame(link, frame);
        if (link.closed) return;
      }
      this.protocolFailure(link, link.state === "active" ? "frame" : "handshake", error);
      return;
    }
    for (const frame of frames) {
      this.#onFrame(link, frame);
      if (link.closed) return;
    }
  }

  #onFrame(link: Link, frame: Uint8Array): void {
    if (link.state === "handshaking") {
      this.#onHandshake(link, frame);
      return;
    }
    link.framesIn++;
    this.#host.stats.framesIn++;
    const peer = link.peer;
    if (peer !== undefined) peer.lastHeardMs = link.lastReceivedMs;
    if (isKeepAlivePayload(link.peerCodec.name, frame)) return;
    let message: MapMessage;
    try {
      message = link.peerCodec.decode(frame);
    } catch (error) {
      this.protocolFailure(link, "frame", error);
      return;
    }
    this.#host.onMessage(link, message);
  }

  /** A handshake frame: the cluster auth says whether the hello takes effect (see `_auth.ts`). */
  #onHandshake(link: Link, frame: Uint8Array): void {
    const step = this.#o.auth.handshake(
      link,
      frame,
      (bytes) =>
        this.#o.protocol.readHello(bytes, {
          direction: link.direction,
          dialled: link.dialled,
          known: (guid) => this.#host.peers.get(guid),
        }),
    );
    switch (step.kind) {
      case "hello":
        this.#onHello(link, step.hello);
        return;
      case "reply":
        link.writeRaw(step.frame);
        return;
      case "malformed":
        this.protocolFailure(link, "handshake", step.error);
        return;
      case "refused":
        this.#host.stats.authFailures++;
        this.protocolFailure(link, "handshake", new HandshakeError(step.reason));
        return;
    }
  }

  #onSharedHello(link: Link, hello: Hello): void {
    const o = this.#o;
    if (hello.guid === o.guid) {
      if (hello.incarnation === o.incarnation) {
        // We dialled ourselves (a seed or a heard address that is our own): never again.
        if (link.seed) link.seed.self = true;
        this.close(link, "local", true);
      } else {
        this.#host.twins.report(hello.guid, hello.address, hello.incarnation);
        this.protocolFailure(
          link,
          "handshake",
          new HandshakeError(
            `Cannot link: node ${hello.address} claims this node's GUID ${hello.guid}`,
          ),
        );
      }
      return;
    }
    link.peerGuid = hello.guid;
    link.peerIncarnation = hello.incarnation;
    link.peerAddress = hello.address;
    link.peerCodec = codecByName(hello.codec);
    if (link.seed) link.seed.guid = hello.guid;
    const existing = this.links.get(hello.guid);
    if (existing !== undefined) {
      if (existing.peerIncarnation !== hello.incarnation) {
        if (this.#host.clock.now() - existing.lastReceivedMs <= o.holderAliveMs) {
          // The link we hold is alive by its own rhythm: the first incarnation keeps it.
          this.#refuseClaim(link, hello, existing);
          return;
        }
        this.close(existing, "peer-restarted", false, `now incarnation ${hello.incarnation}`);
      } else if (existing.direction === link.direction) {
        // The same side dialled again: it no longer believes in the old link.
        this.close(existing, "replaced", false);
      } else {
        // Both dialled at once: keep the connection the lower GUID dialled, on both sides.
        const keepNew = (link.direction === "out") === (o.guid < hello.guid);
        if (!keepNew) {
          this.detach(link);
          this.close(link, "local", true);
          return;
        }
        this.#swap(existing, link);
        return;
      }
    }
    this.#host.activate(link);
  }

  /**
   * An original-protocol link: like the Go original, each side sends on the connection it
   * dialled and reads the one it accepted, so a pair holds two connections.
   */
  #onOneWayHello(link: Link, hello: Hello): void {
    const host = this.#host;
    if (hello.guid === this.#o.guid) {
      // Our own GUID: we dialled ourselves, or a twin does (heartbeats report twins).
      if (link.seed) link.seed.self = true;
      this.close(link, "local", true);
      return;
    }
    link.peerGuid = hello.guid;
    link.peerIncarnation = hello.incarnation;
    link.peerAddress = hello.address;
    link.peerCodec = jsonCodec;
    if (link.seed) link.seed.guid = hello.guid;
    if (link.direction === "in") {
      const previous = this.#acceptedLinks.get(hello.guid);
      this.#acceptedLinks.set(hello.guid, link);
      if (previous !== undefined) this.close(previous, "replaced", true);
      link.state = "active";
      link.activeAtMs = host.clock.now();
      const peer = host.peers.get(hello.guid) ??
        host.peers.learn(hello.guid, hello.address, hello.incarnation, "link");
      link.peer = peer;
      // We send on a connection of our own: dial back if there is none yet.
      host.peers.dialNow(peer);
      return;
    }
    const existing = this.links.get(hello.guid);
    if (existing !== undefined) this.close(existing, "replaced", false);
    host.activate(link);
  }

  /**
   * Refuses a hello from `hello.guid` while we hold a live link to another incarnation of it:
   * a twin (a cloned machine, a copied config) must not make us drop the node we link. The
   * claimant is told why (a `Refused` frame) and backs off; the holder is probed, so if it
   * died in fact (a restart whose old connection lingers) the next try gets through. A first
   * refusal is logged quietly (a restart can race its own old link); from the second on it is
   * a `duplicate-guid` report.
   */
  #refuseClaim(link: Link, hello: Hello, holder: Link): void {
    this.probe(holder);
    const count = this.#host.twins.refuseClaim(hello, holder.peerAddress);
    link.write(messageFrame(this.#o.codec, {
      destination: hello.guid,
      source: "",
      message: {
        [SYSTEM_KEY]: SystemKind.Refused,
        [SystemField.Reason]: "duplicate-guid",
        [SystemField.NodeGuid]: this.#o.guid,
        [SystemField.HostEndpoint]: holder.peerAddress,
        [SystemField.Incarnation]: holder.peerIncarnation,
        [SystemField.Count]: String(count),
      },
    }));
    link.flush();
    link.refused = true;
  }

  /** A peer refused our link: it holds a live link to another node with our GUID. */
  onRefused(link: Link, fields: Readonly<Record<string, string>>): void {
    const host = this.#host;
    const now = host.clock.now();
    const holder = fields[SystemField.HostEndpoint] ?? "";
    const incarnation = fields[SystemField.Incarnation] ?? "";
    const count = Number(fields[SystemField.Count] ?? "1");
    const detail =
      `${link.peerGuid} holds a live link to ${holder} (incarnation ${incarnation}) under this node's GUID ${this.#o.guid}`;
    const peer = link.peer;
    this.close(link, "duplicate-guid", true, detail);
    host.twins.refusedBy({
      peer: link.peerGuid,
      guid: this.#o.guid,
      holder,
      incarnation,
      count,
      soonAfterStart: now - host.startedAtMs() <= 2 * this.#o.silenceMs,
      detail,
    });
    host.peers.refusedBy(peer, now);
  }

  /** A keepalive on `link`, at most once an interval: a dead link's host answers with a reset. */
  probe(link: Link): void {
    const now = this.#host.clock.now();
    if (now - link.probedAtMs < this.#o.intervalMs) return;
    link.probedAtMs = now;
    link.writeRaw(KEEPALIVE_FRAME[this.#o.codec.name]);
  }

  /** Replaces the active link with a duplicate without a link-down: the peer stays linked. */
  #swap(old: Link, next: Link): void {
    const host = this.#host;
    this.detach(old);
    next.state = "active";
    next.activeAtMs = host.clock.now();
    next.peer = old.peer ?? host.peers.get(next.peerGuid);
    if (next.peer) {
      next.peer.pending = undefined;
      next.peer.linked = true;
    }
    this.links.set(next.peerGuid, next);
    // The session moves to the connection both sides keep: held messages go along, and what
    // the old one carried unconfirmed is resent there (the peer drops what it already took).
    next.held = old.held;
    old.held = [];
    if (this.#o.protocol.sessions) host.sessions.start(next);
    this.close(old, "local", true);
    // What we said on the old connection may never have been read (the peer may be dropping
    // that very connection as the duplicate): say it again on the one both sides keep, as the
    // whole set, so that a removal lost with the old connection is not missed either.
    host.resendWorkerSet(next);
  }

  /** Unhooks a connection from its peer's or seed's pending dial. */
  detach(link: Link): void {
    if (link.peer?.pending === link) link.peer.pending = undefined;
    if (link.seed?.pending === link) link.seed.pending = undefined;
  }

  /** The peer's side closed (or the connection failed). */
  #onClosed(link: Link, reason: LinkDownReason, error?: Error): void {
    if (link.state === "closed") return;
    if (reason === "eof" && link.decoder.bufferedBytes > 0) {
      // The stream ended inside a frame: that peer sent a truncated frame.
      try {
        link.decoder.end();
      } catch (truncated) {
        const stage = link.state === "active" ? "frame" : "handshake";
        const text = truncated instanceof Error ? truncated.message : String(truncated);
        const address = link.peerAddress || formatAddress(link.conn.remote);
        this.#host.stats.protocolErrors++;
        this.#host.log.log("warn", "link.protocol-error", { address, stage, error: text });
        this.#host.onProtocolError(address, stage, text);
      }
    }
    this.#teardown(link, reason, "closed-by-peer", error?.message);
  }

  /** Closes a connection from this side; the link goes down at once if it was one. */
  close(link: Link, reason: LinkDownReason, graceful: boolean, detail?: string): void {
    if (link.state === "closed") return;
    this.#teardown(link, reason, graceful ? "end" : "destroy", detail);
  }

  /** Closes every connection, saying goodbye on links with sessions: this node closes. */
  closeAll(): void {
    for (const link of [...this.connections]) {
      if (link.state === "active" && this.#o.protocol.sessions) {
        // Says how many of the peer's messages we took: it then knows the fate of each.
        this.#host.sessions.sayGoodbye(link, this.#o.guid);
      }
      this.close(link, "closing", true);
    }
  }

  /** The one way a connection ends. */
  #teardown(link: Link, reason: LinkDownReason, socket: SocketEnd, detail?: string): void {
    const host = this.#host;
    const wasActive = this.links.get(link.peerGuid) === link;
    const handshaken = link.state === "active";
    link.state = "closed";
    this.closedBytesIn += link.bytesIn;
    this.closedBytesOut += link.bytesOut;
    this.connections.delete(link);
    this.detach(link);
    this.#dropAccepted(link);
    if (socket === "end") {
      link.flush();
      link.conn.end();
    } else if (socket === "destroy") {
      link.discardOutput();
      link.conn.destroy();
    }
    if (wasActive) {
      this.links.delete(link.peerGuid);
      if (link.peer !== undefined) link.peer.linked = false;
      host.onLinkDown(link, reason, detail);
    } else if (
      !handshaken &&
      (socket === "closed-by-peer" || (reason !== "local" && reason !== "closing"))
    ) {
      this.#dialFailed(link);
    }
    host.sessions.linkClosed(link, reason);
  }

  #dialFailed(link: Link): void {
    if (link.direction !== "out") return;
    if (link.peer) this.#host.peers.backoff(link.peer);
    if (link.seed) this.#host.peers.backoff(link.seed);
  }

  /** Forgets a connection a peer dialled to us that we only read; without a link, its workers. */
  #dropAccepted(link: Link): void {
    if (this.#acceptedLinks.get(link.peerGuid) !== link) return;
    this.#acceptedLinks.delete(link.peerGuid);
    if (!this.links.has(link.peerGuid)) this.#host.forgetLocations(link.peerGuid);
  }

  /** A link or handshake broke the protocol: counted, logged, reported, closed at once. */
  protocolFailure(link: Link, stage: "handshake" | "frame", error: unknown): void {
    const host = this.#host;
    host.stats.protocolErrors++;
    const text = error instanceof Error ? error.message : String(error);
    const address = link.state === "active" ? link.peerAddress : formatAddress(link.conn.remote);
    host.log.log("warn", "link.protocol-error", { address, stage, error: text });
    host.onProtocolError(address, stage, text);
    this.close(link, "protocol-error", false, text);
  }

  /**
   * Housekeeping: links silent past the bound are dropped, idle ones get a keepalive (where the
   * protocol has them, and not under ring membership); handshakes and dials past their time are
   * abandoned.
   */
  tick(now: number): void {
    const o = this.#o;
    const keepAlives = o.protocol.keepAlives;
    const watchLinks = o.membership === "mesh";
    if (!watchLinks && this.#allActive()) return; // under ring membership, nothing to look at
    for (const link of [...this.connections]) {
      if (link.state === "active") {
        if (!watchLinks) continue;
        // Without keepalives (the original's), a peer's heartbeats vouch for its link.
        const heardMs = keepAlives
          ? link.lastReceivedMs
          : Math.max(link.lastReceivedMs, link.peer?.lastHeardMs ?? 0);
        if (now - heardMs > o.peerSilenceMs) {
          this.close(link, "silence", false, `nothing heard for ${Math.round(now - heardMs)} ms`);
        } else if (keepAlives && now - link.lastSentMs >= o.keepAliveMs) {
          link.writeRaw(KEEPALIVE_FRAME[o.codec.name]);
        }
      } else if (link.state === "handshaking") {
        if (link.refused) {
          if (now - link.createdAtMs > o.handshakeTimeoutMs) this.close(link, "local", true);
        } else if (now - link.createdAtMs > o.handshakeTimeoutMs) {
          this.protocolFailure(
            link,
            "handshake",
            new HandshakeError("Cannot link: handshake timed out"),
          );
        }
      } else if (link.state === "connecting") {
        if (now - link.createdAtMs > o.connectTimeoutMs) {
          this.close(link, "timeout", false, "connect timed out");
        }
      }
    }
  }

  #allActive(): boolean {
    for (const link of this.connections) if (link.state !== "active") return false;
    return true;
  }
}
