/**
 * The few parts of Bun's global API the Bun adapter uses, typed here because Deno's type
 * checker does not know Bun's globals (its full types are `@types/bun`). Shapes follow Bun
 * 1.4's `bun-types`; nothing here declares a global.
 *
 * @module
 */

/** A TCP socket of `Bun.listen` / `Bun.connect`. */
export interface BunSocket {
  /** Writes what the kernel takes now; returns the count (maybe fewer), or -1 when closed. */
  write(data: Uint8Array): number;
  /** Shuts down the write side (FIN); reading goes on. */
  shutdown(halfClose?: boolean): void;
  /** Graceful close. */
  end(): void;
  /** Abrupt close: a TCP reset. */
  terminate(): void;
  setNoDelay(noDelay?: boolean): boolean;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

/** Event handlers of Bun TCP sockets; one object serves every socket of a listener. */
export interface BunSocketHandler {
  binaryType?: "uint8array";
  open?(socket: BunSocket): void;
  data?(socket: BunSocket, data: Uint8Array): void;
  drain?(socket: BunSocket): void;
  /** The peer sent FIN. */
  end?(socket: BunSocket): void;
  close?(socket: BunSocket, error?: Error): void;
  error?(socket: BunSocket, error: Error): void;
  connectError?(socket: BunSocket, error: Error): void;
}

/** What `Bun.listen` returns. */
export interface BunTcpListener {
  readonly port: number;
  readonly hostname: string;
  /** Stops accepting; with `true`, also closes the accepted connections. */
  stop(closeActiveConnections?: boolean): void;
}

/** A socket of `Bun.udpSocket`. */
export interface BunUdpSocket {
  readonly port: number;
  readonly hostname: string;
  readonly closed: boolean;
  /** Returns `false` when the datagram could not be sent now (the kernel is full). */
  send(data: Uint8Array, port: number, address: string): boolean;
  setBroadcast(enabled: boolean): boolean;
  close(): void;
}

/** Event handlers of a `Bun.udpSocket`. */
export interface BunUdpHandler {
  data?(socket: BunUdpSocket, data: Uint8Array, port: number, address: string): void;
  drain?(socket: BunUdpSocket): void;
  error?(socket: BunUdpSocket, error: Error): void;
}

/** The parts of the `Bun` global the adapter calls. */
export interface BunApi {
  listen(options: {
    hostname: string;
    port: number;
    allowHalfOpen?: boolean;
    socket: BunSocketHandler;
  }): BunTcpListener;
  connect(options: {
    hostname: string;
    port: number;
    allowHalfOpen?: boolean;
    socket: BunSocketHandler;
  }): Promise<BunSocket>;
  udpSocket(options: {
    hostname?: string;
    port?: number;
    binaryType?: "uint8array";
    socket?: BunUdpHandler;
  }): Promise<BunUdpSocket>;
}

/** The `Bun` global, or `undefined` on other runtimes. */
export function bunApi(): BunApi | undefined {
  return (globalThis as { Bun?: BunApi }).Bun;
}
