/**
 * The node program as users run it: four real processes on loopback, two on Deno and two on
 * Bun, find each other, route a message to a worker on another node and back, notice a node
 * killed with SIGKILL or frozen with SIGSTOP, welcome it back, and see a SIGTERM'd node say
 * goodbye. Plus the program's exit code and message for bad flags, and `--help`.
 *
 * Heartbeats every 300 ms with the default silence of 3 intervals, so a silent peer is dropped
 * at most about 1.3 s after it went quiet (3 intervals, plus up to one tick, plus 10% jitter).
 * On one machine kill -9 does not make a peer silent: the kernel closes its sockets, and the
 * others see end-of-stream at once; SIGSTOP does, so a frozen node tests the silence bound.
 * Every wait is bounded; every process is killed at the end, even on failure.
 *
 * @module
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  currentRuntime,
  findRuntime,
  getState,
  httpJson,
  killAll,
  lineDelayMs,
  lineFields,
  type NodeProcess,
  type NodeStateJson,
  otherRuntime,
  randomPorts,
  reapLeftoverProcesses,
  type RecentMessageJson,
  type RuntimeName,
  runToken,
  sleep,
  startNode,
  tryGetState,
  waitFor,
  waitForStarted,
} from "../_processes.ts";

const HEARTBEAT_MS = 300;
const SILENCE_INTERVALS = 3;
/** When a silent peer is dropped at the latest: silence, one more tick, 10% tick jitter. */
const SILENCE_BOUND_MS = (SILENCE_INTERVALS + 1) * HEARTBEAT_MS * 1.1;
/** The silence bound plus slack for process scheduling on a busy machine. */
const DROP_LIMIT_MS = 4000;
/** A goodbye is seen as soon as its frame arrives: well under the configured silence itself. */
const GOODBYE_LIMIT_MS = SILENCE_INTERVALS * HEARTBEAT_MS;
/** Starting a runtime and the program can take seconds on a loaded 2-core machine. */
const START_TIMEOUT_MS = 20_000;
const MESH_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 45_000;

const other = otherRuntime();
const otherMissing = findRuntime(other) === undefined;
const skipMixed = otherMissing
  ? `${other} not found in .ci/tools/node_modules/.bin or on PATH, so no mixed Deno/Bun cluster`
  : undefined;

/** Prints a measured figure where both runners show it. */
function figure(text: string): void {
  console.log(`[figure] ${currentRuntime()}: ${text}`);
}

interface Member {
  readonly name: string;
  readonly runtime: RuntimeName;
  readonly guid: string;
  readonly worker: string;
  readonly args: readonly string[];
  process: NodeProcess;
  httpPort: number;
  incarnation: string;
}

