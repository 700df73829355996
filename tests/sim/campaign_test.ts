import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Campaign, runCampaign } from "../../sim/campaign.ts";
import { fuzzCampaigns } from "../../sim/fuzz.ts";
import { runSimCli } from "../../sim/cli.ts";

// A fixed budget of generated fault campaigns, each run twice to compare trace hashes. Longer
// searches are for the command line: deno task fuzz -- --runs 1000 --seed S --nodes 2..20.
test("fault campaigns keep every invariant (fixed budget, determinism self-check)", () => {
  const report = fuzzCampaigns({
    runs: 60,
    seed: 20261128,
    nodesMin: 2,
    nodesMax: 12,
    checkDeterminism: true,
  });
  assert.equal(report.failure, undefined, JSON.stringify(report.failure, null, 2));
  assert.equal(report.runs, 60);
  assert.ok(report.sent > 500, `only ${report.sent} messages sent`);
  assert.ok(
    report.reported > 0,
    "the faults made some messages undeliverable, and they were reported",
  );
});

// Found by the fuzzer: both nodes dialled at once; the one that swapped its link to the
// connection the other dialled never re-sent its worker locations on it.
const SIMULTANEOUS_DIAL: Campaign = {
  version: 1,
  seed: 235481120,
  nodes: 6,
  durationMs: 6000,
  settleMs: 8000,
  latencyMsMin: 1,
  latencyMsMax: 23,
  faults: [
    { atMs: 1590, kind: "crash", node: 2 },
    { atMs: 1339, kind: "hold", a: 2, b: 4, forMs: 2986 },
    { atMs: 3323, kind: "hold", a: 5, b: 5, forMs: 2057 },
    { atMs: 4711, kind: "loss", probability: 3.389555328132417e-15, forMs: 2945 },
    { atMs: 2778, kind: "heal" },
    { atMs: 2107, kind: "oneWay", from: [3, 5, 0, 4], to: [4, 0, 1] },
    { atMs: 1326, kind: "loss", probability: 1.6278741012158475e-181, forMs: 1424 },
    { atMs: 966, kind: "duplicate", probability: 8.496819459343733e-80, forMs: 2446 },
  ],
  traffic: [{ atMs: 2042, kind: "send", from: 2, to: 2, count: 3 }],
};

test("regression: after a simultaneous dial both sides know each other's workers", () => {
  assert.deepEqual(runCampaign(SIMULTANEOUS_DIAL).violations, []);
});

test("the checker catches a duplicate delivery and a silently lost message", () => {
  const campaign: Campaign = {
    version: 1,
    seed: 3,
    nodes: 3,
    durationMs: 2000,
    settleMs: 3000,
    latencyMsMin: 1,
    latencyMsMax: 5,
    faults: [],
    traffic: [{ atMs: 1000, kind: "send", from: 0, to: 1, count: 5 }],
  };
  assert.deepEqual(runCampaign(campaign).violations, []);
  assert.match(
    runCampaign(campaign, { plant: "duplicate" }).violations.join("\n"),
    /delivered 2 times/,
  );
  assert.match(
    runCampaign(campaign, { plant: "drop" }).violations.join("\n"),
    /neither delivered nor reported/,
  );
});

test("the checker catches a placed worker running twice, and a crash during a partition places it once", () => {
  const campaign: Campaign = {
    version: 1,
    seed: 4,
    nodes: 4,
    durationMs: 4000,
    settleMs: 4000,
    latencyMsMin: 1,
    latencyMsMax: 5,
    faults: [
      { atMs: 1500, kind: "partition", a: [0, 1], b: [2, 3] },
      { atMs: 2500, kind: "crash", node: 3 },
    ],
    traffic: [
      { atMs: 1000, kind: "spawn", from: 0, count: 8 },
      { atMs: 2000, kind: "spawn", from: 2, count: 4 },
      { atMs: 3000, kind: "stop", from: 1, which: 2 },
    ],
  };
  assert.deepEqual(runCampaign(campaign).violations, []);
  assert.match(
    runCampaign(campaign, { plant: "twin" }).violations.join("\n"),
    /is placed on N\d but runs on \[N\d N\d\]/,
  );
});

