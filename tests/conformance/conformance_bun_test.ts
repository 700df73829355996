/**
 * The conformance suite against the Bun adapter (`adapters/bun`): two platforms on 127.0.0.1,
 * real time. Skipped on other runtimes.
 *
 * @module
 */
import { pollUntil, runConformance, type World } from "./_platform_suite.ts";
import { createBunPlatform } from "../../adapters/bun/mod.ts";

const onBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

function makeBunWorld(): World {
  const a = createBunPlatform({ log: { level: "warn" } });
  const b = createBunPlatform({ log: { level: "warn" } });
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

runConformance("bun", makeBunWorld, onBun ? {} : { skip: "Bun adapter needs Bun" });