if (skipMixed !== undefined) {
  // A skipped describe shows nowhere in Bun's report; a skipped test carries the reason.
  test(`four nodes on Deno and Bun: skipped, ${skipMixed}`, { skip: skipMixed }, () => {});
} else {
  describe(
    "four nodes on Deno and Bun over loopback",
    () => {
      const token = runToken();
      const ports = randomPorts();
      const runtimes: RuntimeName[] = ["deno", "bun", "bun", "deno"];
      const members: Member[] = [];

      const memberArgs = (i: number, guid: string, worker: string) => [
        "--guid",
        guid,
        "--port",
        String(ports.linkPortBase + 10 * i),
        "--http-port",
        String(ports.httpPortBase + 10 * i),
        "--discovery-port",
        String(ports.discoveryPort),
        "--heartbeat-ms",
        String(HEARTBEAT_MS),
        "--worker",
        `echo:${worker}`,
      ];

      async function start(member: Omit<Member, "process" | "httpPort" | "incarnation">) {
        const process = startNode({
          name: member.name,
          runtime: member.runtime,
          args: member.args,
        });
        const started = await waitForStarted(process, START_TIMEOUT_MS);
        assert.equal(started.guid, member.guid);
        assert.equal(started.runtime, member.runtime);
        assert.equal(started.discovery, `127.255.255.255:${ports.discoveryPort}`);
        assert.ok(started.httpPort, `${member.name} serves HTTP`);
        return { process, httpPort: started.httpPort, incarnation: started.incarnation };
      }

      const live = () => members.filter((m) => m.process.status === undefined);
      const outputs = () => members.map((m) => m.process.output(25)).join("\n");

      function requireCluster(): void {
        if (members.length !== 4) throw new Error("the cluster did not start (see the first test)");
      }

      /** Each of `group` links to exactly the others, and knows where their workers are. */
      async function meshOf(group: readonly Member[]): Promise<NodeStateJson[] | false> {
        const states = await Promise.all(group.map((m) => tryGetState(m.httpPort)));
        for (const [i, state] of states.entries()) {
          if (state === undefined) return false;
          const expected = group.filter((_, j) => j !== i);
          const peers = state.links.map((l) => l.peer).sort();
          if (JSON.stringify(peers) !== JSON.stringify(expected.map((m) => m.guid).sort())) {
            return false;
          }
          for (const m of expected) if (state.locations[m.worker] !== m.guid) return false;
        }
        return states as NodeStateJson[];
      }

      async function describeStates(group: readonly Member[]): Promise<string> {
        const states = await Promise.all(group.map((m) => tryGetState(m.httpPort)));
        return group.map((m, i) =>
          `${m.name}: links=${
            JSON.stringify(states[i]?.links.map((l) => `${l.peer}/${l.incarnation}`) ?? "no answer")
          } locations=${JSON.stringify(states[i]?.locations ?? {})}`
        ).join("\n");
      }

      async function waitForMesh(group: readonly Member[], what: string) {
        let detail = "";
        return await waitFor(
          async () => {
            const states = await meshOf(group);
            if (!states) detail = await describeStates(group);
            return states;
          },
          MESH_TIMEOUT_MS,
          {
            intervalMs: 150,
            what,
            describe: () => `${detail}\n${outputs()}`,
          },
        );
      }

      /**
       * Waits until every observer prints a `link-down` line for `victim` after line `marks[i]`,
       * and returns each line's fields and its delay after `sinceMs` by the line's own stamp.
       */
      async function linkDowns(
        observers: readonly Member[],
        marks: readonly number[],
        victim: Member,
        sinceMs: number,
      ) {
        const pattern = new RegExp(`^\\S+ link-down +peer=${victim.guid} `);
        return await Promise.all(observers.map(async (m, i) => {
          const line = await m.process.waitForLine(pattern, 10_000, {
            fromIndex: marks[i],
            stream: "stdout",
          });
          const stampedMs = lineDelayMs(line.text, sinceMs);
          return {
            name: m.name,
            reason: lineFields(line.text).reason,
            delayMs: stampedMs ?? line.atMs - sinceMs,
            arrivedMs: line.atMs - sinceMs,
          };
        }));
      }

      after(async () => {
        await killAll();
      });

      test("a: they form a full mesh, each /state showing 3 links", {
        timeout: TEST_TIMEOUT_MS,
      }, async () => {
        reapLeftoverProcesses();
        const begunMs = Date.now();
        const specs = runtimes.map((runtime, index) => {
          const i = index + 1;
          const guid = `it-${token}-n${i}`;
          const worker = `it-${token}-e${i}`;
          return { name: `n${i}`, runtime, guid, worker, args: memberArgs(i, guid, worker) };
        });
        const started = await Promise.all(specs.map((spec) => start(spec)));
        for (const [i, spec] of specs.entries()) members.push({ ...spec, ...started[i] });
        const states = await waitForMesh(members, "a full mesh of 4 nodes");
        figure(`4 processes started and formed a full mesh in ${Date.now() - begunMs} ms`);
        for (const [i, state] of states.entries()) {
          assert.equal(state.guid, members[i].guid);
          assert.equal(state.links.length, 3);
          assert.equal(state.info.runtime, members[i].runtime);
        }
      });

      test("b: a message from node 1 to the echo worker on node 3 is answered back to node 1", {
        timeout: TEST_TIMEOUT_MS,
      }, async () => {
        requireCluster();
        const [n1, , n3] = members;
        const nonce = `nonce-${Math.random().toString(36).slice(2)}`;
        const data = btoa(`payload for ${nonce}`);
        const reply = await httpJson<{ accepted: boolean }>(n1.httpPort, "/messages", {
          method: "POST",
          body: {
            destination: n3.worker,
            source: n1.guid,
            message: { command: "ping", nonce },
            data,
          },
        });
        assert.deepEqual(reply, { accepted: true });
        const echoed = await waitFor(
          async () => {
            const recent = await httpJson<RecentMessageJson[]>(n1.httpPort, "/messages");
            return recent.find((m) => m.message.nonce === nonce);
          },
          10_000,
          { what: "the echo reply in node 1's GET /messages" },
        );
        assert.equal(echoed.destination, n1.guid);
        assert.equal(echoed.source, n3.worker);
        assert.equal(echoed.fromNode, n3.guid);
        assert.equal(echoed.via, "link");
        assert.equal(echoed.message.command, "echoReply");
        assert.equal(echoed.message.echoOf, "ping");
        assert.equal(echoed.data, data);
      });

      test("c: after kill -9 of node 4 the others drop its link within the silence bound", {
        timeout: TEST_TIMEOUT_MS,
      }, async () => {
        requireCluster();
        const n4 = members[3];
        const observers = members.slice(0, 3);
        const marks = observers.map((m) => m.process.lines.length);
        const killedAtMs = Date.now();
        assert.ok(n4.process.signal("SIGKILL"), "node 4 was running");
        const downs = await linkDowns(observers, marks, n4, killedAtMs);
        const exit = await n4.process.exited;
        assert.equal(exit.signal, "SIGKILL");
        const slowest = Math.max(...downs.map((d) => d.delayMs));
        figure(
          `kill -9 -> link-down: ${
            downs.map((d) => `${d.name} ${d.delayMs} ms (reason ${d.reason})`).join(", ")
          }; slowest ${slowest} ms; silence bound ${
            Math.round(SILENCE_BOUND_MS)
          } ms, limit ${DROP_LIMIT_MS} ms`,
        );
        assert.ok(slowest <= DROP_LIMIT_MS, `slowest link-down after ${slowest} ms`);
        for (const m of observers) {
          const state = await getState(m.httpPort);
          assert.ok(
            !state.links.some((l) => l.peer === n4.guid),
            `${m.name} still lists node 4: ${JSON.stringify(state.links)}`,
          );
        }
      });

      test("d: node 4 restarted with the same GUID rejoins with a new incarnation", {
        timeout: TEST_TIMEOUT_MS,
      }, async () => {
        requireCluster();
        const n4 = members[3];
        assert.notEqual(n4.process.status, undefined, "node 4 is dead before it restarts");
        const oldIncarnation = n4.incarnation;
        const begunMs = Date.now();
        Object.assign(n4, await start(n4));
        assert.notEqual(n4.incarnation, oldIncarnation);
        const states = await waitForMesh(members, "a full mesh again after node 4 restarted");
        figure(`node 4 restarted and the mesh was full again in ${Date.now() - begunMs} ms`);
        for (const state of states.slice(0, 3)) {
          const link = state.links.find((l) => l.peer === n4.guid);
          assert.equal(link?.incarnation, n4.incarnation, `${state.guid} sees the new incarnation`);
        }
      });

      test("e: after SIGTERM of node 2 the others see link-down reason goodbye at once", {
        timeout: TEST_TIMEOUT_MS,
      }, async () => {
        requireCluster();
        const n2 = members[1];
        const observers = [members[0], members[2], members[3]];
        const marks = observers.map((m) => m.process.lines.length);
        const ownMark = n2.process.lines.length;
        const signalledAtMs = Date.now();
        assert.ok(n2.process.signal("SIGTERM"), "node 2 was running");
        const downs = await linkDowns(observers, marks, n2, signalledAtMs);
        const exit = await Promise.race([n2.process.exited, sleep(10_000).then(() => undefined)]);
        const slowest = Math.max(...downs.map((d) => d.delayMs));
        figure(
          `SIGTERM -> link-down: ${
            downs.map((d) => `${d.name} ${d.delayMs} ms (reason ${d.reason})`).join(", ")
          }; slowest ${slowest} ms; limit ${GOODBYE_LIMIT_MS} ms`,
        );
        for (const d of downs) {
          assert.equal(d.reason, "goodbye", `${d.name}: ${n2.process.output()}`);
        }
        assert.ok(slowest <= GOODBYE_LIMIT_MS, `slowest goodbye after ${slowest} ms`);
        assert.deepEqual(
          exit,
          { code: 0, signal: null },
          `node 2 exits 0:\n${n2.process.output()}`,
        );
        const own = n2.process.lines.slice(ownMark).map((l) => l.text);
        assert.ok(own.some((t) => /^\S+ stopping +signal=SIGTERM/.test(t)), own.join("\n"));
        assert.ok(own.some((t) => /^\S+ closed/.test(t)), own.join("\n"));
        for (const m of observers) {
          const state = await getState(m.httpPort);
          assert.ok(!state.links.some((l) => l.peer === n2.guid), `${m.name} still lists node 2`);
        }
      });

      test(
        "f: a node frozen by SIGSTOP is dropped for silence within the bound, and rejoins on SIGCONT",
        {
          timeout: TEST_TIMEOUT_MS,
        },
        async () => {
          requireCluster();
          const n3 = members[2];
          const observers = [members[0], members[3]];
          const group = live();
          assert.deepEqual(group.map((m) => m.name), ["n1", "n3", "n4"]);
          // Start from a settled mesh of the three that are left.
          await waitForMesh(group, "a full mesh of nodes 1, 3, 4");
          const marks = observers.map((m) => m.process.lines.length);
          const stoppedAtMs = Date.now();
          assert.ok(n3.process.signal("SIGSTOP"), "node 3 was running");
          let downs;
          try {
            downs = await linkDowns(observers, marks, n3, stoppedAtMs);
          } finally {
            n3.process.signal("SIGCONT");
          }
          const slowest = Math.max(...downs.map((d) => d.delayMs));
          figure(
            `SIGSTOP -> link-down: ${
              downs.map((d) => `${d.name} ${d.delayMs} ms (reason ${d.reason})`).join(", ")
            }; silence bound ${Math.round(SILENCE_BOUND_MS)} ms, limit ${DROP_LIMIT_MS} ms`,
          );
          for (const d of downs) assert.equal(d.reason, "silence", d.name);
          assert.ok(slowest <= DROP_LIMIT_MS, `slowest link-down after ${slowest} ms`);
          // No lower bound: a link is heard from by its keepalives, sent after 360 ms idle at the
          // next tick, so the last frame may predate the freeze by ~0.7 s and the drop come early.
          const begunMs = Date.now();
          const states = await waitForMesh(group, "node 3 back in the mesh after SIGCONT");
          figure(`after SIGCONT node 3 was back in the mesh in ${Date.now() - begunMs} ms`);
          for (const state of [states[0], states[2]]) {
            const link = state.links.find((l) => l.peer === n3.guid);
            assert.equal(link?.incarnation, n3.incarnation, "same process, same incarnation");
          }
        },
      );
    },
  );
}

