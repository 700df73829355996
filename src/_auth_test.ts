import { test } from "node:test";
import assert from "node:assert/strict";
import { type HandshakeSlots, keyedClusterAuth, NO_CLUSTER_AUTH, SEAL_BYTES } from "./_auth.ts";
import { ClusterKey } from "./_cluster_key.ts";
import { msgpackCodec } from "./codec.ts";
import { FrameDecoder } from "./framing.ts";
import type { Random } from "./platform.ts";
import { decodeHello, encodeHello, SYSTEM_KEY, SystemField, SystemKind } from "./system.ts";
import { NATIVE_PROTOCOL } from "./_wire.ts";

const self = (guid: string) => ({
  guid,
  incarnation: `${guid}-1`,
  codec: "msgpack" as const,
  address: `${guid}:1`,
});
const slots = (): HandshakeSlots => ({
  helloSent: undefined,
  peerHello: undefined,
  peerHelloBytes: undefined,
});
const payload = (frame: Uint8Array) => new FrameDecoder().push(frame)[0];
let counter = 0;
const random: Random = {
  next: () => 0.5,
  int: (min) => min,
  fill: (bytes) => bytes.fill(++counter),
};
const read = (frame: Uint8Array) =>
  NATIVE_PROTOCOL.readHello(frame, {
    direction: "in",
    dialled: "",
    known: () => undefined,
  });

test("without a key a heartbeat is the same bytes every time and any named node is taken", () => {
  const next = NO_CLUSTER_AUTH.heartbeats(msgpackCodec, self("A"));
  assert.equal(next(), next());
  const fields = msgpackCodec.decode(next()).message;
  assert.equal(fields[SYSTEM_KEY], SystemKind.NodeLocation);
  assert.deepEqual(NO_CLUSTER_AUTH.checkHeartbeat(fields), {
    kind: "taken",
    guid: "A",
    address: "A:1",
    incarnation: "A-1",
  });
  assert.equal(NO_CLUSTER_AUTH.checkHeartbeat({ [SYSTEM_KEY]: "x" }).kind, "refused");
});

test("without a key the plain hello is sent and a peer's hello takes effect at once", () => {
  const plain = NATIVE_PROTOCOL.helloFrame(self("A"));
  assert.equal(NO_CLUSTER_AUTH.hello(slots(), plain, self("A"), random), plain);
  const step = NO_CLUSTER_AUTH.handshake(slots(), payload(plain), read);
  assert.equal(step.kind, "hello");
  assert.equal(NO_CLUSTER_AUTH.handshake(slots(), new Uint8Array([1]), read).kind, "malformed");
});

test("a keyless node refuses a hello that asks for a key", () => {
  const keyed = encodeHello({ ...self("B"), version: 1, nonce: new Uint8Array(16) });
  const step = NO_CLUSTER_AUTH.handshake(slots(), keyed, read);
  assert.deepEqual(step, {
    kind: "refused",
    reason: "Cannot link: peer requires a cluster key, and this node has none",
  });
});

test("signed heartbeats are numbered; a replay, a forgery and other datagrams are refused", () => {
  const a = keyedClusterAuth(new ClusterKey("k"));
  const b = keyedClusterAuth(new ClusterKey("k"));
  const next = a.heartbeats(msgpackCodec, self("A"));
  const first = msgpackCodec.decode(next()).message;
  const second = msgpackCodec.decode(next()).message;
  assert.equal(first[SystemField.Sequence], "1");
  assert.equal(second[SystemField.Sequence], "2");
  assert.equal(b.checkHeartbeat(second).kind, "taken");
  assert.deepEqual(b.checkHeartbeat(first), { kind: "replayed", guid: "A", sequence: "1" });
  assert.equal(
    b.checkHeartbeat({ ...second, [SystemField.HostEndpoint]: "evil:1" }).kind,
    "refused",
  );
  const other = keyedClusterAuth(new ClusterKey("other")).heartbeats(msgpackCodec, self("C"));
  assert.equal(b.checkHeartbeat(msgpackCodec.decode(other()).message).kind, "refused");
  assert.match(
    (b.checkHeartbeat({ [SYSTEM_KEY]: SystemKind.WorkerLocation }) as { reason: string }).reason,
    /only signed heartbeats are taken by datagram/,
  );
});

