/**
 * An application routes the toolkit's log records into its own logging: here LogTape, as the
 * README's "Logging" section shows, from a node on this runtime's real adapter and from a
 * simulated cluster; and the default logger's sink gets each record beside its line.
 *
 * @module
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  configure,
  getLogger,
  type Logger as LogTapeLogger,
  type LogRecord as LogTapeRecord,
  reset,
} from "@logtape/logtape";
import { createRuntimePlatform } from "../../adapters/runtime.ts";
import { createLogger, type LogRecord } from "../../adapters/_logger.ts";
import { AutoMpiNode } from "../../src/node.ts";
import type { Logger } from "../../src/platform.ts";
import { SimCluster } from "../../sim/cluster.ts";

/** The README's adapter: each record to the LogTape category `automp.<first part of event>`. */
function toLogTape(logger: LogTapeLogger): Logger {
  return {
    log: (level, event, fields) => logger.getChild(event.split(".")[0])[level](event, fields),
  };
}

async function withLogTape(
  body: (records: LogTapeRecord[]) => void | Promise<void>,
): Promise<void> {
  const records: LogTapeRecord[] = [];
  await configure({
    reset: true,
    sinks: { app: (record) => records.push(record) },
    loggers: [
      { category: "automp", lowestLevel: "debug", sinks: ["app"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    await body(records);
  } finally {
    await reset();
  }
}

test("a node's log records reach an application's LogTape sink with level, category and fields", async () => {
  await withLogTape(async (records) => {
    const platform = await createRuntimePlatform(undefined, {
      log: toLogTape(getLogger("automp")),
    });
    const node = new AutoMpiNode(platform, {
      guid: "LogA",
      listen: { host: "127.0.0.1", port: 0 },
      discovery: false,
    });
    const started = new Promise<void>((resolve) => node.on("started", () => resolve()));
    node.start();
    await started;
    node.close();
    await platform.close();
    const record = records.find((r) => r.rawMessage === "node.started");
    assert.ok(record, `records: ${records.map((r) => r.rawMessage).join(", ")}`);
    assert.equal(record.level, "info");
    assert.deepEqual(record.category, ["automp", "node"]);
    assert.equal(record.properties.guid, "LogA");
    assert.ok(records.some((r) => r.rawMessage === "node.closed"));
  });
});

test("a simulated cluster's log records reach the same sink through onLog, with their virtual time", async () => {
  await withLogTape((records) => {
    const logger = toLogTape(getLogger("automp"));
    const cluster = new SimCluster({
      nodes: 2,
      seed: 3,
      onLog: (entry) =>
        logger.log(entry.level, entry.event, {
          host: entry.host,
          virtualMs: entry.timeMs,
          ...entry.fields,
        }),
    });
    cluster.settle();
    const linkUp = records.filter((r) => r.rawMessage === "link.up");
    assert.equal(linkUp.length, 2, "one link, seen from both ends");
    assert.deepEqual(linkUp[0].category, ["automp", "link"]);
    assert.equal(typeof linkUp[0].properties.peer, "string");
    assert.ok((linkUp[0].properties.virtualMs as number) < cluster.sim.now + 1);
  });
});

test("the default logger writes one line per event, text for people or JSON for machines, and hands its sink the record", () => {
  const text: string[] = [];
  const json: LogRecord[] = [];
  const people = createLogger({ sink: (line) => text.push(line), wallNow: () => 0 });
  const machines = createLogger({
    format: "json",
    sink: (line, record) => {
      assert.equal(JSON.parse(line).event, record.event);
      json.push(record);
    },
    wallNow: () => 0,
  });
  for (const log of [people, machines]) log.log("info", "link.up", { peer: "B", address: "x:1" });
  assert.deepEqual(text, ["1970-01-01T00:00:00.000Z INFO  link.up peer=B address=x:1"]);
  assert.deepEqual(json, [{
    timeMs: 0,
    level: "info",
    event: "link.up",
    fields: { peer: "B", address: "x:1" },
  }]);
});
