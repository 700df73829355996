import { test } from "node:test";
import assert from "node:assert/strict";
import { createLogger, type LogRecord } from "./_logger.ts";

function capture(options: Parameters<typeof createLogger>[0] = {}) {
  const lines: string[] = [];
  const records: LogRecord[] = [];
  const log = createLogger({
    wallNow: () => Date.UTC(2026, 0, 2, 3, 4, 5, 6),
    sink: (line, record) => {
      lines.push(line);
      records.push(record);
    },
    ...options,
  });
  return { log, lines, records };
}

test("logger: text lines carry time, level, event and key=value fields", () => {
  const { log, lines } = capture();
  log.log("info", "link.up", { peer: "a1", address: "127.0.0.1:5000", count: 3, ok: true });
  log.log("warn", "link.down", { reason: "peer went away", error: new Error("boom") });
  assert.deepEqual(lines, [
    "2026-01-02T03:04:05.006Z INFO  link.up peer=a1 address=127.0.0.1:5000 count=3 ok=true",
    '2026-01-02T03:04:05.006Z WARN  link.down reason="peer went away" error="Error: boom"',
  ]);
});

test("logger: JSON lines put time, level and event first and keep field names apart", () => {
  const { log, lines } = capture({ format: "json", fields: { node: "n1" } });
  log.log("error", "bad", { level: 7, big: 12n, bytes: new Uint8Array(3), nested: { a: [1] } });
  assert.deepEqual(JSON.parse(lines[0]), {
    time: "2026-01-02T03:04:05.006Z",
    level: "error",
    event: "bad",
    node: "n1",
    _level: 7,
    big: "12",
    bytes: "<3 bytes>",
    nested: { a: [1] },
  });
  assert.ok(lines[0].startsWith('{"time":'));
});

test("logger: entries below the level are dropped; the default level is info", () => {
  const { log, records } = capture();
  log.log("debug", "hidden");
  log.log("info", "shown");
  const strict = capture({ level: "error" });
  strict.log.log("warn", "hidden");
  strict.log.log("error", "shown");
  assert.deepEqual(records.map((r) => r.event), ["shown"]);
  assert.deepEqual(strict.records.map((r) => r.event), ["shown"]);
});

test("logger: a field that cannot be serialised does not lose the line", () => {
  const { log, lines } = capture({ format: "json" });
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  log.log("info", "odd", { cycle });
  assert.equal(JSON.parse(lines[0]).event, "odd");
  const text = capture();
  text.log.log("info", "odd", { cycle });
  assert.match(text.lines[0], /odd cycle=/);
});

test("logger: bad options throw a TypeError", () => {
  assert.throws(() => createLogger({ level: "loud" as "info" }), TypeError);
  assert.throws(() => createLogger({ format: "xml" as "json" }), TypeError);
});
