/**
 * The npm package as a Node user gets it: `npm-build.ts` builds it into a temporary directory,
 * `npm pack` makes the tarball, `npm install` puts it into a new project (offline from npm's
 * cache when it can), and a plain Node script there imports `automp` and `automp/node`, starts
 * two nodes on 127.0.0.1 without discovery (one has the other as its seed), attaches a worker
 * on one and sends it a message from the other.
 *
 * Runs under `deno test -A` and `bun test`, with the `node` and `npm` on PATH (Node ≥ 20) and
 * after `npm ci` (the build needs `typescript` from node_modules). Everything is bounded in time
 * and the temporary directory is removed at the end.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildNpmPackage, PACKAGE_NAME } from "../../npm-build.ts";

/** A Node user's script: two nodes on loopback, a worker on one, a message from the other. */
const CONSUMER = `import { AutoMpiNode, createMessage, WorkerBase } from "automp";
import { createNodePlatform } from "automp/node";

const deadline = setTimeout(() => {
  console.error("consumer: no message within 20 s");
  process.exit(2);
}, 20_000);

let delivered;
const arrived = new Promise((resolve) => delivered = resolve);
class Inbox extends WorkerBase {
  onMessage(message) {
    delivered(message);
  }
}

const platforms = [0, 1].map(() => createNodePlatform({ log: { level: "warn" } }));
const options = {
  listen: { host: "127.0.0.1", port: 0 },
  discovery: false,
  heartbeatIntervalMs: 200,
};
const host = new AutoMpiNode(platforms[0], { ...options, guid: "HostNode" });
host.attachWorker(new Inbox("Inbox0001"));
const hostAddress = new Promise((resolve) => host.on("started", (event) => resolve(event.address)));
host.start();

const sender = new AutoMpiNode(platforms[1], {
  ...options,
  guid: "SenderNode",
  seeds: [await hostAddress],
});
const located = new Promise((resolve) =>
  sender.on("location-added", (event) => event.worker === "Inbox0001" && resolve(event.node))
);
sender.start();
console.log("located Inbox0001 on " + await located);
sender.send(createMessage("Inbox0001", { command: "hello", via: "npm" }, { source: sender.guid }));
const message = await arrived;
console.log("received " + JSON.stringify({ from: message.source, message: message.message }));

sender.close();
host.close();
await Promise.all(platforms.map((platform) => platform.close()));
clearTimeout(deadline);
// Handles close a few turns after close(): give them up to 2 s, then say what is left.
const openNow = () =>
  process.getActiveResourcesInfo().filter((kind) => !/^(TTY|Pipe)Wrap|Timeout$/.test(kind));
for (let i = 0; i < 40 && openNow().length > 0; i++) {
  await new Promise((resolve) => setTimeout(resolve, 50));
}
const open = openNow();
if (open.length > 0) console.log("still open after close: " + open.join(", "));
// Exit even if a socket was left open (see "still open"), so the test never hangs on it.
process.exit(0);
`;

interface Ran {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(command: string, args: readonly string[], cwd: string, timeoutMs: number): Ran {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", timeout: timeoutMs });
  if (result.error) throw new Error(`Cannot run ${command}: ${result.error.message}`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function nodeMajor(): number | undefined {
  const result = spawnSync("node", ["--version"], { encoding: "utf8", timeout: 10_000 });
  return result.status === 0 ? Number(/^v(\d+)/.exec(result.stdout)?.[1]) : undefined;
}

const major = nodeMajor();
const skip = major === undefined ? "no node on PATH" : undefined;

test(
  "the npm package installs from its tarball, and on Node two loopback nodes deliver a message to a worker",
  { skip, timeout: 240_000 },
  () => {
    const tmp = mkdtempSync(join(tmpdir(), "automp-npm-test-"));
    try {
      const lines: string[] = [];
      const built = buildNpmPackage({
        outDir: join(tmp, "package"),
        test: false,
        pack: false,
        print: (line) => lines.push(line),
      });
      assert.ok(built.ok, lines.join("\n"));
      const manifest = JSON.parse(readFileSync(join(built.outDir, "package.json"), "utf8"));
      assert.equal(manifest.name, PACKAGE_NAME);
      assert.deepEqual(Object.keys(manifest.exports), [".", "./sim", "./node"]);
      assert.equal(manifest.type, "module");

      const packed = run(
        "npm",
        ["pack", "--json", "--ignore-scripts", "--pack-destination", tmp],
        built.outDir,
        60_000,
      );
      assert.equal(packed.status, 0, packed.stderr);
      const [{ filename, files }] = JSON.parse(packed.stdout) as {
        filename: string;
        files: { path: string }[];
      }[];
      const paths = files.map((file) => file.path);
      assert.ok(paths.includes("esm/adapters/node/mod.d.ts"), paths.join("\n"));
      assert.ok(paths.includes("LICENSE") && paths.includes("README.md"), paths.join("\n"));
      assert.deepEqual(paths.filter((path) => /(^|\/)\.|_test\.|node_modules/.test(path)), []);

      const project = join(tmp, "project");
      const tarball = join(tmp, filename);
      // The dependencies are in npm's cache after `npm ci`: offline first, then the registry.
      const install = (mode: string) => {
        rmSync(project, { recursive: true, force: true });
        mkdirSync(project, { recursive: true });
        writeFileSync(
          join(project, "package.json"),
          JSON.stringify({ name: "automp-consumer", private: true, type: "module" }),
        );
        return run(
          "npm",
          ["install", mode, "--no-audit", "--no-fund", "--ignore-scripts", tarball],
          project,
          120_000,
        );
      };
      let installed = install("--offline");
      if (installed.status !== 0) installed = install("--prefer-offline");
      assert.equal(installed.status, 0, installed.stderr);
      assert.ok(readdirSync(join(project, "node_modules")).includes(PACKAGE_NAME));

      writeFileSync(join(project, "consumer.mjs"), CONSUMER);
      const consumer = run("node", ["consumer.mjs"], project, 60_000);
      const output = consumer.stdout + consumer.stderr;
      assert.equal(consumer.status, 0, output);
      assert.match(output, /located Inbox0001 on HostNode/);
      const received = /^received (.*)$/m.exec(consumer.stdout);
      assert.ok(received, output);
      assert.deepEqual(JSON.parse(received[1]), {
        from: "SenderNode",
        message: { command: "hello", via: "npm" },
      });
      // Closing the nodes and the platform releases every socket: nothing keeps Node running.
      const open = /^still open after close: (.*)$/m.exec(consumer.stdout);
      assert.equal(open?.[1], undefined, "sockets left open after close");
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
);
