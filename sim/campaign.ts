/**
 * Fault campaigns: a cluster of real nodes in the simulator, a schedule of timed faults and
 * application traffic, and the invariants the cluster must keep during and after it.
 *
 * A campaign is plain JSON (see {@link Campaign}), so a failing one is saved, shrunk by
 * fast-check, and replayed exactly (`deno task sim -- --replay FILE`), trace hash included.
 *
 * Invariants checked:
 * - nothing is delivered twice to a worker, and per-sender order to a worker holds;
 * - every message sent is delivered or reported `undeliverable` (messages whose sender or
 *   destination host crashed afterwards are exempt: a crash loses a process's memory);
 * - after a final heal and a settle time: every live node links every other live node, every
 *   live worker's location is known everywhere, and no link refers to a dead incarnation;
 * - no uncaught exception; worker queues and link buffers stay within their bounds;
 * - placement: after the settle every node holds the same placement table, every placed worker
 *   runs on exactly one node (the one the table names, a live one), a stopped one nowhere, and
 *   every spawn is in the table (unless its spawner crashed before anyone else heard of it).
 *
 * @module
 */
import fc from "fast-check";
import { AutoMpiNode, type NodeOptions } from "../src/node.ts";
import type { MapMessage } from "../src/message.ts";
import { WorkerBase } from "../src/worker.ts";
import { type SimHost, Simulation } from "./simulation.ts";

/** One timed fault. Node numbers index the cluster's hosts. */
export type Fault =
  | {
    readonly atMs: number;
    readonly kind: "partition";
    readonly a: number[];
    readonly b: number[];
  }
  | {
    readonly atMs: number;
    readonly kind: "oneWay";
    readonly from: number[];
    readonly to: number[];
  }
  | { readonly atMs: number; readonly kind: "heal" }
  | {
    readonly atMs: number;
    readonly kind: "cut";
    readonly a: number;
    readonly b: number;
    readonly forMs: number;
  }
  | {
    readonly atMs: number;
    readonly kind: "hold";
    readonly a: number;
    readonly b: number;
    readonly forMs: number;
  }
  | { readonly atMs: number; readonly kind: "crash"; readonly node: number }
  | { readonly atMs: number; readonly kind: "restart"; readonly node: number }
  | { readonly atMs: number; readonly kind: "pause"; readonly node: number; readonly forMs: number }
  | {
    readonly atMs: number;
    readonly kind: "loss";
    readonly probability: number;
    readonly forMs: number;
  }
  | {
    readonly atMs: number;
    readonly kind: "duplicate";
    readonly probability: number;
    readonly forMs: number;
  }
  | {
    readonly atMs: number;
    readonly kind: "skew";
    readonly node: number;
    readonly offsetMs: number;
    readonly rate: number;
  };

/** One timed piece of application traffic. */
export type Traffic =
  | {
    readonly atMs: number;
    readonly kind: "send";
    readonly from: number;
    /** Index of the node whose worker `W<to>` is the destination. */
    readonly to: number;
    readonly count: number;
  }
  | { readonly atMs: number; readonly kind: "detach"; readonly node: number }
  | { readonly atMs: number; readonly kind: "attach"; readonly node: number }
  /** `count` workers of kind "probe" spawned from `from` (placed by the default strategy). */
  | { readonly atMs: number; readonly kind: "spawn"; readonly from: number; readonly count: number }
  /** Stops the spawned worker number `which` (modulo those spawned so far) from `from`. */
  | { readonly atMs: number; readonly kind: "stop"; readonly from: number; readonly which: number };

/** A whole campaign: everything a run depends on. */
export interface Campaign {
  readonly version: 1;
  readonly seed: number;
  readonly nodes: number;
  /** How long faults and traffic run. */
  readonly durationMs: number;
  /** After `durationMs`: heal everything, restart crashed nodes, then wait this long. */
  readonly settleMs: number;
  readonly latencyMsMin: number;
  readonly latencyMsMax: number;
  readonly faults: readonly Fault[];
  readonly traffic: readonly Traffic[];
}

