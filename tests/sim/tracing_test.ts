/**
 * Traces through `@opentelemetry/api`, recorded by the SDK's in-memory exporter, on simulated
 * clusters (deterministic; spans carry virtual time): a request and its answer across nodes form
 * one trace; without a provider nothing is added to messages; a provider registered globally
 * before the nodes are made is used; nodes speaking the original protocol record spans but carry
 * no context; a worker's exception is recorded on its span.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ProxyTracerProvider, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { SimCluster } from "../../sim/cluster.ts";
import { Simulation } from "../../sim/simulation.ts";
import { EchoWorker, WorkerBase } from "../../src/worker.ts";
import { AutoMpiNode, type NodeOptions } from "../../src/node.ts";
import { formatTraceparent, parseTraceparent } from "../../src/_tracing.ts";
import { ALL_WORKERS } from "../../src/message.ts";

function recording() {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { exporter, provider };
}

function echoCluster(seed: number, node: Partial<NodeOptions> = {}): SimCluster {
  return new SimCluster({
    nodes: 3,
    seed,
    node,
    setup: ({ node, index }) => node.attachWorker(new EchoWorker(`echo${index}`)),
  });
}

const ms = (time: readonly [number, number]) => time[0] * 1000 + time[1] / 1e6;

test("a request from node A to a worker on node C and its answer form one trace", () => {
  const { exporter, provider } = recording();
  const cluster = echoCluster(7, { tracerProvider: provider });
  const app = cluster.client(0, "app");
  cluster.settle();
  exporter.reset();
  const answer = app.request("echo2", { command: "ping" });
  assert.equal(answer?.message.echoOf, "ping");

  const spans = exporter.getFinishedSpans();
  const [a, c] = [cluster.guidOf(0), cluster.guidOf(2)];
  const describe = (span: ReadableSpan) =>
    `${span.name} ${span.attributes["messaging.destination.name"]} on ${
      span.attributes["messaging.client.id"]
    }`;
  // Each span the parent of the next, from the request's send (which starts the trace).
  const ordered: ReadableSpan[] = [];
  let parent: ReadableSpan | undefined = spans.find((span) => span.parentSpanContext === undefined);
  while (parent !== undefined) {
    ordered.push(parent);
    const id: string = parent.spanContext().spanId;
    parent = spans.find((span) => span.parentSpanContext?.spanId === id);
  }
  assert.equal(ordered.length, spans.length, "the spans form one chain");
  assert.deepEqual(ordered.map(describe), [
    `send echo2 on ${a}`,
    `receive echo2 on ${c}`,
    `process echo2 on ${c}`,
    `send app on ${c}`,
    `receive app on ${a}`,
    `process app on ${a}`,
  ]);
  const traceId = ordered[0].spanContext().traceId;
  assert.ok(ordered.every((span) => span.spanContext().traceId === traceId), "one trace");
  assert.deepEqual(ordered.map((span) => span.kind), [
    SpanKind.PRODUCER,
    SpanKind.CONSUMER,
    SpanKind.CONSUMER,
    SpanKind.PRODUCER,
    SpanKind.CONSUMER,
    SpanKind.CONSUMER,
  ]);
  const [send, receive] = ordered;
  assert.equal(send.attributes["messaging.system"], "automp");
  assert.equal(send.attributes["messaging.operation.type"], "send");
  assert.equal(receive.attributes["messaging.operation.type"], "receive");
  assert.equal(receive.attributes["messaging.operation.name"], "receive");
  assert.equal(typeof receive.attributes["network.peer.address"], "string");
  assert.equal(typeof receive.attributes["network.peer.port"], "number");
  assert.ok(ms(receive.startTime) > ms(send.endTime), "virtual time: the link takes time");
  // The answer carries the context of the span that sent it.
  assert.equal(answer?.message.traceparent, formatTraceparent(ordered[3].spanContext()));
});

test("with no tracer provider registered, nodes add nothing to the messages they send", () => {
  assert.equal(
    (trace.getTracerProvider() as ProxyTracerProvider).getDelegateTracer("x"),
    undefined,
    "no global provider in this process",
  );
  const cluster = echoCluster(8);
  const app = cluster.client(0, "app");
  cluster.settle();
  const answer = app.request("echo2", { command: "ping" });
  assert.deepEqual(Object.keys(answer!.message).sort(), ["command", "echoOf"]);
  assert.ok(cluster.history.records.length >= 2);
  for (const record of cluster.history.records) assert.equal(record.message.traceparent, undefined);
});

test("a provider registered globally before the nodes are made is used; tracerProvider false turns it off", () => {
  const { exporter, provider } = recording();
  let traced: SimCluster, untraced: SimCluster;
  assert.ok(trace.setGlobalTracerProvider(provider));
  try {
    traced = echoCluster(9);
    untraced = echoCluster(9, { tracerProvider: false });
  } finally {
    // Nothing else in this process may see it: nodes made later must not trace.
    trace.disable();
  }
  traced.client(0, "app");
  traced.settle();
  untraced.client(0, "app");
  untraced.settle();
  exporter.reset();
  assert.ok(untraced.client(0, "app2").request("echo1", { command: "ping" }));
  assert.equal(exporter.getFinishedSpans().length, 0, "tracerProvider false: no spans");
  const answer = traced.client(0, "app3").request("echo1", { command: "ping" });
  assert.ok(parseTraceparent(answer!.message.traceparent) !== undefined);
  assert.equal(exporter.getFinishedSpans().length, 6);
});

test("a tracer that records nothing adds no trace context to messages", () => {
  const noop = new ProxyTracerProvider();
  const cluster = echoCluster(10, {
    tracerProvider: { getTracer: (name) => noop.getTracer(name) },
  });
  const app = cluster.client(0, "app");
  cluster.settle();
  const answer = app.request("echo2", { command: "ping" });
  assert.deepEqual(Object.keys(answer!.message).sort(), ["command", "echoOf"]);
});

test("nodes speaking the original protocol record spans but put no trace context in messages", () => {
  const { exporter, provider } = recording();
  const cluster = echoCluster(11, { codec: "json", tracerProvider: provider });
  const app = cluster.client(0, "app");
  cluster.settle();
  exporter.reset();
  const answer = app.request("echo2", { command: "ping" });
  assert.equal(answer?.message.traceparent, undefined);
  const names = exporter.getFinishedSpans().map((span) => span.name).sort();
  assert.deepEqual(names, ["process", "process", "receive", "receive", "send", "send"]);
});

test("traceparent fields are parsed by the W3C rules", () => {
  const id = "0af7651916cd43dd8448eb211c80319c";
  const good = parseTraceparent(`00-${id}-b7ad6b7169203331-01`, "vendor=value");
  assert.equal(good?.traceState?.get("vendor"), "value");
  assert.equal(good?.isRemote, true);
  for (
    const bad of [
      `00-${id}-b7ad6b7169203331-01-extra`,
      `ff-${id}-b7ad6b7169203331-01`,
      `00-${id}-0000000000000000-01`,
      `00-${id.toUpperCase()}-b7ad6b7169203331-01`,
      "",
    ]
  ) {
    assert.equal(parseTraceparent(bad), undefined, bad);
  }
  // A later version may add fields; what version 00 defines is read.
  assert.equal(parseTraceparent(`01-${id}-b7ad6b7169203331-01-extra`)?.traceId, id);
});

test("a tracerProvider that is not one is refused with the reason", () => {
  const sim = new Simulation({ seed: 1 });
  let error: unknown;
  sim.addHost("h", (platform) => {
    try {
      new AutoMpiNode(platform, { tracerProvider: {} as never });
    } catch (caught) {
      error = caught;
    }
  });
  assert.ok(error instanceof TypeError);
  assert.match(
    error.message,
    /^Cannot create node: tracerProvider must be a TracerProvider or false/,
  );
});

test("a worker's exception is recorded on its process span, and the node goes on", () => {
  const { exporter, provider } = recording();
  class Failing extends WorkerBase {
    protected override onMessage(): void {
      throw new Error("boom");
    }
  }
  const cluster = new SimCluster({
    nodes: 2,
    seed: 12,
    node: { tracerProvider: provider },
    setup: ({ node, index }) => index === 1 && node.attachWorker(new Failing("failing")),
  });
  cluster.settle();
  exporter.reset();
  assert.ok(cluster.client(0, "app").send("failing", { command: "x" }));
  cluster.run(500);
  const handling = exporter.getFinishedSpans().find((span) => span.name === "process");
  assert.equal(handling?.status.code, SpanStatusCode.ERROR);
  assert.equal(handling?.events[0]?.name, "exception");
  assert.equal(cluster.node(1)!.state().stats.workerErrors, 1);
});

test("a message to all workers is handled by each in a span of its own, children of one receive", () => {
  const { exporter, provider } = recording();
  const cluster = new SimCluster({
    nodes: 2,
    seed: 13,
    node: { tracerProvider: provider },
    setup: ({ node, index }) => {
      if (index === 1) {
        for (const guid of ["e1a", "e1b"]) node.attachWorker(new EchoWorker(guid));
      }
    },
  });
  const app = cluster.client(0, "app");
  cluster.settle();
  exporter.reset();
  assert.ok(app.send(ALL_WORKERS, { command: "hi" }));
  cluster.run(500);
  const spans = exporter.getFinishedSpans();
  const receive = spans.find((span) =>
    span.name === "receive" && span.attributes["messaging.destination.name"] === ALL_WORKERS
  );
  assert.ok(receive, "node 1 received the broadcast");
  const handlings = spans.filter((span) =>
    span.name === "process" && span.parentSpanContext?.spanId === receive.spanContext().spanId
  );
  assert.deepEqual(
    handlings.map((span) => span.attributes["messaging.destination.name"]).sort(),
    ["e1a", "e1b"],
  );
});
