import { test } from "node:test";
import assert from "node:assert/strict";
import { Simulation } from "./simulation.ts";
import type { Address, CloseReason, Platform, StreamConn, Timer } from "../src/platform.ts";

const text = (data: Uint8Array) => new TextDecoder().decode(data);
const bytes = (value: string) => new TextEncoder().encode(value);

interface Inbox {
  got: Array<{ text: string; from: Address; atMs: number }>;
}

function receiver(port: number, bindHost = "0.0.0.0", reuseAddress = false) {
  return (platform: Platform): Inbox => {
    const inbox: Inbox = { got: [] };
    platform.net.bindDatagram({ host: bindHost, port, reuseAddress }, {
      onMessage: (data, from) =>
        inbox.got.push({ text: text(data), from, atMs: platform.clock.now() }),
    });
    return inbox;
  };
}

function sender(platform: Platform) {
  const socket = platform.net.bindDatagram({ host: "0.0.0.0", port: 0, broadcast: true }, {
    onMessage() {},
  });
  return { send: (value: string, to: Address) => socket.send(bytes(value), to), socket };
}

/** A server that records what each accepted connection receives and how it closes. */
function recordingServer(port: number) {
  return (platform: Platform) => {
    const state = {
      received: [] as string[],
      closes: [] as CloseReason[],
      conns: [] as StreamConn[],
    };
    platform.net.listen({ host: "0.0.0.0", port }, {
      onConnection(conn) {
        state.conns.push(conn);
        return {
          onData: (_conn, data) => void state.received.push(text(data)),
          onClose: (_conn, reason) => void state.closes.push(reason),
        };
      },
    });
    return state;
  };
}

function dialler(to: () => Address) {
  return (platform: Platform) => {
    const state = {
      opened: false,
      closes: [] as CloseReason[],
      errors: [] as string[],
      received: [] as string[],
      conn: undefined as StreamConn | undefined,
    };
    state.conn = platform.net.connect(to(), {
      onOpen: () => void (state.opened = true),
      onData: (_conn, data) => void state.received.push(text(data)),
      onClose: (_conn, reason, error) => {
        state.closes.push(reason);
        if (error) state.errors.push(error.message);
      },
    });
    return state;
  };
}

test("datagrams: a unicast datagram arrives within the latency bounds", () => {
  const sim = new Simulation({ seed: 1, latencyMsMin: 2, latencyMsMax: 4 });
  const b = sim.addHost("b", receiver(9999));
  const a = sim.addHost("a", sender);
  sim.run(1);
  const sentAt = sim.now;
  a.app!.send("hello", { host: b.address, port: 9999 });
  sim.run(10);
  assert.equal(b.app!.got.length, 1);
  assert.equal(b.app!.got[0].text, "hello");
  assert.equal(b.app!.got[0].from.host, a.address);
  const delay = b.app!.got[0].atMs - sentAt;
  assert.ok(delay >= 2 && delay <= 4, `delay ${delay}`);
});

test("datagrams: a subnet broadcast reaches every host bound to the port, the sender included, and no other subnet", () => {
  const sim = new Simulation({ seed: 2 });
  const hosts = [0, 1, 2].map((i) => sim.addHost(`r${i}`, receiver(9999)));
  const other = sim.addHost("other", receiver(9999), { subnet: "10.1.0.0/16" });
  const deaf = sim.addHost("deaf", receiver(7777));
  const s = sim.addHost("s", (platform) => {
    const inbox = receiver(9999)(platform);
    const socket = platform.net.bindDatagram({ host: "0.0.0.0", port: 0, broadcast: true }, {
      onMessage() {},
    });
    return { inbox, socket };
  });
  sim.run(1);
  s.app!.socket.send(bytes("all"), { host: "10.0.255.255", port: 9999 });
  sim.run(20);
  for (const host of hosts) assert.deepEqual(host.app!.got.map((g) => g.text), ["all"]);
  assert.deepEqual(s.app!.inbox.got.map((g) => g.text), ["all"]);
  assert.equal(other.app!.got.length, 0);
  assert.equal(deaf.app!.got.length, 0);
});