// Found by the fuzzer once convergence meant every placed worker's location too: a placed
// worker moved after a one-way partition healed, and a peer that had swapped connections kept
// its old location (the removal went on the connection it dropped). Link-up now sends the whole
// worker set, which replaces what the peer knew.
const STALE_LOCATION: Campaign = {
  version: 1,
  seed: 0,
  nodes: 8,
  durationMs: 6000,
  settleMs: 8000,
  latencyMsMin: 1,
  latencyMsMax: 11,
  faults: [
    { atMs: 0, kind: "crash", node: 4 },
    { atMs: 1875, kind: "oneWay", from: [6, 0], to: [1, 0] },
  ],
  traffic: [{ atMs: 2379, kind: "spawn", from: 0, count: 6 }],
};

test("regression: after a swapped link, a moved placed worker's old location is forgotten", () => {
  assert.deepEqual(runCampaign(STALE_LOCATION).violations, []);
});

// Found by the fuzzer: a node took a placed worker over during an isolation, told only one peer
// before it crashed, and that peer stopped its copy; the node responsible for placing again had
// the older entry and did nothing. A link-down now sends the lost node's entries to it.
const TOLD_ONE_PEER: Campaign = {
  version: 1,
  seed: 0,
  nodes: 5,
  durationMs: 6000,
  settleMs: 8000,
  latencyMsMin: 1,
  latencyMsMax: 1,
  faults: [
    { atMs: 3762, kind: "crash", node: 2 },
    { atMs: 2768, kind: "isolate", node: 2, forMs: 912 },
  ],
  traffic: [{ atMs: 2709, kind: "spawn", from: 3, count: 1 }],
};

test("regression: a takeover told to one peer before a crash is placed again, once", () => {
  assert.deepEqual(runCampaign(TOLD_ONE_PEER).violations, []);
});

// Found by the fuzzer: an isolated node placed a worker again (it thought the host lost), told
// one peer, and crashed; that peer and the rest then ran two copies with two tables, linked all
// along. Tables now compare digests with one linked node every few heartbeats and sync.
const DRIFTED_TABLES: Campaign = {
  version: 1,
  seed: 0,
  nodes: 5,
  durationMs: 6000,
  settleMs: 8000,
  latencyMsMin: 1,
  latencyMsMax: 1,
  faults: [
    { atMs: 3711, kind: "crash", node: 2 },
    { atMs: 3319, kind: "isolate", node: 2, forMs: 391 },
    { atMs: 1499, kind: "isolate", node: 0, forMs: 1430 },
  ],
  traffic: [{ atMs: 0, kind: "spawn", from: 0, count: 1 }],
};

test("regression: placement tables that drifted apart while linked meet again", () => {
  assert.deepEqual(runCampaign(DRIFTED_TABLES).violations, []);
});

// One stored hash, checked by Deno and by Bun: a campaign replays identically on both.
const STORED = { hash: "aa5f19ce8776740a" };

test("a campaign has the stored trace hash on this runtime, and replays from its file", () => {
  const result = runCampaign(SIMULTANEOUS_DIAL);
  assert.equal(result.traceHash, STORED.hash);
  const dir = mkdtempSync(join(tmpdir(), "automp-replay-"));
  try {
    const file = join(dir, "campaign.json");
    writeFileSync(file, JSON.stringify(SIMULTANEOUS_DIAL));
    const replay = runSimCli(["--replay", file]);
    assert.equal(replay.code, 0, replay.stderr);
    const line = JSON.parse(replay.stdout);
    assert.equal(line.trace_hash, result.traceHash);
    assert.deepEqual(line.violations, []);
    writeFileSync(file, "{}");
    assert.equal(runSimCli(["--replay", file]).code, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fuzz CLI: a small clean run prints one JSON line; bad flags exit 2", () => {
  const run = runSimCli([
    "fuzz",
    "--runs",
    "3",
    "--seed",
    "4",
    "--nodes",
    "2..4",
    "--no-determinism",
  ]);
  assert.equal(run.code, 0, run.stderr);
  const line = JSON.parse(run.stdout);
  assert.equal(line.runs, 3);
  assert.equal(line.violations, 0);
  assert.equal(runSimCli(["fuzz", "--bogus"]).code, 2);
  assert.match(runSimCli(["fuzz", "--help"]).stdout, /Usage: deno task fuzz/);
});
