/**
 * The state page in a real browser: a three-node loopback cluster (Deno and Bun mixed), node 1's
 * page opened in headless Chromium; the page's own script must have fetched `/state` and drawn
 * the links table and the cluster picture with both peers. Workers spawned through placement
 * (`--spawn` flags and `POST /spawn`) spread over the nodes; the page's Placement card must show
 * each node's load and every placed worker's host, and, once a node is killed, that node as
 * lost and its workers on the survivors. Leaves the DOM and a screenshot in
 * `tests/artifacts/state-page.{html,png}` for people to look at (copy the PNG to
 * `docs/state-page.png` when the page changes).
 *
 * Chromium is driven over the DevTools protocol (`--remote-debugging-port=0`, loopback only),
 * not with `--dump-dom`: with `--timeout` it dumps the DOM as soon as the page has loaded,
 * before the script's first fetch has drawn anything, and with `--virtual-time-budget` the
 * page's never-ending `/events` stream stalls virtual time: in trials it returned after 26 s,
 * after 38 s, or not within 40 s. Over the protocol the test polls the live DOM until it is
 * drawn, with a bound. It also checks that the page updates live, over `/events`.
 *
 * Chromium gets a fresh profile directory and flags that keep it off the network; host names
 * other than 127.0.0.1 do not resolve. Skipped (reason in the name) without Chromium.
 *
 * @module
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ARTIFACTS_DIR,
  currentRuntime,
  findRuntime,
  httpJson,
  killAll,
  type NodeProcess,
  otherRuntime,
  randomPorts,
  reapLeftoverProcesses,
  type RecentMessageJson,
  type RuntimeName,
  runToken,
  sleep,
  startNode,
  startProcess,
  type TestProcess,
  tryGetState,
  waitFor,
  waitForStarted,
  whichSync,
} from "../_processes.ts";

const HEARTBEAT_MS = 300;

/** `/usr/bin/chromium` (Debian), else the first Chromium or Chrome on `PATH`. */
function findChromium(): string | undefined {
  if (existsSync("/usr/bin/chromium")) return "/usr/bin/chromium";
  return ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
    .map(whichSync).find((path) => path !== undefined);
}

const chromium = findChromium();
const skip = chromium === undefined
  ? "no chromium (looked for /usr/bin/chromium, chromium, chromium-browser, google-chrome)"
  : undefined;