/** What a run found. */
export interface CampaignResult {
  readonly violations: readonly string[];
  readonly traceHash: string;
  readonly events: number;
  readonly sent: number;
  readonly delivered: number;
  readonly reported: number;
  readonly exempt: number;
}

/** Node options every campaign uses: fast heartbeats keep runs short in virtual time too. */
export const CAMPAIGN_NODE_OPTIONS: Partial<NodeOptions> = {
  heartbeatIntervalMs: 200,
  connectTimeoutMs: 400,
  handshakeTimeoutMs: 400,
  reconnectMinMs: 50,
  reconnectMaxMs: 800,
  gossipIntervals: 2,
};

const WORKER_QUEUE_LIMIT = 1000;

/** What campaigns spawn: a worker that does nothing, so only placement is under test. */
class ProbeWorker extends WorkerBase {
  protected override onMessage(): void {}
}

class CampaignWorker extends WorkerBase {
  constructor(guid: string, readonly onReceive: (message: MapMessage) => void) {
    super(guid, { queueLimit: WORKER_QUEUE_LIMIT });
  }
  protected override onMessage(message: MapMessage): void {
    this.onReceive(message);
  }
}

const workerOf = (node: number) => `W${node}`;
const guidOf = (node: number) => `N${node}`;

interface SentRecord {
  readonly from: number;
  readonly to: number;
  readonly seq: number;
  readonly atMs: number;
}

