/**
 * Helpers for the hostile-input and link-fuzzing tests: a seeded generator, this runtime's
 * platform with its log captured, loopback ports, a recording worker, memory figures and a way
 * to force garbage collection.
 *
 * Works under both `deno test -A` and `bun test`: only `node:*` modules and web APIs.
 *
 * @module
 */
import process from "node:process";
import v8 from "node:v8";
import vm from "node:vm";
import { runtimeName } from "../adapters/runtime.ts";
import type { Logger, LogLevel, Platform } from "../src/platform.ts";
import type { MapMessage } from "../src/message.ts";
import { WorkerBase } from "../src/worker.ts";

// ---- randomness ------------------------------------------------------------------------------

/**
 * sfc32, seeded from (root seed, stream): small, fast, and the same on every runtime, so one
 * case or one schedule can be replayed from two numbers.
 */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d = 1;

  constructor(seed: number, stream = 0) {
    this.#a = seed >>> 0;
    this.#b = (stream * 0x9e3779b9) >>> 0;
    this.#c = (seed ^ 0xdeadbeef) >>> 0;
    for (let i = 0; i < 15; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** A uniform integer in [min, max], both inclusive (ranges up to 2³²). */
  int(min: number, max: number): number {
    return min + Math.floor((this.u32() / 0x1_0000_0000) * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }

  /** One of `choices`, each drawn in proportion to its weight. */
  weighted<T>(choices: ReadonlyArray<readonly [T, number]>): T {
    let total = 0;
    for (const [, weight] of choices) total += weight;
    let r = (this.u32() / 0x1_0000_0000) * total;
    for (const [value, weight] of choices) {
      if (r < weight) return value;
      r -= weight;
    }
    return choices[choices.length - 1][0];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const r = this.u32();
      out[i] = r;
      if (i + 1 < n) out[i + 1] = r >>> 8;
      if (i + 2 < n) out[i + 2] = r >>> 16;
      if (i + 3 < n) out[i + 3] = r >>> 24;
    }
    return out;
  }

  /** A small size, skewed towards 0: most draws stay cheap, a few are long. */
  size(max: number): number {
    const r = this.u32() / 0x1_0000_0000;
    return Math.floor(r * r * r * (max + 1));
  }
}

/** A seed for this run: `envName` from the environment if set, else a random one (printed). */
export function seedFrom(envName: string): number {
  const text = process.env[envName];
  return text === undefined ? Math.floor(Math.random() * 0x7fff_ffff) : Number(text);
}

// ---- logging ---------------------------------------------------------------------------------

/** One captured log entry. */
export interface CapturedLog {
  readonly level: LogLevel;
  readonly event: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/**
 * A {@link Logger} that keeps entries (up to `limit`; the rest are only counted by event), for
 * tests that check what a node says about hostile input.
 */
export class LogCapture implements Logger {
  readonly entries: CapturedLog[] = [];
  readonly countByEvent = new Map<string, number>();
  /** Called with every entry as it is logged. */
  onEntry: ((entry: CapturedLog) => void) | undefined;
  readonly #limit: number;

  constructor(limit = 50_000) {
    this.#limit = limit;
  }

  log(level: LogLevel, event: string, fields: Readonly<Record<string, unknown>> = {}): void {
    this.countByEvent.set(event, (this.countByEvent.get(event) ?? 0) + 1);
    const entry = { level, event, fields };
    if (this.entries.length < this.#limit) this.entries.push(entry);
    this.onEntry?.(entry);
  }

  count(event: string): number {
    return this.countByEvent.get(event) ?? 0;
  }

  of(event: string): CapturedLog[] {
    return this.entries.filter((entry) => entry.event === event);
  }

  /** Counts by event as `event×n`, for figures. */
  summary(): string {
    return [...this.countByEvent].map(([event, n]) => `${event}×${n}`).join(" ");
  }
}

/** This runtime's real platform (Deno, Bun, else Node) with `log` as its logger. */
export async function createTestPlatform(
  log: Logger,
  options: { streamHighWaterBytes?: number } = {},
): Promise<Platform & { close(): Promise<void> }> {
  const runtime = runtimeName();
  if (runtime === "deno") {
    const { createDenoPlatform } = await import("../adapters/deno/mod.ts");
    return createDenoPlatform({ log, ...options });
  }
  if (runtime === "bun") {
    const { createBunPlatform } = await import("../adapters/bun/mod.ts");
    return createBunPlatform({ log, ...options });
  }
  const { createNodePlatform } = await import("../adapters/node/mod.ts");
  return createNodePlatform({ log, ...options });
}

// ---- ports, waiting --------------------------------------------------------------------------

/** A random link port in 10000..19999. */
export function randomLinkPort(): number {
  return 10_000 + Math.floor(Math.random() * 10_000);
}

/** A random discovery port in 20000..29999. */
export function randomDiscoveryPort(): number {
  return 20_000 + Math.floor(Math.random() * 10_000);
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` every `intervalMs` until it is true; throws after `timeoutMs`. */
export async function waitUntil(
  predicate: () => boolean,
  timeoutMs: number,
  what: string,
  intervalMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() >= deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(intervalMs);
  }
}

// ---- workers ---------------------------------------------------------------------------------

/** A worker that records what it gets, in order. */
export class RecordingWorker extends WorkerBase {
  readonly received: MapMessage[] = [];

  constructor(guid: string) {
    super(guid, { queueLimit: 1_000_000 });
  }

  protected override onMessage(message: MapMessage): void {
    this.received.push(message);
  }
}

// ---- memory ----------------------------------------------------------------------------------

let gcFunction: (() => void) | undefined | null = null;

/** Runs a full garbage collection where the runtime allows it; returns whether it could. */
export function forceGc(): boolean {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun !== undefined) {
    bun.gc(true);
    return true;
  }
  if (gcFunction === null) {
    gcFunction = undefined;
    try {
      v8.setFlagsFromString("--expose-gc");
      const gc = vm.runInNewContext("gc");
      if (typeof gc === "function") gcFunction = gc as () => void;
    } catch {
      gcFunction = undefined;
    }
  }
  if (gcFunction === undefined) return false;
  gcFunction();
  return true;
}

/** Memory figures in bytes after a forced collection (if possible). */
export interface MemoryFigures {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly collected: boolean;
}

/**
 * Process memory after letting pending socket callbacks run and forcing two collections (where
 * the runtime allows: `Bun.gc`, or V8's `gc` exposed through `node:v8` on Deno).
 */
export async function memoryAfterGc(): Promise<MemoryFigures> {
  // Let closed sockets' callbacks run first, so what they free is free.
  await sleep(50);
  let collected = forceGc();
  await sleep(10);
  collected = forceGc() && collected;
  const usage = process.memoryUsage();
  return { rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external, collected };
}

/** `12.3 MiB`. */
export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
