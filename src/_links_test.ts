import { test } from "node:test";
import assert from "node:assert/strict";
import { LinkTable, type LinkTableOptions } from "./_links.ts";
import { type Link, LinkOutput } from "./_link.ts";
import { NO_CLUSTER_AUTH } from "./_auth.ts";
import { NATIVE_PROTOCOL } from "./_wire.ts";
import { jsonCodec, msgpackCodec } from "./codec.ts";
import { ORIGINAL_PROTOCOL } from "./_wire.ts";
import { encodeFrame, FrameDecoder } from "./framing.ts";
import { createMessage } from "./message.ts";
import type { Address, StreamConn, StreamHandlers } from "./platform.ts";
import { SYSTEM_KEY, SystemKind } from "./system.ts";
import type { Peer, Seed } from "./_peers.ts";

interface FakeConn extends StreamConn {
  written: Uint8Array[];
  ended: boolean;
  destroyed: boolean;
}

function fakeConn(port: number): FakeConn {
  const conn = {
    written: [] as Uint8Array[],
    ended: false,
    destroyed: false,
    remote: { host: "10.0.0.2", port },
    bufferedBytes: 0,
    write: (bytes: Uint8Array) => void conn.written.push(bytes.slice()),
    end: () => void (conn.ended = true),
    destroy: () => void (conn.destroyed = true),
  };
  return conn as unknown as FakeConn;
}

const OPTIONS: LinkTableOptions = {
  guid: "M",
  incarnation: "m1",
  codec: msgpackCodec,
  protocol: NATIVE_PROTOCOL,
  auth: NO_CLUSTER_AUTH,
  intervalMs: 1000,
  peerSilenceMs: 3000,
  silenceMs: 3000,
  keepAliveMs: 1200,
  holderAliveMs: 2300,
  handshakeTimeoutMs: 2000,
  connectTimeoutMs: 2000,
  maxFrameBytes: 1 << 20,
  maxLinks: 8,
  maxPendingHandshakes: 2,
  membership: "mesh",
};

function world(options: Partial<LinkTableOptions> = {}) {
  let nowMs = 0;
  const deferred: Array<() => void> = [];
  const clock = {
    now: () => nowMs,
    defer: (fn: () => void) => deferred.push(fn),
  } as never;
  const stats = {
    framesIn: 0,
    framesOut: 0,
    protocolErrors: 0,
    authFailures: 0,
    connectionsRefused: 0,
  };
  const events: string[] = [];
  const dialled: Array<{ conn: FakeConn; handlers: StreamHandlers }> = [];
  const table: LinkTable = new LinkTable({
    net: {
      connect: (address: Address, handlers: StreamHandlers) => {
        const conn = fakeConn(address.port);
        dialled.push({ conn, handlers });
        return conn;
      },
    } as never,
    clock,
    random: { next: () => 0.5, int: () => 0, fill: (b: Uint8Array) => b } as never,
    log: { log: () => {} } as never,
    stats,
    output: new LinkOutput(clock, stats),
    peers: {
      get: () => undefined,
      learn: (guid: string) => ({ guid }) as Peer,
      dialNow: (peer: Peer) => events.push(`dial back ${peer.guid}`),
      backoff: (target: { backoffMs: number }) => {
        target.backoffMs = 1;
        events.push("backoff");
      },
      refusedBy: () => events.push("refused-backoff"),
    } as never,
    twins: {
      report: (guid: string) => events.push(`twin ${guid}`),
      refuseClaim: () => 1,
      refusedBy: () => events.push("refused-by"),
    } as never,
    sessions: {
      start: () => {},
      sayGoodbye: (link: Link) => events.push(`goodbye ${link.peerGuid}`),
      linkClosed: (link: Link, reason: string) => events.push(`closed ${link.peerGuid} ${reason}`),
    } as never,
    running: () => true,
    startedAtMs: () => 0,
    activate: (link) => {
      table.detach(link);
      link.state = "active";
      table.links.set(link.peerGuid, link);
      events.push(`up ${link.peerGuid} ${link.direction}`);
    },
    onLinkDown: (link, reason) => events.push(`down ${link.peerGuid} ${reason}`),
    onMessage: (link, message) => events.push(`message ${link.peerGuid} ${message.destination}`),
    onProtocolError: (_address, stage, error) => events.push(`protocol-error ${stage}: ${error}`),
    resendWorkerSet: (link) => events.push(`worker-set ${link.peerGuid}`),
    forgetLocations: (guid) => events.push(`forget ${guid}`),
  }, { ...OPTIONS, ...options });
  table.start({ guid: "M", incarnation: "m1", codec: "msgpack", address: "10.0.0.1:8888" });
  const accept = (port = 5000) => {
    const conn = fakeConn(port);
    const handlers = table.accept(conn);
    return { conn, handlers };
  };
  const hello = (guid: string, incarnation = `${guid}-1`) =>
    NATIVE_PROTOCOL.helloFrame({ guid, incarnation, codec: "msgpack", address: `${guid}:8888` });
  return {
    table,
    events,
    stats,
    dialled,
    accept,
    hello,
    at: (ms: number) => nowMs = ms,
    endTurn: () => {
      while (deferred.length > 0) deferred.shift()!();
    },
  };
}

