/**
 * Datagram sockets on `node:dgram`, shared by the Node adapter and by the Bun adapter (Bun's
 * own `Bun.udpSocket` ignores address reuse, so Bun binds shared ports through `node:dgram`).
 *
 * @module
 */
import dgram from "node:dgram";
import {
  type Address,
  type DatagramBindOptions,
  type DatagramHandlers,
  type DatagramSocket,
  NetError,
} from "../src/platform.ts";
import {
  checkSend,
  describe,
  invoke,
  later,
  markReleasing,
  normalizeHost,
  portReleased,
  type Registry,
  type Resource,
  toNetError,
} from "./_net.ts";

/**
 * Binds a datagram socket with `node:dgram`: SO_REUSEADDR when `reuseAddress` is set,
 * SO_BROADCAST once bound when `broadcast` is set. Readiness and failure come through
 * `handlers`, in a later turn.
 */
export function bindNodeDatagram(
  registry: Registry,
  options: DatagramBindOptions,
  handlers: DatagramHandlers,
): DatagramSocket {
  return new NodeDatagramSocket(registry, options, handlers);
}

class NodeDatagramSocket implements DatagramSocket, Resource {
  local: Address;
  readonly #socket: dgram.Socket | undefined;
  #whenClosed: Promise<unknown> | undefined;
  #bound = false;
  #closed = false;

  constructor(
    readonly registry: Registry,
    options: DatagramBindOptions,
    readonly handlers: DatagramHandlers,
  ) {
    this.local = { host: options.host, port: options.port };
    const action = `bind datagram socket to ${describe(options)}`;
    if (registry.closed) {
      this.#closed = true;
      later(() =>
        handlers.onError?.(new NetError("EIO", `Cannot ${action}: the platform is closed`))
      );
      return;
    }
    const socket = dgram.createSocket({
      type: options.host.includes(":") ? "udp6" : "udp4",
      reuseAddr: options.reuseAddress === true,
    });
    this.#socket = socket;
    registry.add(this);
    this.#whenClosed = new Promise((resolve) => socket.once("close", resolve));
    registry.track(this.#whenClosed);
    socket.on("error", (error) => {
      if (this.#closed) return;
      if (!this.#bound) {
        // A failed bind closes the socket, as the seam says.
        this.close();
        const net = toNetError(error, action);
        invoke(() => handlers.onError?.(net));
        return;
      }
      const net = toNetError(error, `use datagram socket ${describe(this.local)}`);
      invoke(() => handlers.onError?.(net));
    });
    socket.on("message", (message, info) => {
      if (this.#closed) return;
      // A copy: Deno's node:dgram hands every message a view of one reused buffer.
      const data = new Uint8Array(message);
      const from = { host: normalizeHost(info.address), port: info.port };
      invoke(() => handlers.onMessage(data, from));
    });
    socket.once("listening", () => {
      this.#bound = true;
      if (this.#closed) return;
      try {
        if (options.broadcast === true) socket.setBroadcast(true);
        this.local = { host: options.host, port: socket.address().port };
      } catch (error) {
        this.close();
        const net = toNetError(error, action);
        invoke(() => handlers.onError?.(net));
        return;
      }
      invoke(() => handlers.onReady?.(this));
    });
    const bind = () => {
      if (this.#closed) return;
      try {
        socket.bind({ port: options.port, address: options.host, exclusive: true });
      } catch (error) {
        this.close();
        const net = toNetError(error, action);
        later(() => handlers.onError?.(net));
      }
    };
    // Deno's node:dgram frees a closed socket's port only after its 'close' event.
    const released = options.port === 0 ? undefined : portReleased(`udp:${options.port}`);
    if (released === undefined) bind();
    else registry.track(released.then(bind));
  }

  send(data: Uint8Array, to: Address): void {
    checkSend(data, to, this.#closed);
    try {
      this.#socket!.send(data, to.port, to.host, (error) => {
        if (error && !this.#closed) {
          const net = toNetError(error, `send datagram to ${describe(to)}`);
          invoke(() => this.handlers.onError?.(net));
        }
      });
    } catch (error) {
      const net = toNetError(error, `send datagram to ${describe(to)}`);
      later(() => this.handlers.onError?.(net));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.registry.delete(this);
    try {
      this.#socket?.close();
    } catch {
      // Not yet bound or already closed.
    }
    if (this.#bound && this.#whenClosed !== undefined) {
      markReleasing(`udp:${this.local.port}`, this.#whenClosed);
    }
  }

  forceClose(): void {
    this.close();
  }
}
