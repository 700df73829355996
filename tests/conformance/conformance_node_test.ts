/**
 * The conformance suite against the Node adapter (`adapters/node`, on `node:dgram` and
 * `node:net`): two platforms on 127.0.0.1, real time. It runs on Deno and on Bun, through their
 * `node:` modules.
 *
 * @module
 */
import { pollUntil, runConformance, type World } from "./_platform_suite.ts";
import { createNodePlatform } from "../../adapters/node/mod.ts";

function makeNodeWorld(): World {
  const a = createNodePlatform({ log: { level: "warn" } });
  const b = createNodePlatform({ log: { level: "warn" } });
  return {
    a: { platform: a, host: "127.0.0.1" },
    b: { platform: b, host: "127.0.0.1" },
    broadcastHost: "127.255.255.255",
    waitFor: pollUntil,
    close: async () => {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

runConformance("node", makeNodeWorld);