test("datagrams: sockets sharing a port with reuseAddress all get broadcasts; unicast goes to the last bound", () => {
  const sim = new Simulation({ seed: 3 });
  const shared = sim.addHost("shared", (platform) => [
    receiver(9999, "0.0.0.0", true)(platform),
    receiver(9999, "0.0.0.0", true)(platform),
  ]);
  const s = sim.addHost("s", sender);
  sim.run(1);
  s.app!.send("b", { host: "10.0.255.255", port: 9999 });
  s.app!.send("u", { host: shared.address, port: 9999 });
  sim.run(20);
  assert.deepEqual(shared.app![0].got.map((g) => g.text), ["b"]);
  assert.deepEqual(shared.app![1].got.map((g) => g.text).sort(), ["b", "u"]);
});

test("datagrams: unicast follows a socket bound or closed after earlier datagrams went to another", () => {
  const sim = new Simulation({ seed: 5 });
  const got: string[] = [];
  const sockets: { close(): void }[] = [];
  const host = sim.addHost("h", () => undefined);
  const bind = (name: string, bindHost: string) =>
    sockets.push(
      host.platform!.net.bindDatagram({ host: bindHost, port: 7000, reuseAddress: true }, {
        onMessage: (data) => void got.push(`${name}:${text(data)}`),
      }),
    );
  const s = sim.addHost("s", sender);
  bind("any", "0.0.0.0");
  sim.run(1);
  for (const value of ["1", "2"]) { // one at a time: datagrams may pass each other
    s.app!.send(value, { host: host.address, port: 7000 });
    sim.run(20);
  }
  bind("exact", host.address); // an exact address beats the wildcard from now on
  sim.run(1);
  s.app!.send("3", { host: host.address, port: 7000 });
  sim.run(20);
  sockets[1].close(); // and with it gone, the wildcard gets them again
  s.app!.send("4", { host: host.address, port: 7000 });
  sim.run(20);
  sockets[0].close();
  s.app!.send("5", { host: host.address, port: 7000 });
  sim.run(20);
  assert.deepEqual(got, ["any:1", "any:2", "exact:3", "any:4"]);
  assert.equal(sim.stats.datagramsDropped, 1, "no socket left: dropped");
});

test("datagrams: a port's one wildcard socket gets unicast to each of the host's addresses, and an exact socket bound later takes its address only", () => {
  const sim = new Simulation({ seed: 6 });
  const got: string[] = [];
  const host = sim.addHost("h", () => undefined);
  const bind = (name: string, bindHost: string) =>
    host.platform!.net.bindDatagram({ host: bindHost, port: 7001, reuseAddress: true }, {
      onMessage: (data) => void got.push(`${name}:${text(data)}`),
    });
  bind("any", "0.0.0.0");
  sim.run(1);
  // The host sends to itself by its address and by loopback, turn about.
  const self = host.platform!.net.bindDatagram({ host: "0.0.0.0", port: 0 }, { onMessage() {} });
  const to = [{ host: host.address, port: 7001 }, { host: "127.0.0.1", port: 7001 }];
  for (let i = 0; i < 4; i++) {
    self.send(bytes(`${i}`), to[i % 2]);
    sim.run(20);
  }
  bind("exact", host.address);
  sim.run(1);
  for (let i = 4; i < 8; i++) {
    self.send(bytes(`${i}`), to[i % 2]);
    sim.run(20);
  }
  assert.deepEqual(got, [
    "any:0",
    "any:1",
    "any:2",
    "any:3",
    "exact:4",
    "any:5",
    "exact:6",
    "any:7",
  ]);
});

test("datagrams: an address that had no host gets datagrams once a host is added there", () => {
  const sim = new Simulation({ seed: 8 });
  const a = sim.addHost("a", sender);
  sim.run(1);
  const to = { host: "10.0.0.2", port: 9999 }; // the next host's address
  a.app!.send("before", to);
  sim.run(20);
  assert.equal(sim.stats.datagramsDropped, 1);
  const b = sim.addHost("b", receiver(9999));
  assert.equal(b.address, to.host);
  sim.run(1);
  a.app!.send("after", to);
  sim.run(20);
  assert.deepEqual(b.app!.got.map((g) => g.text), ["after"]);
});

