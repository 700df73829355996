/**
 * Deno's built-in OpenTelemetry picks up the nodes' spans: tests/live/_otel_deno_child.ts runs as a
 * Deno program with `OTEL_DENO=true`, exporting OTLP as JSON over HTTP to a collector this test
 * serves on loopback, and the request and its answer arrive there as one trace.
 *
 * @module
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { findRuntime } from "../_processes.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CHILD = fileURLToPath(new URL("./_otel_deno_child.ts", import.meta.url));

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Array<{ key: string; value: { stringValue?: string } }>;
}

/** What the collector got: the spans of every `POST /v1/traces`. */
const spans: OtlpSpan[] = [];
const server = createServer((request, response) => {
  const chunks: Uint8Array[] = [];
  request.on("data", (chunk: Uint8Array) => chunks.push(chunk));
  request.on("end", () => {
    if (request.url === "/v1/traces") {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        for (const resource of body.resourceSpans ?? []) {
          for (const scope of resource.scopeSpans ?? []) spans.push(...(scope.spans ?? []));
        }
      } catch {
        // Not JSON: the assertions below say what is missing.
      }
    }
    response.writeHead(200, { "content-type": "application/json" });
    response.end("{}");
  });
});

after(() => {
  server.close();
});

const deno = findRuntime("deno");

test(
  "Deno's built-in OpenTelemetry exports the nodes' spans: a request and its answer as one trace",
  { skip: deno === undefined ? "no deno executable found" : false, timeout: 90_000 },
  async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    const child = spawn(deno!, ["run", "-A", CHILD], {
      cwd: ROOT,
      env: {
        ...process.env,
        OTEL_DENO: "true",
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "automp-otel-test",
        OTEL_DENO_CONSOLE: "ignore",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => output += chunk);
    child.stderr.on("data", (chunk) => output += chunk);
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      child.on("close", (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    assert.equal(code, 0, output);
    const answered = /answered 00-([0-9a-f]{32})-/.exec(output);
    assert.ok(answered, `the answer carried a traceparent: ${output}`);
    const traceId = answered[1];
    // Deno exports when the program ends; the last request may still be on its way.
    const deadline = Date.now() + 10_000;
    const ours = () => spans.filter((span) => span.traceId === traceId);
    while (ours().length < 6 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const trace = ours();
    assert.deepEqual(
      trace.map((span) => span.name).sort(),
      ["process", "process", "receive", "receive", "send", "send"],
      `spans of trace ${traceId}: ${JSON.stringify(spans.map((s) => s.name))}`,
    );
    const roots = trace.filter((span) => !span.parentSpanId);
    assert.equal(roots.length, 1, "one root: the request's send");
    const ids = new Set(trace.map((span) => span.spanId));
    for (const span of trace) {
      if (span !== roots[0]) assert.ok(ids.has(span.parentSpanId), `${span.name} has its parent`);
    }
    const system = roots[0].attributes.find((a) => a.key === "messaging.system");
    assert.equal(system?.value.stringValue, "automp");
  },
);
