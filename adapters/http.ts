/**
 * The node's state page and HTTP API, as a hono app. It uses no runtime API, so any adapter can
 * serve it (and tests can call it with `app.request`). It lives outside `src/` because the page
 * carries browser code.
 *
 * - `GET /` an HTML page: the node, its links, workers, known worker locations, and a live
 *   picture of the cluster that updates without reloading.
 * - `GET /state` the same as JSON.
 * - `GET /events` lifecycle events as server-sent events.
 * - `POST /messages` injects a MapMessage (`destination`, optional `source`, `message`, `data`
 *   as base64); `GET /messages` lists recent messages delivered to the node's external handlers.
 * - `POST /spawn` spawns a worker (`kind`, `guid`, optional `params` and `strategy`) on the node
 *   the placement strategy picks: 201 `{ node }`; `POST /stop` (`guid`) stops a spawned worker
 *   wherever it runs: 200 `{ stopped }`.
 *
 * With a token set, every POST needs it as `Authorization: Bearer <token>`.
 *
 * @module
 */
import { formatMetrics, metricsContentType } from "../src/metrics.ts";
import { type Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { MapMessage } from "../src/message.ts";
import type { AutoMpiNode, MessageInfo, NodeEvents } from "../src/node.ts";
import type { Clock, Timer } from "../src/platform.ts";
import { renderStatePage } from "./_state_page_html.ts";

/** Options of {@link createStateApp}. */
export interface StateAppOptions {
  /** The clock that paces server-sent-event keepalives. */
  readonly clock: Clock;
  /** How many delivered messages `GET /messages` keeps. Default 100. */
  readonly recentLimit?: number;
  /**
   * A bearer token that `POST /messages`, `/spawn` and `/stop` require (`Authorization: Bearer
   * <token>`). Leave it unset only while HTTP is bound to loopback.
   */
  readonly token?: string;
  /** Extra facts shown in `/state` under `info` (runtime, HTTP address, options…). */
  readonly info?: Readonly<Record<string, unknown>>;
  /** Largest accepted `POST /messages` body. Default 16 MiB. */
  readonly maxBodyBytes?: number;
}

/** A delivered message as `GET /messages` shows it. */
export interface RecentMessage {
  readonly destination: string;
  readonly source: string;
  readonly message: Record<string, string>;
  /** Base64, or `null` without data. */
  readonly data: string | null;
  readonly receivedAtMs: number;
  readonly fromNode: string | null;
  readonly via: MessageInfo["via"];
}

/** The app and a way to detach it from the node. */
export interface StateApp {
  readonly app: Hono;
  /** Stops recording messages and ends open event streams. */
  close(): void;
}

const EVENT_TYPES: ReadonlyArray<keyof NodeEvents> = [
  "started",
  "peer-discovered",
  "link-up",
  "link-down",
  "peer-lost",
  "undeliverable",
  "duplicate-guid",
  "protocol-error",
  "location-added",
  "location-removed",
  "worker-attached",
  "worker-detached",
  "worker-placed",
  "spawn-failed",
  "closed",
];

/** Standard padded base64 of bytes. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Decodes standard base64; throws a `TypeError` when the text is not base64. */
export function fromBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new TypeError("Cannot decode data: not padded standard base64");
  }
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Turns a lifecycle event into JSON-friendly data (messages are summarised, data dropped). */
function eventData(type: keyof NodeEvents, event: unknown): unknown {
  if (type === "undeliverable") {
    const { message, reason, detail } = event as NodeEvents["undeliverable"];
    return {
      reason,
      detail,
      destination: message.destination,
      source: message.source,
      message: { ...message.message },
      dataBytes: message.data?.length ?? null,
    };
  }
  return event;
}

/** Reads a message from `POST /messages` JSON; throws a `TypeError` naming what is wrong. */
export function parseMessageJson(body: unknown): MapMessage {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new TypeError("Cannot read message: the body must be a JSON object");
  }
  const { destination, source, message, data } = body as Record<string, unknown>;
  if (typeof destination !== "string" || destination === "") {
    throw new TypeError("Cannot read message: destination must be a non-empty string");
  }
  if (source !== undefined && typeof source !== "string") {
    throw new TypeError("Cannot read message: source must be a string");
  }
  const fields: Record<string, string> = Object.create(null);
  if (message !== undefined && message !== null) {
    if (typeof message !== "object" || Array.isArray(message)) {
      throw new TypeError("Cannot read message: message must be an object of strings");
    }
    for (const [key, value] of Object.entries(message)) {
      if (typeof value !== "string") {
        throw new TypeError(`Cannot read message: message["${key}"] is not a string`);
      }
      fields[key] = value;
    }
  }
  if (data !== undefined && data !== null && typeof data !== "string") {
    throw new TypeError("Cannot read message: data must be base64 text");
  }
  return {
    destination,
    source: source ?? "",
    message: fields,
    ...(typeof data === "string" ? { data: fromBase64(data) } : {}),
  };
}