test("datagrams: datagrams held by a pause and a hold arrive intact while many others come and go", () => {
  const sim = new Simulation({ seed: 7 });
  const b = sim.addHost("b", receiver(9999));
  const c = sim.addHost("c", receiver(9999));
  const d = sim.addHost("d", receiver(9999));
  const a = sim.addHost("a", sender);
  sim.pause("b");
  sim.hold("a", "d");
  a.app!.send("to b, paused", { host: b.address, port: 9999 });
  a.app!.send("to d, held", { host: d.address, port: 9999 });
  // The others are lost and doubled now and then: every way a datagram ends comes up.
  sim.setNetwork({ lossProbability: 0.1, duplicateProbability: 0.1 });
  for (let i = 0; i < 300; i++) {
    a.app!.send(`c${i}`, { host: c.address, port: 9999 });
    if (i % 10 === 9) sim.run(5);
  }
  sim.run(100);
  assert.ok(c.app!.got.length > 200, "most of the others arrived");
  assert.ok(c.app!.got.every((g) => /^c\d+$/.test(g.text) && g.from.host === a.address));
  sim.resume("b");
  sim.release();
  sim.run(100);
  assert.deepEqual(b.app!.got.map((g) => [g.text, g.from.host]), [["to b, paused", a.address]]);
  assert.deepEqual(d.app!.got.map((g) => [g.text, g.from.host]), [["to d, held", a.address]]);
});

test("datagrams: a socket bound to 255.255.255.255 gets only limited broadcasts, one bound to the subnet broadcast only subnet ones", () => {
  const sim = new Simulation({ seed: 4 });
  const both = sim.addHost("both", (platform) => ({
    subnet: receiver(9999, "10.0.255.255", true)(platform),
    limited: receiver(9999, "255.255.255.255", true)(platform),
    any: receiver(9999, "0.0.0.0", true)(platform),
  }));
  const other = sim.addHost("other", receiver(9999), { subnet: "10.1.0.0/16" });
  const s = sim.addHost("s", sender);
  sim.run(1);
  s.app!.send("limited", { host: "255.255.255.255", port: 9999 });
  s.app!.send("subnet", { host: "10.0.255.255", port: 9999 });
  s.app!.send("unicast", { host: both.address, port: 9999 });
  sim.run(20);
  assert.deepEqual(both.app!.limited.got.map((g) => g.text), ["limited"]);
  assert.deepEqual(both.app!.subnet.got.map((g) => g.text), ["subnet"]);
  assert.deepEqual(both.app!.any.got.map((g) => g.text).sort(), ["limited", "subnet", "unicast"]);
  assert.equal(both.app!.limited.got[0].from.host, s.address, "it comes from the sender's address");
  assert.equal(other.app!.got.length, 0, "a limited broadcast stays on its subnet");
});

test("datagrams: binding a taken port without reuseAddress fails with EADDRINUSE", () => {
  const sim = new Simulation();
  const host = sim.addHost("h", (platform) => {
    const errors: string[] = [];
    platform.net.bindDatagram({ host: "0.0.0.0", port: 5000 }, { onMessage() {} });
    platform.net.bindDatagram({ host: "0.0.0.0", port: 5000 }, {
      onMessage() {},
      onError: (error) => errors.push((error as { code?: string }).code ?? "?"),
    });
    return errors;
  });
  sim.run(1);
  assert.deepEqual(host.app, ["EADDRINUSE"]);
});

test("datagrams: broadcasting from a socket bound without broadcast: true throws", () => {
  const sim = new Simulation();
  const host = sim.addHost(
    "h",
    (platform) => platform.net.bindDatagram({ host: "0.0.0.0", port: 0 }, { onMessage() {} }),
  );
  assert.throws(
    () => host.app!.send(new Uint8Array(1), { host: "10.0.255.255", port: 1 }),
    /broadcast/,
  );
});

test("datagrams: a datagram over the size limit throws a RangeError", () => {
  const sim = new Simulation({ maxDatagramBytes: 100 });
  const host = sim.addHost("h", sender);
  assert.throws(
    () => host.app!.socket.send(new Uint8Array(101), { host: "10.0.0.9", port: 1 }),
    RangeError,
  );
});

