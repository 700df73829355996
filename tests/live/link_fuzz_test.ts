/**
 * Link-failure fuzzing on this runtime's real adapter: two nodes exchange a steady stream of
 * messages between their workers through a hostile loopback TCP proxy that, on a seeded
 * schedule, cuts connections mid-frame, stops reading for a while (back-pressure), splits
 * writes into tiny pieces, delays them, and refuses connections for a moment; one node is also
 * restarted (same GUID and port, new incarnation) while messages flow.
 *
 * So that every connection goes through the proxy, the proxy rewrites the address in each
 * hello to its own (a peer dials what the hello says), as a NAT would; nothing else is
 * touched, so a single wrong byte shows up as a protocol error or a corrupt message.
 *
 * Checked: nothing crashes or throws; links come back after each disruption; every message
 * sent is delivered at most once and in per-sender order, and each one is delivered or reported
 * undeliverable; nothing reported for certain is delivered (a dropped link's unconfirmed messages
 * are resent on the next link, or reported "uncertain" if the peer restarted); at the end both sides
 * agree on the link, its incarnations and the workers' locations.
 *
 * The schedule comes from `LINK_FUZZ_SEED` (printed; set it to replay). Ports: links
 * 10000–19999 on 127.0.0.1. Bounded: about 25 s.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import process from "node:process";
import type { MapMessage } from "../../src/message.ts";
import { AutoMpiNode, type NodeOptions, type UndeliverableReason } from "../../src/node.ts";
import type { Platform } from "../../src/platform.ts";
import { decodeHello, encodeHello } from "../../src/system.ts";
import { encodeFrame } from "../../src/framing.ts";
import {
  createTestPlatform,
  LogCapture,
  Prng,
  randomLinkPort,
  RecordingWorker,
  seedFrom,
  sleep,
  waitUntil,
} from "../_hostile.ts";
import { currentRuntime } from "../_processes.ts";

const SEED = seedFrom("LINK_FUZZ_SEED");
const DISRUPT_MS = 12_000;
const CALM_MS = 1500;
const SETTLE_TIMEOUT_MS = 8000;
const HEARTBEAT_MS = 100;
const SILENCE_INTERVALS = 10;

const token = `${process.pid.toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

function figure(text: string): void {
  console.log(`[figure] ${currentRuntime()}: ${text}`);
}

// ---- the hostile proxy ------------------------------------------------------------------------

/** What the proxy does to one connection, drawn when it is accepted. */
interface Fate {
  /** Forward each chunk in pieces of 1..16 bytes, one event-loop turn apart. */
  readonly split: boolean;
  /** Hold each chunk this long before forwarding it (order kept). */
  readonly delayMs: number;
  /** Destroy both sides once this many bytes went one way (mid-frame, mostly). */
  readonly cutAfterBytes: number;
  /** Destroy both sides after this long. */
  readonly cutAfterMs: number;
  /** Stop reading one way after this many bytes, for `stallMs`. */
  readonly stallAfterBytes: number;
  readonly stallMs: number;
}

interface ProxyStats {
  connections: number;
  refused: number;
  cuts: number;
  stalls: number;
  splits: number;
  delayed: number;
  hellosRewritten: number;
  bytes: number;
}

/**
 * A loopback TCP proxy in front of `targetPort`, disrupting per a seeded schedule. Hellos
 * crossing it have their address rewritten through `rewrite` (real address → proxy address).
 */
