/**
 * `oneway_small` of one checkout's core, for comparing two commits on a noisy machine: run it
 * alternately against each checkout, several times, and compare the means. It loads the node,
 * worker and adapter code of the checkout named by its argument (the harness stays the same), then
 * prints one JSON line: the best of three runs of 200,000 messages with 100-byte data from a
 * worker-less application on node A to a sink worker on node B, on loopback, after a warm-up, as
 * `realRows` sends them (bursts of 1,000, at most 20,000 unconfirmed).
 *
 * ```sh
 * git worktree add /tmp/base <commit>; git worktree add /tmp/head HEAD
 * for i in 1 2 3 4 5 6; do
 *   for dir in $([ $((i % 2)) = 1 ] && echo /tmp/base /tmp/head || echo /tmp/head /tmp/base); do
 *     deno run -A --config $dir/deno.json bench/ab_oneway.ts $dir
 *   done
 * done
 * ```
 *
 * Put both checkouts on the same file system and let them take turns going first: on Bun the
 * first run of a pair was measurably favoured.
 *
 * With `--noop-tracer` both nodes get a tracer provider whose spans record nothing (a checkout
 * that has `tracerProvider`): alternate runs with and without it to see what tracing with a no-op
 * tracer costs.
 *
 * On Bun (`bun run bench/ab_oneway.ts DIR`), the other checkout needs a `node_modules` (a link to
 * this one's will do).
 *
 * @module
 */
import { resolve } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";

// The checkout's own modules: typed loosely, since another commit may differ in details.
interface Node {
  readonly address: string;
  start(): void;
  close(): void;
  on(event: "started", listener: () => void): void;
  attachWorker(worker: unknown): void;
  locate(guid: string): string | undefined;
  send(message: unknown): boolean;
}

const args = process.argv.slice(2);
const noopTracer = args.includes("--noop-tracer");
const root = resolve(args.find((arg) => !arg.startsWith("--")) ?? ".");
// The API's no-op provider (what an empty proxy delegates to), as if the application had
// registered it. Loaded only when asked for: an older checkout's import map may not have the API.
const noopProvider = noopTracer
  ? await import("@opentelemetry/api").then(({ ProxyTracerProvider }) =>
    new ProxyTracerProvider().getDelegate()
  )
  : undefined;
const load = (path: string) => import(pathToFileURL(resolve(root, path)).href);
const { AutoMpiNode } = await load("src/node.ts");
const { createMessage } = await load("src/message.ts");
const { WorkerBase } = await load("src/worker.ts");
const { createRuntimePlatform } = await load("adapters/runtime.ts");

class Sink extends WorkerBase {
  count = 0;
  constructor(guid: string, options: { queueLimit: number }) {
    super(guid, options);
  }
  onMessage(): void {
    this.count++;
  }
}

const platform = await createRuntimePlatform();
const waitUntil = (holds: () => boolean, maxMs: number) =>
  new Promise<boolean>((done) => {
    const start = performance.now();
    const check = () => {
      if (holds()) return done(true);
      if (performance.now() - start > maxMs) return done(false);
      platform.clock.schedule(1, check);
    };
    check();
  });
const make = (guid: string, seeds: string[] = []): Node =>
  new AutoMpiNode(platform, {
    guid,
    listen: { host: "127.0.0.1", port: 0 },
    discovery: false,
    seeds,
    ...(noopTracer ? { tracerProvider: noopProvider } : {}),
  });
const receiver = make("BenchB");
const sink = new Sink("Sink", { queueLimit: 1_000_000 });
const started = new Promise<void>((done) => receiver.on("started", done));
receiver.start();
receiver.attachWorker(sink);
await started;
const sender = make("BenchA", [receiver.address]);
sender.start();
if (!(await waitUntil(() => sender.locate("Sink") === "BenchB", 10_000))) {
  throw new Error("Cannot run the A/B bench: the nodes did not link");
}

async function run(total: number): Promise<number> {
  const data = new Uint8Array(100).fill(7);
  const message = createMessage("Sink", { command: "bench" }, { source: "BenchA", data });
  const base = sink.count;
  let sent = 0;
  const start = performance.now();
  while (sent < total) {
    const room = Math.min(1000, total - sent, 20_000 - (sent - (sink.count - base)));
    if (room <= 0) {
      await waitUntil(() => sent - (sink.count - base) < 10_000, 60_000);
      continue;
    }
    for (let i = 0; i < room; i++) {
      if (!sender.send(message)) throw new Error("Cannot run the A/B bench: send refused");
    }
    sent += room;
    await new Promise<void>((done) => platform.clock.schedule(0, done));
  }
  if (!(await waitUntil(() => sink.count - base >= total, 60_000))) {
    throw new Error(`Cannot run the A/B bench: ${sink.count - base} of ${total} arrived`);
  }
  return total / ((performance.now() - start) / 1000);
}

await run(20_000);
let best = 0;
for (let i = 0; i < 3; i++) best = Math.max(best, await run(200_000));
console.log(JSON.stringify({ root, noopTracer, msgPerSecond: Math.round(best) }));
sender.close();
receiver.close();
await platform.close();
