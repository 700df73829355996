/**
 * The conformance suite against the Deno adapter (`adapters/deno`): two platforms on
 * 127.0.0.1, real time. Skipped, case by case, on other runtimes.
 *
 * @module
 */
import { pollUntil, runConformance, type World } from "./_platform_suite.ts";
import { createDenoPlatform } from "../../adapters/deno/mod.ts";

const onDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" &&
  typeof (globalThis as { Bun?: unknown }).Bun === "undefined";

function makeDenoWorld(): World {
  const a = createDenoPlatform({ log: { level: "warn" } });
  const b = createDenoPlatform({ log: { level: "warn" } });
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

runConformance("deno", makeDenoWorld, onDeno ? {} : { skip: "Deno adapter needs Deno" });
