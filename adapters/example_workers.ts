/**
 * The example workers as the node program offers them: a registry of worker kinds (name →
 * factory of a worker from its GUID and text parameters), and the image fetcher the camera
 * uses on real runtimes. The program's `--worker KIND:GUID` uses the registry; the placement
 * layer can use the same to spawn workers of a kind on any node.
 *
 * @module
 */
import type { Worker } from "../src/worker.ts";
import { EchoWorker, TemplateWorker } from "../src/worker.ts";
import { KeyValueStoreWorker } from "../src/workers/kv.ts";
import { type FetchImage, IPCameraWorker } from "../src/workers/camera.ts";
import { type ScheduleEntry, SchedulerWorker } from "../src/workers/scheduler.ts";

/** Makes a worker of one kind from its GUID and text parameters. */
export type ExampleWorkerFactory = (
  guid: string,
  params: Readonly<Record<string, string>>,
) => Worker;

/** Defaults the registry's factories use when a parameter is not given. */
export interface ExampleWorkerEnvironment {
  /** How cameras fetch images. Default {@link fetchImageOverHttp}. */
  readonly fetchImage?: FetchImage;
  /** A camera's URL when none is given. Default {@link DEFAULT_CAMERA_URL}. */
  readonly cameraUrl?: string;
  /** The store cameras send to when none is given. Default `"Store0001"`, as the original. */
  readonly cameraStore?: string;
  /** A camera's interval when none is given. Default 2000, as the original. */
  readonly cameraIntervalMs?: number;
}

/**
 * Where a camera fetches when no URL is given: a snapshot on this machine's port 8080, the
 * path most IP cameras (and camera proxies such as motion or go2rtc) serve a still image on.
 */
export const DEFAULT_CAMERA_URL = "http://127.0.0.1:8080/snapshot.jpg";

/** The kinds {@link exampleWorkerKinds} knows, in the order `--help` lists them. */
export const EXAMPLE_WORKER_KINDS: readonly string[] = [
  "template",
  "echo",
  "kv",
  "camera",
  "scheduler",
];

/**
 * The parameters each kind of {@link exampleWorkerKinds} reads (any other is refused), so that
 * a spawn's parameters can be checked where it is asked for, before any node tries to make it.
 *
 * @example
 * ```ts
 * import { EXAMPLE_WORKER_PARAMETERS } from "./example_workers.ts";
 * console.assert(EXAMPLE_WORKER_PARAMETERS.kv.includes("maxValueBytes"));
 * ```
 */
export const EXAMPLE_WORKER_PARAMETERS: Readonly<Record<string, readonly string[]>> = {
  template: ["intervalMs"],
  echo: [],
  kv: ["maxValueBytes", "maxKeyLength"],
  camera: ["url", "store", "intervalMs", "timeoutMs", "maxImageBytes", "reportTo"],
  scheduler: ["entries", "maxEntries"],
};

function checkParams(kind: string, guid: string, params: Readonly<Record<string, string>>): void {
  if (params === null || typeof params !== "object") {
    throw new TypeError(`Cannot make ${kind} worker "${guid}": params must be an object`);
  }
  const known = EXAMPLE_WORKER_PARAMETERS[kind];
  for (const [name, value] of Object.entries(params)) {
    if (!known.includes(name)) {
      throw new TypeError(
        `Cannot make ${kind} worker "${guid}": unknown parameter "${name}" (known: ${
          known.join(", ") || "none"
        })`,
      );
    }
    if (typeof value !== "string") {
      throw new TypeError(`Cannot make ${kind} worker "${guid}": parameter "${name}" is not text`);
    }
  }
}

function numberParam(
  kind: string,
  guid: string,
  params: Readonly<Record<string, string>>,
  name: string,
): number | undefined {
  const text = params[name];
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) {
    throw new TypeError(
      `Cannot make ${kind} worker "${guid}": ${name} "${text}" is not a whole number`,
    );
  }
  return Number(text);
}

/** Reads the scheduler's `entries` parameter: a JSON array of entries (data as base64). */
function readEntries(guid: string, text: string | undefined): ScheduleEntry[] | undefined {
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TypeError(
      `Cannot make scheduler worker "${guid}": entries is not JSON (${(error as Error).message})`,
    );
  }
  if (!Array.isArray(parsed)) {
    throw new TypeError(`Cannot make scheduler worker "${guid}": entries must be a JSON array`);
  }
  return parsed.map((entry) => {
    if (entry === null || typeof entry !== "object") {
      throw new TypeError(`Cannot make scheduler worker "${guid}": each entry must be an object`);
    }
    const { data, ...rest } = entry as Record<string, unknown>;
    if (data !== undefined && typeof data !== "string") {
      throw new TypeError(`Cannot make scheduler worker "${guid}": an entry's data is base64`);
    }
    return {
      ...(rest as unknown as ScheduleEntry),
      message: (rest.message ?? {}) as Record<string, string>,
      ...(data === undefined ? {} : { data: Uint8Array.from(atob(data), (c) => c.charCodeAt(0)) }),
    };
  });
}

