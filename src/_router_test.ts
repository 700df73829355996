import { test } from "node:test";
import assert from "node:assert/strict";
import type { GossipLink } from "./_gossip.ts";
import { SystemRouter } from "./_router.ts";
import type { SessionLink } from "./_sessions.ts";
import { NATIVE_PROTOCOL, ORIGINAL_PROTOCOL, type WireProtocol } from "./_wire.ts";
import type { MapMessage } from "./message.ts";
import { SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";

type Link = SessionLink & GossipLink;
const B = { peerGuid: "B" } as Link;
const FROM = { host: "10.0.0.2", port: 9999 };

function world(protocol: WireProtocol, linked: string[] = []) {
  const calls: string[] = [];
  const record = (name: string) => (...args: unknown[]) =>
    calls.push(`${name} ${args.filter((a) => typeof a === "string").join(" ")}`.trim());
  const router = new SystemRouter<Link>({
    log: {
      log: (_level: string, event: string, fields: { kind: string }) =>
        calls.push(`${event} ${fields.kind}`),
    } as never,
    sessions: {
      onAck: record("ack"),
      onGoodbye: record("goodbye"),
      onResume: record("resume"),
      onAlign: record("align"),
    } as never,
    gossip: { onPeerList: record("peer-list"), onWorkerSet: record("worker-set") } as never,
    locations: { learn: record("learn"), removed: record("removed") } as never,
    heartbeat: record("heartbeat"),
    isLinked: (guid) => linked.includes(guid),
    refused: record("refused"),
  }, protocol);
  return { router, calls };
}

const message = (kind: string, fields: Record<string, string> = {}): MapMessage => ({
  destination: "",
  source: "",
  message: { [SYSTEM_KEY]: kind, ...fields },
});

test("each kind on a link goes to its part", () => {
  const w = world(NATIVE_PROTOCOL);
  const on = (kind: string, fields: Record<string, string> = {}) =>
    w.router.onLink(B, message(kind, fields), "B:8888");
  on(SystemKind.Ack, { [SystemField.Count]: "3" });
  on(SystemKind.KeepAlive);
  on(SystemKind.PeerList, { [SystemField.Peers]: "[]" });
  on(SystemKind.WorkerSet);
  on(SystemKind.Goodbye);
  on(SystemKind.Resume);
  on(SystemKind.Align);
  on(SystemKind.Refused);
  on(SystemKind.NodeLocation, {
    [SystemField.NodeGuid]: "C",
    [SystemField.HostEndpoint]: "C:1",
  });
  assert.deepEqual(w.calls, [
    "ack 3",
    "peer-list []",
    "worker-set",
    "goodbye",
    "resume",
    "align",
    "refused",
    "heartbeat C C:1",
  ]);
});

test("only a node itself says where its workers are", () => {
  const w = world(NATIVE_PROTOCOL, ["C"]);
  const location = (node: string, kind: string = SystemKind.WorkerLocation) =>
    message(kind, { [SystemField.NodeGuid]: node, [SystemField.WorkerGuid]: "w1" });
  w.router.onLink(B, location("B"), "B:8888");
  w.router.onLink(B, location("C"), "B:8888");
  w.router.onLink(B, location("B", SystemKind.WorkerRemoved), "B:8888");
  w.router.onLink(B, location("C", SystemKind.WorkerRemoved), "B:8888");
  w.router.onDatagram(location("C"), FROM); // native nodes do not announce by datagram
  assert.deepEqual(w.calls, ["learn B w1", "removed B w1"]);
});

test("the original protocol takes announcements by datagram from linked nodes only", () => {
  const w = world(ORIGINAL_PROTOCOL, ["C"]);
  const location = (node: string) =>
    message(SystemKind.WorkerLocation, {
      [SystemField.NodeGuid]: node,
      [SystemField.WorkerGuid]: "w1",
    });
  w.router.onDatagram(location("C"), FROM);
  w.router.onDatagram(location("D"), FROM);
  assert.deepEqual(w.calls, ["learn C w1"]);
});

test("kinds a protocol does not use are ignored; unknown kinds are logged", () => {
  const w = world(ORIGINAL_PROTOCOL);
  for (
    const kind of [SystemKind.WorkerSet, SystemKind.Resume, SystemKind.Align, SystemKind.Refused]
  ) {
    w.router.onLink(B, message(kind), "B:8888");
  }
  for (const kind of [SystemKind.Ack, SystemKind.Goodbye, SystemKind.PeerList]) {
    w.router.onDatagram(message(kind), FROM);
  }
  assert.deepEqual(w.calls, []);
  w.router.onLink(B, message(SystemKind.WhereIsThisAgent), "B:8888");
  w.router.onDatagram(message("constructor"), FROM);
  assert.deepEqual(w.calls, [
    `system.unknown ${SystemKind.WhereIsThisAgent}`,
    "system.unknown constructor",
  ]);
});