test("datagrams: a socket checks every new payload and destination, however often the same ones went before", () => {
  const sim = new Simulation({ seed: 9, maxDatagramBytes: 100 });
  const b = sim.addHost("b", receiver(9999));
  const host = sim.addHost(
    "h",
    (platform) => platform.net.bindDatagram({ host: "0.0.0.0", port: 0 }, { onMessage() {} }),
  );
  sim.run(1);
  const socket = host.app!;
  const to = { host: b.address, port: 9999 };
  const same = bytes("same");
  // The same bytes to the same address object, again and again: each one arrives.
  for (let i = 0; i < 3; i++) socket.send(same, to);
  // Between them, payloads a caller must never get through: each is refused as on a first send.
  assert.throws(() => socket.send(undefined as unknown as Uint8Array, to), TypeError);
  assert.throws(() => socket.send("text" as unknown as Uint8Array, to), TypeError);
  assert.throws(() => socket.send(new Uint8Array(101), to), RangeError);
  // More destinations than the socket keeps push the first out; it comes back as it was.
  const others = [1, 2, 3, 4].map((port) => ({ host: "10.0.0.99", port }));
  for (const other of others) socket.send(same, other);
  socket.send(same, to);
  // A bad address stays refused however often it is tried.
  const bad = { host: "not-an-address", port: 1 };
  for (let i = 0; i < 2; i++) assert.throws(() => socket.send(same, bad), /not an IPv4 address/);
  const badPort = { host: b.address, port: 0 };
  assert.throws(() => socket.send(same, badPort), /not an IPv4 address and port/);
  sim.run(20);
  assert.deepEqual(b.app!.got.map((g) => g.text), ["same", "same", "same", "same"]);
  assert.equal(sim.stats.datagramsDropped, 4, "no host at 10.0.0.99");
  socket.close();
  assert.throws(() => socket.send(same, to), /closed/);
});

test("datagrams: loss 1 drops every datagram and duplication 1 doubles every one", () => {
  for (
    const [options, expected] of [[{ lossProbability: 1 }, 0], [
      { duplicateProbability: 1 },
      2,
    ]] as const
  ) {
    const sim = new Simulation({ seed: 4, ...options });
    const b = sim.addHost("b", receiver(9999));
    const a = sim.addHost("a", sender);
    a.app!.send("x", { host: b.address, port: 9999 });
    sim.run(50);
    assert.equal(b.app!.got.length, expected);
  }
});

test("datagrams: a loss probability of 0.3 loses about 30% of 2000 datagrams", () => {
  const sim = new Simulation({ seed: 5, lossProbability: 0.3 });
  const b = sim.addHost("b", receiver(9999));
  const a = sim.addHost("a", sender);
  for (let i = 0; i < 2000; i++) a.app!.send(String(i), { host: b.address, port: 9999 });
  sim.run(50);
  const share = 1 - b.app!.got.length / 2000;
  assert.ok(share > 0.25 && share < 0.35, `lost ${share}`);
});

test("datagrams: latency jitter reorders datagrams", () => {
  const sim = new Simulation({ seed: 6, latencyMsMin: 1, latencyMsMax: 20 });
  const b = sim.addHost("b", receiver(9999));
  const a = sim.addHost("a", sender);
  for (let i = 0; i < 50; i++) a.app!.send(String(i), { host: b.address, port: 9999 });
  sim.run(50);
  const order = b.app!.got.map((g) => Number(g.text));
  assert.equal(order.length, 50);
  assert.notDeepEqual(order, [...order].sort((x, y) => x - y));
});

test("streams: bytes arrive in order and end() gives the peer end-of-stream", () => {
  const sim = new Simulation({ seed: 7, latencyMsMin: 1, latencyMsMax: 30 });
  const server = sim.addHost("server", recordingServer(8888));
  const client = sim.addHost("client", (platform) => {
    const conn = platform.net.connect({ host: server.address, port: 8888 }, {
      onOpen(conn) {
        for (let i = 0; i < 100; i++) conn.write(bytes(`${i},`));
        conn.end();
      },
      onData() {},
      onClose: (_conn, reason) => closes.push(reason),
    });
    const closes: CloseReason[] = [];
    return { conn, closes };
  });
  sim.run(500);
  assert.equal(
    server.app!.received.join(""),
    Array.from({ length: 100 }, (_, i) => `${i},`).join(""),
  );
  assert.deepEqual(server.app!.closes, ["eof"]);
  assert.deepEqual(client.app!.closes, ["local"]);
});

