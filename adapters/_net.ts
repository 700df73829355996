/**
 * What the three socket adapters share: the options, error mapping, argument checks, the
 * resource registry behind `platform.close()`, and the stream-connection state machine (close
 * reported exactly once, callbacks never re-entrant, nothing after `onClose`).
 *
 * @module
 */
import {
  type Address,
  type CloseReason,
  type DatagramHandlers,
  type ListenHandlers,
  type Logger,
  NetError,
  type NetErrorCode,
  type StreamConn,
  type StreamHandlers,
} from "../src/platform.ts";
import { createLogger, type LoggerOptions } from "./_logger.ts";

/** Options every real platform takes. */
export interface RealPlatformOptions {
  /** A stream's `write` returns `false` at or above this many buffered bytes. Default 1 MiB. */
  readonly streamHighWaterBytes?: number;
  /** Turn off Nagle's algorithm on stream connections (TCP_NODELAY). Default `true`. */
  readonly noDelay?: boolean;
  /**
   * After `end()`, how long buffered bytes may take to flush and the peer to close its side
   * before the connection is closed anyway. Default 30000.
   */
  readonly endLingerMs?: number;
  /** A logger, or options of the default structured logger (text lines on standard error). */
  readonly log?: Logger | LoggerOptions;
}

/** The extra API of a real platform beside the {@link Platform} seam. */
export interface Closable {
  /**
   * Closes every socket, listener and connection this platform opened (connections are
   * destroyed; their `onClose` says `"local"`), cancels its timers, makes later socket calls
   * fail, and resolves once the runtime has released them all.
   */
  close(): Promise<void>;
}

/** The largest IPv4 UDP payload: 65535 − 20 (IP header) − 8 (UDP header). */
export const MAX_DATAGRAM_BYTES = 65507;

/** Settings derived from {@link RealPlatformOptions}, with defaults applied. */
export interface Settings {
  readonly highWaterBytes: number;
  readonly noDelay: boolean;
  readonly endLingerMs: number;
  readonly log: Logger;
}

/** Applies defaults and checks options; throws a `RangeError`/`TypeError` on bad ones. */
export function settingsOf(runtime: string, options: RealPlatformOptions = {}): Settings {
  const highWaterBytes = options.streamHighWaterBytes ?? 1024 * 1024;
  if (!Number.isSafeInteger(highWaterBytes) || highWaterBytes < 1) {
    throw new RangeError(
      `Cannot create ${runtime} platform: streamHighWaterBytes ${highWaterBytes} is not a positive integer`,
    );
  }
  const endLingerMs = options.endLingerMs ?? 30_000;
  if (!(endLingerMs >= 0) || !Number.isFinite(endLingerMs)) {
    throw new RangeError(
      `Cannot create ${runtime} platform: endLingerMs ${endLingerMs} is not a finite number >= 0`,
    );
  }
  const log = options.log;
  return {
    highWaterBytes,
    noDelay: options.noDelay ?? true,
    endLingerMs,
    log: log !== undefined && typeof (log as Logger).log === "function"
      ? log as Logger
      : createLogger(log as LoggerOptions | undefined),
  };
}

// ---- errors --------------------------------------------------------------------------------------

const CODES: ReadonlySet<string> = new Set<NetErrorCode>([
  "EADDRINUSE",
  "EADDRNOTAVAIL",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EMSGSIZE",
  "EINVAL",
  "EIO",
]);

// POSIX codes outside NetErrorCode that mean one of ours.
const ALIASES: Readonly<Record<string, NetErrorCode>> = {
  EPIPE: "ECONNRESET",
  ECONNABORTED: "ECONNRESET",
  ENOTCONN: "ECONNRESET",
  EHOSTUNREACH: "ETIMEDOUT",
  ENETUNREACH: "ETIMEDOUT",
};

// Deno's error classes, for errors that carry no code.
const DENO_NAMES: Readonly<Record<string, NetErrorCode>> = {
  AddrInUse: "EADDRINUSE",
  AddrNotAvailable: "EADDRNOTAVAIL",
  ConnectionRefused: "ECONNREFUSED",
  ConnectionReset: "ECONNRESET",
  ConnectionAborted: "ECONNRESET",
  BrokenPipe: "ECONNRESET",
  NotConnected: "ECONNRESET",
  TimedOut: "ETIMEDOUT",
  InvalidData: "EINVAL",
};

