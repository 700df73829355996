/**
 * Hostile input against a live node over loopback, on this runtime's real adapter.
 *
 * A victim node and a good peer linked to it run in this process. Raw `node:net` and
 * `node:dgram` sockets then throw thousands of hostile connections and datagrams at the victim,
 * in bounded batches: random bytes, length prefixes up to 4 GiB, garbage in a valid frame,
 * invalid msgpack and JSON, wrong hellos (magic, version, huge GUID, codec), handshakes never
 * finished, truncated frames then end-of-stream, garbage after a valid handshake, junk
 * heartbeats. Every case is drawn from a seeded generator: the seed is printed, and
 * `HOSTILE_SEED=…` replays a run (`HOSTILE_CASE=n` runs only its TCP case n).
 *
 * Checked: each hostile connection is closed by the victim and counted, with one clear log
 * line ("Cannot …"); the link to the good peer never drops and messages keep flowing both ways;
 * the victim keeps serving (a new peer can still link); memory after a collection is what it
 * was before the storm. Separate tests pin down what earlier storms found (a spoofed heartbeat
 * dropping a link, truncated frames not counted, twin-GUID log floods, the datagram cache
 * pinning memory), each fixed since.
 *
 * Ports: links 10000–19999, discovery 20000–29999, all on 127.0.0.1; every wait is bounded
 * and everything opened is closed at the end, on failure too.
 *
 * @module
 */
import { test } from "node:test";
import process from "node:process";
import assert from "node:assert/strict";
import net from "node:net";
import dgram from "node:dgram";
import { encode as msgpackEncode } from "@msgpack/msgpack";
import { jsonCodec, msgpackCodec } from "../../src/codec.ts";
import { encodeFrame } from "../../src/framing.ts";
import type { MapMessage } from "../../src/message.ts";
import { AutoMpiNode, type NodeEvents, type NodeOptions } from "../../src/node.ts";
import type { Platform } from "../../src/platform.ts";
import { encodeHello, SYSTEM_KEY, SystemField, SystemKind } from "../../src/system.ts";
import {
  type CapturedLog,
  createTestPlatform,
  LogCapture,
  memoryAfterGc,
  mib,
  Prng,
  randomDiscoveryPort,
  randomLinkPort,
  RecordingWorker,
  seedFrom,
  sleep,
  waitUntil,
} from "../_hostile.ts";
import { currentRuntime } from "../_processes.ts";

const SEED = seedFrom("HOSTILE_SEED");
/** `HOSTILE_CASE=n` runs only TCP case n of the seed's storm (to replay one failure). */
const ONLY_CASE = process.env.HOSTILE_CASE === undefined
  ? undefined
  : Number(process.env.HOSTILE_CASE);
const HEARTBEAT_MS = 100;
/** Generous, so that a busy event loop during the storm cannot pass for a silent peer. */
const SILENCE_INTERVALS = 20;
const HANDSHAKE_TIMEOUT_MS = 300;
const TCP_CASES = 3000;
const UDP_CASES = 2000;
/** Hostile connections open at once. */
const CONCURRENCY = 40;
/** The victim must have closed a hostile connection within this time. */
const CASE_TIMEOUT_MS = 3000;
const MAX_FRAME_BYTES = 16 * 1024 * 1024;

function figure(text: string): void {
  console.log(`[figure] ${currentRuntime()}: ${text}`);
}

