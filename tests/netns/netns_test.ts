/**
 * Three hosts on one LAN: three network namespaces wired to a bridge, one node program in each
 * (Deno and Bun mixed), with no flags about the network except `--host`. They must find each
 * other by broadcast to the subnet broadcast the program computes from the interface netmask,
 * link up and route a message to a worker on another host and back.
 *
 * Isolation: the bridge lives in a fourth namespace of its own and every veth end is created
 * directly inside its namespace, so nothing is added to the machine's own namespace; the test
 * subnet 10.231.0.0/24 exists only inside the test namespaces. Each node's HTTP is bound to
 * 127.0.0.1 inside its namespace and queried from there (`ip netns exec NS curl`). Deleting the
 * namespaces removes every interface; leftovers of a killed earlier run are deleted at start.
 *
 * Skipped (with the reason in its name) unless root, with `ip`, and `ip netns add` works.
 *
 * @module
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import {
  buildLan,
  httpInNamespace,
  ip,
  namespaceNames,
  reapLeftoverNamespaces,
  rootLinkNames,
  whyNot,
} from "./_netns.ts";
import {
  currentRuntime,
  findRuntime,
  killAll,
  type NodeProcess,
  type NodeStateJson,
  randomPorts,
  reapLeftoverProcesses,
  type RecentMessageJson,
  runSync,
  type RuntimeName,
  startNode,
  waitFor,
  waitForStarted,
} from "../_processes.ts";

const SUBNET_PREFIX = "10.231.0";
const SUBNET_BROADCAST = `${SUBNET_PREFIX}.255`;
const HEARTBEAT_MS = 300;
const skip = whyNot();

interface Host {
  readonly index: number;
  readonly ns: string;
  readonly address: string;
  readonly runtime: RuntimeName;
  readonly guid: string;
  readonly worker: string;
  process?: NodeProcess;
  httpPort?: number;
}

let cleanup: (() => Promise<void>) | undefined;

after(async () => {
  await cleanup?.();
});

test(
  skip
    ? `three hosts in network namespaces (skipped: ${skip})`
    : "three hosts in network namespaces discover each other by subnet broadcast and route a message",
  { skip, timeout: 60_000 },
  async () => {
    reapLeftoverProcesses();
    reapLeftoverNamespaces();
    const suffix = Math.floor(Math.random() * 36 ** 5).toString(36);
    const prefix = `ampt-${process.pid}-${suffix}`;
    const bridgeNs = `${prefix}-sw`;
    const ports = randomPorts();
    const other: RuntimeName = currentRuntime() === "deno" ? "bun" : "deno";
    const mixed: RuntimeName[] = findRuntime(other) === undefined
      ? [currentRuntime(), currentRuntime(), currentRuntime()]
      : ["deno", "bun", "deno"];
    if (!mixed.includes(other)) {
      console.log(`netns test: ${other} not found, all nodes on ${currentRuntime()}`);
    }
    const hosts: Host[] = mixed.map((runtime, i) => ({
      index: i + 1,
      ns: `${prefix}-n${i + 1}`,
      address: `${SUBNET_PREFIX}.${i + 1}`,
      runtime,
      guid: `ns-${suffix}-n${i + 1}`,
      worker: `ns-${suffix}-e${i + 1}`,
    }));
    const created: string[] = [];
    const rootLinksBefore = new Set(rootLinkNames());
    cleanup = async () => {
      cleanup = undefined;
      // Say goodbye first (SIGTERM); SIGKILL whatever has not exited within 3 s.
      await Promise.all(hosts.map((h) => h.process?.stop("SIGTERM", 3000)));
      await killAll();
      for (const ns of created.reverse()) {
        runSync("ip", ["netns", "delete", ns], { timeoutMs: 10_000 });
      }
    };
    try {
      // ---- the LAN: a bridge in its own namespace, one veth per host -------------------------
      buildLan(bridgeNs, hosts, created);
      // Nothing of ours in the machine's own namespace: no bridge, no veth end.
      const added = rootLinkNames().filter((name) => !rootLinksBefore.has(name));
      assert.deepEqual(added.filter((name) => /^(br0|p\d|eth0)\b/.test(name)), []);
      assert.ok(!ip("-o", "link", "show").includes(prefix), "no root interface is a veth of ours");

      // ---- one node per host ---------------------------------------------------------------------
      const begunMs = Date.now();
      await Promise.all(hosts.map(async (h) => {
        h.process = startNode({
          name: `n${h.index}@${h.ns}`,
          runtime: h.runtime,
          netns: h.ns,
          args: [
            "--guid",
            h.guid,
            "--host",
            h.address,
            "--port",
            String(ports.linkPortBase),
            "--http-host",
            "127.0.0.1",
            "--http-port",
            String(ports.httpPortBase),
            "--discovery-port",
            String(ports.discoveryPort),
            "--heartbeat-ms",
            String(HEARTBEAT_MS),
            "--worker",
            `echo:${h.worker}`,
          ],
        });
        const started = await waitForStarted(h.process, 20_000);
        assert.equal(started.guid, h.guid);
        assert.equal(started.runtime, h.runtime);
        assert.equal(started.links, `${h.address}:${ports.linkPortBase}`);
        assert.equal(
          started.discovery,
          `${SUBNET_BROADCAST}:${ports.discoveryPort}`,
          "the default broadcast is the subnet broadcast of --host",
        );
        h.httpPort = started.httpPort;
        assert.ok(h.httpPort, `n${h.index} serves HTTP`);
      }));
      const outputs = () => hosts.map((h) => h.process?.output(20) ?? "").join("\n");

      // ---- discovery: a full mesh over the bridge ------------------------------------------------
      let last = "";
      const states = await waitFor(
        async () => {
          const states = await Promise.all(
            hosts.map((h) =>
              httpInNamespace<NodeStateJson>(h.ns, h.httpPort!, "/state").catch(() => undefined)
            ),
          );
          last = JSON.stringify(states.map((s) => s?.links.map((l) => `${l.peer}@${l.address}`)));
          const full = states.every((state, i) => {
            if (state === undefined) return false;
            const others = hosts.filter((_, j) => j !== i);
            return state.links.length === 2 &&
              others.every((o) =>
                state.links.some((l) =>
                  l.peer === o.guid && l.address === `${o.address}:${ports.linkPortBase}`
                ) && state.locations[o.worker] === o.guid
              );
          });
          return full ? states as NodeStateJson[] : undefined;
        },
        25_000,
        {
          intervalMs: 250,
          what: "a full mesh of 3 hosts",
          describe: () => `${last}\n${outputs()}`,
        },
      );
      console.log(
        `[figure] ${currentRuntime()}: 3 hosts (${
          mixed.join(", ")
        }) formed a full mesh over the bridge in ${Date.now() - begunMs} ms`,
      );
      for (const [i, state] of states.entries()) {
        assert.equal(state.info.broadcast, SUBNET_BROADCAST);
        assert.equal(state.address, `${hosts[i].address}:${ports.linkPortBase}`);
      }

      // ---- messaging: host 1 -> echo worker on host 3 -> host 1 ----------------------------------
      const [h1, , h3] = hosts;
      const nonce = `nonce-${Math.random().toString(36).slice(2)}`;
      const data = btoa(`across the bridge ${nonce}`);
      const accepted = await httpInNamespace<{ accepted: boolean }>(
        h1.ns,
        h1.httpPort!,
        "/messages",
        {
          destination: h3.worker,
          source: h1.guid,
          message: { command: "ping", nonce },
          data,
        },
      );
      assert.deepEqual(accepted, { accepted: true });
      const echoed = await waitFor(
        async () => {
          const recent = await httpInNamespace<RecentMessageJson[]>(
            h1.ns,
            h1.httpPort!,
            "/messages",
          );
          return recent.find((m) => m.message.nonce === nonce);
        },
        10_000,
        { intervalMs: 200, what: "the echo reply in host 1's GET /messages" },
      );
      assert.equal(echoed.source, h3.worker);
      assert.equal(echoed.destination, h1.guid);
      assert.equal(echoed.fromNode, h3.guid);
      assert.equal(echoed.message.command, "echoReply");
      assert.equal(echoed.data, data);

      // ---- teardown is part of the test: clean goodbyes, then nothing left --------------------------
      const exits = await Promise.all(hosts.map((h) => h.process!.stop("SIGTERM", 5000)));
      assert.deepEqual(
        exits,
        hosts.map(() => ({ code: 0, signal: null })),
        `every node exits 0 on SIGTERM\n${outputs()}`,
      );
    } finally {
      await cleanup?.();
    }
    const left = namespaceNames().filter((name) => name.startsWith(prefix));
    assert.deepEqual(left, [], "every test namespace was deleted");
  },
);
