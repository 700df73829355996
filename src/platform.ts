/**
 * The platform seam: everything through which the core reaches the outside world.
 *
 * Time, randomness, sockets and logging come in through a {@link Platform} object and nowhere
 * else. The real adapters (`adapters/deno`, `adapters/bun`, `adapters/node`) and the simulator
 * (`sim/`) implement it exactly, so the node logic in `src/` runs unchanged in both.
 *
 * Every asynchronous outcome (a socket bound, a connection opened, bytes arrived, a timer
 * fired) is delivered through a callback, never a Promise: the simulator then runs the whole
 * cluster as one synchronous, totally ordered event loop. No callback is ever invoked
 * re-entrantly from inside the call that caused it; implementations defer it to a later turn.
 *
 * @module
 */

/** A network endpoint: an IPv4/IPv6 address (or `0.0.0.0` for "any") and a port. */
export interface Address {
  readonly host: string;
  readonly port: number;
}

/** A scheduled callback; cancelling an already-fired or cancelled timer is a no-op. */
export interface Timer {
  cancel(): void;
}

/**
 * A monotonic clock with one-shot timers. Call its methods on the clock (`clock.now()`, not a
 * detached `now`): the simulator's are methods of a class, not bound functions.
 */
export interface Clock {
  /** Milliseconds since an arbitrary origin; never goes backwards. May have a fraction. */
  now(): number;
  /**
   * Wall-clock milliseconds since the Unix epoch, for display and timestamps only: it may jump.
   * The simulator returns a fixed virtual epoch plus virtual time (plus the host's skew).
   */
  wallNow(): number;
  /** Calls `fn` once, `delayMs` (≥ 0) milliseconds from now. */
  schedule(delayMs: number, fn: () => void): Timer;
  /**
   * Optional: as {@link schedule}, but sets `spent` again instead of making a new timer when
   * `spent` is a timer of this clock whose callback is running or has run and that was not
   * cancelled since (a timer that re-arms itself each time then allocates nothing). Returns the
   * timer set: `spent` or a new one; cancelling `spent` afterwards cancels it if it is the one.
   * Clocks without it leave it undefined; callers then call `schedule`.
   */
  reschedule?(spent: Timer, delayMs: number, fn: () => void): Timer;
  /**
   * Calls `fn` once the current callback has returned, before any other I/O or timer callback
   * (a microtask): for work to batch within one turn, such as coalescing writes.
   */
  defer(fn: () => void): void;
}

/** A source of randomness. Real adapters draw from the OS; the simulator from its root seed. */
export interface Random {
  /** A uniform float in [0, 1). */
  next(): number;
  /** A uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number;
  /** Fills `bytes` with random bytes and returns it. */
  fill(bytes: Uint8Array): Uint8Array;
}