/**
 * The registry of example worker kinds: `template`, `echo`, `kv`, `camera`, `scheduler`, each
 * a factory `(guid, params) => Worker`. Parameters are text (numbers in decimal):
 *
 * - `template`: `intervalMs`.
 * - `echo`: none.
 * - `kv`: `maxValueBytes`, `maxKeyLength`.
 * - `camera`: `url`, `store`, `intervalMs`, `timeoutMs`, `maxImageBytes`, `reportTo`
 *   (defaults from `env`).
 * - `scheduler`: `entries` (a JSON array of `{ id, destination, message, everyMs?, at?,
 *   sendAs?, data? }`, data as base64), `maxEntries`.
 *
 * A factory throws a `TypeError` or `RangeError` for an unknown or bad parameter.
 *
 * @example
 * ```ts
 * import { exampleWorkerKinds } from "./example_workers.ts";
 * const kinds = exampleWorkerKinds({ fetchImage: () => Promise.resolve(new Uint8Array([0xff])) });
 * const camera = kinds.get("camera")!("Camera01", {
 *   url: "http://127.0.0.1:8080/a.jpg",
 *   store: "Store0002",
 * });
 * const store = kinds.get("kv")!("Store0002", {});
 * console.assert(camera.guid === "Camera01" && store.guid === "Store0002");
 * ```
 */
export function exampleWorkerKinds(
  env: ExampleWorkerEnvironment = {},
): Map<string, ExampleWorkerFactory> {
  const kinds = new Map<string, ExampleWorkerFactory>();
  const factory = (kind: string, make: ExampleWorkerFactory) =>
    kinds.set(kind, (guid, params = {}) => {
      checkParams(kind, guid, params);
      return make(guid, params);
    });
  factory(
    "template",
    (guid, params) =>
      new TemplateWorker(guid, { intervalMs: numberParam("template", guid, params, "intervalMs") }),
  );
  factory("echo", (guid) => new EchoWorker(guid));
  factory("kv", (guid, params) =>
    new KeyValueStoreWorker(guid, {
      maxValueBytes: numberParam("kv", guid, params, "maxValueBytes"),
      maxKeyLength: numberParam("kv", guid, params, "maxKeyLength"),
    }));
  factory("camera", (guid, params) =>
    new IPCameraWorker(guid, {
      fetchImage: env.fetchImage ?? fetchImageOverHttp,
      url: params.url ?? env.cameraUrl ?? DEFAULT_CAMERA_URL,
      store: params.store ?? env.cameraStore,
      intervalMs: numberParam("camera", guid, params, "intervalMs") ?? env.cameraIntervalMs,
      timeoutMs: numberParam("camera", guid, params, "timeoutMs"),
      maxImageBytes: numberParam("camera", guid, params, "maxImageBytes"),
      reportTo: params.reportTo,
    }));
  factory("scheduler", (guid, params) =>
    new SchedulerWorker(guid, {
      entries: readEntries(guid, params.entries),
      maxEntries: numberParam("scheduler", guid, params, "maxEntries"),
    }));
  return kinds;
}

/**
 * Fetches an image over HTTP with the runtime's `fetch` (Deno, Bun, Node): rejects on a non-2xx
 * status, gives up after `timeoutMs` (an `AbortSignal` timeout, rejecting with a
 * `TimeoutError`), and stops reading once the body is over `maxBytes` (the camera then refuses
 * it as oversize).
 *
 * @example
 * ```ts ignore
 * import { fetchImageOverHttp } from "./example_workers.ts";
 * const image = await fetchImageOverHttp("http://127.0.0.1:8080/snapshot.jpg", {
 *   timeoutMs: 2000,
 *   maxBytes: 4 << 20,
 * });
 * ```
 */
export const fetchImageOverHttp: FetchImage = async (url, { timeoutMs, maxBytes }) => {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) {
    await response.body?.cancel().catch(() => {});
    throw new Error(`Cannot fetch image from ${url}: HTTP ${response.status}`);
  }
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
    if (length > maxBytes) {
      // Enough to know it is too large: the rest is not read.
      await reader.cancel().catch(() => {});
      break;
    }
  }
  const image = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    image.set(chunk, offset);
    offset += chunk.length;
  }
  return image;
};