test("streams: connecting to a port nobody listens on is refused", () => {
  const sim = new Simulation({ seed: 8 });
  const server = sim.addHost("server", () => undefined);
  const client = sim.addHost("client", dialler(() => ({ host: server.address, port: 1234 })));
  sim.run(100);
  assert.equal(client.app!.opened, false);
  assert.deepEqual(client.app!.closes, ["refused"]);
  assert.match(client.app!.errors[0], /refused/);
});

test("streams: connecting to an address where no host lives times out after connectTimeoutMs", () => {
  const sim = new Simulation({ seed: 9, connectTimeoutMs: 3000 });
  const client = sim.addHost("client", dialler(() => ({ host: "10.0.9.9", port: 1 })));
  sim.run(2900);
  assert.deepEqual(client.app!.closes, []);
  sim.run(200);
  assert.deepEqual(client.app!.closes, ["timeout"]);
});

test("streams: destroy() resets the peer", () => {
  const sim = new Simulation({ seed: 10 });
  const server = sim.addHost("server", recordingServer(8888));
  const client = sim.addHost("client", dialler(() => ({ host: server.address, port: 8888 })));
  sim.run(20);
  client.app!.conn!.write(bytes("a"));
  client.app!.conn!.destroy();
  sim.run(20);
  assert.deepEqual(server.app!.received, ["a"]);
  assert.deepEqual(server.app!.closes, ["reset"]);
  assert.deepEqual(client.app!.closes, ["local"]);
});

test("streams: a partition holds stream bytes silently and delivers them, in order, after heal", () => {
  const sim = new Simulation({ seed: 11 });
  const server = sim.addHost("server", recordingServer(8888));
  const client = sim.addHost("client", dialler(() => ({ host: server.address, port: 8888 })));
  sim.run(20);
  sim.partition("server", "client");
  for (const part of ["1", "2", "3"]) client.app!.conn!.write(bytes(part));
  sim.run(5000);
  assert.deepEqual(server.app!.received, []);
  assert.deepEqual(server.app!.closes, [], "no end-of-stream during a partition");
  assert.deepEqual(client.app!.closes, []);
  assert.equal(client.app!.conn!.bufferedBytes, 3);
  sim.heal();
  sim.run(50);
  assert.deepEqual(server.app!.received.join(""), "123");
  assert.equal(client.app!.conn!.bufferedBytes, 0);
});

test("streams: bytes a partition holds past streamTimeoutMs time the sender out", () => {
  const sim = new Simulation({ seed: 12, streamTimeoutMs: 10_000 });
  const server = sim.addHost("server", recordingServer(8888));
  const client = sim.addHost("client", dialler(() => ({ host: server.address, port: 8888 })));
  sim.run(20);
  sim.partition("server", "client");
  client.app!.conn!.write(bytes("lost"));
  sim.run(11_000);
  assert.deepEqual(client.app!.closes, ["timeout"]);
  assert.deepEqual(server.app!.closes, []);
});

test("streams: a crashed host's connections go silent; after restart a write gets a reset", () => {
  const sim = new Simulation({ seed: 13 });
  const server = sim.addHost("server", recordingServer(8888));
  const client = sim.addHost("client", dialler(() => ({ host: server.address, port: 8888 })));
  sim.run(20);
  sim.crash("server");
  client.app!.conn!.write(bytes("into the void"));
  sim.run(1000);
  assert.deepEqual(client.app!.closes, [], "silence, not end-of-stream");
  sim.restart("server");
  sim.run(50);
  assert.deepEqual(client.app!.closes, ["reset"]);
  assert.equal(server.incarnation, 2);
  assert.deepEqual(server.app!.received, [], "the new incarnation got nothing");
});

