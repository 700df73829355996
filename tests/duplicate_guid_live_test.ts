/**
 * A cloned node as users meet it: three node programs on loopback (this runtime and the other),
 * then a fourth started with the GUID of one of them. The honest nodes keep their links to the
 * first, with no link-down; the clone is refused and says so in its log and on its state page;
 * it retries only with backoff; when the first is killed, the clone takes over.
 *
 * @module
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import {
  currentRuntime,
  findRuntime,
  getState,
  killAll,
  otherRuntime,
  randomPorts,
  reapLeftoverProcesses,
  type RuntimeName,
  sleep,
  startNode,
  tryGetState,
  waitFor,
  waitForStarted,
} from "./_processes.ts";

const HEARTBEAT_MS = 300;
const START_TIMEOUT_MS = 20_000;

after(async () => {
  await killAll();
});

test(
  "a clone of a node's GUID is refused with duplicate-guid, honest links stay up, and it takes over when the first dies",
  {
    timeout: 90_000,
  },
  async () => {
    reapLeftoverProcesses();
    const ports = randomPorts();
    const mixed = findRuntime(otherRuntime()) !== undefined;
    const runtimeOf = (
      i: number,
    ): RuntimeName => (mixed && i % 2 === 1 ? otherRuntime() : currentRuntime());
    const start = (i: number, guid: string) =>
      startNode({
        name: `n${i}`,
        runtime: runtimeOf(i),
        args: [
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
          `echo:echo-${guid}-${i}`,
        ],
      });
    const guids = ["TwinA", "TwinB", "TwinC"];
    const nodes = guids.map((guid, i) => start(i, guid));
    const http = await Promise.all(
      nodes.map(async (node) => (await waitForStarted(node, START_TIMEOUT_MS)).httpPort!),
    );
    const outputs = () => nodes.map((n) => n.output(20)).join("\n");
    await waitFor(
      async () => {
        const states = await Promise.all(http.map((port) => tryGetState(port)));
        return states.every((s) => s?.links.length === 2) ? true : undefined;
      },
      20_000,
      { what: "three nodes meshed", describe: outputs },
    );
    const holder = await getState(http[0]);

    // The clone: TwinA's GUID on a fourth process.
    const clone = start(3, "TwinA");
    nodes.push(clone);
    const cloneHttp = (await waitForStarted(clone, START_TIMEOUT_MS)).httpPort!;
    await sleep(2000);
    const calm = await Promise.all(http.map((port) => getState(port)));
    await sleep(5000);
    const later = await Promise.all(http.map((port) => getState(port)));
    for (const [i, state] of later.entries()) {
      assert.equal(
        state.stats.linksDown,
        calm[i].stats.linksDown,
        `${guids[i]}: no link-down after the first seconds\n${outputs()}`,
      );
      assert.equal(state.links.length, 2, `${guids[i]} keeps its links`);
    }
    for (const state of later.slice(1)) {
      assert.equal(
        state.links.find((l) => l.peer === "TwinA")?.incarnation,
        holder.incarnation,
        "honest nodes keep the first TwinA",
      );
    }
    const cloneState = await getState(cloneHttp) as unknown as {
      duplicateGuid?: { guid: string; incarnation: string };
      links: unknown[];
    };
    assert.equal(
      cloneState.duplicateGuid?.guid,
      "TwinA",
      `the clone's state page says so\n${clone.output(30)}`,
    );
    assert.equal(cloneState.duplicateGuid?.incarnation, holder.incarnation);
    assert.ok(
      clone.lines.some((l) => /duplicate-guid/.test(l.text)),
      `its log says so\n${clone.output(30)}`,
    );
    const refusedLinks = clone.lines.filter((l) => /link-down/.test(l.text)).length;
    assert.ok(refusedLinks <= 2 * 8, `${refusedLinks} refused links in ~7 s: retried with backoff`);

    // The first TwinA dies: the clone takes its place.
    await nodes[0].stop("SIGKILL");
    await waitFor(
      async () => {
        const [b, c, cl] = await Promise.all([
          tryGetState(http[1]),
          tryGetState(http[2]),
          tryGetState(cloneHttp),
        ]);
        const ok =
          b?.links.some((l) => l.peer === "TwinA" && l.incarnation !== holder.incarnation) &&
          c?.links.some((l) => l.peer === "TwinA" && l.incarnation !== holder.incarnation) &&
          cl?.links.length === 2;
        return ok ? true : undefined;
      },
      20_000,
      { what: "the clone linked in the first one's place", describe: outputs },
    );
  },
);
