/**
 * The platform conformance suite: one set of behaviours that the simulator and every real
 * adapter must show, run unchanged against each (as js-libp2p runs one compliance suite
 * against every transport).
 *
 * A runner file builds a {@link World} per test: two hosts, each with its own platform, and a
 * way to let time pass. In the simulator the hosts are two simulated hosts and time is
 * virtual; on a real runtime both hosts are 127.0.0.1 and time is real. Every test name says
 * the behaviour: `conformance(deno): end() delivers every byte, then the peer sees eof`.
 *
 * Besides what each case checks, every case checks three things of every callback: none runs
 * inside the call that caused it, a connection's `onClose` comes exactly once, and nothing of
 * a connection is called after its `onClose`.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type Address,
  type CloseReason,
  type DatagramSocket,
  NetError,
  type Platform,
  type StreamConn,
  type StreamHandlers,
  type StreamListener,
} from "../../src/platform.ts";

/** One host of a {@link World}. */
export interface WorldHost {
  readonly platform: Platform;
  /** The address this host binds to and is reached at: its own address, or 127.0.0.1. */
  readonly host: string;
}

/** Two hosts on one network, and time. */
export interface World {
  readonly a: WorldHost;
  readonly b: WorldHost;
  /** A broadcast address that reaches both hosts: the subnet's, or 127.255.255.255. */
  readonly broadcastHost: string;
  /**
   * Lets time pass until `predicate` holds or `maxMs` milliseconds (virtual or real) have
   * passed; resolves to whether it held.
   */
  waitFor(predicate: () => boolean, maxMs: number): Promise<boolean>;
  /** Releases everything the world opened. */
  close(): Promise<void>;
}

/** Options of {@link runConformance}. */
export interface ConformanceOptions {
  /** Register every case as skipped, with this reason (e.g. "Deno adapter needs Deno"). */
  readonly skip?: string;
  /** Bytes of the back-pressure transfer. Default 16 MiB. */
  readonly transferBytes?: number;
  /**
   * Cases this world is known to fail, by behaviour name, with why: registered as `todo`
   * (both runners list them and do not run them) until the world is fixed. Never a way to
   * weaken a case: each entry is a reported bug.
   */
  readonly knownFailures?: Readonly<Record<string, string>>;
}

/**
 * A `waitFor` for real runtimes: checks `predicate` every `intervalMs` of real time, at most
 * `maxMs` long.
 */