const token = `${process.pid.toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

// ---- a victim, a good peer and a trap -------------------------------------------------------

interface Member {
  readonly node: AutoMpiNode;
  readonly platform: Platform & { close(): Promise<void> };
  readonly log: LogCapture;
  readonly worker: RecordingWorker;
  readonly events: Array<{ type: keyof NodeEvents; event: Record<string, unknown> }>;
}

/** A listener standing for every address a hostile peer advertises: counts dials, drops them. */
interface Trap {
  readonly port: number;
  connections: number;
  close(): Promise<void>;
}

function startTrap(): Promise<Trap> {
  return new Promise((resolve, reject) => {
    let attempts = 0;
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      trap.connections++;
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => sockets.delete(socket));
      socket.destroy();
    });
    const trap: Trap = {
      port: 0,
      connections: 0,
      close: () =>
        new Promise<void>((done) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => done());
        }),
    };
    const listen = () => server.listen(randomLinkPort(), "127.0.0.1");
    server.on("error", (error: Error & { code?: string }) => {
      if (error.code === "EADDRINUSE" && ++attempts < 20) listen();
      else reject(error);
    });
    server.on("listening", () => {
      (trap as { port: number }).port = (server.address() as net.AddressInfo).port;
      resolve(trap);
    });
    listen();
  });
}

const EVENT_TYPES: Array<keyof NodeEvents> = [
  "link-up",
  "link-down",
  "protocol-error",
  "undeliverable",
  "duplicate-guid",
  "peer-discovered",
  "peer-lost",
];

async function startMember(
  name: string,
  options: Partial<NodeOptions>,
  onEvent?: (type: keyof NodeEvents, event: Record<string, unknown>) => void,
  onLog?: (entry: CapturedLog) => void,
): Promise<Member> {
  const log = new LogCapture();
  log.onEntry = onLog;
  const platform = await createTestPlatform(log);
  const node = new AutoMpiNode(platform, {
    guid: `${name}-${token}`,
    listen: { host: "127.0.0.1", port: randomLinkPort() },
    portSearch: 50,
    discovery: false,
    heartbeatIntervalMs: HEARTBEAT_MS,
    silenceIntervals: SILENCE_INTERVALS,
    handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
    connectTimeoutMs: 1000,
    reconnectMaxMs: 500,
    ...options,
  });
  const events: Member["events"] = [];
  for (const type of EVENT_TYPES) {
    node.on(type, (event) => {
      const record = event as unknown as Record<string, unknown>;
      // Keep what tests look at; undeliverable messages are counted, not kept.
      if (type !== "peer-discovered" && type !== "peer-lost") events.push({ type, event: record });
      onEvent?.(type, record);
    });
  }
  const worker = new RecordingWorker(`W-${name}-${token}`);
  node.start();
  await waitUntil(() => node.running || node.state().state === "closed", 5000, `${name} to start`);
  assert.equal(node.state().state, "running", `${name} did not start: ${log.summary()}`);
  node.attachWorker(worker);
  return { node, platform, log, worker, events };
}

async function stopMembers(members: Array<Member | undefined>): Promise<void> {
  for (const member of members) member?.node.close();
  await Promise.all(
    members.map((member) =>
      member === undefined ? undefined : Promise.race([member.platform.close(), sleep(3000)])
    ),
  );
}

/** Starts a victim (with discovery on a unicast loopback port) and a good peer linked to it. */
async function startPair(
  onVictimEvent?: (type: keyof NodeEvents, event: Record<string, unknown>) => void,
  extra: Partial<NodeOptions> = {},
  onVictimLog?: (entry: CapturedLog) => void,
) {
  const discoveryPort = randomDiscoveryPort();
  const victim = await startMember(
    "victim",
    {
      discovery: { port: discoveryPort, bindHost: "127.0.0.1", broadcastAddress: "127.0.0.1" },
      ...extra,
    },
    onVictimEvent,
    onVictimLog,
  );
  let good: Member | undefined;
  try {
    good = await startMember("good", { seeds: [victim.node.address], ...extra });
    const g = good;
    await waitUntil(
      () =>
        victim.node.locate(g.worker.guid) === g.node.guid &&
        g.node.locate(victim.worker.guid) === victim.node.guid,
      10_000,
      "the good peer to link to the victim and learn its worker",
    );
  } catch (error) {
    await stopMembers([victim, good]);
    throw error;
  }
  return { victim, good, discoveryPort };
}

/** Messages from `from`'s worker to `to`'s worker, numbered from `first`. */
function sendBurst(from: Member, to: Member, first: number, count: number): void {
  for (let i = first; i < first + count; i++) {
    from.node.send({
      destination: to.worker.guid,
      source: from.worker.guid,
      message: { seq: String(i) },
    });
  }
}

function sequenceOf(messages: readonly MapMessage[]): number[] {
  return messages.map((message) => Number(message.message.seq));
}

// ---- hostile connections ---------------------------------------------------------------------

type TcpKind =
  | "random-bytes"
  | "huge-length"
  | "stalled-length"
  | "garbage-payload"
  | "invalid-msgpack"
  | "json-as-hello"
  | "bad-hello"
  | "silent"
  | "partial-hello"
  | "own-guid-hello"
  | "garbage-after-hello"
  | "truncated-then-close";

interface TcpPlan {
  readonly index: number;
  readonly kind: TcpKind;
  readonly bytes: Uint8Array;
  /** Write in small pieces, one per event-loop turn. */
  readonly pieces: boolean;
  /** End the stream (FIN) after writing. */
  readonly endAfterWrite?: boolean;
  /** For garbage after a hello: the GUID the hostile peer claimed. */
  readonly guid?: string;
  /** What the victim's error must say. */
  readonly expect: RegExp;
}

interface TcpOutcome {
  readonly plan: TcpPlan;
  /** How the connection ended for the client: closed by the victim, or still open at the bound. */
  readonly ended: "victim-closed" | "timeout" | "connect-failed";
  /** The error the victim reported for this connection (protocol-error or link-down detail). */
  readonly errors: string[];
}

const TCP_KINDS: ReadonlyArray<readonly [TcpKind, number]> = [
  ["random-bytes", 20],
  ["huge-length", 15],
  ["stalled-length", 4],
  ["garbage-payload", 12],
  ["invalid-msgpack", 6],
  ["json-as-hello", 5],
  ["bad-hello", 15],
  ["silent", 3],
  ["partial-hello", 3],
  ["own-guid-hello", 2],
  ["garbage-after-hello", 15],
  ["truncated-then-close", 5],
];

const utf8 = new TextEncoder();

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function header(lengthBytes: number): Uint8Array {
  return new Uint8Array([lengthBytes, lengthBytes >>> 8, lengthBytes >>> 16, lengthBytes >>> 24]);
}

function validHello(guid: string, codec: "msgpack" | "json", address: string): Uint8Array {
  return encodeFrame(encodeHello({
    version: 1,
    guid,
    incarnation: `inc-${guid}`,
    codec,
    address,
  }));
}

function planTcp(index: number, victimGuid: string, trapAddress: string): TcpPlan {
  const rng = new Prng(SEED, index);
  const kind = rng.weighted(TCP_KINDS);
  const pieces = rng.chance(0.2);
  const handshake = /^Cannot (decode hello|accept hello|link: handshake timed out)/;
  const hello = (fields: unknown[]) => encodeFrame(msgpackEncode(fields));
  switch (kind) {
    case "random-bytes": {
      // Whatever the first four bytes claim: refused at once, or timed out waiting for more.
      return {
        index,
        kind,
        pieces,
        bytes: rng.bytes(rng.int(1, 300)),
        expect: /^Cannot (decode frame: length \d+ exceeds|link: handshake timed out|decode hello)/,
      };
    }
    case "huge-length": {
      const n = rng.pick([
        MAX_FRAME_BYTES + 1,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        rng.int(MAX_FRAME_BYTES + 1, 0xffff_ffff),
      ]);
      return {
        index,
        kind,
        pieces,
        bytes: concat([header(n), rng.bytes(rng.size(64))]),
        expect: new RegExp(
          `^Cannot decode frame: length ${n} exceeds the limit of ${MAX_FRAME_BYTES} bytes$`,
        ),
      };
    }
    case "stalled-length":
      // A frame that may be legal, of which only a little ever comes: the handshake times out.
      return {
        index,
        kind,
        pieces,
        bytes: concat([header(rng.int(2000, MAX_FRAME_BYTES)), rng.bytes(rng.int(0, 1000))]),
        expect: /^Cannot link: handshake timed out$/,
      };
    case "garbage-payload":
      return {
        index,
        kind,
        pieces,
        bytes: encodeFrame(rng.bytes(rng.int(0, 200))),
        expect: handshake,
      };
    case "invalid-msgpack":
      return {
        index,
        kind,
        pieces,
        bytes: encodeFrame(
          rng.pick([
            new Uint8Array([0xc1]),
            new Uint8Array([0x96, 0xa7, 0x41]), // cut inside a string
            new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), // an array of 4 G elements
            new Uint8Array([0xdb, 0x00, 0xff, 0xff, 0xff, 0x41]), // a 16 MiB string, 1 byte given
            new Uint8Array([0xd4, 0xff, 0x00]), // a timestamp of one byte
            concat([
              msgpackEncode(["AutoMPI", 1, "g", "i", "msgpack", "a:1"]),
              new Uint8Array([0xc1]),
            ]),
          ]),
        ),
        expect: handshake,
      };
    case "json-as-hello":
      return {
        index,
        kind,
        pieces,
        bytes: encodeFrame(
          jsonCodec.encode({ destination: "x", source: "y", message: { a: "b" } }),
        ),
        expect: handshake,
      };
    case "bad-hello": {
      const fields: unknown[] = ["AutoMPI", 1, `bad-${index}`, "inc", "msgpack", trapAddress];
      switch (rng.int(0, 7)) {
        case 0:
          fields[0] = rng.pick(["AutoMPJ", "autompi", "", "AutoMPI\u0000"]);
          break;
        case 1:
          fields[1] = rng.pick([0, 2, 255, "1", null, 1.5]);
          break;
        case 2:
          fields[2] = rng.pick(["", "g".repeat(257), "g".repeat(100_000)]);
          break;
        case 3:
          fields[2] = rng.pick([7, null, ["g"], { g: 1 }]);
          break;
        case 4:
          fields[4] = rng.pick(["xml", "", "MSGPACK", 1]);
          break;
        case 5:
          fields[5] = rng.pick([7, null, "a".repeat(301)]);
          break;
        case 6:
          fields[3] = rng.pick([7, "i".repeat(65)]);
          break;
        default:
          fields.length = rng.int(0, 5);
      }
      return { index, kind, pieces, bytes: hello(fields), expect: handshake };
    }
    case "silent":
      return {
        index,
        kind,
        pieces,
        bytes: new Uint8Array(0),
        expect: /^Cannot link: handshake timed out$/,
      };
    case "partial-hello": {
      const whole = validHello(`partial-${index}`, "msgpack", trapAddress);
      return {
        index,
        kind,
        pieces,
        bytes: whole.subarray(0, rng.int(1, whole.length - 1)),
        expect: /^Cannot link: handshake timed out$/,
      };
    }
    case "truncated-then-close": {
      // Part of a frame, then end-of-stream: the peer sent a truncated frame.
      const whole = rng.chance(0.5)
        ? validHello(`cut-${index}`, "msgpack", trapAddress)
        : concat([header(rng.int(10, 100_000)), rng.bytes(rng.int(0, 9))]);
      return {
        index,
        kind,
        pieces,
        endAfterWrite: true,
        bytes: whole.subarray(0, rng.int(1, Math.min(whole.length, 14) - 1)),
        expect: /^Cannot decode frame: stream ended after \d+ of \d+ (header|payload) bytes$/,
      };
    }
    case "own-guid-hello":
      return {
        index,
        kind,
        pieces,
        bytes: encodeFrame(encodeHello({
          version: 1,
          guid: victimGuid,
          incarnation: `twin-${index}`,
          codec: "msgpack",
          address: trapAddress,
        })),
        expect: /^Cannot link: node .* claims this node's GUID/,
      };
    default: {
      // A valid handshake from a new peer, then something no peer may send.
      const guid = `hostile-${index}-${token}`;
      const codec = rng.chance(0.8) ? "msgpack" as const : "json" as const;
      const after = rng.int(0, 4);
      const system = (fields: Record<string, string>) =>
        encodeFrame(
          (codec === "json" ? jsonCodec : msgpackCodec).encode({
            destination: "",
            source: guid,
            message: { [SYSTEM_KEY]: "", ...fields },
          }),
        );
      const bad = after === 0
        ? encodeFrame(rng.bytes(rng.int(1, 200)))
        : after === 1
        ? concat([header(rng.pick([MAX_FRAME_BYTES + 1, 0xffff_ffff])), rng.bytes(8)])
        : after === 2
        ? system({ [SYSTEM_KEY]: SystemKind.Ack, [SystemField.Count]: String(rng.int(1, 1e9)) })
        : after === 3
        ? system({ [SYSTEM_KEY]: SystemKind.PeerList, [SystemField.Peers]: "{not json" })
        : encodeFrame(utf8.encode(codec === "json" ? '{"DestinationGUID":' : "\u0094\u00c1"));
      return {
        index,
        kind,
        pieces,
        guid,
        bytes: concat([validHello(guid, codec, trapAddress), bad]),
        expect:
          /^Cannot (decode (msgpack|json) message|decode frame: length|use acknowledgement|use peer list)/,
      };
    }
  }
}

/** Runs one hostile connection: writes its bytes, then waits (bounded) for the victim to close. */
function runTcp(
  plan: TcpPlan,
  port: number,
  inFlight: Map<number, string[]>,
  byGuid: Map<string, string[]>,
  refusedPorts: Map<number, string>,
): Promise<TcpOutcome> {
  return new Promise((resolve) => {
    const errors: string[] = [];
    if (plan.guid !== undefined) byGuid.set(plan.guid, errors);
    const socket = net.connect({ host: "127.0.0.1", port });
    let localPort = 0;
    let done = false;
    const finish = (how: TcpOutcome["ended"]) => {
      if (done) return;
      done = true;
      let ended = how;
      clearTimeout(timer);
      if (localPort !== 0 && inFlight.get(localPort) === errors) inFlight.delete(localPort);
      const refusal = refusedPorts.get(localPort || (socket.localPort ?? 0));
      if (refusal !== undefined) {
        refusedPorts.delete(localPort || (socket.localPort ?? 0));
        errors.push(refusal);
        ended = "victim-closed";
      }
      socket.destroy();
      // Outcomes outlive the storm: keep the plan without its bytes, so memory shows the node's.
      resolve({ plan: { ...plan, bytes: new Uint8Array(0) }, ended, errors });
    };
    const timer = setTimeout(
      () => finish(localPort === 0 ? "connect-failed" : "timeout"),
      CASE_TIMEOUT_MS,
    );
    socket.on("connect", async () => {
      if (done) return;
      localPort = socket.localPort ?? 0;
      inFlight.set(localPort, errors);
      if (!plan.pieces) {
        if (plan.bytes.length > 0) socket.write(plan.bytes);
      } else {
        for (let at = 0; at < plan.bytes.length && !done;) {
          const n = 1 + (at * 7 + plan.index) % 16;
          socket.write(plan.bytes.subarray(at, at + n));
          at += n;
          await new Promise((next) => setImmediate(next));
        }
      }
      if (plan.endAfterWrite && !done) socket.end();
    });
    socket.on("data", () => {});
    socket.on("end", () => finish("victim-closed"));
    socket.on("error", () => finish(localPort === 0 ? "connect-failed" : "victim-closed"));
    socket.on("close", () => finish(localPort === 0 ? "connect-failed" : "victim-closed"));
  });
}

/** Runs `count` tasks with at most `limit` at once. */
async function pool<T>(
  count: number,
  limit: number,
  task: (i: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
  return results;
}

// ---- hostile datagrams -----------------------------------------------------------------------

type UdpKind =
  | "random-bytes"
  | "invalid-msgpack"
  | "invalid-json"
  | "heartbeat-without-guid"
  | "heartbeat-without-address"
  | "unknown-node-heartbeat"
  | "own-guid-heartbeat";

const UDP_KINDS: ReadonlyArray<readonly [UdpKind, number]> = [
  ["random-bytes", 40],
  ["invalid-msgpack", 15],
  ["invalid-json", 15],
  ["heartbeat-without-guid", 10],
  ["heartbeat-without-address", 10],
  ["unknown-node-heartbeat", 5],
  ["own-guid-heartbeat", 5],
];

/** Whether the victim must count this kind in `datagramErrors`. */
const UDP_ERROR_KINDS = new Set<UdpKind>([
  "random-bytes",
  "invalid-msgpack",
  "invalid-json",
  "heartbeat-without-guid",
  "heartbeat-without-address",
]);

function planUdp(
  index: number,
  victimGuid: string,
  trapAddress: string,
): { kind: UdpKind; bytes: Uint8Array } {
  const rng = new Prng(SEED ^ 0x5a5a, index);
  const kind = rng.weighted(UDP_KINDS);
  const heartbeat = (fields: Record<string, string>) =>
    msgpackCodec.encode({
      destination: "",
      source: "",
      message: { [SYSTEM_KEY]: SystemKind.NodeLocation, [SystemField.Version]: "1", ...fields },
    });
  switch (kind) {
    case "random-bytes": {
      const bytes = rng.bytes(rng.int(1, 1400));
      // 0x7b would make it JSON (still invalid); 0x94 could start a real message: keep it junk.
      if (bytes[0] === 0x94) bytes[0] = 0xc1;
      return { kind, bytes };
    }
    case "invalid-msgpack":
      return { kind, bytes: concat([new Uint8Array([0x94]), rng.bytes(rng.int(0, 100))]) };
    case "invalid-json":
      return {
        kind,
        bytes: utf8.encode(
          rng.pick([
            "{",
            '{"DestinationGUID":1}',
            '{"DestinationGUID":"a","SourceGUID":"b","Message":{},"Data":"QR=="}',
            `{${"x".repeat(rng.int(0, 500))}`,
          ]),
        ),
      };
    case "heartbeat-without-guid":
      return { kind, bytes: heartbeat({ [SystemField.HostEndpoint]: trapAddress }) };
    case "heartbeat-without-address":
      return { kind, bytes: heartbeat({ [SystemField.NodeGuid]: `nobody-${index}` }) };
    case "unknown-node-heartbeat":
      return {
        kind,
        bytes: heartbeat({
          [SystemField.NodeGuid]: `ghost-${index}-${token}`,
          [SystemField.HostEndpoint]: trapAddress,
          [SystemField.Incarnation]: `ghost-inc-${index}`,
        }),
      };
    default:
      return {
        kind,
        bytes: heartbeat({
          [SystemField.NodeGuid]: victimGuid,
          [SystemField.HostEndpoint]: trapAddress,
          [SystemField.Incarnation]: `twin-inc-${index}`,
        }),
      };
  }
}

function openUdpSenders(count: number): Promise<dgram.Socket[]> {
  return Promise.all(
    Array.from({ length: count }, () =>
      new Promise<dgram.Socket>((resolve, reject) => {
        const socket = dgram.createSocket("udp4");
        socket.once("error", reject);
        socket.bind(0, "127.0.0.1", () => resolve(socket));
      })),
  );
}

// ---- the storm -------------------------------------------------------------------------------

test(
  "a live node under thousands of hostile connections and datagrams closes and counts each, keeps its good link and memory, and goes on",
  { timeout: 120_000 },
  async () => {
    const trap = await startTrap();
    const trapAddress = `127.0.0.1:${trap.port}`;
    const inFlight = new Map<number, string[]>();
    const byGuid = new Map<string, string[]>();
    const unattributed: string[] = [];
    const onVictimEvent = (type: keyof NodeEvents, event: Record<string, unknown>) => {
      if (type === "protocol-error" && event.stage !== "datagram") {
        const port = Number(String(event.address).split(":").pop());
        const errors = inFlight.get(port);
        if (errors !== undefined) errors.push(String(event.error));
        else if (event.stage === "handshake") unattributed.push(`${event.address}: ${event.error}`);
      }
      if (type === "link-down") {
        const errors = byGuid.get(String(event.peer));
        if (errors !== undefined && event.reason === "protocol-error") {
          errors.push(String(event.detail));
        }
      }
    };
    // A connection refused at once for too many pending handshakes (a limit some builds have)
    // is closed and counted too, as connectionsRefused, with a "link.refused" line.
    // It may be refused before the client saw it connect: matched by port when the case ends.
    const refusedPorts = new Map<number, string>();
    const onVictimLog = (entry: CapturedLog) => {
      if (entry.event !== "link.refused" || entry.fields.address === undefined) return;
      const port = Number(String(entry.fields.address).split(":").pop());
      refusedPorts.set(port, `refused: ${entry.fields.reason}`);
    };
    const { victim, good, discoveryPort } = await startPair(onVictimEvent, {}, onVictimLog);
    let late: Member | undefined;
    const senders = await openUdpSenders(8);
    try {
      const goodGuid = good.node.guid;
      const goodIncarnation = good.node.incarnation;
      const victimPort = Number(victim.node.address.split(":").pop());
      let sentToGood = 0;
      let sentToVictim = 0;
      const keepTalking = () => {
        sendBurst(victim, good, sentToGood, 5);
        sentToGood += 5;
        sendBurst(good, victim, sentToVictim, 5);
        sentToVictim += 5;
      };

      const tcpOutcomes: TcpOutcome[] = [];
      const udpSent = new Map<UdpKind, number>();
      let udpErrorsSent = 0;
      const runTcpRange = async (from: number, to: number) => {
        if (ONLY_CASE !== undefined) {
          if (from > ONLY_CASE || ONLY_CASE >= to) return;
          const plan = planTcp(ONLY_CASE, victim.node.guid, trapAddress);
          console.log("plan", plan.kind, plan.pieces, Array.from(plan.bytes.subarray(0, 64)));
          tcpOutcomes.push(await runTcp(plan, victimPort, inFlight, byGuid, refusedPorts));
          return;
        }
        const results = await pool(to - from, CONCURRENCY, async (i) => {
          const plan = planTcp(from + i, victim.node.guid, trapAddress);
          if ((from + i) % 100 === 0) keepTalking();
          return await runTcp(plan, victimPort, inFlight, byGuid, refusedPorts);
        });
        tcpOutcomes.push(...results);
      };
      const runUdpRange = async (from: number, to: number) => {
        for (let batch = from; batch < to; batch += 25) {
          for (let i = batch; i < Math.min(to, batch + 25); i++) {
            const { kind, bytes } = planUdp(i, victim.node.guid, trapAddress);
            udpSent.set(kind, (udpSent.get(kind) ?? 0) + 1);
            if (UDP_ERROR_KINDS.has(kind)) udpErrorsSent++;
            senders[i % senders.length].send(bytes, discoveryPort, "127.0.0.1");
          }
          // Paced, so that the kernel's receive buffer never overflows: wait until counted.
          const want = udpErrorsSent;
          const base = errorsAtStart;
          await waitUntil(
            () => victim.node.state().stats.datagramErrors - base >= want,
            1000,
            "the victim to count the datagrams",
            5,
          ).catch(() => {});
          keepTalking();
        }
      };

      const statsAtStart = victim.node.state().stats;
      const errorsAtStart = statsAtStart.datagramErrors;
      // Warm-up: a tenth of each storm, then the memory baseline.
      await runTcpRange(0, TCP_CASES / 10);
      await runUdpRange(0, UDP_CASES / 10);
      await sleep(HEARTBEAT_MS * SILENCE_INTERVALS + 500); // ghost peers heard so far expire
      const memoryBefore = await memoryAfterGc();
      const startMs = performance.now();
      await runTcpRange(TCP_CASES / 10, TCP_CASES);
      await runUdpRange(UDP_CASES / 10, UDP_CASES);
      const stormMs = performance.now() - startMs;
      // Ghost peers from junk heartbeats expire after the silence bound.
      await sleep(HEARTBEAT_MS * SILENCE_INTERVALS + 500);
      keepTalking();
      await waitUntil(
        () =>
          good.worker.received.length === sentToGood &&
          victim.worker.received.length === sentToVictim,
        5000,
        "the messages sent during the storm to arrive",
      ).catch(() => {});
      const memoryAfter = await memoryAfterGc();
      const stats = victim.node.state().stats;

      // Every hostile connection was closed by the victim and counted with the error its bytes
      // deserve; none reached the victim before the storm, so the counter must match exactly.
      const byKind = new Map<TcpKind, { cases: number; closed: number; counted: number }>();
      let refused = 0;
      let connectFailed = 0;
      const problems: string[] = [];
      for (const outcome of tcpOutcomes) {
        const { kind } = outcome.plan;
        const row = byKind.get(kind) ?? { cases: 0, closed: 0, counted: 0 };
        byKind.set(kind, row);
        row.cases++;
        if (outcome.ended === "victim-closed") row.closed++;
        if (outcome.errors.length === 1) row.counted++;
        if (outcome.errors[0]?.startsWith("refused: ")) refused++;
        if (outcome.ended === "connect-failed") {
          // Refused so fast that the client never learnt its port: matched by count below.
          connectFailed++;
          continue;
        }
        if (problems.length < 10) {
          if (outcome.ended !== "victim-closed") {
            problems.push(`case ${outcome.plan.index} (${kind}): ${outcome.ended}`);
          } else if (
            outcome.errors.length !== 1 ||
            !(outcome.plan.expect.test(outcome.errors[0]) ||
              outcome.errors[0].startsWith("refused: "))
          ) {
            problems.push(
              `case ${outcome.plan.index} (${kind}): errors ${
                JSON.stringify(outcome.errors)
              }, expected one matching ${outcome.plan.expect}`,
            );
          }
        }
      }
      refused += connectFailed;
      const table = [...byKind].map(([kind, row]) =>
        `${kind} ${row.cases}/${row.closed}/${row.counted}`
      ).join(", ");
      figure(
        `hostile storm (seed ${SEED}): ${tcpOutcomes.length} TCP cases (kind cases/closed/counted: ${table}); ` +
          `${UDP_CASES} datagrams (${
            [...udpSent].map(([k, n]) => `${k} ${n}`).join(", ")
          }); storm after warm-up ${stormMs.toFixed(0)} ms`,
      );
      figure(
        `victim stats: protocolErrors ${stats.protocolErrors}, refused at accept ${refused}, datagramErrors ${
          stats.datagramErrors - errorsAtStart
        } of ${udpErrorsSent} bad datagrams, duplicateGuids ${stats.duplicateGuids}, linksUp ${stats.linksUp}, linksDown ${stats.linksDown}, listenerErrors ${stats.listenerErrors}; ` +
          `trap dialled ${trap.connections} times; victim log: ${victim.log.summary()}`,
      );
      figure(
        `victim memory after GC (${memoryAfter.collected ? "forced" : "not forced"}): heapUsed ${
          mib(memoryBefore.heapUsed)
        } -> ${mib(memoryAfter.heapUsed)}, external ${mib(memoryBefore.external)} -> ${
          mib(memoryAfter.external)
        }, rss ${mib(memoryBefore.rss)} -> ${mib(memoryAfter.rss)}`,
      );
      assert.deepEqual(problems, [], "hostile connections not closed or not counted as expected");
      // Refusals never matched to a port belong to the connections that never saw `connect`.
      assert.equal(refusedPorts.size, connectFailed, "refusals do not match failed connects");
      assert.deepEqual(unattributed, [], "protocol errors for connections the test did not open");
      const refusedCount = (stats as unknown as Record<string, number>).connectionsRefused ?? 0;
      assert.equal(refusedCount, refused);
      assert.equal(
        stats.protocolErrors - statsAtStart.protocolErrors,
        tcpOutcomes.length - refused,
      );
      assert.equal(stats.datagramErrors - errorsAtStart, udpErrorsSent);
      assert.equal(stats.listenerErrors, 0);
      assert.equal(stats.workerErrors, 0);

      // Clear logs: one warning per hostile connection, each saying what was wrong.
      const protocolLines = victim.log.of("link.protocol-error");
      assert.equal(protocolLines.length, tcpOutcomes.length - refused);
      assert.equal(victim.log.count("link.refused"), refused);
      for (const line of protocolLines) {
        assert.equal(line.level, "warn");
        assert.match(String(line.fields.error), /^Cannot [a-z]/);
        assert.ok(line.fields.stage === "handshake" || line.fields.stage === "frame");
        assert.match(String(line.fields.address), /^127\.0\.0\.1:\d+$/);
      }
      // Junk datagrams are logged at most once per source per 10 s: 8 sources here.
      const datagramLines = victim.log.of("discovery.bad-datagram");
      assert.ok(datagramLines.length >= 1 && datagramLines.length <= senders.length * 2);
      for (const line of datagramLines) assert.match(String(line.fields.error), /^Cannot [a-z]/);

      // The good link never went down, on either side, and still carries messages both ways.
      const downs = [...victim.events, ...good.events].filter((e) =>
        e.type === "link-down" && (e.event.peer === goodGuid || e.event.peer === victim.node.guid)
      );
      assert.deepEqual(downs, [], "the good link went down");
      assert.equal(good.node.state().stats.linksDown, 0);
      const link = victim.node.state().links.find((l) => l.peer === goodGuid);
      assert.equal(link?.incarnation, goodIncarnation);
      assert.deepEqual(good.node.linkedPeers(), [victim.node.guid]);
      assert.deepEqual(
        sequenceOf(good.worker.received),
        Array.from({ length: sentToGood }, (_, i) => i),
      );
      assert.deepEqual(
        sequenceOf(victim.worker.received),
        Array.from({ length: sentToVictim }, (_, i) => i),
      );
      const undeliverable = [...victim.events, ...good.events].filter((e) =>
        e.type === "undeliverable" &&
        String((e.event.message as MapMessage).destination).startsWith("W-")
      );
      assert.deepEqual(undeliverable, []);

      // The victim still serves: running, ghosts gone, and a new peer can link.
      assert.equal(victim.node.state().state, "running");
      assert.deepEqual(victim.node.linkedPeers(), [goodGuid]);
      assert.deepEqual(victim.node.state().peers.map((p) => p.guid), [goodGuid]);
      late = await startMember("late", { seeds: [victim.node.address] });
      const l = late;
      await waitUntil(
        () => victim.node.locate(l.worker.guid) === l.node.guid,
        10_000,
        "a new peer to link to the victim after the storm",
      );
      sendBurst(l, victim, 0, 3);
      await waitUntil(
        () => victim.worker.received.length === sentToVictim + 3,
        5000,
        "late messages",
      );

      // Memory: after a collection, what the storm left behind is small.
      const grown = memoryAfter.heapUsed + memoryAfter.external - memoryBefore.heapUsed -
        memoryBefore.external;
      if (memoryAfter.collected) {
        assert.ok(grown < 16 * 1048576, `heap + external grew by ${mib(grown)} over the storm`);
      }
    } finally {
      for (const socket of senders) socket.close();
      await stopMembers([late, good, victim]);
      await trap.close();
    }
  },
);

// ---- what earlier storms found, one test each -------------------------------------------------

/** Sends datagrams from a new socket on 127.0.0.1, then closes it; bounded to 2 s. */
function sendDatagrams(payloads: readonly Uint8Array[], port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket("udp4");
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // already closed
      }
      resolve();
    };
    const timer = setTimeout(finish, 2000);
    socket.once("error", finish);
    socket.bind(0, "127.0.0.1", () => {
      let left = payloads.length;
      if (left === 0) return finish();
      for (const payload of payloads) {
        socket.send(payload, port, "127.0.0.1", () => {
          if (--left === 0) finish();
        });
      }
    });
  });
}

function heartbeatOf(guid: string, address: string, incarnation: string): Uint8Array {
  return msgpackCodec.encode({
    destination: "",
    source: "",
    message: {
      [SYSTEM_KEY]: SystemKind.NodeLocation,
      [SystemField.NodeGuid]: guid,
      [SystemField.HostEndpoint]: address,
      [SystemField.Version]: "1",
      [SystemField.Incarnation]: incarnation,
    },
  });
}

/** Whether this build has cluster keys (signed heartbeats): its stats count auth failures. */
function hasClusterKeys(member: Member): boolean {
  return "authFailures" in member.node.state().stats;
}

async function spoofGoodPeer(options: Partial<NodeOptions>) {
  const trap = await startTrap();
  const { victim, good, discoveryPort } = await startPair(undefined, options);
  try {
    const realIncarnation = good.node.incarnation;
    // Another incarnation at another address, then the real incarnation at another address:
    // what anyone on the network can send, since heartbeats are unsigned without a key.
    await sendDatagrams([
      heartbeatOf(good.node.guid, `127.0.0.1:${trap.port}`, "spoofed-incarnation"),
    ], discoveryPort);
    await sleep(300);
    await sendDatagrams([
      heartbeatOf(good.node.guid, `127.0.0.1:${trap.port}`, realIncarnation),
    ], discoveryPort);
    await sleep(500);
    const downs = victim.events.filter((e) => e.type === "link-down");
    const peer = victim.node.state().peers.find((p) => p.guid === good.node.guid);
    figure(
      `spoofed heartbeats of the good peer (${
        options.clusterKey === undefined ? "no cluster key" : "cluster key"
      }): victim link-downs ${
        JSON.stringify(downs.map((d) => d.event.reason))
      }, victim now has the good peer at ${peer?.address} (real ${good.node.address}), trap dialled ${trap.connections}, victim stats ${
        JSON.stringify(victim.node.state().stats)
      }`,
    );
    return {
      downs,
      peerAddress: peer?.address,
      realAddress: good.node.address,
      trap,
      victim,
      good,
    };
  } finally {
    await stopMembers([good, victim]);
    await trap.close();
  }
}

test("a spoofed heartbeat carrying the linked peer's GUID does not drop the real link", async () => {
  const { downs } = await spoofGoodPeer({});
  assert.deepEqual(
    downs.map((d) => `${d.event.reason} ${d.event.detail ?? ""}`),
    [],
    "one unsigned datagram took the link down",
  );
});

test("with a cluster key, a spoofed heartbeat is refused and counted, and the link stays", async (t) => {
  const probe = await startMember("probe", {});
  const supported = hasClusterKeys(probe);
  await stopMembers([probe]);
  if (!supported) {
    t.skip("this build has no cluster keys");
    return;
  }
  const { downs, peerAddress, realAddress } = await spoofGoodPeer(
    { clusterKey: "hostile-test-key" } as unknown as Partial<NodeOptions>,
  );
  assert.deepEqual(downs, []);
  assert.equal(peerAddress, realAddress);
});

test("a connection that ends in the middle of its first frame is counted and logged as a protocol error", async () => {
  const { victim, good } = await startPair();
  try {
    const port = Number(victim.node.address.split(":").pop());
    const before = victim.node.state().stats.protocolErrors;
    const whole = validHello(`truncated-${token}`, "msgpack", "127.0.0.1:1");
    const cases = [
      whole.subarray(0, 2), // inside the length prefix
      whole.subarray(0, 10), // inside the payload
      concat([header(100_000), new Uint8Array(10)]), // a large frame barely begun
    ];
    for (const bytes of cases) {
      await new Promise<void>((resolve) => {
        const socket = net.connect({ host: "127.0.0.1", port }, () => socket.end(bytes));
        const timer = setTimeout(() => socket.destroy(), CASE_TIMEOUT_MS);
        socket.on("data", () => {});
        socket.on("error", () => {});
        socket.on("close", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await sleep(200);
    const lines = victim.log.of("link.protocol-error").map((line) => String(line.fields.error));
    figure(
      `${cases.length} connections ended mid-frame before the handshake: protocolErrors +${
        victim.node.state().stats.protocolErrors - before
      }, log lines ${JSON.stringify(lines)}`,
    );
    assert.equal(victim.node.state().stats.protocolErrors - before, cases.length);
    for (const line of lines) assert.match(line, /^Cannot decode frame: stream ended after/);
  } finally {
    await stopMembers([good, victim]);
  }
});

test("heartbeats claiming this node's GUID under ever new incarnations are not logged once each", async () => {
  const { victim, good, discoveryPort } = await startPair();
  try {
    const twins = Array.from(
      { length: 500 },
      (_, i) => heartbeatOf(victim.node.guid, `127.0.0.1:${10_000 + i}`, `twin-${i}`),
    );
    for (let i = 0; i < twins.length; i += 50) {
      await sendDatagrams(twins.slice(i, i + 50), discoveryPort);
      await sleep(20);
    }
    await sleep(200);
    const lines = victim.log.count("node.duplicate-guid");
    figure(
      `500 twin heartbeats from one source: duplicateGuids ${victim.node.state().stats.duplicateGuids}, "node.duplicate-guid" error lines ${lines}`,
    );
    // Junk on the discovery port must not flood the log: other datagram errors get one line per
    // source per 10 s. A real twin is reported at once; a thousand from one socket are one attack.
    assert.ok(lines <= 10, `${lines} error lines for one source`);
  } finally {
    await stopMembers([good, victim]);
  }
});

test("system datagrams from thousands of sources do not pin their bytes in memory", {
  timeout: 60_000,
}, async () => {
  const { victim, good, discoveryPort } = await startPair();
  try {
    // Valid system messages of a kind nobody knows, each from its own source port, just under
    // the default maxDatagramBytes (8192): each is decoded, and a node that kept the last one
    // per source (as it once did, up to 4096 sources) would keep them all.
    const maxDatagramBytes = victim.node.state().limits?.maxDatagramBytes ?? 65507;
    const size = Math.min(8000, maxDatagramBytes);
    const datagram = (data: number) =>
      msgpackCodec.encode({
        destination: "",
        source: "",
        message: { [SYSTEM_KEY]: "AutoMPI_SKD_Junk" },
        data: new Uint8Array(data).fill(7),
      });
    const big = datagram(size - 64);
    const before = await memoryAfterGc();
    const sources = 3000;
    const deadline = Date.now() + 30_000;
    let sent = 0;
    for (; sent < sources && Date.now() < deadline; sent += 4) {
      // A few sockets at a time, each waited for: the kernel's receive buffer never overflows.
      await Promise.all([1, 2, 3, 4].map(() => sendDatagrams([big], discoveryPort)));
      await waitUntil(() => victim.log.count("system.unknown") >= sent + 4, 200, "datagrams", 1)
        .catch(() => {});
    }
    const after = await memoryAfterGc();
    const grown = after.heapUsed + after.external - before.heapUsed - before.external;
    figure(
      `${
        victim.log.count("system.unknown")
      } of ${sent} system datagrams of ${big.length} bytes from distinct sources: heap + external ${
        mib(before.heapUsed + before.external)
      } -> ${mib(after.heapUsed + after.external)} after GC`,
    );
    assert.ok(victim.log.count("system.unknown") >= sent * 0.9, "most datagrams were taken");
    if (after.collected) assert.ok(grown < 16 * 1048576, `memory grew by ${mib(grown)}`);
    // Larger than the limit: dropped before decoding, and counted.
    if (maxDatagramBytes < 65507) {
      const errors = victim.node.state().stats.datagramErrors;
      await sendDatagrams([datagram(maxDatagramBytes)], discoveryPort);
      await waitUntil(
        () => victim.node.state().stats.datagramErrors === errors + 1,
        2000,
        "an oversized datagram to be counted",
      );
    }
  } finally {
    await stopMembers([good, victim]);
  }
});