describe("the program's command line", () => {
  const available = (["deno", "bun"] as const).filter((r) => findRuntime(r) !== undefined);

  async function run(runtime: RuntimeName, args: string[]) {
    const process = startNode({ name: `cli`, runtime, args });
    const exit = await Promise.race([process.exited, sleep(20_000).then(() => undefined)]);
    if (exit === undefined) await process.stop("SIGKILL");
    const text = (stream: "stdout" | "stderr") =>
      process.lines.filter((l) => l.stream === stream).map((l) => l.text).join("\n");
    return { exit, stdout: text("stdout"), stderr: text("stderr") };
  }

  test(`a bad flag exits 2 with a one-line reason on stderr (${available.join(", ")})`, {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const cases: Array<[string[], string]> = [
      [["--bogus-flag"], 'Cannot use "--bogus-flag": unknown flag (see --help)'],
      [["--port", "nope"], 'Cannot use --port "nope": expected a port number'],
      [["--heartbeat-ms", "5"], "Cannot use --heartbeat-ms: expected 10..600000"],
    ];
    await Promise.all(available.flatMap((runtime) =>
      cases.map(async ([args, message]) => {
        const { exit, stdout, stderr } = await run(runtime, args);
        const where = `${runtime} ${args.join(" ")}`;
        assert.deepEqual(exit, { code: 2, signal: null }, `${where}: ${stdout}\n${stderr}`);
        assert.equal(stderr.trim(), message, where);
        assert.equal(stdout, "", where);
      })
    ));
  });

  test(`--help prints the usage and exits 0 (${available.join(", ")})`, {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    await Promise.all(available.map(async (runtime) => {
      const { exit, stdout, stderr } = await run(runtime, ["--help"]);
      assert.deepEqual(exit, { code: 0, signal: null }, `${runtime}: ${stderr}`);
      assert.match(stdout, /^usage: deno run -A mod\.ts \[flags\]/, runtime);
      for (const flag of ["--guid", "--port", "--discovery-port", "--heartbeat-ms", "--worker"]) {
        assert.ok(stdout.includes(flag), `${runtime} --help mentions ${flag}`);
      }
      assert.equal(stderr, "", runtime);
    }));
  });

  after(async () => {
    await killAll();
  });
});