test("two keyed nodes link after each proved the key over both hellos", () => {
  const key = new ClusterKey("k");
  const [a, b] = [keyedClusterAuth(key), keyedClusterAuth(key)];
  const [sa, sb] = [slots(), slots()];
  const helloA = payload(a.hello(sa, new Uint8Array(0), self("A"), random));
  const helloB = payload(b.hello(sb, new Uint8Array(0), self("B"), random));
  assert.ok(decodeHello(helloA).nonce !== undefined);
  const replyA = a.handshake(sa, helloB, read);
  const replyB = b.handshake(sb, helloA, read);
  assert.equal(replyA.kind, "reply");
  assert.equal(replyB.kind, "reply");
  const doneA = a.handshake(sa, payload((replyB as { frame: Uint8Array }).frame), read);
  const doneB = b.handshake(sb, payload((replyA as { frame: Uint8Array }).frame), read);
  assert.equal(doneA.kind === "hello" && doneA.hello.guid, "B");
  assert.equal(doneB.kind === "hello" && doneB.hello.guid, "A");
  assert.equal(sa.peerHello, undefined);
});

test("a proof under another key, or a keyless hello, is refused", () => {
  const a = keyedClusterAuth(new ClusterKey("k"));
  const m = keyedClusterAuth(new ClusterKey("not k"));
  const [sa, sm] = [slots(), slots()];
  const helloA = payload(a.hello(sa, new Uint8Array(0), self("A"), random));
  const helloM = payload(m.hello(sm, new Uint8Array(0), self("M"), random));
  a.handshake(sa, helloM, read);
  const reply = m.handshake(sm, helloA, read) as { frame: Uint8Array };
  const step = a.handshake(sa, payload(reply.frame), read);
  assert.equal(step.kind, "refused");
  assert.match((step as { reason: string }).reason, /wrong key, or a replayed proof/);
  const plain = payload(NATIVE_PROTOCOL.helloFrame(self("P")));
  const keyless = a.handshake(slots(), plain, read);
  assert.equal(keyless.kind, "refused");
  assert.match((keyless as { reason: string }).reason, /its hello has no key challenge/);
});

test("without a key ring datagrams have no seal", () => {
  assert.equal(NO_CLUSTER_AUTH.datagramSeal(random), undefined);
});

test("a sealed ring datagram opens under the key once; tampered, foreign or short ones are refused", () => {
  const key = new ClusterKey("k");
  const sender = keyedClusterAuth(key).datagramSeal(random)!;
  const receiver = keyedClusterAuth(key).datagramSeal(random)!;
  const body = new Uint8Array([0xa7, 1, 2, 3]);
  const first = sender.seal(body);
  const second = sender.seal(body);
  assert.equal(first.length, body.length + SEAL_BYTES);
  assert.notDeepEqual(first, second, "each datagram has its own number and tag");
  assert.deepEqual(receiver.open(second), body);
  assert.deepEqual(receiver.open(first), body, "a late one is still new");
  assert.equal(receiver.open(first), "replayed");
  assert.equal(receiver.open(second), "replayed");
  // Any byte changed (payload, session, number or tag) fails the tag.
  for (let i = 0; i < first.length; i++) {
    const changed = sender.seal(body);
    changed[i] ^= 1;
    assert.throws(
      () => receiver.open(changed),
      /^Error: Cannot read ring datagram: it is not sealed/,
    );
  }
  const foreign = keyedClusterAuth(new ClusterKey("other")).datagramSeal(random)!.seal(body);
  assert.throws(() => receiver.open(foreign), /not sealed with the cluster key/);
  assert.throws(() => receiver.open(body), /too short to be sealed/);
  assert.throws(() => receiver.open(new Uint8Array(SEAL_BYTES)), /too short to be sealed/);
});
