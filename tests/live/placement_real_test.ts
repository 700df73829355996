/**
 * Placement with the node program as users run it: three real processes on loopback (Deno and
 * Bun mixed when both are installed). The last one started is given `--spawn kv:Store9`; the kv
 * worker lands where the least-loaded strategy says (all nodes empty: the highest rendezvous
 * score), answers through `POST /messages`, and when its host is killed with SIGKILL a survivor
 * places it again on the other survivor within the silence bound, where it answers again.
 *
 * Heartbeats every 300 ms with the default silence of 3 intervals: a silent peer is dropped at
 * most about 1.3 s after it went quiet. On one machine kill -9 closes the dead process's sockets,
 * so the survivors see the link drop at once; the bound is asserted with slack for a busy
 * machine. Every wait is bounded; every process is killed at the end, even on failure.
 *
 * @module
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import {
  currentRuntime,
  findRuntime,
  httpJson,
  killAll,
  lineDelayMs,
  lineFields,
  type NodeProcess,
  otherRuntime,
  randomPorts,
  reapLeftoverProcesses,
  type RecentMessageJson,
  type RuntimeName,
  runToken,
  startNode,
  tryGetState,
  waitFor,
  waitForStarted,
} from "../_processes.ts";
import { rendezvousScore } from "../../src/placement.ts";

const HEARTBEAT_MS = 300;
const SILENCE_INTERVALS = 3;
/** When a silent peer is dropped at the latest: silence, one more tick, 10% tick jitter. */
const SILENCE_BOUND_MS = (SILENCE_INTERVALS + 1) * HEARTBEAT_MS * 1.1;
/** The silence bound plus slack for process scheduling on a busy machine. */
const PLACED_AGAIN_LIMIT_MS = 4000;
const START_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 90_000;
const WORKER = "Store9";

/** The parts of `GET /state`'s `placement` this test reads. */
interface PlacementJson {
  members: Array<{ node: string; load: number; kinds: string[]; self: boolean }>;
  lost: string[];
  workers: Array<{ guid: string; kind: string; host: string; version: number; running: boolean }>;
}

async function placementOf(port: number): Promise<PlacementJson | undefined> {
  const state = await tryGetState(port) as unknown as { placement?: PlacementJson } | undefined;
  return state?.placement;
}

/** The least-loaded strategy's choice among empty nodes: the highest rendezvous score. */
function highestScore(worker: string, nodes: readonly string[]): string {
  return [...nodes].sort((a, b) =>
    rendezvousScore(worker, b) - rendezvousScore(worker, a) || (a < b ? 1 : -1)
  )[0];
}

interface Member {
  readonly name: string;
  readonly guid: string;
  readonly runtime: RuntimeName;
  process: NodeProcess;
  httpPort: number;
}

after(async () => {
  await killAll();
});

/** Sends `get` to the worker through a node's `POST /messages`; resolves with the answer. */
async function askGet(member: Member, key: string): Promise<RecentMessageJson> {
  const id = `get-${Math.random().toString(36).slice(2)}`;
  await httpJson(member.httpPort, "/messages", {
    method: "POST",
    body: { destination: WORKER, source: member.guid, message: { command: "get", key, id } },
  });
  return await waitFor(
    async () => {
      const recent = await httpJson<RecentMessageJson[]>(member.httpPort, "/messages");
      return recent.find((m) => m.message.id === id && m.source === WORKER);
    },
    10_000,
    { what: `${WORKER} to answer a get sent through ${member.name}` },
  );
}