/** A spawn as `POST /spawn` asks for it. */
export interface SpawnRequest {
  readonly kind: string;
  readonly guid: string;
  readonly params?: Readonly<Record<string, string>>;
  readonly strategy?: string;
}

/**
 * Reads a spawn from `POST /spawn` JSON; throws a `TypeError` naming what is wrong.
 *
 * @example
 * ```ts
 * import { parseSpawnJson } from "./http.ts";
 * const spawn = parseSpawnJson({ kind: "kv", guid: "Store9", params: { maxValueBytes: "1024" } });
 * console.assert(spawn.kind === "kv" && spawn.params?.maxValueBytes === "1024");
 * ```
 */
export function parseSpawnJson(body: unknown): SpawnRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new TypeError("Cannot read spawn: the body must be a JSON object");
  }
  const { kind, guid, params, strategy } = body as Record<string, unknown>;
  if (typeof kind !== "string" || kind === "") {
    throw new TypeError("Cannot read spawn: kind must be a non-empty string");
  }
  if (typeof guid !== "string" || guid === "") {
    throw new TypeError("Cannot read spawn: guid must be a non-empty string");
  }
  if (strategy !== undefined && (typeof strategy !== "string" || strategy === "")) {
    throw new TypeError("Cannot read spawn: strategy must be a non-empty string");
  }
  let fields: Record<string, string> | undefined;
  if (params !== undefined && params !== null) {
    if (typeof params !== "object" || Array.isArray(params)) {
      throw new TypeError("Cannot read spawn: params must be an object of strings");
    }
    fields = {};
    for (const [key, value] of Object.entries(params)) {
      if (typeof value !== "string") {
        throw new TypeError(`Cannot read spawn: params["${key}"] is not a string`);
      }
      fields[key] = value;
    }
  }
  return {
    kind,
    guid,
    ...(fields === undefined ? {} : { params: fields }),
    ...(strategy === undefined ? {} : { strategy: strategy as string }),
  };
}

/** Largest accepted `POST /spawn` or `POST /stop` body: placement caps params at 4096 chars. */
const MAX_PLACEMENT_BODY_BYTES = 64 << 10;

/**
 * Builds the state page and HTTP API of a node.
 *
 * @example
 * ```ts
 * import { createStateApp } from "./http.ts";
 * import type { AutoMpiNode } from "../src/node.ts";
 * import type { Platform } from "../src/platform.ts";
 * export function page(node: AutoMpiNode, platform: Platform) {
 *   const { app } = createStateApp(node, { clock: platform.clock });
 *   return app.fetch; // hand this to Deno.serve, Bun.serve or a Node HTTP server
 * }
 * ```
 */
