/**
 * The platform seam on Node's built-in modules: `node:dgram` (UDP) and `node:net` (TCP), with
 * `performance.now` and `setTimeout` for the clock and `crypto.getRandomValues` for
 * randomness. It is the adapter of the npm package, and runs on Deno and Bun as well, through
 * their `node:` modules.
 *
 * Behaviour worth knowing:
 * - `write` hands bytes to the socket, which buffers what the kernel cannot take yet;
 *   `bufferedBytes` is that buffer (`socket.writableLength`).
 * - `end()` is the socket's graceful `end()`: buffered bytes, then end-of-stream (`"eof"`)
 *   for the peer; the socket closes when the peer closes its side, or after `endLingerMs`.
 * - `destroy()` sends a TCP reset where the runtime can (`resetAndDestroy`, Node ≥ 16.17 and
 *   Deno and Bun today), so the peer sees `"reset"`; elsewhere it falls back to `destroy()`.
 *
 * @example
 * ```ts
 * import { createNodePlatform } from "./mod.ts";
 * const platform = createNodePlatform({ log: { level: "warn" } });
 * let greeting = "";
 * const listener = platform.net.listen({ host: "127.0.0.1", port: 0 }, {
 *   onListening: (self) =>
 *     platform.net.connect(self.local, {
 *       onOpen: (conn) => conn.end(),
 *       onData() {},
 *       onClose() {},
 *     }),
 *   onConnection: (conn) => {
 *     conn.write(new TextEncoder().encode("hello"));
 *     return { onData() {}, onClose: () => void (greeting = "closed") };
 *   },
 * });
 * for (let i = 0; i < 400 && greeting === ""; i++) await new Promise((r) => setTimeout(r, 5));
 * console.assert(greeting === "closed" && listener.local.port > 0);
 * await platform.close();
 * ```
 *
 * @module
 */
import net from "node:net";
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
  checkBindPort,
  checkHandlers,
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

export { createLogger, type LoggerOptions, type LogRecord } from "../_logger.ts";
export { type Closable, MAX_DATAGRAM_BYTES, type RealPlatformOptions } from "../_net.ts";
export {
  type FileStorage,
  type FileStorageOperation,
  type FileStorageOptions,
  type FileStorageRecovery,
  openFileStorage,
} from "../file_storage.ts";

/** Options of {@link createNodePlatform}. */
export type NodePlatformOptions = RealPlatformOptions;

/** The seam on `node:` modules, plus `close()` to release everything it opened. */
export interface NodePlatform extends Platform, Closable {}

/**
 * Creates the platform seam on `node:dgram` and `node:net`.
 *
 * @example
 * ```ts
 * import { createNodePlatform } from "./mod.ts";
 * const platform = createNodePlatform();
 * console.assert(platform.name === "node" && platform.random.int(1, 1) === 1);
 * await platform.close();
 * ```
 */
export function createNodePlatform(options: NodePlatformOptions = {}): NodePlatform {
  const settings = settingsOf("Node", options);
  const registry = new Registry("node");
  const clock = new RealClock();
  return {
    name: "node",
    clock,
    random: new CryptoRandom(),
    net: new NodeNet(registry, settings),
    log: settings.log,
    close: async () => {
      clock.close();
      await registry.close();
    },
  };
}

class NodeNet implements Net {
  constructor(readonly registry: Registry, readonly settings: Settings) {}

  bindDatagram(options: DatagramBindOptions, handlers: DatagramHandlers): DatagramSocket {
    checkHandlers(handlers, ["onMessage"], "bind datagram socket");
    checkBindPort(options.port, "bind datagram socket");
    return bindNodeDatagram(this.registry, options, handlers);
  }

  listen(options: ListenOptions, handlers: ListenHandlers): StreamListener {
    checkHandlers(handlers, ["onConnection"], "listen");
    checkBindPort(options.port, "listen");
    return new NodeListener(this.registry, this.settings, options, handlers);
  }

  connect(to: Address, handlers: StreamHandlers): StreamConn {
    checkHandlers(handlers, ["onData", "onClose"], "connect");
    const conn = new NodeConn(
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
      let socket: net.Socket;
      try {
        socket = net.connect({ host: to.host, port: to.port, allowHalfOpen: false });
      } catch (error) {
        conn.failSoon(toNetError(error, action));
        return conn;
      }
      conn.attach(socket);
    }
    return conn;
  }
}

class NodeConn extends BaseStreamConn {
  #socket: net.Socket | undefined;

  get bufferedBytes(): number {
    return this.released || this.#socket === undefined ? 0 : this.#socket.writableLength;
  }