const payloads = (conn: FakeConn) => {
  const decoder = new FrameDecoder();
  return conn.written.flatMap((chunk) => decoder.push(chunk));
};

test("an accepted connection says hello, and the peer's hello makes it a link", () => {
  const w = world();
  const { conn, handlers } = w.accept();
  assert.equal(w.table.connections.size, 1);
  assert.equal(payloads(conn).length, 1, "our hello went out at once");
  handlers.onData!(conn, w.hello("B"));
  assert.deepEqual(w.events, ["up B in"]);
  assert.equal(w.table.links.get("B")?.peerAddress, "B:8888");
  const frame = encodeFrame(msgpackCodec.encode(createMessage("w1", { k: "v" })));
  handlers.onData!(conn, frame);
  assert.deepEqual(w.events.slice(1), ["message B w1"]);
});

test("handshakes past the pending limit are refused at once", () => {
  const w = world();
  w.accept();
  w.accept();
  const third = w.accept();
  assert.equal(third.conn.destroyed, true);
  assert.equal(w.stats.connectionsRefused, 1);
  assert.equal(w.table.connections.size, 2);
});

test("a dial to ourselves marks the seed as this node and is never a link", () => {
  const w = world();
  const seed: Seed = {
    address: { host: "10.0.0.1", port: 8888 },
    guid: undefined,
    self: false,
    backoffMs: 0,
    nextDialAtMs: 0,
    pending: undefined,
  };
  const link = w.table.dial(seed.address, undefined, seed);
  seed.pending = link;
  const { conn, handlers } = w.dialled[0];
  handlers.onOpen!(conn);
  handlers.onData!(conn, w.hello("M", "m1"));
  assert.equal(seed.self, true);
  assert.equal(seed.pending, undefined);
  assert.equal(conn.ended, true);
  assert.equal(w.table.links.size, 0);
  assert.ok(!w.events.includes("backoff"), "closing our own dial is no failure");
});

test("another node claiming our GUID is a twin and a protocol error", () => {
  const w = world();
  const { conn, handlers } = w.accept();
  handlers.onData!(conn, w.hello("M", "other"));
  assert.deepEqual(w.events, [
    "twin M",
    "protocol-error handshake: Cannot link: node M:8888 claims this node's GUID M",
    "closed  protocol-error",
  ]);
  assert.equal(conn.destroyed, true);
});

test("a second incarnation while the link is alive is refused and told why", () => {
  const w = world();
  const first = w.accept(5000);
  first.handlers.onData!(first.conn, w.hello("B", "b1"));
  const twin = w.accept(5001);
  twin.handlers.onData!(twin.conn, w.hello("B", "b2"));
  const refused = payloads(twin.conn).map((p) => {
    try {
      return msgpackCodec.decode(p).message[SYSTEM_KEY];
    } catch {
      return "hello";
    }
  });
  assert.deepEqual(refused, ["hello", SystemKind.Refused]);
  assert.equal(w.table.links.get("B")?.peerIncarnation, "b1");
  // What the twin sends meanwhile is not read.
  twin.handlers.onData!(twin.conn, encodeFrame(msgpackCodec.encode(createMessage("w", {}))));
  assert.ok(!w.events.some((e) => e.startsWith("message")));
});

test("a peer that restarted after its link went quiet replaces it", () => {
  const w = world();
  const first = w.accept(5000);
  first.handlers.onData!(first.conn, w.hello("B", "b1"));
  w.at(2301);
  const again = w.accept(5001);
  again.handlers.onData!(again.conn, w.hello("B", "b2"));
  assert.deepEqual(w.events.slice(1), [
    "down B peer-restarted",
    "closed B peer-restarted",
    "up B in",
  ]);
  assert.equal(first.conn.destroyed, true);
});

test("when both sides dial at once, the connection the lower GUID dialled is kept", () => {
  const w = world(); // we are M; Z is higher: our dial is kept
  const incoming = w.accept(5000);
  incoming.handlers.onData!(incoming.conn, w.hello("Z"));
  w.table.dial({ host: "10.0.0.26", port: 8888 }, undefined, undefined);
  const { conn, handlers } = w.dialled[0];
  handlers.onOpen!(conn);
  handlers.onData!(conn, w.hello("Z"));
  assert.equal(w.table.links.get("Z")?.direction, "out");
  assert.deepEqual(w.events, ["up Z in", "closed Z local", "worker-set Z"]);
  assert.equal(incoming.conn.ended, true, "the old one closes gracefully, without a link-down");
});