class HostileProxy {
  readonly stats: ProxyStats = {
    connections: 0,
    refused: 0,
    cuts: 0,
    stalls: 0,
    splits: 0,
    delayed: 0,
    hellosRewritten: 0,
    bytes: 0,
  };
  /** When true, no new disruption starts, and running ones end. */
  calm = false;
  /** Until this time (ms, Date.now) new connections are refused. */
  blackoutUntilMs = 0;
  port = 0;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #rng: Prng;
  readonly #targetPort: number;
  readonly #rewrite: Map<string, string>;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(seed: number, targetPort: number, rewrite: Map<string, string>) {
    this.#rng = new Prng(seed);
    this.#targetPort = targetPort;
    this.#rewrite = rewrite;
    this.#server = net.createServer((client) => this.#accept(client));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      let attempts = 0;
      const go = () => this.#server.listen(randomLinkPort(), "127.0.0.1");
      this.#server.on("error", (error: Error & { code?: string }) => {
        if (error.code === "EADDRINUSE" && ++attempts < 20) go();
        else reject(error);
      });
      this.#server.on("listening", () => {
        this.port = (this.#server.address() as net.AddressInfo).port;
        resolve();
      });
      go();
    });
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Resets every connection through the proxy now. */
  cutAll(): void {
    if (this.#sockets.size > 0) this.stats.cuts++;
    for (const socket of this.#sockets) socket.destroy();
  }

  close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => this.#sockets.delete(socket));
  }

  #fate(): Fate {
    const r = this.#rng;
    if (this.calm) {
      return {
        split: false,
        delayMs: 0,
        cutAfterBytes: Infinity,
        cutAfterMs: Infinity,
        stallAfterBytes: Infinity,
        stallMs: 0,
      };
    }
    // Every connection dies young: after a while, or after some bytes (mid-frame, mostly).
    const stall = r.chance(0.3);
    return {
      split: r.chance(0.3),
      delayMs: r.chance(0.3) ? r.int(1, 40) : 0,
      cutAfterBytes: r.chance(0.6) ? r.int(1, 400_000) : Infinity,
      cutAfterMs: r.int(200, 3000),
      stallAfterBytes: stall ? r.int(0, 200_000) : Infinity,
      stallMs: stall ? r.int(100, 2500) : 0,
    };
  }

  #accept(client: net.Socket): void {
    this.#track(client);
    this.stats.connections++;
    if (Date.now() < this.blackoutUntilMs) {
      this.stats.refused++;
      client.destroy();
      return;
    }
    const fate = this.#fate();
    if (fate.split) this.stats.splits++;
    if (fate.delayMs > 0) this.stats.delayed++;
    const server = net.connect({ host: "127.0.0.1", port: this.#targetPort });
    this.#track(server);
    client.pause();
    const link = { cut: false };
    // A cut ends the way whose bytes were cut (what was written, a partial frame, still arrives,
    // then end-of-stream) or resets both at once: the nodes must cope with either.
    const doCut = (towards: net.Socket | undefined) => {
      if (link.cut || this.calm) return;
      link.cut = true;
      this.stats.cuts++;
      if (towards !== undefined && this.#rng.chance(0.5)) {
        towards.end();
        (towards === client ? server : client).destroy();
        this.#later(500, () => towards.destroy());
      } else {
        client.destroy();
        server.destroy();
      }
    };
    client.on("close", () => link.cut || server.destroy());
    server.on("close", () => link.cut || client.destroy());
    server.on("connect", () => {
      const stallClientSide = this.#rng.chance(0.5);
      this.#pipe(client, server, fate, link, doCut, stallClientSide);
      this.#pipe(server, client, fate, link, doCut, !stallClientSide);
      client.resume();
    });
    if (fate.cutAfterMs !== Infinity) this.#later(fate.cutAfterMs, () => doCut(undefined));
  }

  /** Forwards `from` → `to`, rewriting the first frame (the hello) and applying `fate`. */
  #pipe(
    from: net.Socket,
    to: net.Socket,
    fate: Fate,
    link: { cut: boolean },
    cut: (towards: net.Socket | undefined) => void,
    stallThisWay: boolean,
  ) {
    let forwarded = 0;
    let hello: Uint8Array | null = new Uint8Array(0);
    let stalled = false;
    let stalledOnce = false;
    /** Chunks to write in order; `null` marks the cut after the bytes before it. */
    const queue: Array<Uint8Array | null> = [];
    let queuedBytes = 0;
    let pumping = false;

    const pump = async () => {
      if (pumping) return;
      pumping = true;
      while (queue.length > 0 && !to.destroyed) {
        if (fate.delayMs > 0 && !this.calm) await sleep(fate.delayMs);
        // Everything queued by now goes out together: a delay holds bytes, never slows them.
        const batch = queue.splice(0, queue.length);
        for (const chunk of batch) {
          if (chunk === null) {
            cut(to);
            break;
          }
          queuedBytes -= chunk.length;
          if (link.cut && !this.calm) break;
          let ok = true;
          if (fate.split && !this.calm) {
            // Tiny pieces for small chunks; large ones in up to 64 pieces of random size.
            const step = chunk.length <= 256 ? 16 : Math.ceil(chunk.length / 32);
            for (let at = 0, i = 0; at < chunk.length && !to.destroyed; i++) {
              const n = 1 + ((at * 13 + chunk.length + i) % step);
              ok = to.write(chunk.subarray(at, at + n));
              at += n;
              if (i % 8 === 7) await new Promise((next) => setImmediate(next));
            }
          } else {
            ok = to.write(chunk);
          }
          if (!ok && !to.destroyed) await new Promise((drained) => to.once("drain", drained));
        }
        if (queuedBytes < 256 * 1024 && !stalled && from.isPaused() && !from.destroyed) {
          from.resume();
        }
      }
      pumping = false;
    };

    const forward = (chunk: Uint8Array) => {
      if (chunk.length === 0 || link.cut) return;
      let piece = chunk;
      let cutHere = false;
      if (forwarded + piece.length >= fate.cutAfterBytes && !this.calm) {
        piece = piece.subarray(0, Math.max(0, fate.cutAfterBytes - forwarded));
        cutHere = true;
      }
      forwarded += piece.length;
      this.stats.bytes += piece.length;
      if (piece.length > 0) queue.push(piece);
      queuedBytes += piece.length;
      if (cutHere) queue.push(null);
      if (queuedBytes >= 1024 * 1024) from.pause();
      if (
        stallThisWay && !stalledOnce && forwarded >= fate.stallAfterBytes && fate.stallMs > 0 &&
        !this.calm
      ) {
        // Stop reading: the sender's buffers fill, its writes back up; resume later.
        stalled = true;
        stalledOnce = true;
        this.stats.stalls++;
        from.pause();
        this.#later(fate.stallMs, () => {
          stalled = false;
          if (!from.destroyed) from.resume();
        });
      }
      void pump();
    };

    from.on("data", (received: Uint8Array) => {
      // A copy: the bytes may wait (delays, stalls), and a runtime may reuse its read buffer.
      const data = new Uint8Array(received);
      if (hello === null) return forward(data);
      // Gather the first frame, the hello, and put the proxied address in it.
      const joined = new Uint8Array(hello.length + data.length);
      joined.set(hello);
      joined.set(data, hello.length);
      hello = joined;
      if (hello.length < 4) return;
      const length = (hello[0] | (hello[1] << 8) | (hello[2] << 16) | (hello[3] << 24)) >>> 0;
      if (hello.length < 4 + length) return;
      const payload = hello.subarray(4, 4 + length);
      const rest = hello.subarray(4 + length);
      hello = null;
      let out: Uint8Array;
      try {
        const decoded = decodeHello(payload);
        const address = this.#rewrite.get(decoded.address) ?? decoded.address;
        out = encodeFrame(encodeHello({ ...decoded, address }));
        this.stats.hellosRewritten++;
      } catch {
        out = encodeFrame(payload);
      }
      forward(out);
      if (rest.length > 0) forward(rest);
    });
  }
}