/** Log severities, in increasing order. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** A structured logger: an event name plus fields, never a pre-formatted string. */
export interface Logger {
  log(level: LogLevel, event: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** Why a stream connection closed. Delivered exactly once per connection. */
export type CloseReason =
  /** The peer closed gracefully (end of stream). */
  | "eof"
  /** The peer reset the connection, or it no longer exists (e.g. the peer host restarted). */
  | "reset"
  /** Nothing listens on the address that was dialled. */
  | "refused"
  /** The connection attempt or its data went unacknowledged for too long. */
  | "timeout"
  /** Another socket error; see the accompanying error. */
  | "error"
  /** This side called `end()` or `destroy()`. */
  | "local";

/** Callbacks of one stream connection. */
export interface StreamHandlers {
  /** The connection is established (dialled connections only; accepted ones start open). */
  onOpen?(conn: StreamConn): void;
  /** Bytes arrived, in order. The array is owned by the receiver from now on. */
  onData(conn: StreamConn, data: Uint8Array): void;
  /** Buffered bytes have been flushed after a `write` returned `false`. */
  onDrain?(conn: StreamConn): void;
  /** The connection is closed; called exactly once, and nothing is called after it. */
  onClose(conn: StreamConn, reason: CloseReason, error?: Error): void;
}

/** One end of an ordered, reliable byte stream (TCP or its simulation). */
export interface StreamConn {
  readonly local: Address;
  readonly remote: Address;
  readonly state: "connecting" | "open" | "closed";
  /**
   * Bytes accepted by `write` and not yet gone: real adapters count what the operating system
   * has not taken yet; the simulator counts what the peer has not received yet.
   */
  readonly bufferedBytes: number;
  /**
   * Queues `data` (which the caller must not modify afterwards) and returns `false` once the
   * buffer is over its high-water mark: the caller should then wait for `onDrain`. Writing to a
   * closed connection drops the bytes and returns `false`; its `onClose` already told why.
   */
  write(data: Uint8Array): boolean;
  /**
   * Closes gracefully: what is buffered (even if written before the connection opened) is
   * still sent, then the peer sees end-of-stream (`"eof"`). This side's `onClose("local")`
   * comes promptly; the bytes flush in the background.
   */
  end(): void;
  /**
   * Closes at once, discarding buffered bytes. The peer sees a reset where the runtime can
   * send one (Bun, Node, the simulator); Deno cannot, so there the peer sees end-of-stream.
   */
  destroy(): void;
}

/** A listening stream socket. */
export interface StreamListener {
  /** The bound address; `port` is the real one when 0 was asked for. */
  readonly local: Address;
  close(): void;
}

/** Options to listen for stream connections. */
export interface ListenOptions {
  readonly host: string;
  /** 0 asks for any free port. */
  readonly port: number;
}

/** Callbacks of a listener. */
export interface ListenHandlers {
  /** The listener is bound; `listener.local.port` is final. */
  onListening?(listener: StreamListener): void;
  /** Binding failed (e.g. {@link NetError} with code `EADDRINUSE`); the listener is closed. */
  onError?(error: Error): void;
  /** A peer connected; returns the handlers for the new, already open, connection. */
  onConnection(conn: StreamConn): StreamHandlers;
}

/** Options to bind a datagram socket. */
export interface DatagramBindOptions {
  readonly host: string;
  /** 0 asks for any free port. */
  readonly port: number;
  /** Let several sockets share the address and port (SO_REUSEADDR); broadcasts reach all. */
  readonly reuseAddress?: boolean;
  /**
   * Allow sending to broadcast addresses (SO_BROADCAST). Always ask for it before sending a
   * broadcast: without it the simulator throws, Bun and Node report an error through
   * `onError`, and Deno (which always allows broadcast) sends anyway.
   */
  readonly broadcast?: boolean;
}

/** Callbacks of a datagram socket; platforms call them as methods of this object. */
export interface DatagramHandlers {
  /** The socket is bound; `socket.local.port` is final. */
  onReady?(socket: DatagramSocket): void;
  /**
   * A datagram arrived. Treat `data` as read-only: the simulator hands one broadcast payload to
   * every receiving host without copying it. `atMs`, where the platform has it at hand, is the
   * receiving host's clock reading at the arrival (the simulator passes it: what `clock.now()`
   * returns during this call); real sockets leave it out, and callers then read the clock.
   */
  onMessage(data: Uint8Array, from: Address, atMs?: number): void;
  /** Binding or sending failed; after a binding failure the socket is closed. */
  onError?(error: Error): void;
}

/** A bound datagram (UDP) socket. */
export interface DatagramSocket {
  readonly local: Address;
  /**
   * Sends one datagram (unicast, or broadcast when `to.host` is a broadcast address). May be
   * called before `onReady`: the datagram is queued until the socket is bound. Throws a
   * `RangeError` when `data` is larger than the platform's datagram limit (65507 bytes). The
   * caller must not modify `data` afterwards: the simulator delivers the array itself.
   */
  send(data: Uint8Array, to: Address): void;
  close(): void;
}

/** Networking: datagrams and streams. */
export interface Net {
  /** Binds a datagram socket; readiness or failure arrives through `handlers`. */
  bindDatagram(options: DatagramBindOptions, handlers: DatagramHandlers): DatagramSocket;
  /** Listens for stream connections; readiness or failure arrives through `handlers`. */
  listen(options: ListenOptions, handlers: ListenHandlers): StreamListener;
  /** Dials a stream connection; the outcome arrives through `handlers` (`onOpen` or `onClose`). */
  connect(to: Address, handlers: StreamHandlers): StreamConn;
}

/** Everything the core may use of the world. */
export interface Platform {
  /** A short name of the runtime or world: `"deno"`, `"bun"`, `"node"`, `"sim"`. */
  readonly name: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly net: Net;
  readonly log: Logger;
}

/** Error codes a {@link NetError} carries, named as POSIX does. */
export type NetErrorCode =
  | "EADDRINUSE"
  | "EADDRNOTAVAIL"
  | "ECONNREFUSED"
  | "ECONNRESET"
  | "ETIMEDOUT"
  | "EMSGSIZE"
  | "EINVAL"
  | "EIO";

/**
 * A socket error that callers are expected to handle, such as a port already in use.
 *
 * @example
 * ```ts
 * import { NetError } from "./platform.ts";
 * const error = new NetError("EADDRINUSE", "Cannot listen on 127.0.0.1:8888: address in use");
 * console.assert(error.code === "EADDRINUSE");
 * ```
 */
export class NetError extends Error {
  /** The POSIX-style code. */
  readonly code: NetErrorCode;
  constructor(code: NetErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NetError";
    this.code = code;
  }
}

/**
 * Formats an address as `host:port`, bracketing IPv6 hosts.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./platform.ts";
 * console.assert(formatAddress({ host: "::1", port: 80 }) === "[::1]:80");
 * ```
 */
export function formatAddress(address: Address): string {
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

/**
 * Parses `host:port` (or `[v6]:port`) into an {@link Address}; throws a `TypeError` when the
 * text is not one.
 *
 * @example
 * ```ts
 * import { parseAddress } from "./platform.ts";
 * const address = parseAddress("10.0.0.7:8888");
 * console.assert(address.host === "10.0.0.7" && address.port === 8888);
 * ```
 */
export function parseAddress(text: string): Address {
  const match = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ??
    /^([^:\s[\]]+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) {
    throw new TypeError(`Cannot parse address "${text}": expected host:port`);
  }
  return { host: match[1], port };
}
