/**
 * A node of ours beside an original AutoMPI node on one LAN, as a user mixing both runs them:
 * two network namespaces on a bridge; in one the fake original (`tests/netns/_go_peer_child.ts`, the
 * original's defaults: TCP 8888, UDP 9999, heartbeats to 255.255.255.255 every second), in the
 * other `mod.ts --codec json --host <its address>` with default flags otherwise.
 *
 * What it shows (issue 11): our node hears the original's limited-broadcast heartbeats, dials
 * the address they give, and both links (one each way, as the original keeps them) stay up for
 * 30 s without one peer or link event; messages go both ways, to nodes and to workers; a kill -9
 * of either side is noticed, and the restarted process is linked again.
 *
 * Network safety: the limited broadcast is sent only inside the namespaces made here; the
 * bridge lives in a namespace of its own; everything is deleted afterwards (leftovers of a
 * killed run are deleted at the start). Skipped, with the reason in its name, unless root with
 * `ip netns`.
 *
 * @module
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import {
  buildLan,
  httpInNamespace,
  namespaceNames,
  reapLeftoverNamespaces,
  whyNot,
} from "./_netns.ts";
import {
  currentRuntime,
  findRuntime,
  killAll,
  type NodeProcess,
  type NodeStateJson,
  reapLeftoverProcesses,
  type RecentMessageJson,
  REPO_ROOT,
  runArgs,
  runSync,
  type RuntimeName,
  sleep,
  startNode,
  startProcess,
  type TestProcess,
  waitFor,
  waitForStarted,
} from "../_processes.ts";

const SUBNET_PREFIX = "10.231.7";
const GO_ADDRESS = `${SUBNET_PREFIX}.1`;
const TS_ADDRESS = `${SUBNET_PREFIX}.2`;
const CONTROL_PORT = 8700;
const STEADY_SECONDS = 30;

const skip = whyNot();

interface GoState {
  guid: string;
  outgoing: string[];
  incoming: string[];
  locations: Record<string, string>;
  handled: Array<{ DestinationGUID: string; SourceGUID: string; Message: Record<string, string> }>;
  workers: Record<string, Array<{ SourceGUID: string; Message: Record<string, string> | null }>>;
}

let cleanup: (() => Promise<void>) | undefined;
after(async () => {
  await cleanup?.();
});

test(
  skip
    ? `our node and an original node in network namespaces (skipped: ${skip})`
    : "with --codec json our node and an original node on one LAN link both ways, stay linked 30 s, trade messages and relink after kill -9 of either",
  { skip, timeout: 150_000 },
  async () => {
    reapLeftoverProcesses();
    reapLeftoverNamespaces();
    const suffix = Math.floor(Math.random() * 36 ** 5).toString(36);
    const prefix = `ampt-${process.pid}-${suffix}`;
    const goNs = `${prefix}-go`;
    const tsNs = `${prefix}-ts`;
    const ours: RuntimeName = currentRuntime();
    const other: RuntimeName = ours === "deno" ? "bun" : "deno";
    // The fake original runs on the other runtime when there is one: both adapters get used.
    const goRuntime: RuntimeName = findRuntime(other) === undefined ? ours : other;
    const goGuid = `GoNode-${suffix}`;
    const goWorker = `GoStore-${suffix}`;
    const tsGuid = `TsNode-${suffix}`;
    const tsWorker = `TsEcho-${suffix}`;
    const created: string[] = [];
    let go: TestProcess | undefined;
    let node: NodeProcess | undefined;
    cleanup = async () => {
      cleanup = undefined;
      await Promise.all([go?.stop("SIGTERM", 3000), node?.stop("SIGTERM", 3000)]);
      await killAll();
      for (const ns of created.reverse()) {
        runSync("ip", ["netns", "delete", ns], { timeoutMs: 10_000 });
      }
    };

    const startGo = () => {
      const executable = findRuntime(goRuntime)!;
      const script = `${REPO_ROOT}/tests/netns/_go_peer_child.ts`;
      const args = runArgs(goRuntime, script, [
        "--guid",
        goGuid,
        "--address",
        GO_ADDRESS,
        "--worker",
        goWorker,
        "--control-port",
        String(CONTROL_PORT),
      ]);
      const child = startProcess({
        name: `original(${goRuntime})`,
        command: "ip",
        args: ["netns", "exec", goNs, executable, ...args],
        marker: goGuid,
      });
      return child;
    };
    const startOurs = () =>
      startNode({
        name: "ours",
        runtime: ours,
        netns: tsNs,
        args: [
          "--codec",
          "json",
          "--host",
          TS_ADDRESS,
          "--guid",
          tsGuid,
          "--http-host",
          "127.0.0.1",
          "--worker",
          `echo:${tsWorker}`,
        ],
      });
    const goState = () => httpInNamespace<GoState>(goNs, CONTROL_PORT, "/state");
    let httpPort = 8800;
    const ourState = () => httpInNamespace<NodeStateJson>(tsNs, httpPort, "/state");
    const outputs = () => [go?.output(30) ?? "", node?.output(30) ?? ""].join("\n");
    /** Both links up and each side knowing the other's worker. */
    const linked = async () => {
      const [g, t] = await Promise.all([goState(), ourState()]).catch(() => [undefined, undefined]);
      if (g === undefined || t === undefined) return undefined;
      const ok = g.outgoing.includes(tsGuid) && g.incoming.includes(tsGuid) &&
        g.locations[tsWorker] === tsGuid &&
        t.links.some((l) => l.peer === goGuid && l.address === `${GO_ADDRESS}:8888`) &&
        t.locations[goWorker] === goGuid;
      return ok ? { g, t } : undefined;
    };
    const waitLinked = (what: string) =>
      waitFor(linked, 20_000, { intervalMs: 250, what, describe: outputs });

    try {
      buildLan(`${prefix}-sw`, [{ ns: goNs, address: GO_ADDRESS }, {
        ns: tsNs,
        address: TS_ADDRESS,
      }], created);

      go = startGo();
      await go.waitForLine(/^started guid=/, 20_000);
      node = startOurs();
      const started = await waitForStarted(node, 20_000);
      httpPort = started.httpPort ?? httpPort;
      assert.equal(started.links, `${TS_ADDRESS}:8888`, "default link port");
      const begun = Date.now();
      const first = await waitLinked("both links up and both workers known");
      console.log(
        `[figure] ${ours} node + original on ${goRuntime}: linked both ways in ${
          Date.now() - begun
        } ms`,
      );
      const peer = first.t.peers.find((p) => p.guid === goGuid);
      assert.equal(peer?.address, `${GO_ADDRESS}:8888`, "the address its heartbeat gives");

      // ---- 30 s without a flap -------------------------------------------------------------------
      const linesBefore = node.lines.length;
      const linksDownBefore = first.t.stats.linksDown;
      for (let second = 0; second < STEADY_SECONDS; second++) {
        await sleep(1000);
        const now = await linked();
        assert.ok(now, `still linked both ways after ${second + 1} s\n${outputs()}`);
      }
      const churn = node.lines.slice(linesBefore).filter((line) =>
        /\b(peer-lost|link-down|peer-discovered|link-up)\b/.test(line.text)
      );
      assert.deepEqual(
        churn.map((l) => l.text),
        [],
        `no peer or link event in ${STEADY_SECONDS} s`,
      );
      assert.equal((await ourState()).stats.linksDown, linksDownBefore);

      // ---- messages both ways, to nodes and workers ----------------------------------------------
      const nonce = Math.random().toString(36).slice(2);
      const post = (destination: string, message: Record<string, string>) =>
        httpInNamespace<{ accepted: boolean; reason?: string }>(tsNs, httpPort, "/messages", {
          destination,
          source: tsGuid,
          message,
          data: btoa(`from ours ${nonce}`),
        });
      assert.deepEqual(await post(goWorker, { command: "set", key: nonce }), { accepted: true });
      assert.deepEqual(await post(goGuid, { hello: nonce }), { accepted: true });
      const goSend = (message: unknown) =>
        httpInNamespace<{ sent: boolean }>(goNs, CONTROL_PORT, "/send", message);
      assert.deepEqual(
        await goSend({
          DestinationGUID: tsWorker,
          SourceGUID: goWorker,
          Message: { command: "ping", nonce },
          Data: btoa("to your worker"),
        }),
        { sent: true },
      );
      assert.deepEqual(
        await goSend({
          DestinationGUID: tsGuid,
          SourceGUID: goWorker,
          Message: { hello: `node ${nonce}` },
          Data: null,
        }),
        { sent: true },
      );
      const delivered = await waitFor(
        async () => {
          const [g, recent] = await Promise.all([
            goState(),
            httpInNamespace<RecentMessageJson[]>(tsNs, httpPort, "/messages"),
          ]);
          const toWorker = g.workers[goWorker]?.find((m) => m.Message?.key === nonce);
          const toNode = g.handled.find((m) => m.Message?.hello === nonce);
          const echo = g.workers[goWorker]?.find((m) =>
            m.Message?.command === "echoReply" && m.Message?.nonce === nonce
          );
          const toOurNode = recent.find((m) => m.message.hello === `node ${nonce}`);
          return toWorker && toNode && echo && toOurNode
            ? { toWorker, toNode, echo, toOurNode }
            : undefined;
        },
        10_000,
        { intervalMs: 200, what: "all four messages delivered", describe: outputs },
      );
      assert.equal(delivered.toWorker.SourceGUID, tsGuid);
      assert.equal(delivered.echo.SourceGUID, tsWorker, "our echo worker answered its worker");
      assert.equal(delivered.toOurNode.fromNode, goGuid);

      // ---- kill -9 of the original: noticed, and relinked when it comes back -----------------------
      const beforeKill = node.lines.length;
      await go.stop("SIGKILL");
      await node.waitForLine(new RegExp(`link-down .*peer=${goGuid.slice(0, 4)}`), 5000, {
        fromIndex: beforeKill,
      }).catch(async () => {
        // The line may abbreviate the GUID differently: the state says it too.
        await waitFor(
          async () => {
            const t = await ourState();
            return t.links.some((l) => l.peer === goGuid) ? undefined : true;
          },
          5000,
          { what: "our node notices the kill -9 of the original", describe: outputs },
        );
      });
      assert.equal((await ourState()).locations[goWorker], undefined, "its worker is forgotten");
      go = startGo();
      await go.waitForLine(/^started guid=/, 20_000);
      await waitLinked("linked again after the original restarted");

      // ---- kill -9 of ours: the original notices (EOF), and links to the restarted node ----------
      await node.stop("SIGKILL");
      await waitFor(
        async () => {
          const g = await goState();
          return g.outgoing.includes(tsGuid) || g.incoming.includes(tsGuid) ? undefined : g;
        },
        5000,
        { what: "the original drops both links to the killed node", describe: outputs },
      );
      node = startOurs();
      httpPort = (await waitForStarted(node, 20_000)).httpPort ?? httpPort;
      await waitLinked("linked again after our node restarted");
      assert.deepEqual(await post(goWorker, { command: "set", key: `${nonce}-2` }), {
        accepted: true,
      });
      await waitFor(
        async () => {
          const g = await goState();
          return g.workers[goWorker]?.find((m) => m.Message?.key === `${nonce}-2`);
        },
        5000,
        { what: "a message after both restarts", describe: outputs },
      );
    } finally {
      await cleanup?.();
    }
    const left = namespaceNames().filter((name) => name.startsWith(prefix));
    assert.deepEqual(left, [], "every test namespace was deleted");
  },
);
