/**
 * Two live nodes with one GUID (a cloned machine, a copied config): the first incarnation that
 * holds links keeps them, the newcomer is refused with a clear `duplicate-guid` on both sides and
 * retries only with backoff, the honest nodes do not churn, and when the holder dies the other
 * takes over. A node restarted with its GUID is not mistaken for a twin.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SimCluster } from "../../sim/cluster.ts";
import { AutoMpiNode, type NodeEvents } from "../../src/node.ts";
import { EchoWorker } from "../../src/worker.ts";

const TWIN_OF = "N0003";

/** A settled 6-node cluster, every node's events recorded, and a twin of N0003 started. */
function clusterWithTwin(seed: number) {
  const events: Array<{ node: string; type: keyof NodeEvents; event: unknown; atMs: number }> = [];
  const record = (node: AutoMpiNode, name: string) => {
    for (const type of ["link-up", "link-down", "duplicate-guid"] as const) {
      node.on(type, (event) => events.push({ node: name, type, event, atMs: cluster.now }));
    }
  };
  const cluster = new SimCluster({
    nodes: 6,
    seed,
    setup: ({ node, index, guid }) => {
      node.attachWorker(new EchoWorker(`echo${index}`));
      record(node, guid);
    },
  });
  cluster.settle();
  const twin = cluster.sim.addHost("twin", (platform, host) => {
    const node = new AutoMpiNode(platform, {
      guid: TWIN_OF,
      listen: { host: host.address, port: 8888 },
      discovery: { broadcastAddress: "10.0.255.255" },
    });
    record(node, "twin");
    node.start();
    node.attachWorker(new EchoWorker("twin-echo"));
    return node;
  });
  const since = (atMs: number, node: string, type: keyof NodeEvents) =>
    events.filter((e) => e.atMs >= atMs && e.node === node && e.type === type);
  const honest = cluster.hosts.map((h) => h.app!.guid);
  return { cluster, twin, events, since, honest };
}

test("a twin is refused: honest nodes keep the first holder and see no link-down after the first seconds", () => {
  const { cluster, twin, events, since, honest } = clusterWithTwin(31);
  const holder = cluster.node(TWIN_OF)!;
  cluster.run(5000);
  const calmFromMs = cluster.now;
  cluster.run(30_000);
  for (const guid of honest) {
    assert.deepEqual(since(calmFromMs, guid, "link-down"), [], `${guid} had link-downs`);
  }
  for (const guid of honest.filter((g) => g !== TWIN_OF)) {
    const node = cluster.node(guid)!;
    assert.equal(node.locate("echo3"), TWIN_OF, `${guid} still routes to the holder`);
    assert.equal(
      node.state().links.find((l) => l.peer === TWIN_OF)?.incarnation,
      holder.incarnation,
      `${guid} links the first incarnation`,
    );
  }
  assert.ok(cluster.converged(), "the honest cluster stays meshed");
  // Both sides say so: the holder and the honest nodes, and the twin itself (log and state).
  const reports = events.filter((e) => e.type === "duplicate-guid");
  assert.ok(reports.some((e) => e.node === "twin"), "the twin hears it is refused");
  assert.ok(reports.some((e) => e.node !== "twin"), "the honest side reports the twin");
  assert.equal(twin.app!.state().duplicateGuid?.guid, TWIN_OF);
  assert.equal(twin.app!.state().duplicateGuid?.incarnation, holder.incarnation);
  assert.ok(twin.app!.state().stats.duplicateGuids > 0);
  // Retried only with backoff: over 30 s, five peers, backoff up to 8 s.
  const tries = since(calmFromMs, "twin", "link-down");
  assert.ok(tries.length <= 5 * 8, `${tries.length} refused links in 30 s`);
  assert.ok(
    tries.every((e) => (e.event as { reason: string }).reason === "duplicate-guid"),
    "every refusal says why",
  );
});

test("when the holder dies, the twin takes its place and its worker becomes reachable", () => {
  const { cluster, twin } = clusterWithTwin(32);
  cluster.run(10_000);
  cluster.crash(TWIN_OF);
  cluster.run(15_000);
  assert.equal(twin.app!.linkCount, 5, "every live node links the twin");
  const client = cluster.client(0, "asker");
  const answer = client.request("twin-echo", { command: "hi" });
  assert.equal(answer?.source, "twin-echo");
});

test("a node restarted with its GUID relinks at once and is not taken for a twin", () => {
  const reports: string[] = [];
  const cluster = new SimCluster({
    nodes: 6,
    seed: 33,
    setup: ({ node, index, guid }) => {
      node.attachWorker(new EchoWorker(`echo${index}`));
      node.on("duplicate-guid", () => reports.push(guid));
    },
  });
  cluster.settle();
  for (let round = 0; round < 5; round++) {
    cluster.crash(2);
    cluster.run(100 + round * 300);
    cluster.restart(2);
    const restartedAtMs = cluster.now;
    assert.ok(cluster.runUntil(() => cluster.converged(), 5000), `round ${round} relinks`);
    assert.ok(cluster.now - restartedAtMs < 3000, `relinked in ${cluster.now - restartedAtMs} ms`);
  }
  assert.deepEqual(reports, [], "no duplicate-guid for a restart");
});