test("every end goes one way: link down once, the session told, a failed dial backed off", () => {
  const w = world();
  const { conn, handlers } = w.accept();
  handlers.onData!(conn, w.hello("B"));
  handlers.onClose!(conn, "reset");
  handlers.onClose!(conn, "reset");
  assert.deepEqual(w.events.slice(1), ["down B reset", "closed B reset"]);
  const peer = { guid: "C", backoffMs: 0 } as unknown as Peer;
  w.table.dial({ host: "10.0.0.3", port: 8888 }, peer, undefined);
  const dial = w.dialled[0];
  dial.handlers.onClose!(dial.conn, "refused");
  assert.deepEqual(w.events.slice(3), ["backoff", "closed  refused"]);
  assert.equal(w.table.connections.size, 0);
  assert.equal(w.table.closedBytesOut > 0, true);
});

test("a stream ending inside a frame is a protocol error", () => {
  const w = world();
  const { conn, handlers } = w.accept();
  handlers.onData!(conn, w.hello("B"));
  handlers.onData!(conn, new Uint8Array([9, 0, 0, 0, 1]));
  handlers.onClose!(conn, "eof");
  assert.equal(w.stats.protocolErrors, 1);
  assert.match(w.events[1], /^protocol-error frame: /);
  assert.deepEqual(w.events.slice(2), ["down B eof", "closed B eof"]);
});

test("ticks keep idle links alive, drop silent ones, abandon slow handshakes and dials", () => {
  const w = world();
  const linked = w.accept(5000);
  linked.handlers.onData!(linked.conn, w.hello("B"));
  const slow = w.accept(5001);
  w.table.dial({ host: "10.0.0.4", port: 8888 }, undefined, undefined);
  w.at(1200);
  w.table.tick(1200);
  const keepAlives = linked.conn.written.length;
  assert.equal(keepAlives, 2, "the hello, then a keepalive");
  w.at(2001);
  linked.handlers.onData!(linked.conn, encodeFrame(msgpackCodec.encode(createMessage("w", {}))));
  w.table.tick(2001);
  assert.equal(slow.conn.destroyed, true);
  assert.match(w.events.find((e) => e.startsWith("protocol-error"))!, /handshake timed out/);
  assert.equal(w.dialled[0].conn.destroyed, true, "the dial timed out");
  w.at(5002);
  w.table.tick(5002);
  assert.ok(w.events.includes("down B silence"));
});

test("under ring membership idle links get no keepalives and are never dropped for silence", () => {
  const w = world({ membership: "ring" });
  const linked = w.accept(5000);
  linked.handlers.onData!(linked.conn, w.hello("B"));
  const slow = w.accept(5001);
  w.at(1200);
  w.table.tick(1200);
  assert.equal(linked.conn.written.length, 1, "only the hello");
  w.at(60_000);
  w.table.tick(60_000);
  assert.equal(linked.conn.written.length, 1, "still only the hello");
  assert.equal(linked.conn.destroyed, false);
  assert.ok(!w.events.some((e) => e.includes("silence")), "no silence verdict");
  assert.equal(slow.conn.destroyed, true, "a handshake still times out");
});

test("closing all says goodbye on links first", () => {
  const w = world();
  const a = w.accept(5000);
  a.handlers.onData!(a.conn, w.hello("B"));
  w.accept(5001);
  w.table.closeAll();
  assert.deepEqual(w.events.slice(1), [
    "goodbye B",
    "down B closing",
    "closed B closing",
    "closed  closing",
  ]);
});

test("on the original protocol an accepted connection is only read, and we dial back", () => {
  const w = world({ protocol: ORIGINAL_PROTOCOL, codec: jsonCodec });
  const { conn, handlers } = w.accept();
  assert.equal(new TextDecoder().decode(payloads(conn)[0]), "M", "the hello is the GUID alone");
  handlers.onData!(conn, encodeFrame(new TextEncoder().encode("B")));
  assert.deepEqual(w.events, ["dial back B"]);
  assert.equal(w.table.links.size, 0, "not a link: we send on a connection of our own");
  handlers.onData!(conn, encodeFrame(jsonCodec.encode(createMessage("w1", {}))));
  assert.deepEqual(w.events.slice(1), ["message B w1"]);
  handlers.onClose!(conn, "eof");
  assert.deepEqual(w.events.slice(2), ["forget B", "closed B eof"]);
});

test("the state shows each link with its age, silence and traffic", () => {
  const w = world();
  const { conn, handlers } = w.accept();
  handlers.onData!(conn, w.hello("B"));
  w.at(500);
  const [state] = w.table.states(500);
  assert.equal(state.peer, "B");
  assert.equal(state.direction, "in");
  assert.equal(state.lastHeardMs, 500);
  assert.ok(state.bytesIn > 0 && state.bytesOut > 0);
  assert.equal(state.unacked, 0);
});