/** Runs a campaign and checks its invariants. Throws only if the campaign itself is malformed. */
export function runCampaign(
  campaign: Campaign,
  options: {
    /** Called after the run with the simulation and its hosts, to look closer at a failure. */
    inspect?: (sim: Simulation, hosts: ReadonlyArray<SimHost<AutoMpiNode>>) => void;
    /** Keep this many readable trace lines (see `Simulation.trace`). */
    traceLimit?: number;
    /**
     * Sabotage, to prove the checker can fail: `"duplicate"` hands one message to its worker
     * twice, `"drop"` swallows one without a report, `"twin"` starts a second copy of a placed
     * worker after the settle.
     */
    plant?: "duplicate" | "drop" | "twin";
  } = {},
): CampaignResult {
  checkCampaign(campaign);
  const violations: string[] = [];
  const sim = new Simulation({
    seed: campaign.seed,
    latencyMsMin: campaign.latencyMsMin,
    latencyMsMax: campaign.latencyMsMax,
    logLevel: options.traceLimit ? "debug" : "error",
    logLimit: options.traceLimit ?? 0,
    traceLimit: options.traceLimit ?? 0,
  });
  const sent = new Map<string, SentRecord>();
  const delivered = new Map<string, number>();
  const reported = new Set<string>();
  const lastSeq = new Map<string, number>(); // "from>worker" → last delivered seq
  const crashedAtMs = new Map<number, number[]>();
  const seqOf = new Map<string, number>();
  const attached = new Set<number>();
  let nextId = 0;
  /** Spawned probes: GUID → spawner and when. */
  const spawned = new Map<string, { from: number; atMs: number }>();

  let planted = false;
  const onReceive = (node: number) => (message: MapMessage) => {
    const id = message.message.id;
    if (id === undefined) return;
    if (options.plant === "drop" && !planted) {
      planted = true;
      return;
    }
    if (options.plant === "duplicate" && !planted) {
      planted = true;
      onReceive(node)(message);
    }
    const count = (delivered.get(id) ?? 0) + 1;
    delivered.set(id, count);
    if (count > 1) violations.push(`message ${id} delivered ${count} times to ${workerOf(node)}`);
    const record = sent.get(id);
    if (record === undefined) {
      violations.push(`message ${id} delivered but never sent`);
      return;
    }
    const key = `${record.from}>${node}`;
    const previous = lastSeq.get(key) ?? -1;
    if (record.seq <= previous) {
      violations.push(
        `order: ${workerOf(node)} got #${record.seq} from ${
          guidOf(record.from)
        } after #${previous}`,
      );
    }
    lastSeq.set(key, Math.max(previous, record.seq));
  };

  const hosts: Array<SimHost<AutoMpiNode>> = [];
  for (let node = 0; node < campaign.nodes; node++) {
    hosts.push(sim.addHost(`n${node}`, (platform, host) => {
      const instance = new AutoMpiNode(platform, {
        ...CAMPAIGN_NODE_OPTIONS,
        guid: guidOf(node),
        listen: { host: host.address, port: 8888 },
        discovery: { broadcastAddress: "10.0.255.255" },
        placement: { kinds: { probe: (guid) => new ProbeWorker(guid) } },
      });
      instance.on("undeliverable", ({ message }) => {
        const id = message.message.id;
        if (id !== undefined) reported.add(id);
      });
      instance.start();
      if (attached.has(node) || hosts.length <= node) {
        instance.attachWorker(new CampaignWorker(workerOf(node), onReceive(node)));
        attached.add(node);
      }
      return instance;
    }));
  }

  const at = (atMs: number, fn: () => void) => sim.schedule(atMs, fn);
  const live = (node: number) => hosts[node].state !== "down" && hosts[node].app !== undefined;
  let baseLoss = 0;
  let baseDuplicate = 0;

  for (const fault of campaign.faults) {
    at(fault.atMs, () => {
      switch (fault.kind) {
        case "partition":
          sim.partition(fault.a.map((n) => hosts[n]), fault.b.map((n) => hosts[n]));
          break;
        case "oneWay":
          sim.partitionOneWay(fault.from.map((n) => hosts[n]), fault.to.map((n) => hosts[n]));
          break;
        case "heal":
          sim.heal();
          break;
        case "cut":
          sim.partition(hosts[fault.a], hosts[fault.b]);
          sim.schedule(fault.forMs, () => sim.heal(hosts[fault.a], hosts[fault.b]));
          break;
        case "hold":
          sim.hold(hosts[fault.a], hosts[fault.b]);
          sim.schedule(fault.forMs, () => sim.release(hosts[fault.a], hosts[fault.b]));
          break;
        case "crash":
          if (hosts[fault.node].state !== "down") {
            sim.crash(hosts[fault.node]);
            crashedAtMs.set(fault.node, [...(crashedAtMs.get(fault.node) ?? []), sim.now]);
          }
          break;
        case "restart":
          if (hosts[fault.node].state === "down") sim.restart(hosts[fault.node]);
          break;
        case "pause":
          sim.pause(hosts[fault.node]);
          sim.schedule(fault.forMs, () => sim.resume(hosts[fault.node]));
          break;
        case "loss":
          baseLoss = sim.network.lossProbability;
          sim.setNetwork({ lossProbability: fault.probability });
          sim.schedule(fault.forMs, () => sim.setNetwork({ lossProbability: baseLoss }));
          break;
        case "duplicate":
          baseDuplicate = sim.network.duplicateProbability;
          sim.setNetwork({ duplicateProbability: fault.probability });
          sim.schedule(fault.forMs, () => sim.setNetwork({ duplicateProbability: baseDuplicate }));
          break;
        case "skew":
          sim.setClockSkew(hosts[fault.node], { offsetMs: fault.offsetMs, rate: fault.rate });
          break;
      }
    });
  }

  for (const item of campaign.traffic) {
    at(item.atMs, () => {
      if (item.kind === "send") {
        if (!live(item.from) || hosts[item.from].state === "paused") return;
        const node = hosts[item.from].app!;
        for (let i = 0; i < item.count; i++) {
          const id = String(nextId++);
          const key = `${item.from}>${item.to}`;
          const seq = seqOf.get(key) ?? 0;
          seqOf.set(key, seq + 1);
          sent.set(id, { from: item.from, to: item.to, seq, atMs: sim.now });
          node.send({
            destination: workerOf(item.to),
            source: guidOf(item.from),
            message: { id, seq: String(seq) },
          });
        }
      } else if (item.kind === "spawn") {
        if (!live(item.from) || hosts[item.from].state === "paused") return;
        for (let i = 0; i < item.count; i++) {
          const guid = `P${spawned.size}`;
          spawned.set(guid, { from: item.from, atMs: sim.now });
          hosts[item.from].app!.spawn("probe", guid);
        }
      } else if (item.kind === "stop") {
        if (!live(item.from) || hosts[item.from].state === "paused" || spawned.size === 0) return;
        const guid = `P${item.which % spawned.size}`;
        hosts[item.from].app!.stopWorker(guid);
      } else if (item.kind === "detach") {
        if (live(item.node)) hosts[item.node].app!.detachWorker(workerOf(item.node));
        attached.delete(item.node);
      } else {
        attached.add(item.node);
        const node = hosts[item.node].app;
        if (live(item.node) && node && !node.worker(workerOf(item.node))) {
          node.attachWorker(new CampaignWorker(workerOf(item.node), onReceive(item.node)));
        }
      }
    });
  }

  const checkBounds = () => {
    for (const host of hosts) {
      const node = host.app;
      if (host.state === "down" || node === undefined) continue;
      for (const link of node.state().links) {
        if (link.bufferedBytes > (8 << 20) + (64 << 10)) {
          violations.push(`${node.guid}: link to ${link.peer} buffers ${link.bufferedBytes} bytes`);
        }
      }
      const worker = node.worker(workerOf(host.index)) as CampaignWorker | undefined;
      if (worker && worker.queuedMessages > WORKER_QUEUE_LIMIT) {
        violations.push(`${node.guid}: worker queue holds ${worker.queuedMessages}`);
      }
    }
  };
  // Bounds are checked during the run too, every virtual second.
  for (let t = 1000; t < campaign.durationMs; t += 1000) at(t, checkBounds);

  try {
    sim.run(campaign.durationMs);
    // The final heal: every cut removed, every paused node resumed, every crashed node back.
    sim.heal();
    sim.release();
    sim.setNetwork({ lossProbability: 0, duplicateProbability: 0 });
    for (const host of hosts) {
      if (host.state === "paused") sim.resume(host);
      if (host.state === "down") sim.restart(host);
    }
    sim.run(campaign.settleMs);
  } catch (error) {
    violations.push(
      `uncaught exception: ${error instanceof Error ? error.stack ?? error.message : error}`,
    );
    return summary();
  }
  checkBounds();
  options.inspect?.(sim, hosts);

  // After heal and settle: full mesh, every live worker known everywhere, no dead incarnations.
  const nodes = hosts.map((host) => host.app!);
  const incarnation = new Map(nodes.map((node) => [node.guid, node.incarnation]));
  for (const node of nodes) {
    const linked = new Set(node.linkedPeers());
    for (const other of nodes) {
      if (other !== node && !linked.has(other.guid)) {
        violations.push(`after settle: ${node.guid} has no link to ${other.guid}`);
      }
    }
    for (const link of node.state().links) {
      if (incarnation.get(link.peer) !== link.incarnation) {
        violations.push(`after settle: ${node.guid} links ${link.peer} of a dead incarnation`);
      }
    }
    for (const other of nodes) {
      if (other === node || !other.worker(workerOf(hosts.findIndex((h) => h.app === other)))) {
        continue;
      }
      const worker = workerOf(nodes.indexOf(other));
      if (node.locate(worker) !== other.guid) {
        violations.push(`after settle: ${node.guid} does not know ${worker} is on ${other.guid}`);
      }
    }
  }

  // Placement: one table everywhere, each placed worker running exactly where it says.
  const tableOf = (node: AutoMpiNode) =>
    node.placement.placed().map((r) => `${r.guid}@${r.host}`).sort().join(",");
  const table = tableOf(nodes[0]);
  for (const node of nodes) {
    if (tableOf(node) !== table) {
      violations.push(
        `after settle: ${node.guid}'s placement table differs from ${nodes[0].guid}'s`,
      );
    }
  }
  if (options.plant === "twin") {
    const victim = nodes[0].placement.placed()[0];
    const elsewhere = nodes.find((node) => node.guid !== victim?.host);
    if (victim && elsewhere) elsewhere.attachWorker(new ProbeWorker(victim.guid));
  }
  // Every attached worker counts, placed through placement or not: a copy is a copy.
  const runningOn = new Map<string, string[]>();
  for (const node of nodes) {
    for (const { guid } of node.state().workers) {
      if (!spawned.has(guid)) continue;
      runningOn.set(guid, [...(runningOn.get(guid) ?? []), node.guid]);
    }
  }
  for (const [guid, { from, atMs }] of spawned) {
    const entry = nodes[0].placement.entry(guid);
    const on = runningOn.get(guid) ?? [];
    if (entry === undefined) {
      const spawnerCrashed = (crashedAtMs.get(from) ?? []).some((t) => t >= atMs);
      if (!spawnerCrashed) violations.push(`after settle: spawned ${guid} is in no table`);
    } else if (entry.removed) {
      if (on.length > 0) violations.push(`after settle: stopped ${guid} runs on ${on.join(" ")}`);
    } else if (on.length !== 1 || on[0] !== entry.host) {
      violations.push(
        `after settle: ${guid} is placed on ${entry.host} but runs on [${on.join(" ")}]`,
      );
    }
  }

  // Nothing lost silently.
  let exempt = 0;
  for (const [id, record] of sent) {
    if (delivered.has(id) || reported.has(id)) continue;
    const crashedAfter = (node: number) =>
      (crashedAtMs.get(node) ?? []).some((t) => t >= record.atMs);
    if (crashedAfter(record.from) || crashedAfter(record.to)) {
      exempt++;
      continue;
    }
    violations.push(
      `message ${id} (${guidOf(record.from)} -> ${
        workerOf(record.to)
      } #${record.seq}, sent at ${record.atMs} ms) neither delivered nor reported`,
    );
  }
  return summary(exempt);

  function summary(exempt = 0): CampaignResult {
    return {
      violations: violations.slice(0, 50),
      traceHash: sim.traceHash,
      events: sim.events,
      sent: sent.size,
      delivered: delivered.size,
      reported: reported.size,
      exempt,
    };
  }
}

