/**
 * The platform seam on Bun's native APIs: `Bun.udpSocket` (UDP), `Bun.listen` / `Bun.connect`
 * (TCP), `performance.now` and `setTimeout` (clock), `crypto.getRandomValues` (randomness).
 *
 * Behaviour worth knowing:
 * - `Bun.udpSocket` ignores address-reuse options, so a datagram socket bound with
 *   `reuseAddress: true` (several sockets sharing a discovery port) is made with `node:dgram`
 *   and `reuseAddr: true` instead, which Bun supports. Either way SO_BROADCAST is set only
 *   when `broadcast: true` is asked for.
 * - Bun's `socket.write` writes what the kernel takes at once and returns the count; the rest
 *   waits in a queue that Bun's `drain` event resumes. `bufferedBytes` is that queue.
 * - `end()` flushes the queue, then shuts down the write side (the peer sees `"eof"`), and
 *   the socket closes when the peer closes its side, or after `endLingerMs`.
 * - `destroy()` is `socket.terminate()`: the peer sees a TCP reset (`"reset"`).
 *
 * @example
 * ```ts ignore
 * import { createBunPlatform } from "./mod.ts";
 * const platform = createBunPlatform(); // on Bun only
 * const socket = platform.net.bindDatagram({ host: "127.0.0.1", port: 0 }, {
 *   onMessage: (data, from) => console.log(data.length, from),
 * });
 * await platform.close();
 * ```
 *
 * @module
 */
import {
  type Address,
  type DatagramBindOptions,
  type DatagramHandlers,
  type DatagramSocket,
  type ListenHandlers,
  type ListenOptions,
  type Net,
  NetError,
  type Platform,
  type StreamConn,
  type StreamHandlers,
  type StreamListener,
} from "../../src/platform.ts";
import { RealClock } from "../_clock.ts";
import { CryptoRandom } from "../_random.ts";
import {
  BaseStreamConn,
  ByteQueue,
  checkBindPort,
  checkHandlers,
  checkSend,
  type Closable,
  connectError,
  describe,
  invoke,
  isDialable,
  later,
  normalizeHost,
  type RealPlatformOptions,
  reasonOf,
  Registry,
  type Resource,
  type Settings,
  settingsOf,
  toNetError,
} from "../_net.ts";
import { bindNodeDatagram } from "../_node_dgram.ts";
import {
  type BunApi,
  bunApi,
  type BunSocket,
  type BunSocketHandler,
  type BunTcpListener,
  type BunUdpSocket,
} from "./_bun_types.ts";

export { createLogger, type LoggerOptions, type LogRecord } from "../_logger.ts";
export { type Closable, MAX_DATAGRAM_BYTES, type RealPlatformOptions } from "../_net.ts";
export {
  type FileStorage,
  type FileStorageOperation,
  type FileStorageOptions,
  type FileStorageRecovery,
  openFileStorage,
} from "../file_storage.ts";

/** Options of {@link createBunPlatform}. */
export type BunPlatformOptions = RealPlatformOptions;

/** The seam on Bun, plus `close()` to release everything it opened. */
export interface BunPlatform extends Platform, Closable {}

// Datagrams waiting for the socket to be bound or writable; beyond that, sends are dropped.
const MAX_QUEUED_DATAGRAMS = 1024;

/**
 * Creates the platform seam on Bun; throws a `TypeError` on other runtimes.
 *
 * @example
 * ```ts ignore
 * import { createBunPlatform } from "./mod.ts";
 * const platform = createBunPlatform({ streamHighWaterBytes: 256 * 1024 });
 * platform.clock.schedule(10, () => console.log("ten ms later"));
 * ```
 */
export function createBunPlatform(options: BunPlatformOptions = {}): BunPlatform {
  const api = bunApi();
  if (api === undefined) throw new TypeError("Cannot create Bun platform: this is not Bun");
  const settings = settingsOf("Bun", options);
  const registry = new Registry("bun");
  const clock = new RealClock();
  return {
    name: "bun",
    clock,
    random: new CryptoRandom(),
    net: new BunNet(api, registry, settings),
    log: settings.log,
    close: async () => {
      clock.close();
      await registry.close();
    },
  };
}