  write(data: Uint8Array): boolean {
    if (!this.acceptWrite(data)) return false;
    const socket = this.#socket;
    if (data.length > 0 && socket !== undefined) {
      // The socket emits 'drain' only when its own mark was crossed, which may differ from
      // ours: while a drain is or may become owed, each write's callback checks for it.
      const owing = this.needDrain ||
        socket.writableLength + data.length >= this.settings.highWaterBytes;
      if (owing) socket.write(data, () => this.drained());
      else socket.write(data);
    }
    return this.belowHighWater();
  }

  failSoon(error: NetError): void {
    later(() => {
      this.closedBy(reasonOf(error.code), error);
      this.release();
    });
  }

  /** Takes over a socket: dialled (still connecting) or accepted (open). */
  attach(socket: net.Socket): void {
    this.#socket = socket;
    this.registry.track(new Promise((resolve) => socket.once("close", resolve)));
    if (this.settings.noDelay) socket.setNoDelay(true);
    if (this.state === "open") {
      this.local = localOf(socket);
      this.remote = remoteOf(socket);
    }
    socket.on("connect", () => {
      if (this.released) return;
      this.opened(localOf(socket), remoteOf(socket));
    });
    socket.on("data", (data: Uint8Array) => {
      this.received(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    socket.on("drain", () => this.drained());
    socket.on("end", () => {
      // The peer closed its side: end-of-stream; what is still buffered here is dropped.
      this.closedBy("eof");
      this.closeAbruptly(false);
    });
    socket.on("error", (error) => {
      const failure = this.opening
        ? connectError(error, this.remote)
        : toNetError(error, `use connection to ${describe(this.remote)}`);
      this.closedBy(reasonOf(failure.code), failure);
    });
    socket.on("close", () => {
      // An orderly close always brings 'end' or 'error' first; a bare close means it is gone.
      this.closedBy("reset");
      this.release();
    });
  }

  get opening(): boolean {
    return this.#socket?.connecting === true;
  }

  protected closeGracefully(): void {
    this.#socket?.end();
  }

  protected closeAbruptly(reset = true): void {
    const socket = this.#socket;
    if (socket === undefined) {
      this.release();
      return;
    }
    if (socket.destroyed) return;
    const withReset = (socket as { resetAndDestroy?: () => void }).resetAndDestroy;
    // Node 20 fails a reset after end() with EINVAL and then never closes the socket (nor lets
    // the process exit): once this side has ended, a plain destroy is the only way out.
    if (
      reset && typeof withReset === "function" && !socket.connecting && !socket.writableEnded
    ) {
      try {
        withReset.call(socket);
        return;
      } catch {
        // Not a TCP handle after all: plain destroy below.
      }
    }
    socket.destroy();
  }
}

function localOf(socket: net.Socket): Address {
  return { host: normalizeHost(socket.localAddress), port: socket.localPort ?? 0 };
}

function remoteOf(socket: net.Socket): Address {
  return { host: normalizeHost(socket.remoteAddress), port: socket.remotePort ?? 0 };
}

class NodeListener implements StreamListener, Resource {
  local: Address;
  #server: net.Server | undefined;
  #listening = false;
  #closed = false;

  constructor(
    readonly registry: Registry,
    settings: Settings,
    options: ListenOptions,
    handlers: ListenHandlers,
  ) {
    this.local = { host: options.host, port: options.port };
    const action = `listen on ${describe(options)}`;
    if (registry.closed) {
      this.#closed = true;
      later(() =>
        handlers.onError?.(new NetError("EIO", `Cannot ${action}: the platform is closed`))
      );
      return;
    }
    const server = net.createServer({ allowHalfOpen: false, pauseOnConnect: false });
    this.#server = server;
    registry.add(this);
    registry.track(new Promise((resolve) => server.once("close", resolve)));
    server.on("error", (error) => {
      if (this.#closed) return;
      if (!this.#listening) {
        this.close();
        const failure = toNetError(error, action);
        invoke(() => handlers.onError?.(failure));
        return;
      }
      settings.log.log("warn", "listener.error", {
        address: describe(this.local),
        error: String(error),
      });
    });
    server.on("connection", (socket: net.Socket) => {
      if (this.#closed) {
        socket.destroy();
        return;
      }
      const conn = new NodeConn(registry, settings, "open", remoteOf(socket), undefined);
      conn.attach(socket);
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
    });
    server.once("listening", () => {
      this.#listening = true;
      if (this.#closed) return;
      const address = server.address();
      if (address !== null && typeof address === "object") {
        this.local = { host: options.host, port: address.port };
      }
      invoke(() => handlers.onListening?.(this));
    });
    try {
      server.listen({ host: options.host, port: options.port, exclusive: true });
    } catch (error) {
      this.close();
      const failure = toNetError(error, action);
      later(() => handlers.onError?.(failure));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.registry.delete(this);
    try {
      this.#server?.close();
    } catch {
      // Not listening yet.
    }
  }

  forceClose(): void {
    this.close();
  }
}