export function createStateApp(node: AutoMpiNode, options: StateAppOptions): StateApp {
  const recentLimit = options.recentLimit ?? 100;
  const maxBodyBytes = options.maxBodyBytes ?? 16 << 20;
  const recent: RecentMessage[] = [];
  const streams = new Set<() => void>();
  const unsubscribe = node.onMessage((message, info) => {
    recent.push({
      destination: message.destination,
      source: message.source,
      message: { ...message.message },
      data: message.data === undefined ? null : toBase64(message.data),
      receivedAtMs: options.clock.wallNow(),
      fromNode: info.fromNode ?? null,
      via: info.via,
    });
    if (recent.length > recentLimit) recent.splice(0, recent.length - recentLimit);
  });

  const app = new Hono();

  app.get("/", (c) => c.html(renderStatePage(node.guid)));

  app.get("/state", (c) => {
    const state = node.state();
    return c.json({
      ...state,
      cluster: node.clusterView(),
      info: options.info ?? {},
    });
  });

  app.get("/messages", (c) => c.json(recent));

  // Prometheus text format, or OpenMetrics when the scraper asks for it.
  app.get("/metrics", (c) => {
    const openMetrics = (c.req.header("accept") ?? "").includes("application/openmetrics-text");
    return c.body(formatMetrics(node.metrics(), { openMetrics }), 200, {
      "content-type": metricsContentType({ openMetrics }),
    });
  });

  /** Whether the request carries the token, when one is set. */
  const authorized = (c: Context) =>
    options.token === undefined || c.req.header("authorization") === `Bearer ${options.token}`;

  /** The JSON body of a small POST; a string is the error to answer 400 or 413 with. */
  const readSmallJson = async (
    c: Context,
    what: string,
  ): Promise<{ body: unknown } | { error: string; status: 400 | 413 }> => {
    const tooLarge = `Cannot read ${what}: body over ${MAX_PLACEMENT_BODY_BYTES} bytes`;
    if (Number(c.req.header("content-length") ?? "0") > MAX_PLACEMENT_BODY_BYTES) {
      return { error: tooLarge, status: 413 };
    }
    const text = await c.req.text();
    if (text.length > MAX_PLACEMENT_BODY_BYTES) return { error: tooLarge, status: 413 };
    try {
      return { body: JSON.parse(text) };
    } catch (error) {
      return {
        error: `Cannot read ${what}: invalid JSON (${(error as Error).message})`,
        status: 400,
      };
    }
  };

  app.post("/messages", async (c) => {
    if (!authorized(c)) {
      return c.json({ error: "Cannot inject message: missing or wrong bearer token" }, 401);
    }
    const length = Number(c.req.header("content-length") ?? "0");
    if (length > maxBodyBytes) {
      return c.json({ error: `Cannot inject message: body over ${maxBodyBytes} bytes` }, 413);
    }
    let message: MapMessage;
    try {
      const text = await c.req.text();
      if (text.length > maxBodyBytes * 2) {
        throw new TypeError("Cannot read message: body too large");
      }
      message = parseMessageJson(JSON.parse(text));
    } catch (error) {
      const text = error instanceof SyntaxError
        ? `Cannot read message: invalid JSON (${error.message})`
        : (error as Error).message;
      return c.json({ error: text }, 400);
    }
    let reason: string | undefined;
    const off = node.on("undeliverable", (event) => {
      if (event.message === message) reason = event.reason;
    });
    let accepted: boolean;
    try {
      accepted = node.send(message);
    } catch (error) {
      return c.json({ error: (error as Error).message }, 400);
    } finally {
      off();
    }
    return c.json({ accepted, ...(reason ? { reason } : {}) }, accepted ? 202 : 409);
  });

  app.post("/spawn", async (c) => {
    if (!authorized(c)) {
      return c.json({ error: "Cannot spawn: missing or wrong bearer token" }, 401);
    }
    const read = await readSmallJson(c, "spawn");
    if ("error" in read) return c.json({ error: read.error }, read.status);
    let request: SpawnRequest;
    try {
      request = parseSpawnJson(read.body);
    } catch (error) {
      return c.json({ error: (error as Error).message }, 400);
    }
    try {
      const host = node.spawn(request.kind, request.guid, {
        params: request.params,
        strategy: request.strategy,
      });
      return c.json({ node: host }, 201);
    } catch (error) {
      // Bad arguments (an unknown strategy, params over the limits) are the caller's to fix;
      // the rest (placed already, no node hosts the kind, a full table) depend on the cluster.
      const status = error instanceof TypeError ? 400 : 409;
      return c.json({ error: (error as Error)?.message ?? String(error) }, status);
    }
  });

  app.post("/stop", async (c) => {
    if (!authorized(c)) {
      return c.json({ error: "Cannot stop worker: missing or wrong bearer token" }, 401);
    }
    const read = await readSmallJson(c, "stop");
    if ("error" in read) return c.json({ error: read.error }, read.status);
    const body = read.body as Record<string, unknown> | null;
    if (
      body === null || typeof body !== "object" || Array.isArray(body) ||
      typeof body.guid !== "string" || body.guid === ""
    ) {
      return c.json({ error: 'Cannot read stop: the body must be {"guid": "..."}' }, 400);
    }
    return c.json({ stopped: node.stopWorker(body.guid) }, 200);
  });

  app.get("/events", (c) =>
    streamSSE(c, async (stream) => {
      const queue: string[] = [];
      let wake: (() => void) | undefined;
      let done = false;
      const offs = EVENT_TYPES.map((type) =>
        node.on(type, (event) => {
          queue.push(JSON.stringify({ type, ...(eventData(type, event) as object) }));
          wake?.();
        })
      );
      let keepAlive: Timer | undefined;
      const ping = () => {
        queue.push("");
        wake?.();
        keepAlive = options.clock.schedule(15_000, ping);
      };
      keepAlive = options.clock.schedule(15_000, ping);
      const stop = () => {
        done = true;
        wake?.();
      };
      streams.add(stop);
      stream.onAbort(stop);
      try {
        await stream.writeSSE({ event: "hello", data: JSON.stringify({ guid: node.guid }) });
        while (!done) {
          if (queue.length === 0) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            continue;
          }
          const data = queue.shift()!;
          if (data === "") await stream.write(": keepalive\n\n");
          else await stream.writeSSE({ event: JSON.parse(data).type, data });
        }
      } finally {
        keepAlive?.cancel();
        for (const off of offs) off();
        streams.delete(stop);
      }
    }));

  return {
    app,
    close() {
      unsubscribe();
      for (const stop of [...streams]) stop();
    },
  };
}
