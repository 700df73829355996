/**
 * Delivery that survives link loss (issue 14): sessions between node incarnations resend what a
 * dead link did not confirm, the receiver drops what it already took, and nothing is reported
 * lost that is later delivered. The scenarios the issue names, on the public simulator API, with
 * the history's checks (no duplicate, per-sender order, nothing silently lost, no delivery after
 * a report) run by every settle.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SimCluster } from "../../sim/cluster.ts";
import { RecordingWorker } from "../../sim/cluster.ts";

/** 10 nodes, a recording worker on each; the others send node 9's worker `ratePerS` messages. */
function cluster(seed: number) {
  const c = new SimCluster({
    nodes: 10,
    seed,
    latencyMsMin: 1,
    latencyMsMax: 10,
    setup: ({ node, index }) => node.attachWorker(new RecordingWorker(`w${index}`)),
  });
  c.settle();
  let sent = 0;
  let id = 0;
  const traffic = (forMs: number, ratePerS: number) => {
    const every = 1000 / ratePerS;
    for (let t = 0; t < forMs; t += every) {
      c.sim.schedule(t, () => {
        const n = id++;
        // Every message distinct: the history tells messages apart by content.
        if (c.send(n % 9, { destination: "w9", source: `s${n % 9}`, message: { n: String(n) } })) {
          sent++;
        }
      });
    }
  };
  const reasons = () => {
    const counts: Record<string, number> = {};
    for (const r of c.history.records) {
      for (const p of r.reports) counts[p.reason] = (counts[p.reason] ?? 0) + 1;
    }
    return counts;
  };
  return { c, traffic, reasons, sent: () => sent, attempts: () => id };
}

test("a node paused for 10 heartbeats while others send it 50 msg/s gets each message once, in order, none reported", () => {
  const { c, traffic, reasons, sent, attempts } = cluster(51);
  traffic(12_000, 50);
  c.run(1000);
  c.pause(9);
  c.run(10_000);
  c.resume(9);
  c.run(1000);
  const report = c.settle(); // throws on a duplicate, a reordering, a silent loss or a late delivery
  assert.deepEqual(report.violations, []);
  const worker = c.node(9)!.worker("w9") as RecordingWorker;
  const got = worker.received.length;
  // While paused, the links to it dropped: messages sent then were refused at once (no link,
  // for certain); every one accepted was delivered, those in flight resent when it came back.
  const refused = Object.values(reasons()).reduce((a, b) => a + b, 0);
  assert.equal(got, sent(), "every accepted message delivered");
  assert.equal(refused, attempts() - sent(), JSON.stringify(reasons()));
  assert.ok(got > 100, `${got} delivered`);
  assert.equal(
    reasons().uncertain ?? 0,
    0,
    "nothing left uncertain: the pause was inside the window",
  );
  assert.equal(reasons()["link-lost"] ?? 0, 0);
});

test("after a one-way partition, nothing is both reported and delivered", () => {
  const { c, traffic } = cluster(52);
  traffic(8000, 50);
  c.run(500);
  c.partitionOneWay([0, 1, 2, 3], 9);
  c.run(6000);
  c.heal();
  c.run(2000);
  assert.deepEqual(c.settle().violations, []);
});

test("a pause longer than the resend window: reported uncertain, then the outcome when it comes back", () => {
  const c = new SimCluster({
    nodes: 3,
    seed: 53,
    node: { resendWindowMs: 4000 },
    setup: ({ node, index }) => node.attachWorker(new RecordingWorker(`w${index}`)),
  });
  c.settle();
  const outcomes: string[] = [];
  c.node(0)!.on("message-outcome", ({ outcome }) => outcomes.push(outcome));
  for (let i = 0; i < 20; i++) {
    c.send(0, { destination: "w2", source: "s", message: { i: String(i) } });
  }
  c.pause(2); // before its node could read them: they wait in its socket
  c.run(8000);
  const uncertain = c.history.records.filter((r) =>
    r.reports.some((p) => p.reason === "uncertain")
  );
  assert.equal(uncertain.length, 20, "past the window, each reported uncertain once");
  c.resume(2);
  c.settle();
  // It read them on resume: delivered once each, and the sender hears so.
  assert.equal((c.node(2)!.worker("w2") as RecordingWorker).received.length, 20);
  assert.deepEqual(outcomes, Array(20).fill("delivered"));
});