/** Throws a `TypeError` naming what is wrong with a campaign (e.g. a hand-edited replay file). */
export function checkCampaign(campaign: Campaign): void {
  const fail = (what: string) => {
    throw new TypeError(`Cannot run campaign: ${what}`);
  };
  if (campaign === null || typeof campaign !== "object" || campaign.version !== 1) {
    fail("not a version 1 campaign");
  }
  if (!Number.isInteger(campaign.nodes) || campaign.nodes < 1 || campaign.nodes > 200) {
    fail(`nodes ${campaign.nodes} not in 1..200`);
  }
  if (!Number.isSafeInteger(campaign.seed)) fail(`seed ${campaign.seed} is not an integer`);
  for (const key of ["durationMs", "settleMs", "latencyMsMin", "latencyMsMax"] as const) {
    if (!(campaign[key] >= 0 && campaign[key] <= 3_600_000)) {
      fail(`${key} ${campaign[key]} out of range`);
    }
  }
  const nodeOk = (n: unknown) =>
    Number.isInteger(n) && (n as number) >= 0 && (n as number) < campaign.nodes;
  const trafficKinds = new Set(["send", "detach", "attach", "spawn", "stop"]);
  for (const item of campaign.traffic ?? []) {
    if (!trafficKinds.has(item?.kind)) fail(`unknown traffic kind ${JSON.stringify(item?.kind)}`);
    const count = (item as { count?: unknown }).count;
    if (
      count !== undefined &&
      !(Number.isInteger(count) && (count as number) >= 1 && (count as number) <= 10_000)
    ) {
      fail(`${item.kind} count ${count} not in 1..10000`);
    }
    const which = (item as { which?: unknown }).which;
    if (which !== undefined && !(Number.isSafeInteger(which) && (which as number) >= 0)) {
      fail(`stop which ${which} is not a non-negative integer`);
    }
  }
  for (const item of [...(campaign.faults ?? []), ...(campaign.traffic ?? [])]) {
    if (!(item.atMs >= 0 && item.atMs <= campaign.durationMs)) fail(`an event at ${item.atMs} ms`);
    for (const key of ["node", "from", "to", "a", "b"] as const) {
      const value = (item as Record<string, unknown>)[key];
      if (value === undefined) continue;
      const list = Array.isArray(value) ? value : [value];
      if (!list.every(nodeOk)) fail(`${item.kind} names a node outside 0..${campaign.nodes - 1}`);
    }
  }
}

