/**
 * `GET /metrics` as a Prometheus server scrapes it: three node programs on loopback (this
 * runtime and the other), a message through one of them, then each node's metrics read back by
 * a real Prometheus text parser, and the OpenMetrics variant when the scraper asks for it.
 *
 * @module
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import parsePrometheus from "parse-prometheus-text-format";
import {
  httpJson,
  killAll,
  reapLeftoverProcesses,
  startLoopbackCluster,
  waitFor,
} from "../_processes.ts";

interface Family {
  name: string;
  type: string;
  metrics: Array<{ value?: string; labels?: Record<string, string>; count?: string }>;
}

const dataDir = mkdtempSync(join(tmpdir(), "automp-metrics-"));

after(async () => {
  await killAll();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Histograms every node serves, each with at least this many observations. */
const HISTOGRAMS: Readonly<Record<string, number>> = {
  // One handshake per link at least.
  automp_handshake_duration_seconds: 2,
  // Heartbeat and worker timers.
  automp_event_loop_lag_seconds: 1,
  // Location announcements and the like are acknowledged.
  automp_message_round_trip_seconds: 1,
  // Opening a new data directory writes and fsyncs an empty log.
  automp_storage_fsync_duration_seconds: 1,
};

test(
  "GET /metrics of a real 3-node cluster parses as Prometheus text, with links, traffic and latency histograms",
  {
    timeout: 60_000,
  },
  async () => {
    reapLeftoverProcesses();
    const guids = ["MetA", "MetB", "MetC"];
    const cluster = await startLoopbackCluster({
      guids,
      extraArgs: (_index, guid) => [
        "--data-dir",
        join(dataDir, guid),
        "--worker",
        `kv:store-${guid}`,
      ],
      workersPerNode: 2,
    });
    const { http, outputs } = cluster;
    await cluster.meshed();
    const accepted = await httpJson<{ accepted: boolean }>(http[0], "/messages", {
      method: "POST",
      body: { destination: "echo-MetC-2", source: "scraper", message: { hello: "metrics" } },
    });
    assert.equal(accepted.accepted, true);
    const stored = await httpJson<{ accepted: boolean }>(http[0], "/messages", {
      method: "POST",
      body: {
        destination: "store-MetC",
        source: "scraper",
        message: { command: "set", key: "k", value: "v" },
      },
    });
    assert.equal(stored.accepted, true);

    const scrape = async (port: number, accept?: string) => {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
        headers: accept ? { accept } : {},
        signal: AbortSignal.timeout(3000),
      });
      assert.equal(response.status, 200);
      return { type: response.headers.get("content-type") ?? "", text: await response.text() };
    };
    await waitFor(
      async () => {
        const text = (await scrape(http[2])).text;
        // Two messages in, and the set's write fsynced after the empty log's.
        return /^automp_messages_received_total [2-9]/m.test(text) &&
            /^automp_storage_fsync_duration_seconds_count [2-9]/m.test(text)
          ? true
          : undefined;
      },
      5000,
      { what: "node C counts the message it received", describe: outputs },
    );

    // The heartbeat timer first fires at a random moment of the first interval (workers that
    // only answer messages get no timer): wait until each node's has fired once.
    for (const port of http) {
      await waitFor(
        async () =>
          /^automp_event_loop_lag_seconds_count [1-9]/m.test((await scrape(port)).text)
            ? true
            : undefined,
        5000,
        { what: `the node serving port ${port} timed its heartbeat timer`, describe: outputs },
      );
    }
    for (const [i, port] of http.entries()) {
      const { type, text } = await scrape(port);
      assert.match(type, /^text\/plain; version=0\.0\.4/);
      const families = new Map((parsePrometheus(text) as Family[]).map((f) => [f.name, f]));
      const value = (name: string) => Number(families.get(name)?.metrics[0]?.value);
      assert.equal(families.get("automp_node_info")?.metrics[0].labels?.guid, guids[i]);
      assert.equal(value("automp_links"), 2, `${guids[i]} links`);
      assert.equal(value("automp_workers"), 2);
      assert.equal(value("automp_worker_locations"), 4);
      assert.ok(value("automp_heartbeats_sent_total") > 0);
      assert.ok(value("automp_sent_bytes_total") > 0 && value("automp_received_bytes_total") > 0);
      for (const [name, least] of Object.entries(HISTOGRAMS)) {
        const histogram = families.get(name);
        assert.equal(histogram?.type, "HISTOGRAM", `${guids[i]} ${name}`);
        assert.ok(
          Number(histogram?.metrics[0].count) >= least,
          `${guids[i]} ${name}: ${histogram?.metrics[0].count} observations`,
        );
      }
      // Low cardinality: no label carries another node's GUID.
      for (const other of guids.filter((g) => g !== guids[i])) assert.ok(!text.includes(other));
    }
    const a = new Map(
      (parsePrometheus((await scrape(http[0])).text) as Family[]).map((f) => [f.name, f]),
    );
    assert.ok(Number(a.get("automp_messages_sent_total")?.metrics[0].value) >= 1);

    const open = await scrape(http[1], "application/openmetrics-text; version=1.0.0");
    assert.match(open.type, /^application\/openmetrics-text/);
    assert.match(open.text, /^# TYPE automp_messages_sent counter$/m);
    assert.ok(open.text.endsWith("# EOF\n"));
  },
);
