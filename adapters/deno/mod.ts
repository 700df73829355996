/**
 * The platform seam on Deno's own APIs: `Deno.listenDatagram` (UDP; needs `--unstable-net` or
 * `"unstable": ["net"]` in deno.json), `Deno.listen` / `Deno.connect` (TCP), `performance.now`
 * and `setTimeout` (clock), `crypto.getRandomValues` (randomness).
 *
 * Behaviour worth knowing:
 * - Deno sets SO_BROADCAST on every datagram socket, so `broadcast: false` does not stop a
 *   send to a broadcast address here (it does on Bun, Node and in the simulator).
 * - `write` queues the bytes and a background loop hands them to the socket, which may take
 *   fewer than asked at a time; `bufferedBytes` is what the queue still holds.
 * - `end()` flushes the queue, shuts down the write side (the peer sees `"eof"` after the
 *   last byte), and keeps reading, discarding, until the peer closes its side or
 *   `endLingerMs` pass. `onClose(conn, "local")` comes at once, as in the simulator.
 * - `destroy()` closes the socket at once. Deno cannot send a TCP reset on purpose (no
 *   SO_LINGER), so the peer sees `"eof"`, or `"reset"` when unread bytes were pending.
 *
 * @example
 * ```ts
 * import { createDenoPlatform } from "./mod.ts";
 * const platform = createDenoPlatform({ log: { level: "warn" } });
 * const got: string[] = [];
 * const socket = platform.net.bindDatagram({ host: "127.0.0.1", port: 0 }, {
 *   onMessage: (data) => got.push(new TextDecoder().decode(data)),
 *   onReady: (self) => self.send(new TextEncoder().encode("hi"), self.local),
 * });
 * for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
 * console.assert(got[0] === "hi" && socket.local.port > 0);
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
  markReleasing,
  normalizeHost,
  portReleased,
  type RealPlatformOptions,
  reasonOf,
  Registry,
  type Resource,
  type Settings,
  settingsOf,
  toNetError,
} from "../_net.ts";

export { createLogger, type LoggerOptions, type LogRecord } from "../_logger.ts";
export { type Closable, MAX_DATAGRAM_BYTES, type RealPlatformOptions } from "../_net.ts";
export {
  type FileStorage,
  type FileStorageOperation,
  type FileStorageOptions,
  type FileStorageRecovery,
  openFileStorage,
} from "../file_storage.ts";

/** Options of {@link createDenoPlatform}. */
export type DenoPlatformOptions = RealPlatformOptions;

/** The seam on Deno, plus `close()` to release everything it opened. */
export interface DenoPlatform extends Platform, Closable {}

// Bytes read per receive: a whole datagram (at most 65507 over IPv4) always fits.
const READ_BUFFER_BYTES = 65536;
// A datagram socket whose receive fails this many times in a row is closed.
const MAX_RECEIVE_FAILURES = 8;
// Datagrams waiting behind one being sent; beyond that, sends are dropped, as a full kernel does.
const MAX_QUEUED_DATAGRAMS = 1024;
const ACCEPT_RETRY_MS = 100;

/**
 * Creates the platform seam on Deno. Needs `--allow-net`; datagrams need `--unstable-net`.
 *
 * @example
 * ```ts
 * import { createDenoPlatform } from "./mod.ts";
 * const platform = createDenoPlatform();
 * const fired: number[] = [];
 * platform.clock.schedule(40, () => fired.push(2));
 * platform.clock.schedule(1, () => fired.push(1));
 * await new Promise((resolve) => platform.clock.schedule(60, () => resolve(undefined)));
 * console.assert(fired.join() === "1,2");
 * await platform.close();
 * ```
 */
export function createDenoPlatform(options: DenoPlatformOptions = {}): DenoPlatform {
  if (typeof Deno === "undefined" || typeof Deno.listen !== "function") {
    throw new TypeError("Cannot create Deno platform: this is not Deno");
  }
  const settings = settingsOf("Deno", options);
  const registry = new Registry("deno");
  const clock = new RealClock();
  return {
    name: "deno",
    clock,
    random: new CryptoRandom(),
    net: new DenoNet(registry, settings),
    log: settings.log,
    close: async () => {
      clock.close();
      await registry.close();
    },
  };
}

class DenoNet implements Net {
  constructor(readonly registry: Registry, readonly settings: Settings) {}