test(
  "a worker spawned with --spawn lands per the strategy and runs again elsewhere after kill -9 of its host",
  { timeout: TEST_TIMEOUT_MS },
  async () => {
    reapLeftoverProcesses();
    const token = runToken();
    const ports = randomPorts();
    const mixed = findRuntime(otherRuntime()) !== undefined;
    const runtimes: RuntimeName[] = mixed
      ? [currentRuntime(), otherRuntime(), currentRuntime()]
      : [currentRuntime(), currentRuntime(), currentRuntime()];
    const members: Member[] = [];
    const outputs = () => members.map((m) => m.process.output(30)).join("\n");
    try {
      const start = async (index: number, extra: string[]) => {
        const name = `n${index}`;
        const guid = `pl-${token}-${name}`;
        const process = startNode({
          name,
          runtime: runtimes[index - 1],
          args: [
            "--guid",
            guid,
            "--port",
            String(ports.linkPortBase + 10 * index),
            "--http-port",
            String(ports.httpPortBase + 10 * index),
            "--discovery-port",
            String(ports.discoveryPort),
            "--heartbeat-ms",
            String(HEARTBEAT_MS),
            "--silence",
            String(SILENCE_INTERVALS),
            ...extra,
          ],
        });
        const member: Member = { name, guid, runtime: runtimes[index - 1], process, httpPort: 0 };
        members.push(member);
        member.httpPort = (await waitForStarted(process, START_TIMEOUT_MS)).httpPort!;
        return member;
      };
      // Two nodes first; the third, which spawns, joins a linked pair.
      await Promise.all([start(1, []), start(2, [])]);
      await waitFor(
        async () => {
          const states = await Promise.all(members.map((m) => tryGetState(m.httpPort)));
          return states.every((s) => s?.links.length === 1);
        },
        START_TIMEOUT_MS,
        { intervalMs: 150, what: "nodes 1 and 2 to link", describe: outputs },
      );
      const spawner = await start(3, ["--spawn", `kv:${WORKER}`]);
      const spawnLine = await spawner.process.waitForLine(/ spawn(-error)? +worker=/, 10_000, {
        stream: "stdout",
      });
      const firstHost = lineFields(spawnLine.text).node;
      assert.ok(firstHost, `the spawn printed its host: ${spawnLine.text}`);
      const guids = members.map((m) => m.guid);
      assert.equal(
        firstHost,
        highestScore(WORKER, guids),
        `least-loaded among three empty nodes picks the highest rendezvous score\n${outputs()}`,
      );
      assert.match(spawnLine.text, /strategy=least-loaded/);

      // Every node learns where it runs; it answers from there.
      await waitFor(
        async () => {
          const all = await Promise.all(members.map((m) => placementOf(m.httpPort)));
          return all.every((p) =>
            p?.workers.some((w) => w.guid === WORKER && w.host === firstHost && w.running)
          );
        },
        10_000,
        { intervalMs: 150, what: `every node to see ${WORKER} running on ${firstHost}` },
      );
      const host = members.find((m) => m.guid === firstHost)!;
      const survivors = members.filter((m) => m !== host);
      const before = await askGet(survivors[0], "color");
      assert.equal(before.message.command, "getReturn");
      assert.equal(before.fromNode, firstHost);

      // ---- kill -9 the host ----------------------------------------------------------------------
      const killedAtMs = Date.now();
      await host.process.stop("SIGKILL");
      const expectedHost = highestScore(WORKER, survivors.map((m) => m.guid));
      let seen: PlacementJson | undefined;
      for (const survivor of survivors) {
        await waitFor(
          async () => {
            seen = await placementOf(survivor.httpPort);
            const entry = seen?.workers.find((w) => w.guid === WORKER);
            return entry !== undefined && entry.host !== firstHost && entry.running &&
              entry.version === 2;
          },
          PLACED_AGAIN_LIMIT_MS + 4000,
          {
            intervalMs: 100,
            what: `${survivor.name} to see ${WORKER} placed again and running`,
            describe: () => `${JSON.stringify(seen)}\n${outputs()}`,
          },
        );
        const entry = seen!.workers.find((w) => w.guid === WORKER)!;
        assert.equal(entry.host, expectedHost, "least-loaded again, among the survivors");
        assert.ok(seen!.lost.includes(firstHost), `${survivor.name} lists the killed host as lost`);
      }
      // The survivor with the lowest GUID placed it again; its line says when.
      const responsible = [...survivors].sort((a, b) => (a.guid < b.guid ? -1 : 1))[0];
      const placedLine = await responsible.process.waitForLine(
        new RegExp(`worker-placed +worker=${WORKER} kind=kv node=${expectedHost} version=2`),
        5000,
        { stream: "stdout" },
      );
      assert.match(placedLine.text, /reason=host-lost/);
      const delayMs = lineDelayMs(placedLine.text, killedAtMs)!;
      console.log(
        `[figure] ${currentRuntime()}: ${WORKER} placed again ${delayMs} ms after kill -9 of its ` +
          `host (silence bound ${
            Math.round(SILENCE_BOUND_MS)
          } ms, limit ${PLACED_AGAIN_LIMIT_MS} ms)`,
      );
      assert.ok(
        delayMs <= PLACED_AGAIN_LIMIT_MS,
        `placed again ${delayMs} ms after the kill, over ${PLACED_AGAIN_LIMIT_MS} ms`,
      );
      const answer = await askGet(survivors[0], "color");
      assert.equal(answer.message.command, "getReturn");
      assert.equal(answer.fromNode ?? survivors[0].guid, expectedHost);
    } finally {
      await killAll();
    }
  },
);