test("streams: write returns false over the high-water mark and onDrain follows the flush", () => {
  const sim = new Simulation({ seed: 14, streamHighWaterBytes: 1000 });
  const server = sim.addHost("server", recordingServer(8888));
  const events: string[] = [];
  const client = sim.addHost(
    "client",
    (platform) =>
      platform.net.connect({ host: server.address, port: 8888 }, {
        onOpen: () => events.push("open"),
        onData() {},
        onDrain: () => events.push("drain"),
        onClose() {},
      }),
  );
  sim.run(20);
  assert.equal(client.app!.write(new Uint8Array(600)), true);
  assert.equal(client.app!.write(new Uint8Array(600)), false);
  assert.equal(client.app!.bufferedBytes, 1200);
  sim.run(20);
  assert.deepEqual(events, ["open", "drain"]);
  assert.equal(client.app!.bufferedBytes, 0);
});

test("streams: a paused receiver builds back-pressure and catches up on resume", () => {
  const sim = new Simulation({ seed: 15, streamHighWaterBytes: 100 });
  const server = sim.addHost("server", recordingServer(8888));
  const client = sim.addHost("client", dialler(() => ({ host: server.address, port: 8888 })));
  sim.run(20);
  sim.pause("server");
  let accepted = 0;
  for (let i = 0; i < 20 && client.app!.conn!.write(bytes("0123456789")); i++) accepted++;
  sim.run(1000);
  assert.equal(accepted, 9);
  assert.equal(server.app!.received.length, 0);
  sim.resume("server");
  sim.run(20);
  assert.equal(server.app!.received.join("").length, 100);
});

test("streams: listening on a taken port fails with EADDRINUSE", () => {
  const sim = new Simulation();
  const host = sim.addHost("h", (platform) => {
    const codes: string[] = [];
    const handlers = { onConnection: () => ({ onData() {}, onClose() {} }) };
    platform.net.listen({ host: "0.0.0.0", port: 80 }, handlers);
    platform.net.listen({ host: "0.0.0.0", port: 80 }, {
      ...handlers,
      onError: (error) => codes.push((error as { code?: string }).code ?? "?"),
    });
    return codes;
  });
  sim.run(1);
  assert.deepEqual(host.app, ["EADDRINUSE"]);
});

test("faults and time: a paused host's timers wait and run on resume, in order", () => {
  const sim = new Simulation();
  const fired: number[] = [];
  sim.addHost("h", (platform) => {
    platform.clock.schedule(10, () => fired.push(1));
    platform.clock.schedule(20, () => fired.push(2));
  });
  sim.pause("h");
  sim.run(100);
  assert.deepEqual(fired, []);
  sim.resume("h");
  sim.run(0);
  assert.deepEqual(fired, [1, 2]);
});

test("faults and time: reschedule sets a spent timer again, and gives a new one for a timer still waiting, cancelled or of another host; an old incarnation's never runs", () => {
  const sim = new Simulation({ seed: 18 });
  const fired: string[] = [];
  const note = (what: string) => () => void fired.push(`${what}@${sim.now}`);
  const a = sim.addHost("a", (platform) => platform.clock);
  const b = sim.addHost("b", (platform) => platform.clock);
  const clock = a.app!;
  assert.ok(clock.reschedule !== undefined);
  // A timer that re-arms itself from its own callback: the same object each time.
  const timers = new Set<Timer>();
  let count = 0;
  let self: Timer = clock.schedule(10, function again() {
    fired.push(`again@${sim.now}`);
    if (++count < 3) timers.add(self = clock.reschedule!(self, 10, again));
  });
  timers.add(self);
  sim.run(100);
  assert.deepEqual(fired, ["again@10", "again@20", "again@30"]);
  assert.equal(timers.size, 1, "one timer object throughout");
  // Spent and set again with a new callback; cancelling it afterwards cancels that one.
  fired.length = 0;
  const spent = self;
  const set = clock.reschedule!(spent, 5, note("set"));
  assert.equal(set, spent);
  spent.cancel();
  sim.run(20);
  assert.deepEqual(fired, []);
  // Cancelled: a new timer; the old one stays cancelled.
  const fresh = clock.reschedule!(spent, 5, note("fresh"));
  assert.notEqual(fresh, spent);
  // Still waiting: a new timer, and the waiting one fires too, once.
  const other = clock.reschedule!(fresh, 5, note("other"));
  assert.notEqual(other, fresh);
  sim.run(20);
  assert.deepEqual(fired.sort(), ["fresh@125", "other@125"]);
  // Another host's spent timer is not taken over.
  fired.length = 0;
  const theirs = b.app!.schedule(1, note("b"));
  sim.run(5);
  const mine = clock.reschedule!(theirs, 1, note("mine"));
  assert.notEqual(mine, theirs);
  sim.run(5);
  // An old incarnation's timer, set again by its clock, never runs.
  sim.crash(a);
  sim.restart(a);
  const old = clock.reschedule!(mine, 1, note("old"));
  sim.run(5);
  assert.deepEqual(fired, ["b@141", "mine@146"]);
  old.cancel();
  assert.throws(() => clock.reschedule!(mine, -1, note("x")), RangeError);
  assert.throws(() => clock.reschedule!(mine, 1, undefined as unknown as () => void), TypeError);
});