  bindDatagram(options: DatagramBindOptions, handlers: DatagramHandlers): DatagramSocket {
    checkHandlers(handlers, ["onMessage"], "bind datagram socket");
    checkBindPort(options.port, "bind datagram socket");
    const socket = new DenoDatagramSocket(this.registry, handlers, options);
    const action = `bind datagram socket to ${describe(options)}`;
    if (this.registry.closed) {
      socket.failBind(new NetError("EIO", `Cannot ${action}: the platform is closed`));
    } else if (typeof Deno.listenDatagram !== "function") {
      socket.failBind(
        new NetError(
          "EIO",
          `Cannot ${action}: Deno.listenDatagram needs --unstable-net ("unstable": ["net"])`,
        ),
      );
    } else {
      socket.open();
    }
    return socket;
  }

  listen(options: ListenOptions, handlers: ListenHandlers): StreamListener {
    checkHandlers(handlers, ["onConnection"], "listen");
    checkBindPort(options.port, "listen");
    const listener = new DenoListener(this.registry, this.settings, options, handlers);
    if (this.registry.closed) {
      listener.fail(
        new NetError("EIO", `Cannot listen on ${describe(options)}: the platform is closed`),
      );
    } else {
      listener.open(options);
    }
    return listener;
  }

  connect(to: Address, handlers: StreamHandlers): StreamConn {
    checkHandlers(handlers, ["onData", "onClose"], "connect");
    const conn = new DenoConn(
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
      this.registry.track(conn.dial(to));
    }
    return conn;
  }
}

function netAddress(address: Deno.Addr): Address {
  const net = address as Deno.NetAddr;
  return { host: normalizeHost(net.hostname), port: net.port };
}

class DenoConn extends BaseStreamConn {
  readonly #queue = new ByteQueue();
  #tcp: Deno.TcpConn | undefined;
  #writing = false;
  #writeShut = false;

  get bufferedBytes(): number {
    return this.#queue.bytes;
  }