// ---- nodes and the message stream ------------------------------------------------------------

interface Side {
  node: AutoMpiNode;
  platform: Platform & { close(): Promise<void> };
  log: LogCapture;
  worker: RecordingWorker;
}

/** Bookkeeping of one sender's stream: what was sent, delivered and reported. */
class Stream {
  sent = 0;
  readonly delivered = new Set<number>();
  readonly reported = new Map<number, UndeliverableReason>();
  readonly outcomes = new Map<number, "delivered" | "not-delivered">();
  lastDelivered = -1;
  readonly violations: string[] = [];
  readonly reasons = new Map<string, number>();
  duplicateReports = 0;

  constructor(readonly from: string, readonly to: string) {}

  onDelivered(message: MapMessage): void {
    const seq = Number(message.message.seq);
    if (this.delivered.has(seq)) this.violate(`message ${seq} delivered twice`);
    if (seq <= this.lastDelivered) {
      this.violate(`message ${seq} delivered after ${this.lastDelivered}`);
    }
    const expected = dataLength(seq);
    const data = message.data;
    if ((data?.length ?? 0) !== expected) {
      this.violate(`message ${seq} has ${data?.length ?? 0} data bytes, sent ${expected}`);
    } else if (data !== undefined) {
      for (let i = 0; i < data.length; i += 97) {
        if (data[i] !== ((seq + i) & 0xff)) {
          this.violate(`message ${seq} data corrupt at byte ${i}`);
          break;
        }
      }
    }
    this.delivered.add(seq);
    this.lastDelivered = Math.max(this.lastDelivered, seq);
  }