test("faults and time: a crash cancels timers and restart runs the factory anew with fresh randomness", () => {
  const sim = new Simulation({ seed: 16 });
  let fired = 0;
  const draws: number[] = [];
  const host = sim.addHost("h", (platform) => {
    draws.push(platform.random.int(0, 1_000_000));
    platform.clock.schedule(50, () => fired++);
    return platform;
  });
  sim.run(10);
  sim.crash(host);
  assert.equal(host.state, "down");
  sim.run(100);
  assert.equal(fired, 0);
  sim.restart(host);
  sim.run(100);
  assert.equal(fired, 1);
  assert.equal(host.incarnation, 2);
  assert.notEqual(draws[0], draws[1]);
});

test("faults and time: a one-way partition drops datagrams in one direction only", () => {
  const sim = new Simulation({ seed: 17 });
  const pair = ["a", "b"].map((name) =>
    sim.addHost(name, (platform) => ({ inbox: receiver(9999)(platform), out: sender(platform) }))
  );
  sim.partitionOneWay("a", "b");
  pair[0].app!.out.send("a->b", { host: pair[1].address, port: 9999 });
  pair[1].app!.out.send("b->a", { host: pair[0].address, port: 9999 });
  sim.run(20);
  assert.equal(pair[1].app!.inbox.got.length, 0);
  assert.equal(pair[0].app!.inbox.got.length, 1);
  assert.equal(sim.isPartitioned("a", "b"), true);
  assert.equal(sim.isPartitioned("b", "a"), false);
});

test("faults and time: hold queues datagrams that release delivers", () => {
  const sim = new Simulation({ seed: 18 });
  const b = sim.addHost("b", receiver(9999));
  const a = sim.addHost("a", sender);
  sim.hold("a", "b");
  a.app!.send("held", { host: b.address, port: 9999 });
  sim.run(1000);
  assert.equal(b.app!.got.length, 0);
  sim.release();
  sim.run(20);
  assert.deepEqual(b.app!.got.map((g) => g.text), ["held"]);
});

test("faults and time: clock skew shifts readings and stretches timers", () => {
  const sim = new Simulation();
  const host = sim.addHost("h", (platform) => platform);
  sim.run(1000);
  sim.setClockSkew(host, { offsetMs: 500, rate: 2 });
  const platform = host.app!;
  assert.equal(platform.clock.now(), 1500);
  let firedAt = -1;
  platform.clock.schedule(100, () => void (firedAt = sim.now));
  sim.run(100);
  assert.equal(firedAt, 1050);
});

test("faults and time: a datagram comes with the receiver's clock reading at its arrival, skewed as its clock is", () => {
  const sim = new Simulation({ seed: 20, latencyMsMin: 1, latencyMsMax: 3 });
  const got: [number | undefined, number][] = [];
  const b = sim.addHost("b", (platform) => {
    // Unicast through a port's one socket, and a broadcast: each delivery path passes it.
    platform.net.bindDatagram({ host: "0.0.0.0", port: 9999, broadcast: true }, {
      onMessage: (_data, _from, atMs) => void got.push([atMs, platform.clock.now()]),
    });
  });
  const a = sim.addHost("a", sender);
  sim.run(10);
  sim.setClockSkew(b, { offsetMs: 250, rate: 1.5 });
  for (let i = 0; i < 5; i++) {
    a.app!.send(`u${i}`, { host: b.address, port: 9999 });
    sim.run(7);
  }
  a.app!.socket.send(bytes("all"), { host: "10.0.255.255", port: 9999 });
  sim.run(10);
  assert.equal(got.length, 6);
  for (const [atMs, now] of got) assert.equal(atMs, now);
  assert.ok(got[0][0]! > sim.now, "the skewed clock runs ahead");
});

