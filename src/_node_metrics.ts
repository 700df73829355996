/**
 * The node's metric families, as Prometheus and OpenMetrics name them (`automp_…`; units as
 * suffixes, counters as `_total` when formatted, no label but the node's own GUID on
 * `automp_node_info`), from a view of the node's figures.
 *
 * @module
 */
import type { CodecName } from "./codec.ts";
import type { Histogram, MetricFamily } from "./metrics.ts";
import type { NodeStats } from "./_types.ts";

/** The figures a node's metrics are made of. */
export interface MetricsView {
  readonly guid: string;
  readonly incarnation: string;
  readonly codec: CodecName;
  readonly uptimeSeconds: number;
  readonly links: number;
  readonly peers: number;
  readonly workers: number;
  /** Remote workers whose location is known. */
  readonly locations: number;
  readonly queuedMessages: number;
  /** Messages sent on links and not yet confirmed. */
  readonly unconfirmed: number;
  /** Messages reported uncertain whose outcome may still become known. */
  readonly uncertain: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly stats: Readonly<NodeStats>;
  readonly undeliverableByReason: ReadonlyMap<string, number>;
  readonly linksDownByReason: ReadonlyMap<string, number>;
  readonly handshakeSeconds: Histogram;
  /** From writing a message on a link to the peer's acknowledgement of it. */
  readonly roundTripSeconds: Histogram;
  /** How late the heartbeat and worker timers fired. */
  readonly loopLagSeconds: Histogram;
  /** The storage's own families (`Storage.metrics`), if it has any. */
  readonly storage?: readonly MetricFamily[];
}

/** A counter family with one unlabelled sample. */
export const counter = (name: string, help: string, value: number): MetricFamily => ({
  name,
  help,
  type: "counter",
  samples: [{ value }],
});

/** A gauge family with one unlabelled sample. */
export const gauge = (name: string, help: string, value: number): MetricFamily => ({
  name,
  help,
  type: "gauge",
  samples: [{ value }],
});

const byReason = (map: ReadonlyMap<string, number>) =>
  [...map].map(([reason, value]) => ({ labels: { reason }, value }));

/**
 * The metric families of a node with these figures.
 *
 * @example
 * ```ts
 * import { nodeMetrics } from "./_node_metrics.ts";
 * import { Histogram } from "./metrics.ts";
 * const families = nodeMetrics({
 *   guid: "A", incarnation: "1", codec: "msgpack", uptimeSeconds: 1, links: 2, peers: 2,
 *   workers: 0, locations: 0, queuedMessages: 0, unconfirmed: 0, uncertain: 0, bytesIn: 0,
 *   bytesOut: 0, stats: {} as never, undeliverableByReason: new Map(),
 *   linksDownByReason: new Map(), handshakeSeconds: new Histogram([1]),
 *   roundTripSeconds: new Histogram([1]), loopLagSeconds: new Histogram([1]),
 * });
 * const links = families.find((f) => f.name === "automp_links");
 * if (links?.type !== "gauge" || links.samples[0].value !== 2) throw new Error("unexpected");
 * ```
 */
export function nodeMetrics(v: MetricsView): MetricFamily[] {
  const s = v.stats;
  return [
    {
      name: "automp_node_info",
      help: "This node: its GUID, incarnation and codec (value 1).",
      type: "gauge",
      samples: [{
        labels: { guid: v.guid, incarnation: v.incarnation, codec: v.codec },
        value: 1,
      }],
    },
    gauge(
      "automp_uptime_seconds",
      "Seconds since the node started.",
      v.uptimeSeconds,
    ),
    gauge("automp_links", "Links up now.", v.links),
    gauge("automp_peers", "Nodes known now (linked or not).", v.peers),
    gauge("automp_workers", "Workers hosted here.", v.workers),
    gauge(
      "automp_worker_locations",
      "Workers on other nodes whose location is known.",
      v.locations,
    ),
    gauge("automp_worker_queue_messages", "Messages waiting in worker queues.", v.queuedMessages),
    gauge(
      "automp_unconfirmed_messages",
      "Messages sent on links and not yet confirmed by the peer (kept for resending).",
      v.unconfirmed,
    ),
    gauge(
      "automp_uncertain_messages",
      "Messages reported uncertain whose outcome may still become known.",
      v.uncertain,
    ),
    counter("automp_messages_sent", "Messages handed to send().", s.messagesSent),
    counter("automp_messages_received", "Messages received over links.", s.messagesReceived),
    {
      name: "automp_messages_undeliverable",
      help: "Messages reported undeliverable, by reason.",
      type: "counter",
      samples: byReason(v.undeliverableByReason),
    },
    counter("automp_heartbeats_sent", "Heartbeats sent.", s.heartbeatsSent),
    counter("automp_heartbeats_received", "Heartbeats received.", s.heartbeatsReceived),
    counter("automp_frames_sent", "Frames written to links.", s.framesOut),
    counter("automp_frames_received", "Frames read from links.", s.framesIn),
    counter("automp_sent_bytes", "Bytes written to links.", v.bytesOut),
    counter("automp_received_bytes", "Bytes read from links.", v.bytesIn),
    counter("automp_links_opened", "Links that came up.", s.linksUp),
    {
      name: "automp_links_closed",
      help: "Links that went down, by reason.",
      type: "counter",
      samples: byReason(v.linksDownByReason),
    },
    counter(
      "automp_protocol_errors",
      "Links or datagrams refused as malformed.",
      s.protocolErrors,
    ),
    counter(
      "automp_datagram_errors",
      "Discovery datagrams that could not be used.",
      s.datagramErrors,
    ),
    counter(
      "automp_auth_failures",
      "Heartbeats, hellos and proofs refused for the cluster key.",
      s.authFailures,
    ),
    counter("automp_replays_dropped", "Signed heartbeats dropped as replayed.", s.replaysDropped),
    counter(
      "automp_connections_refused",
      "Connections refused at a limit.",
      s.connectionsRefused,
    ),
    counter("automp_duplicate_guids", "Nodes seen claiming a GUID in use.", s.duplicateGuids),
    counter(
      "automp_duplicates_dropped",
      "Resent messages dropped as already taken.",
      s.duplicatesDropped,
    ),
    counter(
      "automp_listener_errors",
      "Exceptions thrown by event listeners and handlers.",
      s.listenerErrors,
    ),
    counter("automp_worker_errors", "Exceptions thrown by workers.", s.workerErrors),
    {
      name: "automp_handshake_duration_seconds",
      help: "From connecting (or accepting) to the link being up.",
      type: "histogram",
      buckets: v.handshakeSeconds.buckets,
      samples: [v.handshakeSeconds.sample()],
    },
    {
      name: "automp_message_round_trip_seconds",
      help: "From writing a message on a link to the peer node acknowledging it: the " +
        "request/reply round trip of the node protocol (the core has no reply of its own).",
      type: "histogram",
      buckets: v.roundTripSeconds.buckets,
      samples: [v.roundTripSeconds.sample()],
    },
    {
      name: "automp_event_loop_lag_seconds",
      help: "How late the node's heartbeat and worker timers fired: the event loop's lag.",
      type: "histogram",
      buckets: v.loopLagSeconds.buckets,
      samples: [v.loopLagSeconds.sample()],
    },
    ...(v.storage ?? []),
  ];
}
