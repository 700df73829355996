/**
 * A fake node of the original Go AutoMPI, written only from `shared/AUTOMPI_REFERENCE.md`, on
 * the platform seam so it runs in the simulator and on real sockets alike. It is deliberately
 * independent of this project's codecs and framing: it builds and parses the original's JSON
 * and handshake by hand, so a test against it checks our compatibility mode, not our code
 * against itself.
 *
 * What it does, as the reference says the original does:
 * - heartbeat every second on the second, from the moment it starts, never jittered: a
 *   NodeLocation sent to the limited broadcast 255.255.255.255 (not a subnet broadcast), JSON,
 *   keys sorted, `Data` null;
 * - a new worker is announced by WorkerLocation broadcast on 3 consecutive heartbeats;
 * - hearing a NodeLocation (or ConnectToMe) from another GUID: dial it unless already dialled;
 * - handshake: the dialler writes a 4-byte little-endian length and its GUID, the acceptor
 *   answers the same way;
 * - frames: 4-byte little-endian length + JSON MapMessage with Go's field names;
 * - keeps outgoing and incoming links; sends on outgoing links only; reads both;
 * - when a link attaches (either direction) sends one WorkerLocation per local worker on it;
 * - cleans a link up only on end-of-stream or error; no keepalives, no reconnect policy;
 * - routing: system message, local worker, ALLWorkers, else the external handlers;
 * - send: ALL* by UDP broadcast, local worker direct, known remote worker over the outgoing
 *   link to its host, else a node GUID over its outgoing link, else dropped silently.
 *
 * @module
 */
import type { Platform, StreamConn } from "../src/platform.ts";