/** Options of {@link campaignArbitrary}. */
export interface CampaignArbitraryOptions {
  readonly nodesMin?: number;
  readonly nodesMax?: number;
  readonly durationMs?: number;
}

/**
 * Generates campaigns: a cluster size, a seed, and a schedule of faults and traffic. Shrinking
 * removes faults and traffic and shortens them, so a failure ends as a short schedule.
 */
export function campaignArbitrary(options: CampaignArbitraryOptions = {}): fc.Arbitrary<Campaign> {
  const nodesMin = options.nodesMin ?? 2;
  const nodesMax = options.nodesMax ?? 20;
  const durationMs = options.durationMs ?? 6000;
  return fc.integer({ min: nodesMin, max: nodesMax }).chain((nodes) => {
    const node = fc.integer({ min: 0, max: nodes - 1 });
    const group = fc.uniqueArray(node, { minLength: 1, maxLength: Math.max(1, nodes - 1) });
    const atMs = fc.integer({ min: 0, max: durationMs });
    const forMs = fc.integer({ min: 50, max: 3000 });
    const fault: fc.Arbitrary<Fault> = fc.oneof(
      fc.record({ atMs, kind: fc.constant("partition" as const), a: group, b: group }).map((f) => ({
        ...f,
        b: f.b.filter((n) => !f.a.includes(n)),
      })),
      fc.record({ atMs, kind: fc.constant("oneWay" as const), from: group, to: group }),
      fc.record({ atMs, kind: fc.constant("heal" as const) }),
      fc.record({ atMs, kind: fc.constant("cut" as const), a: node, b: node, forMs }),
      fc.record({ atMs, kind: fc.constant("hold" as const), a: node, b: node, forMs }),
      fc.record({ atMs, kind: fc.constant("crash" as const), node }),
      fc.record({ atMs, kind: fc.constant("restart" as const), node }),
      fc.record({ atMs, kind: fc.constant("pause" as const), node, forMs }),
      fc.record({
        atMs,
        kind: fc.constant("loss" as const),
        probability: fc.double({ min: 0, max: 0.6, noNaN: true }),
        forMs,
      }),
      fc.record({
        atMs,
        kind: fc.constant("duplicate" as const),
        probability: fc.double({ min: 0, max: 0.3, noNaN: true }),
        forMs,
      }),
      fc.record({
        atMs,
        kind: fc.constant("skew" as const),
        node,
        offsetMs: fc.integer({ min: -5000, max: 5000 }),
        rate: fc.double({ min: 0.9, max: 1.1, noNaN: true }),
      }),
    );
    const traffic: fc.Arbitrary<Traffic> = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          atMs,
          kind: fc.constant("send" as const),
          from: node,
          to: node,
          count: fc.integer({ min: 1, max: 20 }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ atMs, kind: fc.constant("detach" as const), node }) },
      { weight: 1, arbitrary: fc.record({ atMs, kind: fc.constant("attach" as const), node }) },
      {
        weight: 2,
        arbitrary: fc.record({
          atMs,
          kind: fc.constant("spawn" as const),
          from: node,
          count: fc.integer({ min: 1, max: 10 }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          atMs,
          kind: fc.constant("stop" as const),
          from: node,
          which: fc.nat({ max: 1000 }),
        }),
      },
    );
    return fc.record({
      version: fc.constant(1 as const),
      seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      nodes: fc.constant(nodes),
      durationMs: fc.constant(durationMs),
      settleMs: fc.constant(8000),
      latencyMsMin: fc.constant(1),
      latencyMsMax: fc.integer({ min: 1, max: 30 }),
      faults: fc.array(fault, { maxLength: 8 }),
      traffic: fc.array(traffic, { maxLength: 12 }),
    });
  });
}