class BunNet implements Net {
  constructor(readonly api: BunApi, readonly registry: Registry, readonly settings: Settings) {}

  bindDatagram(options: DatagramBindOptions, handlers: DatagramHandlers): DatagramSocket {
    checkHandlers(handlers, ["onMessage"], "bind datagram socket");
    checkBindPort(options.port, "bind datagram socket");
    if (options.reuseAddress === true) return bindNodeDatagram(this.registry, options, handlers);
    return new BunDatagramSocket(this.api, this.registry, options, handlers);
  }

  listen(options: ListenOptions, handlers: ListenHandlers): StreamListener {
    checkHandlers(handlers, ["onConnection"], "listen");
    checkBindPort(options.port, "listen");
    return new BunListener(this.api, this.registry, this.settings, options, handlers);
  }

  connect(to: Address, handlers: StreamHandlers): StreamConn {
    checkHandlers(handlers, ["onData", "onClose"], "connect");
    const conn = new BunConn(
      this.registry,
      this.settings,
      "connecting",
      { host: to?.host, port: to?.port },
      handlers,
    );
    const action = `connect to ${to?.host}:${to?.port}`;
    if (this.registry.closed) {
      conn.failSoon(new NetError("EIO", `Cannot ${action}: the platform is closed`));
    } else if (!isDialable(to)) {
      conn.failSoon(new NetError("EINVAL", `Cannot ${action}: not a host and port`));
    } else {
      conn.dial(this.api, to);
    }
    return conn;
  }
}

class BunConn extends BaseStreamConn {
  readonly #queue = new ByteQueue();
  #socket: BunSocket | undefined;
  #writeShut = false;

  get bufferedBytes(): number {
    return this.#queue.bytes;
  }

  write(data: Uint8Array): boolean {
    if (!this.acceptWrite(data)) return false;
    if (data.length > 0) {
      const socket = this.#socket;
      if (socket !== undefined && this.#queue.bytes === 0) {
        const written = socket.write(data);
        if (written < data.length) this.#queue.push(written > 0 ? data.subarray(written) : data);
      } else {
        this.#queue.push(data);
      }
    }
    return this.belowHighWater();
  }