  onReported(message: MapMessage, reason: UndeliverableReason): void {
    const seq = Number(message.message.seq);
    if (this.reported.has(seq)) this.duplicateReports++;
    this.reported.set(seq, reason);
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + 1);
  }

  onOutcome(message: MapMessage, outcome: "delivered" | "not-delivered"): void {
    this.outcomes.set(Number(message.message.seq), outcome);
  }

  /** Messages reported undeliverable for certain, or contradicted by an outcome, yet delivered. */
  reportedThenDelivered(): number[] {
    return [...this.reported].filter(([seq, reason]) =>
      this.delivered.has(seq) &&
      (reason !== "uncertain" || this.outcomes.get(seq) === "not-delivered")
    ).map(([seq]) => seq);
  }

  violate(text: string): void {
    if (this.violations.length < 10) this.violations.push(`${this.from}→${this.to}: ${text}`);
  }

  /** Messages neither delivered nor reported. */
  missing(): number[] {
    const out: number[] = [];
    for (let seq = 0; seq < this.sent; seq++) {
      if (!this.delivered.has(seq) && !this.reported.has(seq)) out.push(seq);
    }
    return out;
  }
}

/** Data bytes of message `seq`: none mostly, some small, some over one 64 KiB batch. */
function dataLength(seq: number): number {
  const r = new Prng(SEED ^ 0x0da7a, seq);
  const kind = r.int(0, 99);
  if (kind < 65) return 0;
  if (kind < 90) return r.int(1, 2000);
  if (kind < 98) return r.int(10_000, 60_000);
  return r.int(100_000, 200_000);
}

function payloadOf(seq: number): Uint8Array | undefined {
  const n = dataLength(seq);
  if (n === 0) return undefined;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = (seq + i) & 0xff;
  return data;
}

const NODE_OPTIONS: Partial<NodeOptions> = {
  discovery: false,
  heartbeatIntervalMs: HEARTBEAT_MS,
  silenceIntervals: SILENCE_INTERVALS,
  handshakeTimeoutMs: 1000,
  connectTimeoutMs: 1000,
  reconnectMinMs: 50,
  reconnectMaxMs: 400,
  dialGraceMs: 300,
};

// ---- the test --------------------------------------------------------------------------------

