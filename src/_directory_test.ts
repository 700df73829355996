import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Directory, type DirectoryMessage, type DirectoryOptions } from "./_directory.ts";
import { hash32 } from "./_membership.ts";

/** Directories on a tiny deterministic network: 1 ms per message, a shared live set. */
class Net {
  readonly dirs = new Map<string, Directory>();
  readonly resolved: {
    at: string;
    worker: string;
    node: string | undefined;
    why: string;
    atMs: number;
  }[] = [];
  live: string[] = [];
  readonly crashed = new Set<string>();
  delay: (from: string, to: string, message: DirectoryMessage) => number = () => 1;
  nowMs = 0;
  #queue: { atMs: number; to: string; message: DirectoryMessage }[] = [];

  constructor(readonly options: Partial<DirectoryOptions> = {}) {}

  owners(worker: string, count: number): string[] {
    const ring = [...this.live].sort((a, b) => hash32(a) - hash32(b) || (a < b ? -1 : 1));
    const key = hash32(worker);
    let start = ring.findIndex((guid) => hash32(guid) >= key);
    if (start < 0) start = 0;
    return Array.from(
      { length: Math.min(count, ring.length) },
      (_, i) => ring[(start + i) % ring.length],
    );
  }

  add(node: string, version = 1): Directory {
    const dir = new Directory({
      now: () => this.nowMs,
      owners: (worker, count) => this.owners(worker, count),
      send: (to, message) => {
        this.#queue.push({ atMs: this.nowMs + this.delay(node, to, message), to, message });
      },
      resolved: (worker, where, why) => {
        this.resolved.push({ at: node, worker, node: where, why, atMs: this.nowMs });
      },
    }, { node, version, ...this.options });
    this.dirs.set(node, dir);
    if (!this.live.includes(node)) this.live.push(node);
    this.crashed.delete(node);
    return dir;
  }

  /** Every directory hears of a membership change (`gone` left). */
  changed(gone: string[] = []): void {
    this.live = this.live.filter((node) => !gone.includes(node));
    for (const [node, dir] of this.dirs) if (!this.crashed.has(node)) dir.membershipChanged(gone);
  }

  run(ms: number): void {
    const end = this.nowMs + ms;
    while (this.nowMs < end) {
      this.nowMs++;
      const due = this.#queue.filter((d) => d.atMs <= this.nowMs);
      this.#queue = this.#queue.filter((d) => d.atMs > this.nowMs);
      for (const d of due) {
        if (!this.crashed.has(d.to)) this.dirs.get(d.to)?.receive(d.message);
      }
      for (const [node, dir] of this.dirs) {
        if (!this.crashed.has(node) && dir.nextWakeMs() <= this.nowMs) dir.tick();
      }
    }
  }
}

function cluster(n: number, options: Partial<DirectoryOptions> = {}): Net {
  const net = new Net(options);
  for (let i = 0; i < n; i++) net.add(`N${i}`);
  return net;
}

