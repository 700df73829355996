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
  getState,
  killAll,
  reapLeftoverProcesses,
  sleep,
  startLoopbackCluster,
  tryGetState,
  waitFor,
} from "../_processes.ts";

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
    const cluster = await startLoopbackCluster({ guids: ["TwinA", "TwinB", "TwinC"] });
    const { nodes, http, outputs } = cluster;
    const guids = ["TwinA", "TwinB", "TwinC"];
    await cluster.meshed();
    const holder = await getState(http[0]);
    // The honest nodes' ports (the clone's joins `http` when it starts).
    const honest = http.slice(0, 3);

    // The clone: TwinA's GUID on a fourth process.
    const { node: clone, http: cloneHttp } = await cluster.start(3, "TwinA");
    await sleep(2000);
    const calm = await Promise.all(honest.map((port) => getState(port)));
    await sleep(5000);
    const later = await Promise.all(honest.map((port) => getState(port)));
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