test(
  "links between two nodes survive a hostile proxy and a restart: messages arrive once, in order, or are reported",
  { timeout: 60_000 },
  async () => {
    const guidA = `a-${token}`;
    const guidB = `b-${token}`;
    const workerA = `WA-${token}`;
    const workerB = `WB-${token}`;
    const portA = randomLinkPort();
    let portB = randomLinkPort();
    while (portB === portA) portB = randomLinkPort();
    const rewrite = new Map<string, string>();
    const toB = new HostileProxy(SEED, portB, rewrite);
    const toA = new HostileProxy(SEED ^ 0x1234, portA, rewrite);
    await toB.listen();
    await toA.listen();
    rewrite.set(`127.0.0.1:${portA}`, toA.address);
    rewrite.set(`127.0.0.1:${portB}`, toB.address);

    const aToB = new Stream("A", "B");
    const bToA = new Stream("B", "A");
    const errorLines: string[] = [];
    /** Protocol errors the nodes reported, by text. */
    const protocolErrors: string[] = [];
    const sides: Side[] = [];

    const startSide = async (guid: string, port: number, workerGuid: string, seeds: string[]) => {
      const log = new LogCapture();
      log.onEntry = (entry) => {
        if (entry.level === "error") {
          errorLines.push(`${guid} ${entry.event} ${JSON.stringify(entry.fields)}`);
        }
      };
      const platform = await createTestPlatform(log);
      const node = new AutoMpiNode(platform, {
        ...NODE_OPTIONS,
        guid,
        listen: { host: "127.0.0.1", port },
        seeds,
      });
      const outgoing = guid === guidA ? aToB : bToA;
      const incoming = guid === guidA ? bToA : aToB;
      node.on(
        "protocol-error",
        ({ stage, error }) => protocolErrors.push(`${guid} ${stage}: ${error}`),
      );
      node.on("undeliverable", ({ message, reason }) => {
        if (message.source === (guid === guidA ? workerA : workerB)) {
          outgoing.onReported(message, reason);
        }
      });
      node.on("message-outcome", ({ message, outcome }) => {
        if (message.source === (guid === guidA ? workerA : workerB)) {
          outgoing.onOutcome(message, outcome);
        }
      });
      const worker = new (class extends RecordingWorker {
        protected override onMessage(message: MapMessage): void {
          incoming.onDelivered(message);
        }
      })(workerGuid);
      node.start();
      await waitUntil(
        () => node.state().state !== "starting" && node.state().state !== "new",
        5000,
        `${guid} to listen`,
      );
      if (node.state().state !== "running") {
        await platform.close();
        throw new Error(`${guid} could not listen on ${port}: ${log.summary()}`);
      }
      node.attachWorker(worker);
      const side = { node, platform, log, worker };
      sides.push(side);
      return side;
    };

    const a = await startSide(guidA, portA, workerA, [toB.address]);
    let b = await startSide(guidB, portB, workerB, []);
    const restarts: string[] = [];
    try {
      await waitUntil(
        () => a.node.locate(workerB) === guidB && b.node.locate(workerA) === guidA,
        10_000,
        "the first link through the proxy",
      );

      // The storm: steady traffic both ways while the proxies disrupt; one restart of B.
      const schedule = new Prng(SEED ^ 0x77);
      const startMs = Date.now();
      let restarted = false;
      let longBlackout = false;
      let linkUps = 0;
      while (Date.now() - startMs < DISRUPT_MS + CALM_MS) {
        const elapsed = Date.now() - startMs;
        if (elapsed >= DISRUPT_MS && !toA.calm) {
          toA.calm = true;
          toB.calm = true;
        }
        for (
          const [from, stream, dest, source] of [
            [a, aToB, workerB, workerA],
            [b, bToA, workerA, workerB],
          ] as const
        ) {
          for (let k = schedule.int(1, 8); k > 0; k--) {
            const seq = stream.sent++;
            const message: MapMessage = {
              destination: dest,
              source,
              message: { seq: String(seq) },
            };
            const data = payloadOf(seq);
            if (data !== undefined) message.data = data;
            from.node.send(message);
          }
        }
        if (!toA.calm && schedule.chance(0.01)) {
          const until = Date.now() + schedule.int(100, 800);
          (schedule.chance(0.5) ? toA : toB).blackoutUntilMs = until;
        }
        if (!longBlackout && elapsed > DISRUPT_MS * 0.3) {
          // A's way to B is cut and closed for longer than B's dial grace: B dials A instead,
          // through the other proxy.
          longBlackout = true;
          toB.blackoutUntilMs = Date.now() + 1500;
          toB.cutAll();
        }
        if (!restarted && elapsed > DISRUPT_MS * 0.55) {
          // Restart B under load: same GUID and port, new incarnation.
          restarted = true;
          const old = b;
          old.node.close();
          await old.platform.close();
          for (let attempt = 0;; attempt++) {
            try {
              // Seeded with A (through its proxy): the new B dials A itself, so the B→A path
              // is exercised whatever the timing, and both sides may dial at once.
              b = await startSide(guidB, portB, workerB, [toA.address]);
              break;
            } catch (error) {
              if (attempt >= 20) throw error;
              await sleep(50);
            }
          }
          restarts.push(`${old.node.incarnation} -> ${b.node.incarnation} at ${elapsed} ms`);
        }
        await sleep(schedule.int(2, 15));
      }
      linkUps = a.node.state().stats.linksUp;

      // Calm: the link comes back and everything in flight is confirmed.
      const settled = () => {
        const la = a.node.state().links;
        const lb = b.node.state().links;
        return la.length === 1 && lb.length === 1 && la[0].unacked === 0 && lb[0].unacked === 0 &&
          aToB.missing().length === 0 && bToA.missing().length === 0;
      };
      await waitUntil(settled, SETTLE_TIMEOUT_MS, "the link to settle with nothing unconfirmed")
        .catch((error) => {
          throw new Error(
            `${error.message}: A ${JSON.stringify(a.node.state().links)}, B ${
              JSON.stringify(b.node.state().links)
            }, missing A→B ${aToB.missing().slice(0, 10)} B→A ${bToA.missing().slice(0, 10)}`,
          );
        });

      const stateA = a.node.state();
      const stateB = b.node.state();
      for (const [name, stream] of [["A→B", aToB], ["B→A", bToA]] as const) {
        figure(
          `${name} (seed ${SEED}): sent ${stream.sent}, delivered ${stream.delivered.size}, reported ${stream.reported.size} (${
            [...stream.reasons].map(([r, n]) => `${r} ${n}`).join(", ")
          }), both ${[...stream.reported.keys()].filter((s) => stream.delivered.has(s)).length}`,
        );
      }
      figure(
        `protocol errors reported: ${protocolErrors.length} (${
          [...new Set(protocolErrors.map((line) => line.replace(/^\S+ /, "").replace(/\d+/g, "N")))]
            .join("; ")
        })`,
      );
      figure(
        `proxy to B ${JSON.stringify(toB.stats)}; proxy to A ${
          JSON.stringify(toA.stats)
        }; A linksUp ${linkUps}, B restarts ${restarts.join(", ")}; A stats ${
          JSON.stringify(stateA.stats)
        }`,
      );

      // No corruption, no duplicates, per-sender order, nothing lost silently.
      assert.deepEqual([...aToB.violations, ...bToA.violations], []);
      assert.deepEqual(aToB.missing(), []);
      assert.deepEqual(bToA.missing(), []);
      assert.equal(aToB.duplicateReports + bToA.duplicateReports, 0, "a message reported twice");
      assert.deepEqual(
        aToB.reportedThenDelivered(),
        [],
        "A→B: reported for certain, then delivered",
      );
      assert.deepEqual(
        bToA.reportedThenDelivered(),
        [],
        "B→A: reported for certain, then delivered",
      );
      assert.ok(aToB.delivered.size + aToB.reported.size >= aToB.sent);
      assert.ok(bToA.delivered.size + bToA.reported.size >= bToA.sent);
      // The disruptions happened and the links came back each time.
      assert.ok(toA.stats.cuts + toB.stats.cuts > 0, "the proxies cut nothing");
      assert.ok(linkUps > 2, `only ${linkUps} links came up`);
      assert.equal(restarts.length, 1);
      assert.ok(toA.stats.connections > 0, "B never dialled A");
      // Consistent state on both sides.
      for (const state of [stateA, stateB]) {
        assert.equal(state.state, "running");
        assert.equal(state.stats.listenerErrors, 0);
        assert.equal(state.stats.workerErrors, 0);
        assert.equal(state.stats.linksUp - state.stats.linksDown, 1);
      }
      assert.deepEqual(errorLines, []);
      // A cut that ends the stream inside a frame is a truncated frame, and counted as such;
      // any other protocol error means bytes were corrupted or misframed on the way.
      assert.deepEqual(
        protocolErrors.filter((line) =>
          !/: Cannot decode frame: stream ended after \d+ of \d+ (header|payload) bytes$/.test(line)
        ),
        [],
      );
      assert.deepEqual(a.node.linkedPeers(), [guidB]);
      assert.deepEqual(b.node.linkedPeers(), [guidA]);
      assert.equal(stateA.links[0].incarnation, b.node.incarnation);
      assert.equal(stateB.links[0].incarnation, a.node.incarnation);
      assert.equal(a.node.locate(workerB), guidB);
      assert.equal(b.node.locate(workerA), guidA);
      assert.deepEqual(stateA.locations, { [workerB]: guidB });
      assert.deepEqual(stateB.locations, { [workerA]: guidA });
      // A knows B at the proxy's address: every dial went through the proxy.
      assert.deepEqual(stateA.peers.map((p) => p.address), [toB.address]);
    } finally {
      for (const side of sides) side.node.close();
      await Promise.all(sides.map((side) => Promise.race([side.platform.close(), sleep(3000)])));
      await toA.close();
      await toB.close();
    }
  },
);