  failSoon(error: NetError): void {
    later(() => this.#connectFailed(error));
  }

  dial(api: BunApi, to: Address): void {
    const handler: BunSocketHandler = {
      binaryType: "uint8array",
      open: (socket) => this.#connected(socket),
      data: (_socket, data) => this.onBunData(data),
      drain: () => this.flush(),
      end: () => this.onBunEnd(),
      close: (_socket, error) => this.onBunClose(error),
      error: (_socket, error) => this.onBunError(error),
      // Deferred: Bun may report a failure from inside `Bun.connect` itself.
      connectError: (_socket, error) => later(() => this.#connectFailed(connectError(error, to))),
    };
    let connecting: Promise<BunSocket>;
    try {
      connecting = api.connect({
        hostname: to.host,
        port: to.port,
        allowHalfOpen: false,
        socket: handler,
      });
    } catch (error) {
      this.failSoon(connectError(error, to));
      return;
    }
    this.registry.track(connecting.catch((error) => this.#connectFailed(connectError(error, to))));
  }

  /** Takes over a connected socket (dialled or accepted). */
  adopt(socket: BunSocket): void {
    this.#socket = socket;
    if (this.settings.noDelay) {
      try {
        socket.setNoDelay(true);
      } catch {
        // Only a latency tweak.
      }
    }
    const local = { host: normalizeHost(socket.localAddress), port: socket.localPort };
    const remote = { host: normalizeHost(socket.remoteAddress), port: socket.remotePort };
    if (this.state === "connecting") {
      this.opened(local, remote);
    } else {
      this.local = local;
      this.remote = remote;
    }
  }

  /** Writes what is queued until the kernel is full (Bun's `drain` calls again). */
  flush(): void {
    const socket = this.#socket;
    if (socket === undefined || this.released) return;
    const queue = this.#queue;
    for (let chunk = queue.peek(); chunk !== undefined; chunk = queue.peek()) {
      const written = socket.write(chunk);
      if (written > 0) queue.consume(written);
      if (written < chunk.length) return;
    }
    this.drained();
    if (this.ending && !this.#writeShut) {
      this.#writeShut = true;
      // End-of-stream after the last byte; reading goes on until the peer closes too.
      socket.shutdown();
    }
  }

  onBunData(data: Uint8Array): void {
    this.received(data);
  }

  onBunEnd(): void {
    // The peer closed its side: end-of-stream; Bun closes ours (no half-open connections).
    this.closedBy("eof");
    this.#queue.clear();
  }

  onBunClose(error: Error | undefined): void {
    if (this.released) return;
    if (error !== undefined) {
      const failure = toNetError(error, `use connection to ${describe(this.remote)}`);
      this.closedBy(reasonOf(failure.code), failure);
    } else {
      this.closedBy("eof");
    }
    this.#queue.clear();
    this.release();
  }

  onBunError(error: Error): void {
    if (this.released) return;
    const failure = toNetError(error, `use connection to ${describe(this.remote)}`);
    this.closedBy(reasonOf(failure.code), failure);
    this.closeAbruptly();
  }

  protected closeGracefully(): void {
    this.flush(); // without a socket yet, #connected flushes and shuts down once it opens
  }

  protected closeAbruptly(): void {
    this.#queue.clear();
    if (this.released) return;
    try {
      this.#socket?.terminate();
    } catch {
      // Already closed.
    }
    this.release();
  }

  #connected(socket: BunSocket): void {
    if (this.released) {
      socket.terminate(); // destroyed while connecting
      return;
    }
    this.adopt(socket);
    this.flush();
  }

  #connectFailed(error: NetError): void {
    if (this.released) return;
    this.closedBy(reasonOf(error.code), error);
    this.#queue.clear();
    this.release();
  }
}

class BunListener implements StreamListener, Resource {
  local: Address;
  #inner: BunTcpListener | undefined;
  #closed = false;

  constructor(
    api: BunApi,
    readonly registry: Registry,
    settings: Settings,
    options: ListenOptions,
    handlers: ListenHandlers,
  ) {
    this.local = { host: options.host, port: options.port };
    const action = `listen on ${describe(options)}`;
    if (registry.closed) {
      this.#fail(handlers, new NetError("EIO", `Cannot ${action}: the platform is closed`));
      return;
    }
    const conns = new WeakMap<BunSocket, BunConn>();
    const socketHandler: BunSocketHandler = {
      binaryType: "uint8array",
      open: (socket) => this.#accept(socket, handlers, settings, conns),
      data: (socket, data) => conns.get(socket)?.onBunData(data),
      drain: (socket) => conns.get(socket)?.flush(),
      end: (socket) => conns.get(socket)?.onBunEnd(),
      close: (socket, error) => conns.get(socket)?.onBunClose(error),
      error: (socket, error) => conns.get(socket)?.onBunError(error),
    };
    try {
      this.#inner = api.listen({
        hostname: options.host,
        port: options.port,
        allowHalfOpen: false,
        socket: socketHandler,
      });
    } catch (error) {
      this.#fail(handlers, toNetError(error, action));
      return;
    }
    this.local = { host: options.host, port: this.#inner.port };
    registry.add(this);
    later(() => {
      if (!this.#closed) handlers.onListening?.(this);
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.registry.delete(this);
    try {
      this.#inner?.stop(false); // accepted connections stay open
    } catch {
      // Already stopped.
    }
  }

  forceClose(): void {
    this.close();
  }

  #fail(handlers: ListenHandlers, error: NetError): void {
    this.#closed = true;
    later(() => handlers.onError?.(error));
  }

  #accept(
    socket: BunSocket,
    handlers: ListenHandlers,
    settings: Settings,
    conns: WeakMap<BunSocket, BunConn>,
  ): void {
    if (this.#closed) {
      socket.terminate();
      return;
    }
    const remote = { host: normalizeHost(socket.remoteAddress), port: socket.remotePort };
    const conn = new BunConn(this.registry, settings, "open", remote, undefined);
    conns.set(socket, conn);
    conn.adopt(socket);
    let connHandlers: StreamHandlers;
    try {
      connHandlers = handlers.onConnection(conn);
      checkHandlers(connHandlers, ["onData", "onClose"], "accept connection");
    } catch (error) {
      conn.destroy();
      invoke(() => {
        throw error;
      });
      return;
    }
    conn.handlers = connHandlers;
  }
}

class BunDatagramSocket implements DatagramSocket, Resource {
  local: Address;
  #socket: BunUdpSocket | undefined;
  #closed = false;
  #pending: Array<readonly [Uint8Array, Address]> = [];

  constructor(
    api: BunApi,
    readonly registry: Registry,
    readonly options: DatagramBindOptions,
    readonly handlers: DatagramHandlers,
  ) {
    this.local = { host: options.host, port: options.port };
    const action = `bind datagram socket to ${describe(options)}`;
    if (registry.closed) {
      this.#fail(new NetError("EIO", `Cannot ${action}: the platform is closed`));
      return;
    }
    let binding: Promise<BunUdpSocket>;
    try {
      binding = api.udpSocket({
        hostname: options.host,
        port: options.port,
        binaryType: "uint8array",
        socket: {
          data: (_socket, data, port, address) => {
            if (this.#closed) return;
            const from = { host: normalizeHost(address), port };
            invoke(() => handlers.onMessage(data, from));
          },
          drain: () => this.#flush(),
          error: (_socket, error) => {
            if (this.#closed) return;
            const failure = toNetError(error, `use datagram socket ${describe(this.local)}`);
            invoke(() => handlers.onError?.(failure));
          },
        },
      });
    } catch (error) {
      this.#fail(toNetError(error, action));
      return;
    }
    registry.add(this);
    registry.track(binding.then(
      (socket) => this.#bound(socket, action),
      (error) => {
        if (this.#closed) return;
        this.close();
        const failure = toNetError(error, action);
        invoke(() => handlers.onError?.(failure));
      },
    ));
  }

  send(data: Uint8Array, to: Address): void {
    checkSend(data, to, this.#closed);
    if (this.#socket === undefined || this.#pending.length > 0) {
      // Not bound yet, or the kernel was full: wait, in order, with a copy of the bytes.
      if (this.#pending.length < MAX_QUEUED_DATAGRAMS) this.#pending.push([data.slice(), to]);
      return;
    }
    this.#sendNow(this.#socket, data, to);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    this.registry.delete(this);
    try {
      this.#socket?.close();
    } catch {
      // Already closed.
    }
  }

  forceClose(): void {
    this.close();
  }

  #fail(error: NetError): void {
    this.#closed = true;
    later(() => this.handlers.onError?.(error));
  }

  #bound(socket: BunUdpSocket, action: string): void {
    if (this.#closed) {
      socket.close();
      return;
    }
    this.#socket = socket;
    try {
      if (this.options.broadcast === true) socket.setBroadcast(true);
    } catch (error) {
      this.close();
      const failure = toNetError(error, action);
      invoke(() => this.handlers.onError?.(failure));
      return;
    }
    this.local = { host: this.options.host, port: socket.port };
    this.#flush();
    invoke(() => this.handlers.onReady?.(this));
  }

  /** Sends now; returns false when the kernel is full and the datagram was queued. */
  #sendNow(socket: BunUdpSocket, data: Uint8Array, to: Address): boolean {
    try {
      if (socket.send(data, to.port, to.host)) return true;
      this.#pending.unshift([data.slice(), to]);
      return false;
    } catch (error) {
      const failure = toNetError(error, `send datagram to ${describe(to)}`);
      later(() => this.handlers.onError?.(failure));
      return true;
    }
  }

  #flush(): void {
    const socket = this.#socket;
    if (socket === undefined || this.#closed) return;
    while (this.#pending.length > 0) {
      const [data, to] = this.#pending.shift()!;
      if (!this.#sendNow(socket, data, to)) return;
    }
  }
}
