import { test } from "node:test";
import assert from "node:assert/strict";
import { type MetricsView, nodeMetrics } from "./_node_metrics.ts";
import { formatMetrics, Histogram } from "./metrics.ts";

function view(): MetricsView {
  const handshakeSeconds = new Histogram([0.01, 0.1]);
  handshakeSeconds.observe(0.05);
  return {
    guid: "A",
    incarnation: "a1",
    codec: "msgpack",
    uptimeSeconds: 12.5,
    links: 3,
    peers: 4,
    workers: 2,
    locations: 5,
    queuedMessages: 6,
    unconfirmed: 7,
    uncertain: 1,
    bytesIn: 100,
    bytesOut: 200,
    stats: {
      heartbeatsSent: 1,
      heartbeatsReceived: 2,
      framesIn: 3,
      framesOut: 4,
      messagesSent: 5,
      messagesReceived: 6,
      undeliverable: 2,
      protocolErrors: 0,
      datagramErrors: 0,
      listenerErrors: 0,
      workerErrors: 0,
      linksUp: 4,
      linksDown: 1,
      duplicateGuids: 0,
      duplicatesDropped: 0,
      authFailures: 0,
      replaysDropped: 0,
      connectionsRefused: 0,
      unknownService: 0,
    },
    undeliverableByReason: new Map([["no-link", 2]]),
    linksDownByReason: new Map([["silence", 1]]),
    handshakeSeconds,
    roundTripSeconds: new Histogram([0.001]),
    loopLagSeconds: new Histogram([0.001]),
    storage: [{
      name: "automp_storage_test",
      help: "A storage's own.",
      type: "gauge",
      samples: [{ value: 9 }],
    }],
  };
}

test("the node's figures come out as named families, the GUID only on node_info", () => {
  const families = nodeMetrics(view());
  const byName = new Map(families.map((f) => [f.name, f]));
  assert.equal(families[0].name, "automp_node_info");
  assert.deepEqual(families[0].samples[0], {
    labels: { guid: "A", incarnation: "a1", codec: "msgpack" },
    value: 1,
  });
  const value = (name: string) => {
    const family = byName.get(name);
    return family?.type === "histogram" ? undefined : family?.samples[0].value;
  };
  assert.equal(value("automp_links"), 3);
  assert.equal(value("automp_sent_bytes"), 200);
  assert.equal(value("automp_received_bytes"), 100);
  assert.equal(value("automp_uncertain_messages"), 1);
  assert.deepEqual(byName.get("automp_links_closed")?.samples, [
    { labels: { reason: "silence" }, value: 1 },
  ]);
  assert.equal(byName.get("automp_handshake_duration_seconds")?.type, "histogram");
  assert.equal(byName.get("automp_message_round_trip_seconds")?.type, "histogram");
  assert.equal(byName.get("automp_event_loop_lag_seconds")?.type, "histogram");
  assert.equal(families.at(-1)?.name, "automp_storage_test", "the storage's families come last");
  const text = formatMetrics(families);
  assert.match(text, /automp_messages_undeliverable_total\{reason="no-link"\} 2/);
});