  write(data: Uint8Array): boolean {
    if (!this.acceptWrite(data)) return false;
    if (data.length > 0) {
      this.#queue.push(data);
      if (this.#tcp !== undefined && !this.#writing) this.#pump(this.#tcp);
    }
    return this.belowHighWater();
  }

  /** Reports a failure that happened before any connecting, in a later turn. */
  failSoon(error: NetError): void {
    later(() => {
      this.closedBy(reasonOf(error.code), error);
      this.release();
    });
  }

  async dial(to: Address): Promise<void> {
    let tcp: Deno.TcpConn;
    try {
      tcp = await Deno.connect({ transport: "tcp", hostname: to.host, port: to.port });
    } catch (error) {
      if (this.released) return;
      const net = connectError(error, to);
      this.closedBy(reasonOf(net.code), net);
      this.release();
      return;
    }
    if (this.released) {
      tcp.close(); // destroyed while connecting
      return;
    }
    this.attach(tcp);
    this.start();
  }

  /** Takes over a connected socket (dialled or accepted). */
  attach(tcp: Deno.TcpConn): void {
    this.#tcp = tcp;
    if (this.settings.noDelay) {
      try {
        tcp.setNoDelay(true);
      } catch {
        // Only a latency tweak.
      }
    }
    const local = netAddress(tcp.localAddr);
    const remote = netAddress(tcp.remoteAddr);
    if (this.state === "connecting") {
      this.opened(local, remote);
    } else {
      this.local = local;
      this.remote = remote;
    }
  }

  /** Starts reading, and writing what was queued before the socket was there. */
  start(): void {
    const tcp = this.#tcp;
    if (tcp === undefined || this.released) return;
    this.registry.track(this.#read(tcp));
    if (this.#writing) return;
    if (this.#queue.bytes > 0) this.#pump(tcp);
    else if (this.ending) this.#shutWrite(tcp);
  }

  protected closeGracefully(): void {
    const tcp = this.#tcp;
    if (tcp === undefined || this.#writing) return; // the dial or the pump finishes the job
    if (this.#queue.bytes > 0) this.#pump(tcp);
    else this.#shutWrite(tcp);
  }

  protected closeAbruptly(): void {
    this.#queue.clear();
    if (this.released) return;
    try {
      this.#tcp?.close();
    } catch {
      // Already closed by the runtime.
    }
    this.release();
  }

  async #read(tcp: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    for (;;) {
      let count: number | null;
      try {
        count = await tcp.read(buffer);
      } catch (error) {
        this.#fail(error, "read from");
        return;
      }
      if (this.released) return;
      if (count === null) {
        // The peer closed its side: report end-of-stream (unless this side closed first),
        // then close ours; the bytes still queued have nobody to read them.
        this.closedBy("eof");
        this.closeAbruptly();
        return;
      }
      this.received(buffer.slice(0, count));
    }
  }

  #pump(tcp: Deno.TcpConn): void {
    this.#writing = true;
    this.registry.track(this.#writeAll(tcp));
  }

  async #writeAll(tcp: Deno.TcpConn): Promise<void> {
    const queue = this.#queue;
    try {
      for (let chunk = queue.peek(); chunk !== undefined; chunk = queue.peek()) {
        const written = await tcp.write(chunk);
        if (this.released) return;
        queue.consume(written);
      }
    } catch (error) {
      this.#writing = false;
      this.#fail(error, "write to");
      return;
    }
    this.#writing = false;
    this.drained();
    if (this.ending) this.#shutWrite(tcp);
  }

  #shutWrite(tcp: Deno.TcpConn): void {
    if (this.#writeShut || this.released) return;
    this.#writeShut = true;
    // The read loop goes on, discarding, until the peer closes too (or the linger ends).
    this.registry.track(tcp.closeWrite().catch(() => this.closeAbruptly()));
  }

  #fail(error: unknown, action: string): void {
    if (this.released) return;
    const net = toNetError(error, `${action} ${describe(this.remote)}`);
    this.closedBy(reasonOf(net.code), net);
    this.closeAbruptly();
  }
}

class DenoListener implements StreamListener, Resource {
  local: Address;
  #inner: Deno.TcpListener | undefined;
  #accepting: Promise<void> | undefined;
  #closed = false;

  constructor(
    readonly registry: Registry,
    readonly settings: Settings,
    options: ListenOptions,
    readonly handlers: ListenHandlers,
  ) {
    this.local = { host: options.host, port: options.port };
  }

  fail(error: NetError): void {
    this.#closed = true;
    later(() => this.handlers.onError?.(error));
  }

  /** Binds, after this process's last socket on the port is really gone (see `markReleasing`). */
  open(options: ListenOptions): void {
    const released = options.port === 0 ? undefined : portReleased(`tcp:${options.port}`);
    if (released === undefined) {
      this.#bind(options);
      return;
    }
    this.registry.add(this);
    this.registry.track(released.then(() => {
      if (!this.#closed) this.#bind(options);
    }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.registry.delete(this);
    try {
      this.#inner?.close();
    } catch {
      // Already closed.
    }
    if (this.#accepting !== undefined) markReleasing(`tcp:${this.local.port}`, this.#accepting);
  }

  forceClose(): void {
    this.close();
  }

  #bind(options: ListenOptions): void {
    let inner: Deno.TcpListener;
    try {
      inner = Deno.listen({ transport: "tcp", hostname: options.host, port: options.port });
    } catch (error) {
      this.registry.delete(this);
      this.fail(toNetError(error, `listen on ${describe(options)}`));
      return;
    }
    this.#inner = inner;
    this.local = { host: options.host, port: inner.addr.port };
    this.registry.add(this);
    later(() => {
      if (!this.#closed) this.handlers.onListening?.(this);
    });
    this.#accepting = this.#acceptAll(inner, this.handlers, this.settings);
    this.registry.track(this.#accepting);
  }

  async #acceptAll(
    inner: Deno.TcpListener,
    handlers: ListenHandlers,
    settings: Settings,
  ): Promise<void> {
    for (;;) {
      let tcp: Deno.TcpConn;
      try {
        tcp = await inner.accept();
      } catch (error) {
        if (this.#closed) return;
        if (error instanceof Deno.errors.BadResource) {
          this.close();
          return;
        }
        // Out of file descriptors and the like: wait a little and go on serving.
        settings.log.log("warn", "listener.accept-failed", {
          address: describe(this.local),
          error: String(error),
        });
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      if (this.#closed) {
        tcp.close();
        return;
      }
      this.#accept(tcp, handlers, settings);
    }
  }

  #accept(tcp: Deno.TcpConn, handlers: ListenHandlers, settings: Settings): void {
    const conn = new DenoConn(
      this.registry,
      settings,
      "open",
      netAddress(tcp.remoteAddr),
      undefined,
    );
    conn.attach(tcp);
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
    conn.start();
  }
}

class DenoDatagramSocket implements DatagramSocket, Resource {
  local: Address;
  #conn: Deno.DatagramConn | undefined;
  #receiving: Promise<void> | undefined;
  #closed = false;
  #sending = false;
  #queue: Array<readonly [Uint8Array, Address]> = [];

  constructor(
    readonly registry: Registry,
    readonly handlers: DatagramHandlers,
    readonly options: DatagramBindOptions,
  ) {
    this.local = { host: options.host, port: options.port };
  }

  failBind(error: NetError): void {
    this.#closed = true;
    later(() => this.handlers.onError?.(error));
  }

  /** Binds, after this process's last socket on the port is really gone (see `markReleasing`). */
  open(): void {
    const port = this.options.port;
    const released = port === 0 ? undefined : portReleased(`udp:${port}`);
    if (released === undefined) {
      this.#bind();
      return;
    }
    this.registry.add(this);
    this.registry.track(released.then(() => {
      if (!this.#closed) this.#bind();
    }));
  }

  #bind(): void {
    const options = this.options;
    let conn: Deno.DatagramConn;
    try {
      conn = Deno.listenDatagram({
        transport: "udp",
        hostname: options.host,
        port: options.port,
        reuseAddress: options.reuseAddress === true,
      });
    } catch (error) {
      this.registry.delete(this);
      this.failBind(toNetError(error, `bind datagram socket to ${describe(options)}`));
      return;
    }
    this.#conn = conn;
    this.local = { host: options.host, port: (conn.addr as Deno.NetAddr).port };
    this.registry.add(this);
    later(() => {
      if (!this.#closed) this.handlers.onReady?.(this);
    });
    this.#receiving = this.#receiveAll(conn);
    this.registry.track(this.#receiving);
    const first = this.#queue.shift();
    if (first !== undefined) {
      this.#sending = true;
      this.registry.track(this.#sendAll(conn, ...first));
    }
  }

  send(data: Uint8Array, to: Address): void {
    checkSend(data, to, this.#closed);
    const conn = this.#conn;
    if (this.#sending || conn === undefined) {
      // One send at a time keeps datagrams in order (and a socket still waiting for its port
      // sends once bound); the copy frees the caller's array.
      if (this.#queue.length < MAX_QUEUED_DATAGRAMS) this.#queue.push([data.slice(), to]);
      return;
    }
    this.#sending = true;
    this.registry.track(this.#sendAll(conn, data, to));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.registry.delete(this);
    try {
      this.#conn?.close();
    } catch {
      // Already closed.
    }
    if (this.#receiving !== undefined) markReleasing(`udp:${this.local.port}`, this.#receiving);
  }

  forceClose(): void {
    this.close();
  }

  async #sendAll(conn: Deno.DatagramConn, data: Uint8Array, to: Address): Promise<void> {
    let next: readonly [Uint8Array, Address] | undefined = [data, to];
    while (next !== undefined) {
      const [bytes, address] = next;
      try {
        await conn.send(bytes, { transport: "udp", hostname: address.host, port: address.port });
      } catch (error) {
        if (this.#closed) return;
        const net = toNetError(error, `send datagram to ${describe(address)}`);
        later(() => this.handlers.onError?.(net));
      }
      if (this.#closed) return;
      next = this.#queue.shift();
    }
    this.#sending = false;
  }

  async #receiveAll(conn: Deno.DatagramConn): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    let failures = 0;
    for (;;) {
      let received: [Uint8Array, Deno.Addr];
      try {
        received = await conn.receive(buffer);
      } catch (error) {
        if (this.#closed) return;
        const net = toNetError(error, `receive on ${describe(this.local)}`);
        invoke(() => this.handlers.onError?.(net));
        if (++failures >= MAX_RECEIVE_FAILURES) {
          this.close();
          return;
        }
        continue;
      }
      failures = 0;
      if (this.#closed) return;
      const [view, from] = received;
      const data = view.slice();
      invoke(() => this.handlers.onMessage(data, netAddress(from)));
    }
  }
}