/** The {@link NetErrorCode} of any runtime's socket error (`EIO` when nothing fits). */
export function codeOf(error: unknown): NetErrorCode {
  if (error instanceof NetError) return error.code;
  const raw = (error as { code?: unknown } | null)?.code;
  if (typeof raw === "string") {
    if (CODES.has(raw)) return raw as NetErrorCode;
    if (raw in ALIASES) return ALIASES[raw];
  }
  const name = (error as { name?: unknown } | null)?.name;
  if (typeof name === "string" && name in DENO_NAMES) return DENO_NAMES[name];
  const message = error instanceof Error ? error.message : String(error);
  if (/EMSGSIZE|message too long|os error 90\b/i.test(message)) return "EMSGSIZE";
  if (error instanceof TypeError || error instanceof URIError || error instanceof RangeError) {
    return "EINVAL";
  }
  return "EIO";
}

/** Wraps a runtime's error as a {@link NetError} "Cannot <action>: <its message>". */
export function toNetError(error: unknown, action: string): NetError {
  if (error instanceof NetError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new NetError(codeOf(error), `Cannot ${action}: ${message}`, { cause: error });
}

/**
 * The error of a connection attempt that failed. A reset before the connection opened means
 * the listener went away during the handshake (Deno, for one, closes a listener's socket only
 * after its pending accept is cancelled): to the dialler, nothing listens there.
 */
export function connectError(error: unknown, to: Address): NetError {
  const net = toNetError(error, `connect to ${describe(to)}`);
  if (net.code !== "ECONNRESET") return net;
  return new NetError(
    "ECONNREFUSED",
    `Cannot connect to ${describe(to)}: reset during the handshake (${net.message})`,
    { cause: error },
  );
}

/** The {@link CloseReason} a socket error stands for. */
export function reasonOf(code: NetErrorCode): CloseReason {
  switch (code) {
    case "ECONNREFUSED":
      return "refused";
    case "ECONNRESET":
      return "reset";
    case "ETIMEDOUT":
      return "timeout";
    default:
      return "error";
  }
}

// ---- arguments -----------------------------------------------------------------------------------

/** Throws a `TypeError` unless `handlers` is an object with the `required` functions. */
export function checkHandlers(
  handlers: StreamHandlers | ListenHandlers | DatagramHandlers,
  required: readonly string[],
  action: string,
): void {
  if (handlers === null || typeof handlers !== "object") {
    throw new TypeError(`Cannot ${action}: handlers must be an object`);
  }
  for (const name of required) {
    if (typeof (handlers as unknown as Record<string, unknown>)[name] !== "function") {
      throw new TypeError(`Cannot ${action}: handlers.${name} must be a function`);
    }
  }
}

/** Throws a `RangeError` unless `port` is an integer in [0, 65535]. */
export function checkBindPort(port: number, action: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Cannot ${action} on port ${port}: need an integer in [0, 65535]`);
  }
}

/** Whether `to` is an address one can send to or dial: a non-empty host and a port in 1..65535. */
export function isDialable(to: Address): boolean {
  return to !== null && typeof to === "object" && typeof to.host === "string" &&
    to.host !== "" && Number.isInteger(to.port) && to.port > 0 && to.port <= 65535;
}

/**
 * Checks a datagram send the way the simulator does: `TypeError` for data that is not bytes,
 * `RangeError` above {@link MAX_DATAGRAM_BYTES}, `NetError` `EINVAL` on a closed socket or a
 * bad address.
 */
export function checkSend(data: Uint8Array, to: Address, closed: boolean): void {
  if (!(data instanceof Uint8Array)) {
    throw new TypeError("Cannot send datagram: data is not a Uint8Array");
  }
  if (data.length > MAX_DATAGRAM_BYTES) {
    throw new RangeError(
      `Cannot send datagram of ${data.length} bytes: the limit is ${MAX_DATAGRAM_BYTES}`,
    );
  }
  if (closed) throw new NetError("EINVAL", "Cannot send datagram: the socket is closed");
  if (!isDialable(to)) {
    throw new NetError(
      "EINVAL",
      `Cannot send datagram to ${to?.host}:${to?.port}: not a host and port`,
    );
  }
}

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) as `1.2.3.4`; other hosts unchanged. */
export function normalizeHost(host: string | undefined): string {
  if (host === undefined) return "0.0.0.0";
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(host) ? host.slice(7) : host;
}

/** `host:port`, for messages. */
export function describe(address: Address): string {
  return `${address.host}:${address.port}`;
}

// ---- callbacks -----------------------------------------------------------------------------------

/**
 * Calls user code from a runtime event. An exception it throws is rethrown on its own (it stays
 * uncaught, as in any event handler) so that the adapter's own state stays consistent.
 */
export function invoke(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

/** Runs `fn` in a later microtask: the seam never calls back from inside the causing call. */
export function later(fn: () => void): void {
  queueMicrotask(() => invoke(fn));
}

// ---- ports being released ------------------------------------------------------------------------

const releasing = new Map<string, Promise<void>>();

/**
 * Notes that this process closed its socket on a port (`"tcp:8888"`, `"udp:9999"`) and that the
 * runtime lets go of the port only when `done` settles. Deno, for one, closes a socket only
 * once its pending accept or receive is cancelled, a turn later: binding the port again at
 * once would fail with EADDRINUSE, where the seam (like the operating system) frees it at once.
 */
export function markReleasing(key: string, done: Promise<unknown>): void {
  const settled = done.then(() => {}, () => {});
  releasing.set(key, settled);
  void settled.then(() => {
    if (releasing.get(key) === settled) releasing.delete(key);
  });
}

/** What a bind on the port must wait for before it can succeed, if anything. */
export function portReleased(key: string): Promise<void> | undefined {
  return releasing.get(key);
}

// ---- registry ------------------------------------------------------------------------------------

/** Something {@link Registry.close} can close at once. */
export interface Resource {
  forceClose(): void;
}

/** Everything a platform has open, and the background work it must wait for when closing. */
export class Registry {
  #closed = false;
  readonly #resources = new Set<Resource>();
  readonly #tasks = new Set<Promise<unknown>>();

  constructor(readonly runtime: string) {}

  get closed(): boolean {
    return this.#closed;
  }

  add(resource: Resource): void {
    this.#resources.add(resource);
  }

  delete(resource: Resource): void {
    this.#resources.delete(resource);
  }

  /** Keeps `task` until it settles, so that `close()` can wait for it; never rejects. */
  track(task: Promise<unknown>): void {
    const settled = task.then(() => {}, () => {});
    this.#tasks.add(settled);
    void settled.then(() => this.#tasks.delete(settled));
  }

  /** Closes every resource and waits for the tracked tasks, at most `maxWaitMs`. */
  async close(maxWaitMs = 5000): Promise<void> {
    this.#closed = true;
    for (const resource of [...this.#resources]) {
      try {
        resource.forceClose();
      } catch {
        // Closing is best effort; a resource that cannot close is released by the runtime.
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, maxWaitMs));
    try {
      // Closing one thing may start another task (a final write settling): loop until none.
      while (this.#tasks.size > 0) {
        const all = Promise.all([...this.#tasks]).then(() => "done" as const);
        if (await Promise.race([all, deadline.then(() => "late" as const)]) === "late") break;
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---- streams -------------------------------------------------------------------------------------

/**
 * The runtime-independent part of a stream connection: its state, exactly-once close
 * reporting, the deferral of local closes, drain signalling and the linger after `end()`.
 * Subclasses move the bytes.
 */
export abstract class BaseStreamConn implements StreamConn, Resource {
  local: Address = { host: "0.0.0.0", port: 0 };
  remote: Address;
  state: "connecting" | "open" | "closed";
  handlers: StreamHandlers | undefined;
  /** `write` returned `false`; `onDrain` is owed once the buffer empties. */
  protected needDrain = false;
  /** The runtime's socket is closed and forgotten. */
  protected released = false;
  /** `end()` was called: what is queued is still to be flushed before the socket closes. */
  protected ending = false;
  #reported = false;
  #linger: ReturnType<typeof setTimeout> | undefined;
  #resolveReleased!: () => void;
  /** Resolves once the runtime's socket is closed. */
  readonly whenReleased: Promise<void> = new Promise((resolve) => this.#resolveReleased = resolve);

  constructor(
    protected readonly registry: Registry,
    protected readonly settings: Settings,
    state: "connecting" | "open",
    remote: Address,
    handlers: StreamHandlers | undefined,
  ) {
    this.state = state;
    this.remote = remote;
    this.handlers = handlers;
    registry.add(this);
    registry.track(this.whenReleased);
  }

  abstract get bufferedBytes(): number;
  abstract write(data: Uint8Array): boolean;
  /** Flush what is queued, close the write side, let the peer close; then release. */
  protected abstract closeGracefully(): void;
  /** Close the runtime's socket now, dropping what is queued. */
  protected abstract closeAbruptly(): void;

  end(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.ending = true;
    this.#reportLater();
    this.closeGracefully();
    if (!this.released) {
      this.#linger = setTimeout(() => {
        this.#linger = undefined;
        if (!this.released) this.closeAbruptly();
      }, this.settings.endLingerMs);
    }
  }

  destroy(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.#reportLater();
    this.closeAbruptly();
  }

  forceClose(): void {
    if (this.state !== "closed") this.destroy();
    else if (!this.released) this.closeAbruptly();
  }

  /** The common checks of `write`; returns false when the bytes are to be dropped. */
  protected acceptWrite(data: Uint8Array): boolean {
    if (!(data instanceof Uint8Array)) {
      throw new TypeError("Cannot write: data is not a Uint8Array");
    }
    return this.state !== "closed";
  }

  /** What `write` returns once `data` is queued: below the high-water mark or not. */
  protected belowHighWater(): boolean {
    const below = this.bufferedBytes < this.settings.highWaterBytes;
    if (!below) this.needDrain = true;
    return below;
  }

  /** The runtime connected a dialled connection. */
  protected opened(local: Address, remote: Address): void {
    if (this.state !== "connecting") return;
    this.state = "open";
    this.local = local;
    this.remote = remote;
    const handlers = this.handlers;
    if (handlers?.onOpen) invoke(() => handlers.onOpen!(this));
  }

  /** Bytes arrived; dropped once the user has closed. */
  protected received(data: Uint8Array): void {
    if (this.state !== "open") return;
    const handlers = this.handlers;
    if (handlers) invoke(() => handlers.onData(this, data));
  }

  /** Call when the buffer may have emptied: signals `onDrain` if it is owed. */
  protected drained(): void {
    if (!this.needDrain || this.state !== "open" || this.bufferedBytes > 0) return;
    this.needDrain = false;
    later(() => {
      if (this.state === "open") this.handlers?.onDrain?.(this);
    });
  }

  /** The runtime closed the connection (peer, error); reported unless the user closed first. */
  protected closedBy(reason: CloseReason, error?: Error): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.#report(reason, error);
  }

  /** The runtime's socket is gone: forget it. */
  protected release(): void {
    if (this.released) return;
    this.released = true;
    if (this.#linger !== undefined) clearTimeout(this.#linger);
    this.#linger = undefined;
    this.registry.delete(this);
    this.#resolveReleased();
  }

  #reportLater(): void {
    queueMicrotask(() => this.#report("local"));
  }

  #report(reason: CloseReason, error?: Error): void {
    if (this.#reported) return;
    this.#reported = true;
    const handlers = this.handlers;
    if (handlers) invoke(() => handlers.onClose(this, reason, error));
  }
}

/** A write queue of byte chunks, consumed from the front, possibly partially. */
export class ByteQueue {
  readonly #chunks: Uint8Array[] = [];
  #head = 0;
  #offset = 0;
  #bytes = 0;

  get bytes(): number {
    return this.#bytes;
  }

  push(data: Uint8Array): void {
    this.#chunks.push(data);
    this.#bytes += data.length;
  }

  /**
   * The next bytes to hand to the socket: the front chunk's rest, or small chunks copied into
   * one of at most `maxBytes` (many small writes then cost one system call).
   */
  peek(maxBytes = 65536): Uint8Array | undefined {
    const chunks = this.#chunks;
    if (this.#head >= chunks.length) return undefined;
    const first = chunks[this.#head].subarray(this.#offset);
    if (first.length >= maxBytes / 4 || this.#head + 1 >= chunks.length) return first;
    let total = first.length;
    let end = this.#head + 1;
    while (end < chunks.length && total + chunks[end].length <= maxBytes) {
      total += chunks[end].length;
      end++;
    }
    if (end === this.#head + 1) return first;
    const joined = new Uint8Array(total);
    joined.set(first, 0);
    let at = first.length;
    for (let i = this.#head + 1; i < end; i++) {
      joined.set(chunks[i], at);
      at += chunks[i].length;
    }
    return joined;
  }

  /** Drops `count` bytes from the front. */
  consume(count: number): void {
    this.#bytes -= count;
    const chunks = this.#chunks;
    while (count > 0 && this.#head < chunks.length) {
      const rest = chunks[this.#head].length - this.#offset;
      if (count < rest) {
        this.#offset += count;
        return;
      }
      count -= rest;
      this.#head++;
      this.#offset = 0;
    }
    if (this.#head >= chunks.length || this.#head > 1024) {
      chunks.splice(0, this.#head);
      this.#head = 0;
    }
  }

  clear(): void {
    this.#chunks.length = 0;
    this.#head = 0;
    this.#offset = 0;
    this.#bytes = 0;
  }
}
