/**
 * The fake original node of `tests/_go_peer.ts` as a process of its own, on this runtime's real
 * sockets, for the namespace test (`tests/netns/netns_legacy_test.ts`). It binds, heartbeats and
 * links exactly as the class does, with the original's defaults: links on TCP 8888, discovery
 * on UDP 9999, heartbeats to 255.255.255.255 every second. Run it only inside a network
 * namespace a test made: it sends limited broadcasts.
 *
 * Usage: `<runtime> run tests/netns/_go_peer_child.ts --guid G --address IP [--worker W]…
 * [--control-port P]`. It prints `started guid=G control=P` once listening, and serves on
 * `127.0.0.1:P` (inside its namespace):
 * - `GET /state`: `{ guid, outgoing, incoming, locations, handled, workers }` (link tables as
 *   peer GUIDs, what its external handler and each worker received);
 * - `POST /send` with a Go MapMessage as JSON: `{ sent }`, false when it had no route.
 *
 * @module
 */
import process from "node:process";
import { createEnvironment } from "../../adapters/runtime.ts";
import { type GoMessage, GoPeer } from "../_go_peer.ts";

function flag(name: string): string[] {
  const args = process.argv.slice(2);
  const values: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name && i + 1 < args.length) values.push(args[++i]);
  }
  return values;
}

const guid = flag("--guid")[0];
const address = flag("--address")[0];
if (guid === undefined || address === undefined) {
  console.error("Cannot start the fake original: --guid and --address are required");
  process.exit(2);
}
const controlPort = Number(flag("--control-port")[0] ?? 8700);

const env = await createEnvironment();
const peer = new GoPeer(env.platform, { guid, address });
for (const worker of flag("--worker")) peer.attachWorker(worker);

const json = (value: unknown, status = 200) =>
  new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json" },
  });

const server = await env.serve(
  async (request) => {
    const path = new URL(request.url).pathname;
    if (request.method === "GET" && path === "/state") {
      return json({
        guid: peer.guid,
        outgoing: [...peer.outgoing.keys()].sort(),
        incoming: [...peer.incoming.keys()].sort(),
        locations: Object.fromEntries(peer.locations),
        handled: peer.handled,
        workers: Object.fromEntries(
          [...peer.workers.values()].map((worker) => [worker.guid, worker.received]),
        ),
      });
    }
    if (request.method === "POST" && path === "/send") {
      let message: GoMessage;
      try {
        message = await request.json();
      } catch (error) {
        return json({ error: `Cannot read the message: ${(error as Error).message}` }, 400);
      }
      return json({ sent: peer.send(message) });
    }
    return json({ error: `Cannot ${request.method} ${path}` }, 404);
  },
  "127.0.0.1",
  controlPort,
);

console.log(`started guid=${guid} control=${server.port} address=${address}:8888`);
env.onSignal(() => {
  peer.close();
  void server.close();
  env.exit(0);
});
