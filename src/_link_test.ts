import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BATCH_BYTES,
  isKeepAliveFrame,
  isKeepAlivePayload,
  KEEPALIVE_FRAME,
  Link,
  LinkOutput,
  messageFrame,
} from "./_link.ts";
import { msgpackCodec } from "./codec.ts";
import { FrameDecoder } from "./framing.ts";
import { createMessage } from "./message.ts";
import type { StreamConn } from "./platform.ts";

function world() {
  let nowMs = 0;
  const deferred: Array<() => void> = [];
  const stats = { framesOut: 0 };
  const output = new LinkOutput(
    { now: () => nowMs, defer: (fn: () => void) => deferred.push(fn) } as never,
    stats,
  );
  const open = (direction: "in" | "out" = "out") => {
    const writes: Uint8Array[] = [];
    const link = new Link(direction, output, 1 << 20);
    link.conn = {
      write: (bytes: Uint8Array) => writes.push(bytes.slice()),
      remote: { host: "10.0.0.2", port: 4000 },
    } as unknown as StreamConn;
    return { link, writes };
  };
  const endTurn = () => {
    while (deferred.length > 0) deferred.shift()!();
  };
  return { open, endTurn, stats, at: (ms: number) => nowMs = ms, deferred };
}

const frameOf = (text: string) => messageFrame(msgpackCodec, createMessage("w", { t: text }));
const decode = (chunks: Uint8Array[]) => {
  const decoder = new FrameDecoder();
  return chunks.flatMap((chunk) => decoder.push(chunk)).map((f) =>
    msgpackCodec.decode(f).message.t
  );
};

test("small frames written in one turn go out as one write at its end", () => {
  const w = world();
  const { link, writes } = w.open();
  link.write(frameOf("a"));
  link.write(frameOf("b"));
  link.write(frameOf("c"));
  assert.equal(writes.length, 0);
  w.endTurn();
  assert.equal(writes.length, 1);
  assert.deepEqual(decode(writes), ["a", "b", "c"]);
  assert.equal(link.framesOut, 3);
  assert.equal(w.stats.framesOut, 3);
  assert.equal(link.bytesOut, writes[0].length);
});

test("the batches of every link go out at the end of the same turn, with one deferral", () => {
  const w = world();
  const a = w.open();
  const b = w.open();
  a.link.write(frameOf("a"));
  b.link.write(frameOf("b"));
  assert.equal(w.deferred.length, 1);
  w.endTurn();
  assert.deepEqual([...decode(a.writes), ...decode(b.writes)], ["a", "b"]);
});

test("a large frame goes alone, its data unchanged and after what was batched", () => {
  const w = world();
  const { link, writes } = w.open();
  link.write(frameOf("small"));
  const data = new Uint8Array(BATCH_BYTES + 10).fill(7);
  const big = messageFrame(msgpackCodec, createMessage("w", { t: "big" }, { data }));
  link.write(big);
  assert.equal(writes.length, 3, "the batch, then the header with the fields, then the data");
  assert.equal(writes[2].length, data.length);
  assert.deepEqual(decode(writes), ["small", "big"]);
});

test("a keepalive alone in its turn is written as it is, and recognised whole", () => {
  const w = world();
  const { link, writes } = w.open();
  w.at(50);
  link.writeRaw(KEEPALIVE_FRAME.msgpack);
  assert.equal(writes.length, 1);
  assert.equal(link.lastSentMs, 50);
  assert.ok(isKeepAliveFrame("msgpack", writes[0]));
  const [payload] = new FrameDecoder().push(writes[0]);
  assert.ok(isKeepAlivePayload("msgpack", payload));
  assert.ok(!isKeepAliveFrame("json", writes[0]));
  link.write(frameOf("a"));
  link.writeRaw(KEEPALIVE_FRAME.msgpack); // not alone: batched after the frame
  w.endTurn();
  assert.equal(writes.length, 2);
  assert.equal(decode([writes[1]]).length, 2);
});

test("a batch is flushed early when full, and dropped when the link is destroyed", () => {
  const w = world();
  const { link, writes } = w.open();
  const chunk = messageFrame(
    msgpackCodec,
    createMessage("w", { t: "x".repeat(20_000) }),
  );
  for (let i = 0; i < 4; i++) link.write(chunk);
  assert.equal(writes.length, 1, "the fourth frame does not fit: the first three went");
  link.discardOutput();
  w.endTurn();
  assert.equal(writes.length, 1);
});

test("a closed link writes nothing; remote is the peer's address once known", () => {
  const w = world();
  const { link, writes } = w.open("in");
  assert.equal(link.remote, "10.0.0.2:4000");
  link.peerAddress = "10.0.0.2:8888";
  assert.equal(link.remote, "10.0.0.2:8888");
  link.state = "closed";
  link.write(frameOf("a"));
  link.writeRaw(KEEPALIVE_FRAME.msgpack);
  w.endTurn();
  assert.equal(writes.length, 0);
  assert.ok(link.closed);
});