describe("directory", () => {
  it("a lookup finds a worker hosted on another node, and the answer is cached", () => {
    const net = cluster(10);
    net.dirs.get("N3")!.attach("w-1");
    net.run(5);
    const a = net.dirs.get("N7")!;
    assert.equal(a.locate("w-1"), undefined);
    net.run(5);
    assert.deepEqual(net.resolved, [
      { at: "N7", worker: "w-1", node: "N3", why: "found", atMs: 2 + 5 },
    ]);
    assert.equal(a.locate("w-1"), "N3");
    assert.equal(a.stats.cacheHits, 1);
    assert.equal(a.stats.lookups, 1);
  });

  it("a worker hosted here is found here without a lookup", () => {
    const net = cluster(3);
    const a = net.dirs.get("N0")!;
    a.attach("mine");
    assert.equal(a.locate("mine"), "N0");
    assert.equal(a.stats.lookups, 0);
  });

  it("a worker that moved is found on its new node after the old location is invalidated", () => {
    const net = cluster(8);
    net.dirs.get("N1")!.attach("w");
    net.run(5);
    const sender = net.dirs.get("N5")!;
    sender.locate("w");
    net.run(5);
    assert.equal(sender.locate("w"), "N1");
    net.dirs.get("N1")!.detach("w");
    net.dirs.get("N2")!.attach("w");
    net.run(5);
    // N1 answered "not here" to a message: the sender forgets and asks again.
    sender.invalidate("w", "N1");
    assert.equal(sender.locate("w"), undefined);
    net.run(5);
    assert.equal(sender.locate("w"), "N2");
  });

  it("a worker nobody hosts is reported unknown once the owners are settled", () => {
    const net = cluster(5, { settleMs: 1000 });
    net.run(1000);
    net.dirs.get("N0")!.locate("ghost");
    net.run(10);
    assert.deepEqual(net.resolved.map((r) => [r.worker, r.node, r.why]), [
      ["ghost", undefined, "unknown"],
    ]);
  });

  it("a lookup that owners keep answering uncertainly ends as unanswered, not unknown", () => {
    const net = cluster(5, { settleMs: 100_000, retryMs: 50, maxWaitMs: 1000 });
    net.dirs.get("N0")!.locate("ghost");
    net.run(1100);
    assert.deepEqual(net.resolved.map((r) => [r.worker, r.node, r.why]), [
      ["ghost", undefined, "unanswered"],
    ]);
  });

  it("a lookup nobody answers ends as unanswered after maxTries", () => {
    const net = cluster(4, { lookupTimeoutMs: 100, maxTries: 3 });
    for (const node of ["N1", "N2", "N3"]) net.crashed.add(node);
    net.dirs.get("N0")!.locate("somewhere");
    net.run(1000);
    const ends = net.resolved.filter((r) => r.worker === "somewhere");
    assert.equal(ends.length, 1);
    // Either N0 owns it (answers itself: unknown, settled) or nobody answers.
    assert.ok(ends[0].why === "unanswered" || net.owners("somewhere", 2).includes("N0"));
  });

  it("right after an owner change a hosted worker is never reported unknown", () => {
    const net = cluster(6, { settleMs: 1000, retryMs: 50 });
    // Find a worker whose first owner will be a node that joins later.
    const later = new Net();
    for (let i = 0; i < 6; i++) later.live.push(`N${i}`);
    later.live.push("J");
    let worker = "";
    for (let i = 0; worker === ""; i++) {
      if (later.owners(`w${i}`, 1)[0] === "J") worker = `w${i}`;
    }
    net.dirs.get("N4")!.attach(worker);
    net.run(2000);
    // J joins; the sender hears of it at once, the hosting node only 300 ms later.
    net.add("J");
    net.dirs.get("N0")!.membershipChanged();
    net.dirs.get("J")!.membershipChanged();
    net.dirs.get("N0")!.locate(worker);
    net.run(300);
    assert.equal(net.resolved.length, 0, "answered before the entry reached its new owner");
    net.dirs.get("N4")!.membershipChanged();
    net.run(300);
    assert.deepEqual(net.resolved.map((r) => [r.worker, r.node]), [[worker, "N4"]]);
    assert.ok(net.dirs.get("N0")!.stats.retries > 0);
  });

  it("a lookup whose first owner is dead asks the next owner", () => {
    const net = cluster(8, { lookupTimeoutMs: 100 });
    net.dirs.get("N6")!.attach("w9");
    net.run(5);
    const [first, second] = net.owners("w9", 2);
    assert.notEqual(net.dirs.get(second)!.entry("w9"), undefined);
    net.crashed.add(first); // not yet noticed by anyone
    const asker = [...net.dirs.keys()].find((n) => n !== first && n !== "N6")!;
    net.dirs.get(asker)!.locate("w9");
    net.run(150);
    assert.deepEqual(net.resolved.map((r) => [r.at, r.node]), [[asker, "N6"]]);
  });

  it("owners and caches forget the workers of a node that died", () => {
    const net = cluster(6);
    net.dirs.get("N2")!.attach("a");
    net.run(5);
    const sender = net.dirs.get("N5")!;
    sender.locate("a");
    net.run(5);
    assert.equal(sender.cacheCount, 1);
    net.crashed.add("N2");
    net.changed(["N2"]);
    assert.equal(sender.cacheCount, 0);
    for (const [node, dir] of net.dirs) if (node !== "N2") assert.equal(dir.entry("a"), undefined);
  });

  it("a late remove from an earlier attachment does not undo a newer one", () => {
    const net = cluster(4);
    const host = net.dirs.get("N1")!;
    // The first remove takes 50 ms, everything else 1 ms.
    let slow = true;
    net.delay = (_from, _to, message) => {
      if (message.kind === "remove" && slow) return 50;
      return 1;
    };
    host.attach("w");
    host.detach("w");
    slow = false;
    host.attach("w");
    net.run(100);
    const [owner] = net.owners("w", 1);
    assert.equal(net.dirs.get(owner)!.entry("w"), "N1");
  });

  it("entries spread over the owners, about workers × replicas / nodes each", () => {
    const net = cluster(20);
    for (let i = 0; i < 2000; i++) net.dirs.get(`N${i % 20}`)!.attach(`worker-${i}`);
    net.run(5);
    const counts = [...net.dirs.values()].map((dir) => dir.entryCount);
    assert.equal(counts.reduce((a, b) => a + b, 0), 4000);
    assert.ok(Math.max(...counts) < 3 * (4000 / 20), `${counts}`);
  });

  it("a re-joined membership moves only the entries of the ring segment that changed", () => {
    const net = cluster(20);
    for (let i = 0; i < 1000; i++) net.dirs.get(`N${i % 20}`)!.attach(`w${i}`);
    net.run(5);
    const puts = () => [...net.dirs.values()].reduce((sum, d) => sum + d.stats.putsSent, 0);
    const before = puts();
    net.add("N20");
    net.changed();
    net.run(5);
    const moved = puts() - before;
    assert.ok(moved > 0 && moved < 2 * 1000 * 2 / 20, `${moved} puts`);
    // Every worker is still found from anywhere.
    const asker = net.dirs.get("N20")!;
    for (let i = 0; i < 1000; i += 37) asker.locate(`w${i}`);
    net.run(20);
    assert.ok(net.resolved.every((r) => r.node === `N${Number(r.worker.slice(1)) % 20}`));
    assert.equal(net.resolved.length, Math.ceil(1000 / 37));
  });

  it("malformed messages from the network are ignored", () => {
    const net = cluster(2);
    const dir = net.dirs.get("N0")!;
    for (
      const bad of [
        null,
        {},
        { kind: "put", from: "N1", worker: "w", node: "N1", stamp: 3 },
        { kind: "get", from: "N1", worker: "w", id: "x" },
        { kind: "nope", from: "N1", worker: "w" },
      ]
    ) dir.receive(bad as unknown as DirectoryMessage);
    assert.equal(dir.entryCount, 0);
  });

  it("bad options are refused with a Cannot error", () => {
    const host = { now: () => 0, owners: () => [], send() {}, resolved() {} };
    assert.throws(() => new Directory(host, { node: "", version: 1 }), /Cannot create directory/);
    assert.throws(
      () => new Directory(host, { node: "A", version: 1, replicas: 0 }),
      /Cannot create directory: replicas/,
    );
  });
});