test("faults and time: the packet rule can drop, delay and duplicate datagrams", () => {
  const sim = new Simulation({ seed: 19, latencyMsMin: 1, latencyMsMax: 1 });
  const b = sim.addHost("b", receiver(9999));
  const a = sim.addHost("a", sender);
  sim.setPacketRule((packet) => {
    const value = packet.data ? text(packet.data) : "";
    if (value === "drop") return "drop";
    if (value === "late") return { delayMs: 100 };
    if (value === "twice") return "duplicate";
  });
  for (const value of ["drop", "late", "twice"]) {
    a.app!.send(value, { host: b.address, port: 9999 });
  }
  sim.run(50);
  assert.deepEqual(b.app!.got.map((g) => g.text), ["twice", "twice"]);
  sim.run(100);
  assert.deepEqual(b.app!.got.map((g) => g.text), ["twice", "twice", "late"]);
});

test("faults and time: a stream segment the packet rule drops is retransmitted and still arrives in order", () => {
  const sim = new Simulation({ seed: 20 });
  const server = sim.addHost("server", recordingServer(8888));
  const client = sim.addHost("client", dialler(() => ({ host: server.address, port: 8888 })));
  sim.run(20);
  sim.setPacketRule((packet) =>
    packet.kind === "data" && packet.attempt < 2 && packet.data && text(packet.data) === "1"
      ? "drop"
      : "pass"
  );
  for (const part of ["1", "2", "3"]) client.app!.conn!.write(bytes(part));
  sim.run(2000);
  assert.equal(server.app!.received.join(""), "123");
  assert.equal(sim.stats.segmentsRetransmitted, 2);
});

test("faults and time: an exception in host code crashes that host under hostErrors: crash", () => {
  const sim = new Simulation({ hostErrors: "crash" });
  const bad = sim.addHost("bad", (platform) => {
    platform.clock.schedule(5, () => {
      throw new Error("boom");
    });
  });
  const good = sim.addHost("good", (platform) => {
    let ticks = 0;
    const tick = () => {
      ticks++;
      platform.clock.schedule(10, tick);
    };
    tick();
    return {
      get ticks() {
        return ticks;
      },
    };
  });
  sim.run(100);
  assert.equal(bad.state, "down");
  assert.equal(sim.errors.length, 1);
  assert.match(String(sim.errors[0].error), /boom/);
  assert.ok(good.app!.ticks >= 10);
});

test("faults and time: an exception in host code is rethrown by default", () => {
  const sim = new Simulation();
  sim.addHost("bad", (platform) => {
    platform.clock.schedule(5, () => {
      throw new Error("boom");
    });
  });
  assert.throws(() => sim.run(10), /boom/);
});

test("faults and time: runUntil stops at the first instant the predicate holds", () => {
  const sim = new Simulation();
  let count = 0;
  sim.addHost("h", (platform) => {
    const tick = () => {
      count++;
      platform.clock.schedule(7, tick);
    };
    platform.clock.schedule(7, tick);
  });
  assert.equal(sim.runUntil(() => count === 3, 1000), true);
  assert.equal(sim.now, 21);
  assert.equal(sim.runUntil(() => count === 1000, 100), false);
  assert.equal(sim.now, 121);
});

test("faults and time: bad arguments get clear errors", () => {
  assert.throws(() => new Simulation({ seed: 1.5 }), TypeError);
  assert.throws(() => new Simulation({ lossProbability: 2 }), RangeError);
  assert.throws(() => new Simulation({ latencyMsMin: 5, latencyMsMax: 1 }), RangeError);
  assert.throws(() => new Simulation({ subnet: "10.0.0.0/99" }), TypeError);
  const sim = new Simulation();
  sim.addHost("a", () => undefined);
  assert.throws(() => sim.addHost("a", () => undefined), /taken/);
  assert.throws(() => sim.addHost("x", () => undefined, { address: "192.168.0.1" }), /not in/);
  assert.throws(() => sim.crash("nobody"), /Cannot find host/);
  assert.throws(() => sim.run(-1), RangeError);
});
