/**
 * A Deno program for tests/live/otel_deno_test.ts: two nodes on loopback in one process, an
 * application client on node A asking an echo worker on node B, then a clean exit. Run with
 * `OTEL_DENO=true`, Deno's built-in OpenTelemetry registers its tracer provider with
 * `@opentelemetry/api` before this code runs, so the nodes trace through it, and Deno exports the
 * spans (OTLP) when the program ends. Prints `answered <traceparent>` once the answer came.
 *
 * @module
 */
import { AutoMpiNode } from "../../src/node.ts";
import { createMessage, type MapMessage } from "../../src/message.ts";
import { EchoWorker, WorkerBase } from "../../src/worker.ts";
import { createDenoPlatform } from "../../adapters/deno/mod.ts";

class Client extends WorkerBase {
  readonly received: MapMessage[] = [];
  protected override onMessage(message: MapMessage): void {
    this.received.push(message);
  }
}

const platform = createDenoPlatform({ log: { level: "warn" } });
const waitUntil = async (what: string, holds: () => boolean, maxMs: number) => {
  const start = performance.now();
  while (!holds()) {
    if (performance.now() - start > maxMs) throw new Error(`Cannot finish: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};
const node = (guid: string, seeds: string[] = []) =>
  new AutoMpiNode(platform, {
    guid,
    listen: { host: "127.0.0.1", port: 0 },
    discovery: false,
    seeds,
    heartbeatIntervalMs: 200,
  });
const b = node("OtelB");
b.start();
b.attachWorker(new EchoWorker("echo-b"));
await waitUntil("node B listening", () => b.address !== "", 5000);
const a = node("OtelA", [b.address]);
a.start();
const client = new Client("app");
a.attachWorker(client);
await waitUntil("node A knowing echo-b", () => a.locate("echo-b") === "OtelB", 10_000);
a.send(createMessage("echo-b", { command: "ping" }, { source: "app" }));
await waitUntil("the answer", () => client.received.length > 0, 10_000);
console.log(`answered ${client.received[0].message.traceparent ?? "without traceparent"}`);
a.close();
b.close();
await platform.close();