/** A MapMessage as the Go original has it. */
export interface GoMessage {
  DestinationGUID: string;
  SourceGUID: string;
  Message: Record<string, string> | null;
  /** Base64 or null. */
  Data: string | null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Go's encoding/json output for a MapMessage: struct fields in order, map keys sorted. */
export function goJson(message: GoMessage): string {
  const fields = message.Message ?? {};
  const keys = Object.keys(fields).sort();
  const map = message.Message === null
    ? "null"
    : `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(fields[k])}`).join(",")}}`;
  return `{"DestinationGUID":${JSON.stringify(message.DestinationGUID)},"SourceGUID":${
    JSON.stringify(message.SourceGUID)
  },"Message":${map},"Data":${message.Data === null ? "null" : JSON.stringify(message.Data)}}`;
}

function lengthPrefixed(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length, true);
  out.set(payload, 4);
  return out;
}

/** A worker of the fake peer: it records what it gets. */
export interface GoWorker {
  readonly guid: string;
  readonly received: GoMessage[];
}

interface GoLink {
  readonly conn: StreamConn;
  peer: string;
  buffer: Uint8Array;
  handshaken: boolean;
}

/** Options of the fake Go peer. */
export interface GoPeerOptions {
  readonly guid: string;
  /** Its IP address: heartbeats say `<address>:<linkPort>`. */
  readonly address: string;
  /** Where its datagrams go; default 255.255.255.255, as the original. */
  readonly broadcastAddress?: string;
  readonly linkPort?: number;
  readonly discoveryPort?: number;
}

/** The fake original node. */
export class GoPeer {
  readonly guid: string;
  readonly workers = new Map<string, GoWorker>();
  /** Worker GUID → node GUID, from WorkerLocation messages (never expire, as the original). */
  readonly locations = new Map<string, string>();
  readonly outgoing = new Map<string, GoLink>();
  readonly incoming = new Map<string, GoLink>();
  /** What its external handler got. */
  readonly handled: GoMessage[] = [];
  /** Raw heartbeats it sent, for byte checks. */
  readonly sentHeartbeats: string[] = [];
  readonly #platform: Platform;
  readonly #options: Required<GoPeerOptions>;
  readonly #announce = new Map<string, number>();
  readonly #dialling = new Set<string>();
  #udp;
  #closed = false;

  constructor(platform: Platform, options: GoPeerOptions) {
    this.#platform = platform;
    this.#options = {
      linkPort: 8888,
      discoveryPort: 9999,
      broadcastAddress: "255.255.255.255",
      ...options,
    };
    this.guid = options.guid;
    const { net, clock } = platform;
    net.listen({ host: "0.0.0.0", port: this.#options.linkPort }, {
      onConnection: (conn) => {
        const link: GoLink = { conn, peer: "", buffer: new Uint8Array(0), handshaken: false };
        return this.#handlers(link, "in");
      },
    });
    this.#udp = net.bindDatagram({
      host: "0.0.0.0",
      port: this.#options.discoveryPort,
      reuseAddress: true,
      broadcast: true,
    }, { onMessage: (data) => this.#onDatagram(data) });
    const heartbeat = () => {
      if (this.#closed) return;
      this.#heartbeat();
      clock.schedule(1000, heartbeat);
    };
    clock.schedule(0, heartbeat);
  }

  /**
   * Attaches a worker and, as the original, announces it by broadcast on the next 3 heartbeats
   * (links that attach later carry it too; links already up do not).
   */
  attachWorker(guid: string): GoWorker {
    const worker: GoWorker = { guid, received: [] };
    this.workers.set(guid, worker);
    this.#announce.set(guid, 3);
    return worker;
  }

  /** Sends as the original does (see the module comment). Returns false if dropped. */
  send(message: GoMessage): boolean {
    const destination = message.DestinationGUID;
    if (destination === "ALLNodes" || destination === "ALLWorkers") {
      this.#udp.send(encoder.encode(goJson(message)), this.#broadcastTo());
      return true;
    }
    const local = this.workers.get(destination);
    if (local) {
      local.received.push(message);
      return true;
    }
    const host = this.locations.get(destination) ?? destination;
    const link = this.outgoing.get(host);
    if (!link) return false;
    this.#writeFrame(link, message);
    return true;
  }

  /** Stops heartbeats and closes every link (a clean exit, which the original lacks). */
  close(): void {
    this.#closed = true;
    for (const link of [...this.outgoing.values(), ...this.incoming.values()]) link.conn.end();
    this.#udp.close();
  }

  #broadcastTo() {
    return { host: this.#options.broadcastAddress, port: this.#options.discoveryPort };
  }

  #workerLocation(worker: string): GoMessage {
    return {
      DestinationGUID: "",
      SourceGUID: "",
      Message: {
        AutoMPI_System_Message: "AutoMPI_SKD_WorkerLocation",
        AutoMPI_SMDP_GUID_Node: this.guid,
        AutoMPI_SMDP_GUID_Worker: worker,
      },
      Data: null,
    };
  }

  #heartbeat(): void {
    const text = goJson({
      DestinationGUID: "",
      SourceGUID: "",
      Message: {
        AutoMPI_System_Message: "AutoMPI_SKD_NodeLocation",
        AutoMPI_SMDP_GUID_Node: this.guid,
        AutoMPI_SMDP_HOST_IPEP: `${this.#options.address}:${this.#options.linkPort}`,
      },
      Data: null,
    });
    this.sentHeartbeats.push(text);
    this.#udp.send(encoder.encode(text), this.#broadcastTo());
    for (const [worker, left] of this.#announce) {
      this.#udp.send(encoder.encode(goJson(this.#workerLocation(worker))), this.#broadcastTo());
      if (left <= 1) this.#announce.delete(worker);
      else this.#announce.set(worker, left - 1);
    }
  }

  #onDatagram(data: Uint8Array): void {
    let message: GoMessage;
    try {
      message = JSON.parse(decoder.decode(data));
    } catch {
      return;
    }
    this.#route(message);
  }

  #route(message: GoMessage): void {
    const fields = message.Message ?? {};
    const kind = fields.AutoMPI_System_Message;
    if (kind !== undefined) {
      const node = fields.AutoMPI_SMDP_GUID_Node;
      if (kind === "AutoMPI_SKD_NodeLocation" || kind === "AutoMPI_SKD_ConnectToMe") {
        if (node && node !== this.guid && !this.outgoing.has(node) && !this.#dialling.has(node)) {
          this.#dial(node, fields.AutoMPI_SMDP_HOST_IPEP ?? "");
        }
      } else if (kind === "AutoMPI_SKD_WorkerLocation") {
        const worker = fields.AutoMPI_SMDP_GUID_Worker;
        if (node && worker && node !== this.guid) this.locations.set(worker, node);
      }
      return;
    }
    const local = this.workers.get(message.DestinationGUID);
    if (local) {
      local.received.push(message);
    } else if (message.DestinationGUID === "ALLWorkers") {
      for (const worker of this.workers.values()) worker.received.push(message);
    } else {
      this.handled.push(message);
    }
  }

  #dial(node: string, endpoint: string): void {
    const colon = endpoint.lastIndexOf(":");
    if (colon < 0) return;
    this.#dialling.add(node);
    const link: GoLink = {
      conn: undefined as unknown as StreamConn,
      peer: "",
      buffer: new Uint8Array(0),
      handshaken: false,
    };
    const handlers = this.#handlers(link, "out");
    (link as { conn: StreamConn }).conn = this.#platform.net.connect(
      { host: endpoint.slice(0, colon), port: Number(endpoint.slice(colon + 1)) },
      {
        ...handlers,
        onOpen: (conn) => conn.write(lengthPrefixed(encoder.encode(this.guid))),
        onClose: () => {
          this.#dialling.delete(node);
          handlers.onClose();
        },
      },
    );
  }

  #handlers(link: GoLink, direction: "in" | "out") {
    return {
      onData: (_conn: StreamConn, data: Uint8Array) => this.#onBytes(link, direction, data),
      onClose: () => {
        const table = direction === "out" ? this.outgoing : this.incoming;
        if (table.get(link.peer) === link) table.delete(link.peer);
      },
    };
  }

  #onBytes(link: GoLink, direction: "in" | "out", data: Uint8Array): void {
    const joined = new Uint8Array(link.buffer.length + data.length);
    joined.set(link.buffer);
    joined.set(data, link.buffer.length);
    let offset = 0;
    while (joined.length - offset >= 4) {
      const length = new DataView(joined.buffer, offset, 4).getUint32(0, true);
      if (joined.length - offset - 4 < length) break;
      const payload = joined.subarray(offset + 4, offset + 4 + length);
      offset += 4 + length;
      if (!link.handshaken) {
        link.handshaken = true;
        link.peer = decoder.decode(payload);
        if (direction === "in") link.conn.write(lengthPrefixed(encoder.encode(this.guid)));
        const table = direction === "out" ? this.outgoing : this.incoming;
        table.set(link.peer, link);
        if (direction === "out") this.#dialling.delete(link.peer);
        for (const worker of this.workers.keys()) {
          this.#writeFrame(link, this.#workerLocation(worker));
        }
        continue;
      }
      this.#route(JSON.parse(decoder.decode(payload)));
    }
    link.buffer = joined.slice(offset);
  }

  #writeFrame(link: GoLink, message: GoMessage): void {
    if (!link.handshaken) return;
    link.conn.write(lengthPrefixed(encoder.encode(goJson(message))));
  }
}