export async function pollUntil(
  predicate: () => boolean,
  maxMs: number,
  intervalMs = 2,
): Promise<boolean> {
  const deadline = performance.now() + maxMs;
  while (!predicate()) {
    if (performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return true;
}

type Case = (
  world: World,
  guard: Guard,
  options: { readonly transferBytes: number },
) => Promise<void>;

const CASES: Array<readonly [string, Case]> = [];

function behaviour(name: string, body: Case): void {
  CASES.push([name, body]);
}

/**
 * Registers every conformance case as a `node:test` test named `conformance(<name>): …`,
 * each on a fresh world from `makeWorld`.
 *
 * @example
 * ```ts ignore
 * import { runConformance } from "./_platform_suite.ts";
 * runConformance("sim", () => makeSimWorld());
 * ```
 */
export function runConformance(
  name: string,
  makeWorld: () => World | Promise<World>,
  options: ConformanceOptions = {},
): void {
  const settings = { transferBytes: options.transferBytes ?? 16 * 1024 * 1024 };
  const known = options.knownFailures ?? {};
  for (const behaviourName of Object.keys(known)) {
    if (!CASES.some(([caseName]) => caseName === behaviourName)) {
      throw new TypeError(`Cannot mark "${behaviourName}" as a known failure: no such case`);
    }
  }
  if (options.skip !== undefined) {
    // Neither runner prints a skip reason, so the name carries it.
    const title = `conformance(${name}): skipped, ${options.skip} (${CASES.length} cases)`;
    test(title, { skip: options.skip }, () => {});
    return;
  }
  for (const [behaviourName, body] of CASES) {
    const title = `conformance(${name}): ${behaviourName}`;
    const todo = known[behaviourName];
    test(todo === undefined ? title : `${title} [known failure: ${todo}]`, { todo }, async () => {
      const world = await makeWorld();
      const guard = new Guard();
      try {
        await body(world, guard, settings);
        // Let stragglers arrive: nothing may come after a close.
        await world.waitFor(() => false, 20);
        guard.assertClean();
      } finally {
        await world.close();
      }
    });
  }
}

// ---- recording ----------------------------------------------------------------------------------

/** Watches callbacks: none inside the causing call, one close per connection, nothing after. */
class Guard {
  #inCall: string | undefined;
  readonly violations: string[] = [];

  /** Runs a seam call; any callback that comes while it runs is a violation. */
  call<T>(what: string, fn: () => T): T {
    this.#inCall = what;
    try {
      return fn();
    } finally {
      this.#inCall = undefined;
    }
  }

  callback(what: string): void {
    if (this.#inCall !== undefined) this.violations.push(`${what} ran inside ${this.#inCall}()`);
  }

  assertClean(): void {
    assert.deepEqual(this.violations, [], this.violations.join("\n"));
  }
}

/** Records what happens to one stream connection. */
class ConnLog {
  conn: StreamConn | undefined;
  opens = 0;
  drains = 0;
  bytes = 0;
  readonly chunks: Uint8Array[] = [];
  readonly closes: Array<{ reason: CloseReason; error?: Error }> = [];
  /** Order of callbacks: "open", "data", "drain", "close:<reason>". */
  readonly events: string[] = [];
  keepData = true;
  onData?: (data: Uint8Array) => void;
  onOpen?: (conn: StreamConn) => void;
  onDrain?: (conn: StreamConn) => void;

  constructor(readonly guard: Guard, readonly label: string) {}

  get closed(): boolean {
    return this.closes.length > 0;
  }

  get reasons(): CloseReason[] {
    return this.closes.map((c) => c.reason);
  }

  text(): string {
    return new TextDecoder().decode(concat(this.chunks));
  }

  handlers(): StreamHandlers {
    const note = (what: string, conn: StreamConn) => {
      this.guard.callback(`${this.label}.${what}`);
      if (this.conn !== undefined && conn !== this.conn) {
        this.guard.violations.push(`${this.label}.${what} got another connection object`);
      }
      if (this.closed) this.guard.violations.push(`${this.label}.${what} came after onClose`);
      this.events.push(what);
    };
    return {
      onOpen: (conn) => {
        note("open", conn);
        this.opens++;
        this.onOpen?.(conn);
      },
      onData: (conn, data) => {
        note("data", conn);
        if (!(data instanceof Uint8Array)) this.guard.violations.push("data is not a Uint8Array");
        this.bytes += data.length;
        if (this.keepData) this.chunks.push(data);
        this.onData?.(data);
      },
      onDrain: (conn) => {
        note("drain", conn);
        this.drains++;
        this.onDrain?.(conn);
      },
      onClose: (conn, reason, error) => {
        note(`close:${reason}`, conn);
        this.closes.push({ reason, error });
        if (conn.state !== "closed") {
          this.guard.violations.push(`${this.label}: state is ${conn.state} in onClose`);
        }
      },
    };
  }
}

/** A listener on `host` that records each accepted connection. */
function listenOn(
  guard: Guard,
  who: WorldHost,
  port = 0,
): {
  listener: StreamListener;
  accepted: ConnLog[];
  ready: () => boolean;
  errors: Error[];
  onAccept?: (log: ConnLog) => void;
} {
  const accepted: ConnLog[] = [];
  const errors: Error[] = [];
  let listening = false;
  const state = {
    listener: undefined as unknown as StreamListener,
    accepted,
    errors,
    ready: () => listening,
    onAccept: undefined as ((log: ConnLog) => void) | undefined,
  };
  state.listener = guard.call("listen", () =>
    who.platform.net.listen({ host: who.host, port }, {
      onListening: (listener) => {
        guard.callback("onListening");
        if (listener !== state.listener) guard.violations.push("onListening got another object");
        listening = true;
      },
      onError: (error) => {
        guard.callback("listen onError");
        errors.push(error);
      },
      onConnection: (conn) => {
        guard.callback("onConnection");
        if (conn.state !== "open") guard.violations.push(`accepted conn is ${conn.state}`);
        const log = new ConnLog(guard, `accepted#${accepted.length}`);
        log.conn = conn;
        accepted.push(log);
        state.onAccept?.(log);
        return log.handlers();
      },
    }));
  return state;
}

/** Dials `to` from `who`, recording the connection. */
function dial(guard: Guard, who: WorldHost, to: Address, label = "dialled"): ConnLog {
  const log = new ConnLog(guard, label);
  const handlers = log.handlers();
  log.conn = guard.call("connect", () => who.platform.net.connect(to, handlers));
  return log;
}

/** Binds a datagram socket on `who`, recording what arrives. */
function bindOn(
  guard: Guard,
  who: WorldHost,
  options: { host?: string; port?: number; reuseAddress?: boolean; broadcast?: boolean } = {},
) {
  const state = {
    socket: undefined as unknown as DatagramSocket,
    ready: 0,
    errors: [] as Error[],
    got: [] as Array<{ data: Uint8Array; from: Address }>,
  };
  state.socket = guard.call("bindDatagram", () =>
    who.platform.net.bindDatagram({
      host: options.host ?? who.host,
      port: options.port ?? 0,
      reuseAddress: options.reuseAddress,
      broadcast: options.broadcast,
    }, {
      onReady: (socket) => {
        guard.callback("onReady");
        if (socket !== state.socket) guard.violations.push("onReady got another socket object");
        state.ready++;
      },
      onError: (error) => {
        guard.callback("datagram onError");
        state.errors.push(error);
      },
      onMessage: (data, from) => {
        guard.callback("onMessage");
        state.got.push({ data, from });
      },
    }));
  return state;
}

async function must(world: World, predicate: () => boolean, maxMs: number, what: string) {
  assert.ok(await world.waitFor(predicate, maxMs), `timed out after ${maxMs} ms: ${what}`);
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const chunk of chunks) total += chunk.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

const encode = (text: string) => new TextEncoder().encode(text);

function codeOf(error: Error | undefined): string | undefined {
  return (error as { code?: string } | undefined)?.code;
}

/** FNV-1a over a byte stream, fed in pieces: order matters, as it must. */
class Checksum {
  hash = 0x811c9dc5;
  bytes = 0;

  add(data: Uint8Array): void {
    let hash = this.hash;
    for (let i = 0; i < data.length; i++) hash = Math.imul(hash ^ data[i], 0x01000193);
    this.hash = hash;
    this.bytes += data.length;
  }
}

/** A chunk of pseudo-random bytes, different for each index. */
function patternChunk(index: number, size: number): Uint8Array {
  const chunk = new Uint8Array(size);
  const words = new Uint32Array(chunk.buffer, 0, size >>> 2);
  let x = (index + 1) * 0x9e3779b9 | 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return chunk;
}

const WAIT_MS = 3000;

// ---- datagrams ----------------------------------------------------------------------------------

behaviour("a datagram socket bound to port 0 reports its real port when ready", async (w, g) => {
  const bound = bindOn(g, w.a);
  await must(w, () => bound.ready > 0 || bound.errors.length > 0, WAIT_MS, "onReady");
  assert.deepEqual(bound.errors, []);
  assert.equal(bound.ready, 1);
  const port = bound.socket.local.port;
  assert.ok(Number.isInteger(port) && port > 0 && port <= 65535, `port ${port}`);
  assert.equal(bound.socket.local.host, w.a.host);
  bound.socket.close();
});

behaviour("a unicast datagram arrives whole, with the sender's address and port", async (w, g) => {
  const receiver = bindOn(g, w.b);
  const sender = bindOn(g, w.a);
  await must(w, () => receiver.ready + sender.ready === 2, WAIT_MS, "both sockets ready");
  const small = w.a.platform.random.fill(new Uint8Array(1000));
  const largest = w.a.platform.random.fill(new Uint8Array(65507));
  const to = { host: w.b.host, port: receiver.socket.local.port };
  g.call("send", () => sender.socket.send(small, to));
  g.call("send", () => sender.socket.send(largest, to));
  await must(w, () => receiver.got.length >= 2, WAIT_MS, "two datagrams");
  const sizes = receiver.got.map((m) => m.data.length).sort((x, y) => x - y);
  assert.deepEqual(sizes, [1000, 65507]);
  for (const { data, from } of receiver.got) {
    assert.deepEqual(data, data.length === 1000 ? small : largest);
    assert.deepEqual(from, { host: w.a.host, port: sender.socket.local.port });
  }
  receiver.socket.close();
  sender.socket.close();
});

behaviour("a broadcast reaches every socket sharing the port with reuseAddress", async (w, g) => {
  // A random port outside the ephemeral range, tried again if something else holds it.
  let pair: Array<ReturnType<typeof bindOn>> = [];
  let port = 0;
  for (let attempt = 0; attempt < 10 && pair.length === 0; attempt++) {
    port = w.b.platform.random.int(20000, 32000);
    const first = bindOn(g, w.b, { host: "0.0.0.0", port, reuseAddress: true });
    const second = bindOn(g, w.b, { host: "0.0.0.0", port, reuseAddress: true });
    const settled = () =>
      first.ready + first.errors.length > 0 && second.ready + second.errors.length > 0;
    await must(w, settled, WAIT_MS, "both bindings settle");
    if (first.ready === 1 && second.ready === 1) {
      pair = [first, second];
    } else {
      for (const { errors } of [first, second]) {
        for (const error of errors) assert.equal(codeOf(error), "EADDRINUSE", String(error));
      }
      first.socket.close();
      second.socket.close();
    }
  }
  assert.equal(pair.length, 2, "found no free port for the broadcast case in 10 tries");
  const sender = bindOn(g, w.a, { broadcast: true });
  await must(w, () => sender.ready === 1, WAIT_MS, "sender ready");
  const token = w.a.platform.random.fill(new Uint8Array(24));
  const has = (socket: ReturnType<typeof bindOn>) =>
    socket.got.some((m) =>
      m.data.length === token.length && m.data.every((x, i) => x === token[i])
    );
  // Datagrams may be lost, even on loopback under load: a few tries, each waited for.
  for (let attempt = 0; attempt < 3 && !pair.every(has); attempt++) {
    g.call("send", () => sender.socket.send(token, { host: w.broadcastHost, port }));
    await w.waitFor(() => pair.every(has), 1000);
  }
  assert.ok(has(pair[0]), "the first socket got the broadcast");
  assert.ok(has(pair[1]), "the second socket got the broadcast");
  const from = pair[0].got.find((m) => m.data.length === token.length)!.from;
  assert.deepEqual(from, { host: w.a.host, port: sender.socket.local.port });
  assert.deepEqual(sender.errors, []);
  for (const socket of [...pair, sender]) socket.socket.close();
});

behaviour(
  "a socket binds to the limited broadcast 255.255.255.255 beside one on 0.0.0.0 with reuseAddress",
  async (w, g) => {
    // How a --codec json node hears the original's heartbeats. Nothing is sent here: a limited
    // broadcast leaves only from namespaces a test made (tests/netns/netns_legacy_test.ts).
    let bound: Array<ReturnType<typeof bindOn>> = [];
    for (let attempt = 0; attempt < 10 && bound.length === 0; attempt++) {
      const port = w.b.platform.random.int(20000, 32000);
      const any = bindOn(g, w.b, { host: "0.0.0.0", port, reuseAddress: true });
      const limited = bindOn(g, w.b, { host: "255.255.255.255", port, reuseAddress: true });
      const settled = () =>
        any.ready + any.errors.length > 0 && limited.ready + limited.errors.length > 0;
      await must(w, settled, WAIT_MS, "both bindings settle");
      if (any.ready === 1 && limited.ready === 1) {
        bound = [any, limited];
      } else {
        for (const { errors } of [any, limited]) {
          for (const error of errors) assert.equal(codeOf(error), "EADDRINUSE", String(error));
        }
        any.socket.close();
        limited.socket.close();
      }
    }
    assert.equal(bound.length, 2, "found no free port for the limited broadcast case in 10 tries");
    assert.equal(bound[1].socket.local.port, bound[0].socket.local.port);
    for (const socket of bound) socket.socket.close();
  },
);

behaviour("binding a taken port without reuseAddress fails with EADDRINUSE", async (w, g) => {
  const first = bindOn(g, w.b);
  await must(w, () => first.ready === 1, WAIT_MS, "first socket ready");
  const second = bindOn(g, w.b, { port: first.socket.local.port });
  await must(w, () => second.errors.length > 0 || second.ready > 0, WAIT_MS, "second settles");
  await w.waitFor(() => false, 20);
  assert.equal(second.ready, 0, "onReady of a failed binding");
  assert.equal(second.errors.length, 1);
  assert.ok(second.errors[0] instanceof NetError, String(second.errors[0]));
  assert.equal(codeOf(second.errors[0]), "EADDRINUSE");
  // The failed socket is closed: sending on it throws.
  assert.throws(() => second.socket.send(new Uint8Array(1), { host: w.b.host, port: 9 }), NetError);
  first.socket.close();
  second.socket.close();
});

behaviour("a datagram port is free again right after close()", async (w, g) => {
  const first = bindOn(g, w.b);
  await must(w, () => first.ready === 1, WAIT_MS, "first socket ready");
  const port = first.socket.local.port;
  first.socket.close();
  const again = bindOn(g, w.b, { port });
  await must(w, () => again.ready + again.errors.length > 0, WAIT_MS, "second binding settles");
  assert.deepEqual(again.errors, []);
  assert.equal(again.socket.local.port, port);
  const sender = bindOn(g, w.a);
  await must(w, () => sender.ready === 1, WAIT_MS, "sender ready");
  sender.socket.send(encode("again"), { host: w.b.host, port });
  await must(w, () => again.got.length > 0, WAIT_MS, "a datagram on the rebound port");
  again.socket.close();
  sender.socket.close();
});

behaviour(
  "an oversized datagram throws a RangeError; a closed socket refuses to send",
  async (w, g) => {
    const bound = bindOn(g, w.a);
    await must(w, () => bound.ready === 1, WAIT_MS, "socket ready");
    const to = { host: w.b.host, port: 9 };
    assert.throws(() => bound.socket.send(new Uint8Array(65508), to), RangeError);
    bound.socket.close();
    bound.socket.close(); // twice is harmless
    assert.throws(() => bound.socket.send(new Uint8Array(1), to), NetError);
  },
);

// ---- streams: opening ---------------------------------------------------------------------------

behaviour("connect opens the dialler and hands the listener an open connection", async (w, g) => {
  const server = listenOn(g, w.b);
  await must(w, server.ready, WAIT_MS, "listening");
  const port = server.listener.local.port;
  assert.ok(port > 0, `listener port ${port}`);
  assert.equal(server.listener.local.host, w.b.host);
  const client = dial(g, w.a, { host: w.b.host, port });
  assert.equal(client.conn!.state, "connecting");
  await must(w, () => client.opens === 1 && server.accepted.length === 1, WAIT_MS, "open");
  const dialled = client.conn!;
  const accepted = server.accepted[0].conn!;
  assert.equal(dialled.state, "open");
  assert.equal(accepted.state, "open");
  assert.deepEqual(dialled.remote, { host: w.b.host, port });
  assert.equal(dialled.local.host, w.a.host);
  assert.ok(dialled.local.port > 0);
  assert.equal(accepted.local.port, port);
  assert.deepEqual(accepted.remote, dialled.local);
  assert.equal(dialled.bufferedBytes, 0);
  dialled.end();
  await must(w, () => server.accepted[0].closed && client.closed, WAIT_MS, "both closed");
  server.listener.close();
});

behaviour(
  "the dialler sees onOpen before any byte; bytes written before open arrive",
  async (w, g) => {
    const server = listenOn(g, w.b);
    server.onAccept = (log) => log.conn!.write(encode("welcome"));
    await must(w, server.ready, WAIT_MS, "listening");
    const client = dial(g, w.a, { host: w.b.host, port: server.listener.local.port });
    assert.equal(g.call("write", () => client.conn!.write(encode("early"))), true);
    assert.equal(client.conn!.bufferedBytes, 5);
    await must(
      w,
      () => client.text() === "welcome" && server.accepted[0]?.text() === "early",
      WAIT_MS,
      "both greetings",
    );
    assert.equal(client.events[0], "open");
    client.conn!.destroy();
    await must(w, () => server.accepted[0].closed, WAIT_MS, "server side closed");
    server.listener.close();
  },
);

behaviour("connecting to a port nobody listens on is refused", async (w, g) => {
  const server = listenOn(g, w.b);
  await must(w, server.ready, WAIT_MS, "listening");
  const port = server.listener.local.port;
  server.listener.close();
  const client = dial(g, w.a, { host: w.b.host, port });
  await must(w, () => client.closed, WAIT_MS, "refusal");
  assert.equal(client.opens, 0);
  assert.deepEqual(client.reasons, ["refused"]);
  assert.ok(client.closes[0].error instanceof NetError, String(client.closes[0].error));
  assert.equal(codeOf(client.closes[0].error), "ECONNREFUSED");
  assert.equal(client.conn!.state, "closed");
  assert.equal(client.conn!.write(encode("x")), false, "write on a closed connection");
});

behaviour(
  "dialling port 0 fails through onClose with an error, never synchronously",
  async (w, g) => {
    const client = dial(g, w.a, { host: w.b.host, port: 0 });
    await must(w, () => client.closed, WAIT_MS, "failure");
    assert.deepEqual(client.reasons, ["error"]);
    assert.equal(codeOf(client.closes[0].error), "EINVAL");
  },
);

behaviour("listening on a taken port fails with EADDRINUSE", async (w, g) => {
  const first = listenOn(g, w.b);
  await must(w, first.ready, WAIT_MS, "listening");
  const second = listenOn(g, w.b, first.listener.local.port);
  await must(w, () => second.errors.length > 0 || second.ready(), WAIT_MS, "second settles");
  await w.waitFor(() => false, 20);
  assert.equal(second.ready(), false, "onListening of a failed listener");
  assert.equal(second.errors.length, 1);
  assert.ok(second.errors[0] instanceof NetError, String(second.errors[0]));
  assert.equal(codeOf(second.errors[0]), "EADDRINUSE");
  second.listener.close();
  first.listener.close();
});

behaviour("a listener's port is free again right after close()", async (w, g) => {
  const first = listenOn(g, w.b);
  await must(w, first.ready, WAIT_MS, "listening");
  const port = first.listener.local.port;
  first.listener.close();
  const again = listenOn(g, w.b, port);
  await must(w, () => again.ready() || again.errors.length > 0, WAIT_MS, "second settles");
  assert.deepEqual(again.errors, []);
  assert.equal(again.listener.local.port, port);
  const client = dial(g, w.a, { host: w.b.host, port });
  await must(w, () => client.opens === 1 && again.accepted.length === 1, WAIT_MS, "open");
  client.conn!.destroy();
  await must(w, () => again.accepted[0].closed, WAIT_MS, "closed");
  again.listener.close();
});

behaviour("listener.close() stops accepting and leaves accepted connections open", async (w, g) => {
  const server = listenOn(g, w.b);
  await must(w, server.ready, WAIT_MS, "listening");
  const to = { host: w.b.host, port: server.listener.local.port };
  const first = dial(g, w.a, to, "first");
  await must(w, () => first.opens === 1 && server.accepted.length === 1, WAIT_MS, "first open");
  server.listener.close();
  server.listener.close(); // twice is harmless
  const second = dial(g, w.a, to, "second");
  await must(w, () => second.closed, WAIT_MS, "second refused");
  assert.deepEqual(second.reasons, ["refused"]);
  assert.equal(server.accepted.length, 1);
  server.accepted[0].conn!.write(encode("still here"));
  await must(w, () => first.text() === "still here", WAIT_MS, "bytes on the old connection");
  first.conn!.end();
  await must(w, () => server.accepted[0].closed, WAIT_MS, "old connection closed");
});

// ---- streams: bytes ------------------------------------------------------------------------------

behaviour("bytes of many small writes arrive in order", async (w, g) => {
  const server = listenOn(g, w.b);
  await must(w, server.ready, WAIT_MS, "listening");
  const client = dial(g, w.a, { host: w.b.host, port: server.listener.local.port });
  let expected = "";
  client.onOpen = (conn) => {
    for (let i = 0; i < 3000; i++) {
      const piece = `${i};`.padEnd((i % 37) + 4, "+");
      expected += piece;
      conn.write(encode(piece));
    }
  };
  await must(
    w,
    () => server.accepted[0]?.bytes === expected.length && expected !== "",
    10_000,
    "all",
  );
  assert.equal(server.accepted[0].text(), expected);
  client.conn!.end();
  await must(w, () => server.accepted[0].closed, WAIT_MS, "eof");
  assert.deepEqual(server.accepted[0].reasons, ["eof"]);
  server.listener.close();
});

behaviour(
  "a large transfer under back-pressure arrives intact: write returns false, then onDrain",
  async (w, g, { transferBytes }) => {
    const server = listenOn(g, w.b);
    const received = new Checksum();
    server.onAccept = (log) => {
      log.keepData = false;
      log.onData = (data) => received.add(data);
    };
    await must(w, server.ready, WAIT_MS, "listening");
    const chunkBytes = 64 * 1024;
    const sent = new Checksum();
    let refusals = 0;
    let nextChunk = 0;
    const chunks = Math.ceil(transferBytes / chunkBytes);
    const pump = (conn: StreamConn) => {
      while (nextChunk < chunks) {
        const chunk = patternChunk(nextChunk++, chunkBytes);
        sent.add(chunk);
        if (!conn.write(chunk)) {
          refusals++;
          assert.ok(conn.bufferedBytes > 0, "write said false with nothing buffered");
          return;
        }
      }
      conn.end();
    };
    const client = dial(g, w.a, { host: w.b.host, port: server.listener.local.port });
    client.onOpen = pump;
    client.onDrain = (conn) => {
      assert.equal(conn.bufferedBytes, 0, "onDrain with bytes still buffered");
      pump(conn);
    };
    await must(w, () => server.accepted[0]?.closed === true, 60_000, "the whole transfer");
    assert.deepEqual(server.accepted[0].reasons, ["eof"]);
    assert.equal(received.bytes, chunks * chunkBytes);
    assert.equal(received.hash, sent.hash, "checksum of the bytes received");
    assert.ok(refusals > 0, "write never returned false");
    assert.ok(client.drains > 0, "onDrain never came");
    assert.ok(client.drains <= refusals, `${client.drains} drains for ${refusals} refusals`);
    await must(w, () => client.closed, WAIT_MS, "the sender's close");
    assert.deepEqual(client.reasons, ["local"]);
    server.listener.close();
  },
);

// ---- streams: closing -----------------------------------------------------------------------------

behaviour(
  "end() delivers every byte, then the peer sees eof; the ender's onClose says local",
  async (w, g) => {
    const server = listenOn(g, w.b);
    const received = new Checksum();
    server.onAccept = (log) => {
      log.keepData = false;
      log.onData = (data) => received.add(data);
    };
    await must(w, server.ready, WAIT_MS, "listening");
    const client = dial(g, w.a, { host: w.b.host, port: server.listener.local.port });
    const sent = new Checksum();
    client.onOpen = (conn) => {
      for (let i = 0; i < 16; i++) {
        const chunk = patternChunk(i, 64 * 1024);
        sent.add(chunk);
        conn.write(chunk); // end() flushes whatever is buffered, so back-pressure can wait
      }
      conn.end();
      assert.equal(conn.state, "closed", "state right after end()");
      assert.equal(conn.write(encode("late")), false, "write after end()");
    };
    await must(w, () => server.accepted[0]?.closed && client.closed, 10_000, "both closed");
    assert.equal(received.bytes, 16 * 64 * 1024);
    assert.equal(received.hash, sent.hash);
    assert.deepEqual(server.accepted[0].reasons, ["eof"]);
    assert.deepEqual(client.reasons, ["local"]);
    assert.equal(server.accepted[0].events.at(-1), "close:eof");
    server.listener.close();
  },
);

behaviour("end() before the connection opens still delivers the bytes, then eof", async (w, g) => {
  const server = listenOn(g, w.b);
  await must(w, server.ready, WAIT_MS, "listening");
  const client = dial(g, w.a, { host: w.b.host, port: server.listener.local.port });
  g.call("write", () => client.conn!.write(encode("before open")));
  g.call("end", () => client.conn!.end());
  assert.equal(client.conn!.state, "closed");
  await must(w, () => server.accepted[0]?.closed === true, WAIT_MS, "the peer's close");
  assert.equal(server.accepted[0].text(), "before open");
  assert.deepEqual(server.accepted[0].reasons, ["eof"]);
  await must(w, () => client.closed, WAIT_MS, "the dialler's close");
  assert.deepEqual(client.reasons, ["local"]);
  assert.equal(client.opens, 0, "onOpen after end()");
  server.listener.close();
});

behaviour(
  "destroy() closes at once; the peer sees eof or reset; each side closes once",
  async (w, g) => {
    const server = listenOn(g, w.b);
    await must(w, server.ready, WAIT_MS, "listening");
    const client = dial(g, w.a, { host: w.b.host, port: server.listener.local.port });
    await must(w, () => client.opens === 1 && server.accepted.length === 1, WAIT_MS, "open");
    client.conn!.write(encode("ping"));
    await must(w, () => server.accepted[0].text() === "ping", WAIT_MS, "ping");
    g.call("destroy", () => client.conn!.destroy());
    assert.equal(client.conn!.state, "closed");
    assert.equal(client.closed, false, "onClose inside destroy()");
    g.call("destroy", () => client.conn!.destroy()); // twice is harmless
    await must(w, () => client.closed && server.accepted[0].closed, WAIT_MS, "both closed");
    assert.deepEqual(client.reasons, ["local"]);
    const [peer] = server.accepted[0].reasons;
    assert.ok(peer === "eof" || peer === "reset", `peer saw ${peer}`);
    assert.equal(server.accepted[0].closes.length, 1);
    server.listener.close();
  },
);

behaviour(
  "destroy() with megabytes queued does not throw and closes each side once",
  async (w, g) => {
    const server = listenOn(g, w.b);
    server.onAccept = (log) => void (log.keepData = false);
    await must(w, server.ready, WAIT_MS, "listening");
    const client = dial(g, w.a, { host: w.b.host, port: server.listener.local.port });
    await must(w, () => client.opens === 1 && server.accepted.length === 1, WAIT_MS, "open");
    const conn = client.conn!;
    const chunk = patternChunk(7, 64 * 1024);
    // 16 MiB, back-pressure ignored: more than loopback kernel buffers take in one go.
    for (let i = 0; i < 256; i++) conn.write(chunk);
    assert.ok(conn.bufferedBytes > 0, "nothing buffered after 16 MiB of writes");
    g.call("destroy", () => conn.destroy());
    assert.equal(conn.write(chunk), false);
    await must(w, () => client.closed && server.accepted[0].closed, 10_000, "both closed");
    assert.deepEqual(client.reasons, ["local"]);
    const [peer] = server.accepted[0].reasons;
    assert.ok(peer === "eof" || peer === "reset", `peer saw ${peer}`);
    server.listener.close();
  },
);

behaviour(
  "destroy() while connecting closes the dialler once, with local, unopened",
  async (w, g) => {
    const server = listenOn(g, w.b);
    await must(w, server.ready, WAIT_MS, "listening");
    const client = dial(g, w.a, { host: w.b.host, port: server.listener.local.port });
    g.call("destroy", () => client.conn!.destroy());
    await must(w, () => client.closed, WAIT_MS, "closed");
    // The listener may or may not have accepted the connection; if it did, it closes it too.
    await w.waitFor(() => false, 50);
    await must(w, () => server.accepted.every((log) => log.closed), WAIT_MS, "accepted closed");
    assert.equal(client.opens, 0);
    assert.deepEqual(client.reasons, ["local"]);
    server.listener.close();
  },
);

// ---- time and randomness --------------------------------------------------------------------------

behaviour(
  "timers fire in due order, ties in scheduling order, never early; cancel works",
  async (w) => {
    const clock = w.a.platform.clock;
    const fired: string[] = [];
    const early: string[] = [];
    const at = (label: string, delayMs: number) => {
      const start = clock.now();
      return clock.schedule(delayMs, () => {
        fired.push(label);
        if (clock.now() - start < delayMs) early.push(`${label} after ${clock.now() - start} ms`);
      });
    };
    at("30", 30);
    at("10", 10);
    const cancelled = at("x", 15);
    at("20a", 20);
    at("20b", 20);
    at("0", 0);
    const victim = at("y", 25);
    clock.schedule(22, () => victim.cancel());
    cancelled.cancel();
    cancelled.cancel();
    assert.deepEqual(fired, [], "a timer fired inside schedule()");
    await must(w, () => fired.length >= 5, WAIT_MS, "five timers");
    await w.waitFor(() => false, 40);
    assert.deepEqual(fired, ["0", "10", "20a", "20b", "30"]);
    assert.deepEqual(early, []);
    const done = at("z", 0);
    await must(w, () => fired.length === 6, WAIT_MS, "a zero-delay timer");
    done.cancel(); // after firing: a no-op
    assert.throws(() => clock.schedule(-1, () => {}), RangeError);
  },
);

behaviour("the clock is monotonic and wallNow() is Unix-epoch time", async (w) => {
  const clock = w.a.platform.clock;
  let last = clock.now();
  for (let i = 0; i < 1000; i++) {
    const now = clock.now();
    assert.ok(now >= last, `now() went back from ${last} to ${now}`);
    last = now;
  }
  const before = clock.now();
  await w.waitFor(() => false, 10);
  assert.ok(clock.now() >= before + 10 - 1e-6, "10 ms passed");
  const wall = clock.wallNow();
  assert.ok(Number.isFinite(wall) && wall > Date.UTC(2020, 0, 1), `wallNow() ${wall}`);
});

behaviour("Random.int stays in its inclusive range; next() in [0, 1); fill fills", async (w) => {
  const random = w.a.platform.random;
  const seen = new Set<number>();
  for (let i = 0; i < 10_000; i++) {
    const value = random.int(-3, 3);
    assert.ok(Number.isInteger(value) && value >= -3 && value <= 3, `int(-3, 3) gave ${value}`);
    seen.add(value);
  }
  assert.equal(seen.size, 7, "every value of [-3, 3] drawn");
  assert.equal(random.int(5, 5), 5);
  for (
    const [min, max] of [[0, 2 ** 32], [0, Number.MAX_SAFE_INTEGER], [
      Number.MIN_SAFE_INTEGER,
      Number.MAX_SAFE_INTEGER,
    ]]
  ) {
    for (let i = 0; i < 200; i++) {
      const value = random.int(min, max);
      assert.ok(Number.isSafeInteger(value) && value >= min && value <= max, `${value}`);
    }
  }
  assert.throws(() => random.int(3, 1), RangeError);
  assert.throws(() => random.int(0.5, 2), RangeError);
  let sum = 0;
  for (let i = 0; i < 10_000; i++) {
    const value = random.next();
    assert.ok(value >= 0 && value < 1, `next() gave ${value}`);
    sum += value;
  }
  assert.ok(sum > 4500 && sum < 5500, `mean of next() ${sum / 10_000}`);
  const bytes = new Uint8Array(100_000);
  assert.equal(random.fill(bytes), bytes);
  assert.ok(bytes.some((x) => x !== 0) && new Set(bytes).size === 256, "fill left bytes unset");
  await w.waitFor(() => true, 0);
});