/** A minimal DevTools-protocol client over a WebSocket. */
class DevTools {
  #socket: WebSocket;
  #nextId = 1;
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly events: Array<{ method: string; params: Record<string, unknown> }> = [];

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data));
      if (typeof message.id === "number") {
        const pending = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (message.error) pending?.reject(new Error(JSON.stringify(message.error)));
        else pending?.resolve(message.result);
      } else if (typeof message.method === "string") {
        this.events.push({ method: message.method, params: message.params ?? {} });
      }
    };
    socket.onclose = () => {
      for (const pending of this.#pending.values()) pending.reject(new Error("DevTools closed"));
      this.#pending.clear();
    };
  }

  static connect(url: string, timeoutMs: number): Promise<DevTools> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      const timer = setTimeout(() => {
        socket.close();
        reject(new Error(`Cannot connect to DevTools at ${url} in ${timeoutMs} ms`));
      }, timeoutMs);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve(new DevTools(socket));
      };
      socket.onerror = () => {
        clearTimeout(timer);
        reject(new Error(`Cannot connect to DevTools at ${url}`));
      };
    });
  }

  send<T = Record<string, unknown>>(
    method: string,
    params: Record<string, unknown> = {},
    timeoutMs = 10_000,
  ): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`DevTools ${method} got no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.#socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Evaluates an expression in the page and returns its JSON value. */
  async evaluate<T>(expression: string): Promise<T> {
    const reply = await this.send<{ result: { value?: T }; exceptionDetails?: unknown }>(
      "Runtime.evaluate",
      { expression, returnByValue: true, awaitPromise: true },
    );
    if (reply.exceptionDetails) {
      throw new Error(`Cannot evaluate in page: ${JSON.stringify(reply.exceptionDetails)}`);
    }
    return reply.result.value as T;
  }

  close(): void {
    try {
      this.#socket.close();
    } catch {
      // Already closed.
    }
  }
}

/** What the page shows, read from its live DOM. */
interface PageView {
  status: string;
  summary: string;
  linkPeers: string[];
  svgNodes: string[];
  svgLines: number;
  messageRows: string[];
  /** Placement card: [node, load, row class] per node, [worker, host] per placed worker. */
  members: Array<[string, number, string]>;
  placed: Array<[string, string]>;
}

/** The parts of `GET /state`'s `placement` the test reads. */
interface PlacementJson {
  members: Array<{ node: string; load: number; kinds: string[]; self: boolean }>;
  lost: string[];
  workers: Array<{ guid: string; kind: string; host: string; running: boolean }>;
}

async function placementOf(port: number): Promise<PlacementJson | undefined> {
  const state = await tryGetState(port) as unknown as { placement?: PlacementJson } | undefined;
  return state?.placement;
}

const READ_PAGE = `(() => {
  const text = (el) => (el ? el.textContent.trim() : "");
  return {
    status: text(document.getElementById("status")),
    summary: text(document.getElementById("summary")),
    linkPeers: [...document.querySelectorAll("#links tr td:first-child code")].map(text),
    svgNodes: [...document.querySelectorAll("#cluster [data-node]")].map((g) => g.getAttribute("data-node")),
    svgLines: document.querySelectorAll("#cluster line").length,
    messageRows: [...document.querySelectorAll("#messages tr")].map(text),
    members: [...document.querySelectorAll("#members tr[data-member]")].map((tr) =>
      [tr.getAttribute("data-member"), Number(tr.getAttribute("data-load")), tr.className]),
    placed: [...document.querySelectorAll("#placed [data-placed]")].map((c) =>
      [c.getAttribute("data-placed"), c.getAttribute("data-host")]),
  };
})()`;

const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-domain-reliability",
  "--disable-client-side-phishing-detection",
  "--disable-breakpad",
  "--no-pings",
  "--mute-audio",
  "--hide-scrollbars",
  // Belt and braces: no name but 127.0.0.1 resolves, so nothing leaves the machine.
  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
  "--remote-debugging-address=127.0.0.1",
  "--remote-debugging-port=0",
  "--window-size=1280,900",
];

const PROFILE_PREFIX = "automp-chromium-";

/** Deletes Chromium profiles that test runs which are gone left in the temporary directory. */
function reapLeftoverProfiles(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PROFILE_PREFIX)) continue;
    const owner = Number(name.slice(PROFILE_PREFIX.length).split("-")[0]);
    if (!Number.isInteger(owner) || owner === process.pid) continue;
    try {
      process.kill(owner, 0);
    } catch {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

/** Whether the page's Placement card shows what `placement` (node 1's `/state`) says. */
function samePlacement(view: PageView, placement: PlacementJson): boolean {
  const members = placement.members.map((m) => `${m.node}=${m.load}`).sort();
  const shown = view.members.map(([node, load]) => `${node}=${load}`).sort();
  const placed = placement.workers.map((w) => `${w.guid}@${w.host}`).sort();
  const shownPlaced = view.placed.map(([guid, host]) => `${guid}@${host}`).sort();
  return JSON.stringify(members) === JSON.stringify(shown) &&
    JSON.stringify(placed) === JSON.stringify(shownPlaced);
}

let cleanup: (() => Promise<void>) | undefined;

after(async () => {
  await cleanup?.();
});

test(
  skip
    ? `the state page in headless Chromium (skipped: ${skip})`
    : "the state page in headless Chromium shows both peers, the cluster picture, and each node's load and placed workers",
  { skip, timeout: 60_000 },
  async () => {
    reapLeftoverProcesses();
    const token = runToken();
    const ports = randomPorts();
    const other = otherRuntime();
    const runtimes: RuntimeName[] = findRuntime(other) === undefined
      ? [currentRuntime(), currentRuntime(), currentRuntime()]
      : ["deno", "bun", "deno"];
    reapLeftoverProfiles();
    const profileDir = mkdtempSync(join(tmpdir(), `${PROFILE_PREFIX}${process.pid}-`));
    let browser: TestProcess | undefined;
    let page: DevTools | undefined;
    cleanup = async () => {
      cleanup = undefined;
      page?.close();
      if (browser !== undefined) await browser.stop("SIGTERM", 3000);
      await killAll();
      rmSync(profileDir, { recursive: true, force: true });
    };
    try {
      // ---- a 3-node cluster ------------------------------------------------------------------------
      const kvA = `br-${token}-kvA`;
      const kvB = `br-${token}-kvB`;
      const nodes = runtimes.map((runtime, index) => {
        const i = index + 1;
        return {
          runtime,
          guid: `br-${token}-n${i}`,
          worker: `br-${token}-e${i}`,
          process: undefined as NodeProcess | undefined,
          httpPort: 0,
          index: i,
        };
      });
      await Promise.all(nodes.map(async (node) => {
        node.process = startNode({
          name: `n${node.index}`,
          runtime: node.runtime,
          args: [
            "--guid",
            node.guid,
            "--port",
            String(ports.linkPortBase + 10 * node.index),
            "--http-port",
            String(ports.httpPortBase + 10 * node.index),
            "--discovery-port",
            String(ports.discoveryPort),
            "--heartbeat-ms",
            String(HEARTBEAT_MS),
            "--worker",
            `echo:${node.worker}`,
            // Node 3 hosts kv workers only; node 2 spawns two once it has linked.
            ...(node.index === 3 ? ["--host-kinds", "kv"] : []),
            ...(node.index === 2
              ? ["--spawn", `kv:${kvA}`, "--spawn", `kv:${kvB}?maxKeyLength=64`]
              : []),
          ],
        });
        node.httpPort = (await waitForStarted(node.process, 20_000)).httpPort!;
      }));
      const outputs = () => nodes.map((n) => n.process?.output(20)).join("\n");
      await waitFor(
        async () => {
          const states = await Promise.all(nodes.map((n) => tryGetState(n.httpPort)));
          return states.every((s) =>
            s !== undefined && s.links.length === 2 &&
            nodes.every((n) => n.guid === s.guid || s.locations[n.worker] === n.guid) &&
            s.cluster.links.length === 3
          );
        },
        20_000,
        {
          intervalMs: 150,
          what: "a full mesh of 3 nodes, each knowing all 3 links",
          describe: outputs,
        },
      );
      const [n1, n2, n3] = nodes;
      // Three more through node 1's POST /spawn: echo (not on node 3) and kv.
      const spawned = [kvA, kvB];
      for (const [kind, guid] of [["echo", "echoA"], ["echo", "echoB"], ["kv", "kvC"]]) {
        const body = { kind, guid: `br-${token}-${guid}` };
        const { node } = await httpJson<{ node: string }>(n1.httpPort, "/spawn", {
          method: "POST",
          body,
        });
        assert.ok(nodes.some((n) => n.guid === node), `spawned on a cluster node, not ${node}`);
        if (kind === "echo") assert.notEqual(node, n3.guid, "node 3 hosts no echo workers");
        spawned.push(body.guid);
      }
      let placement: PlacementJson | undefined;
      await waitFor(
        async () => {
          const all = await Promise.all(nodes.map((n) => placementOf(n.httpPort)));
          placement = all[0];
          return all.every((p) =>
            p !== undefined && p.workers.length === spawned.length &&
            p.workers.every((w) => w.running) && p.members.length === 3
          );
        },
        20_000,
        {
          intervalMs: 150,
          what: "every node to see the 5 spawned workers running",
          describe: () => `${JSON.stringify(placement)}\n${outputs()}`,
        },
      );
      assert.ok(
        n2.process!.lines.some((l) =>
          new RegExp(` spawn +worker=${kvA} kind=kv node=`).test(l.text)
        ),
        "node 2 printed where its --spawn went",
      );
      // One echo round trip, so that the messages table has a row to show.
      await httpJson(n1.httpPort, "/messages", {
        method: "POST",
        body: { destination: n2.worker, source: n1.guid, message: { command: "hello-page" } },
      });
      await waitFor(
        async () => {
          const recent = await httpJson<RecentMessageJson[]>(n1.httpPort, "/messages");
          return recent.some((m) => m.message.echoOf === "hello-page");
        },
        10_000,
        { what: "the echo reply at node 1" },
      );

      // ---- the browser -----------------------------------------------------------------------------
      const url = `http://127.0.0.1:${n1.httpPort}/`;
      browser = startProcess({
        name: "chromium",
        command: chromium!,
        args: [...CHROMIUM_FLAGS, `--user-data-dir=${profileDir}`, url],
        marker: profileDir,
      });
      const listening = await browser.waitForLine(/DevTools listening on (ws:\/\/\S+)/, 30_000, {
        stream: "stderr",
      });
      const browserUrl = /DevTools listening on (ws:\/\/\S+)/.exec(listening.text)![1];
      const debugPort = Number(new URL(browserUrl).port);
      const target = await waitFor(
        async () => {
          const targets = await httpJson<
            Array<{ type: string; url: string; webSocketDebuggerUrl: string }>
          >(
            debugPort,
            "/json/list",
          );
          return targets.find((t) => t.type === "page" && t.url.startsWith(url));
        },
        15_000,
        { intervalMs: 200, what: "Chromium's page target for the state page" },
      );
      page = await DevTools.connect(target.webSocketDebuggerUrl, 10_000);
      await page.send("Runtime.enable");
      // --window-size counts the (invisible) window frame; make the viewport itself 1280x900.
      await page.send("Emulation.setDeviceMetricsOverride", {
        width: 1280,
        height: 900,
        deviceScaleFactor: 1,
        mobile: false,
      });

      let view: PageView | undefined;
      const expected = [n2.guid, n3.guid].sort();
      await waitFor(
        async () => {
          view = await page!.evaluate<PageView>(READ_PAGE);
          return view.status === "running" &&
            JSON.stringify([...view.linkPeers].sort()) === JSON.stringify(expected) &&
            expected.every((guid) => view!.svgNodes.includes(guid)) &&
            view.svgNodes.includes(n1.guid) && view.svgLines === 3 &&
            view.messageRows.some((row) => row.includes("echoReply")) &&
            samePlacement(view, placement!);
        },
        20_000,
        {
          intervalMs: 250,
          what: "the page to draw the links table and the cluster",
          describe: () => JSON.stringify(view),
        },
      );
      // Live updates: an event after the page loaded reaches its log over GET /events.
      const nobody = `nobody-${token}`;
      const refused = await fetch(`http://127.0.0.1:${n1.httpPort}/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          destination: nobody,
          source: n1.guid,
          message: { command: "lost" },
        }),
        signal: AbortSignal.timeout(3000),
      });
      assert.equal(refused.status, 409, await refused.text());
      await waitFor(
        async () =>
          (await page!.evaluate<string>(`document.getElementById("log").textContent`))
            .includes(nobody),
        10_000,
        { intervalMs: 200, what: "the page's event log to show the undeliverable event" },
      );
      // Let the page finish any redraw in flight before the picture is taken.
      await sleep(300);
      const dom = await page.evaluate<string>("document.documentElement.outerHTML");
      const shot = await page.send<{ data: string }>("Page.captureScreenshot", { format: "png" });
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      writeFileSync(join(ARTIFACTS_DIR, "state-page.html"), dom);
      writeFileSync(
        join(ARTIFACTS_DIR, "state-page.png"),
        Uint8Array.from(atob(shot.data), (c) => c.charCodeAt(0)),
      );

      // ---- what the DOM says -----------------------------------------------------------------------
      const linksTable = /<table id="links">([\s\S]*?)<\/table>/.exec(dom)?.[1] ?? "";
      const svg = /<svg id="cluster"[\s\S]*?<\/svg>/.exec(dom)?.[0] ?? "";
      for (const guid of expected) {
        assert.ok(linksTable.includes(`<code>${guid}</code>`), `links table lists ${guid}`);
        assert.ok(svg.includes(`data-node="${guid}"`), `cluster picture has ${guid}`);
      }
      assert.ok(svg.includes(`data-node="${n1.guid}"`), "cluster picture has the node itself");
      assert.equal(view!.svgLines, 3, "the picture draws the 3 links of a 3-node mesh");
      const ownWorkers = 1 + placement!.workers.filter((w) => w.host === n1.guid).length;
      assert.match(view!.summary, new RegExp(`2 link\\(s\\), ${ownWorkers} worker\\(s\\)`));
      const placementCard =
        /<div class="card" id="placement"[\s\S]*?id="placed-more"/.exec(dom)?.[0] ??
          "";
      for (const node of nodes) {
        const load = placement!.members.find((m) => m.node === node.guid)!.load;
        assert.ok(
          placementCard.includes(`data-member="${node.guid}" data-load="${load}"`),
          `the Placement card shows ${node.guid} with load ${load}`,
        );
      }
      assert.ok(placementCard.includes('class="self"'), "this node's row is highlighted");
      for (const worker of placement!.workers) {
        assert.ok(
          placementCard.includes(`data-placed="${worker.guid}" data-host="${worker.host}"`),
          `the Placement card shows ${worker.guid} on ${worker.host}`,
        );
      }
      // A killed node shows as lost, and its workers move to the survivors.
      await n3.process!.stop("SIGKILL");
      await waitFor(
        async () => {
          view = await page!.evaluate<PageView>(READ_PAGE);
          const lost = view.members.find(([node]) => node === n3.guid);
          return lost !== undefined && lost[2] === "lost" &&
            view.placed.length === spawned.length &&
            view.placed.every(([, host]) => host !== n3.guid);
        },
        15_000,
        {
          intervalMs: 200,
          what: "the page to show node 3 lost and its workers placed again",
          describe: () => JSON.stringify(view),
        },
      );
      const exceptions = page.events.filter((e) => e.method === "Runtime.exceptionThrown");
      assert.deepEqual(exceptions, [], "the page's script threw nothing");
      const shotBytes = atob(shot.data).length;
      console.log(
        `[figure] ${currentRuntime()}: state page drawn; screenshot ${shotBytes} bytes in tests/artifacts/state-page.png`,
      );
      // A big cluster's table is capped, and what comes from the network is text, not markup:
      // drawn from made-up state in one synchronous turn, so no refresh interleaves.
      const capped = await page.evaluate<{ rows: number; more: string; injected: number }>(`(() => {
        const evil = "<img src=x onerror=window.pwned=1>";
        const workers = Array.from({ length: 1000 }, (_, i) => ({
          guid: i === 0 ? evil : "w" + i, kind: "echo", host: evil, version: 1, running: i % 2 === 0,
        }));
        drawPlacement({ kinds: [], lost: [evil], workers, stats: {},
          members: [{ node: "self", kinds: [evil], load: 1000, self: true }] });
        return {
          rows: document.querySelectorAll("#placed [data-placed]").length,
          more: document.getElementById("placed-more").textContent,
          injected: document.querySelectorAll("#placement img").length,
        };
      })()`);
      assert.deepEqual(capped, { rows: 200, more: "\u2026 and 800 more", injected: 0 });
      // Close the browser politely, so it takes its helper processes along; cleanup kills the
      // whole process group if this does not work.
      page.close();
      page = undefined;
      const control = await DevTools.connect(browserUrl, 5000);
      await control.send("Browser.close", {}, 5000).catch(() => {});
      control.close();
      const closed = await Promise.race([browser.exited, sleep(5000).then(() => undefined)]);
      assert.deepEqual(closed, { code: 0, signal: null }, "Chromium closes when asked");
    } finally {
      await cleanup?.();
    }
  },
);
