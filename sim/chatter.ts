/**
 * A small demonstration app for the simulator: hosts announce themselves by broadcast, dial the
 * peers they hear, greet them over a stream, and redial after failures. It exercises every part
 * of the platform seam (timers, randomness, datagrams, broadcast, streams, logging), so it
 * serves as the determinism workload of the tests, the benchmark and the `mod.ts` demo.
 *
 * It is *not* the AutoMPI node; that lives in `src/` and runs on the same seam.
 *
 * @module
 */
import type { Platform, StreamConn } from "../src/platform.ts";

/** Options of {@link startChatter}. */
export interface ChatterOptions {
  /** The host's own address, announced to peers. */
  readonly address: string;
  /** Where announcements go (the subnet broadcast address). */
  readonly broadcastAddress: string;
  readonly discoveryPort?: number;
  readonly streamPort?: number;
  readonly announceIntervalMs?: number;
}

/** What a chatter host knows, for checks. */
export interface ChatterState {
  /** Peers heard, by address, with the time last heard. */
  readonly heard: Map<string, number>;
  /** Addresses of peers with an open stream, in either direction. */
  readonly linked: Set<string>;
  /** Greetings received over streams. */
  readonly greetings: string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Starts a chatter app on a platform.
 *
 * @example
 * ```ts
 * import { Simulation } from "./simulation.ts";
 * import { startChatter } from "./chatter.ts";
 * const sim = new Simulation({ seed: 1 });
 * const hosts = [0, 1, 2].map((i) =>
 *   sim.addHost(`h${i}`, (platform, host) =>
 *     startChatter(platform, { address: host.address, broadcastAddress: "10.0.255.255" }))
 * );
 * sim.run(3000);
 * console.assert(hosts.every((h) => h.app!.linked.size === 2));
 * ```
 */
export function startChatter(platform: Platform, options: ChatterOptions): ChatterState {
  const discoveryPort = options.discoveryPort ?? 9999;
  const streamPort = options.streamPort ?? 8888;
  const intervalMs = options.announceIntervalMs ?? 1000;
  const { clock, net, random, log } = platform;
  const state: ChatterState = { heard: new Map(), linked: new Set(), greetings: [] };
  const dialling = new Set<string>();
  const me = options.address;

  const greet = (conn: StreamConn, peer: string) => {
    state.linked.add(peer);
    conn.write(encoder.encode(`hello from ${me} at ${Math.round(clock.now())}\n`));
  };
  const streamHandlers = (peer: () => string) => ({
    onOpen: (conn: StreamConn) => {
      log.log("info", "link.up", { peer: peer(), direction: "out" });
      greet(conn, peer());
    },
    onData: (_conn: StreamConn, data: Uint8Array) => {
      state.greetings.push(decoder.decode(data).trim());
    },
    onClose: (_conn: StreamConn, reason: string) => {
      log.log("info", "link.down", { peer: peer(), reason });
      state.linked.delete(peer());
      dialling.delete(peer());
    },
  });

  net.listen({ host: "0.0.0.0", port: streamPort }, {
    onConnection(conn) {
      const peer = conn.remote.host;
      log.log("info", "link.up", { peer, direction: "in" });
      greet(conn, peer);
      return streamHandlers(() => peer);
    },
  });

  const socket = net.bindDatagram(
    { host: "0.0.0.0", port: discoveryPort, reuseAddress: true, broadcast: true },
    {
      onMessage(data) {
        const peer = decoder.decode(data);
        if (peer === me) return;
        if (!state.heard.has(peer)) log.log("info", "peer.discovered", { peer });
        state.heard.set(peer, clock.now());
        // The lower address dials, so a pair ends with one stream.
        if (me < peer && !state.linked.has(peer) && !dialling.has(peer)) {
          dialling.add(peer);
          net.connect({ host: peer, port: streamPort }, streamHandlers(() => peer));
        }
      },
    },
  );

  const announce = () => {
    socket.send(encoder.encode(me), { host: options.broadcastAddress, port: discoveryPort });
    clock.schedule(intervalMs * (0.9 + 0.2 * random.next()), announce);
  };
  clock.schedule(random.int(0, intervalMs), announce);
  return state;
}
