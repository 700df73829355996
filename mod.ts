/**
 * AutoMPI for Deno and Bun: nodes host workers whose state is private; nodes discover each
 * other, link up, clean up broken links and route {@link MapMessage}s, so a worker never needs
 * to know where a recipient lives. One core runs on real sockets and in a seeded simulator.
 *
 * Run as a program (`deno run -A mod.ts`, `bun run mod.ts`) it starts a small simulated
 * cluster and prints what happens; the real-socket node arrives with the adapters.
 *
 * @example
 * ```ts
 * import { ALL_WORKERS, createMessage, msgpackCodec } from "./mod.ts";
 * const message = createMessage(ALL_WORKERS, { command: "ping" });
 * console.assert(msgpackCodec.decode(msgpackCodec.encode(message)).message.command === "ping");
 * ```
 *
 * @module
 */
export * from "./src/platform.ts";
export * from "./src/message.ts";
export * from "./src/codec.ts";
export * from "./src/framing.ts";
export * from "./src/errors.ts";

import { Simulation } from "./sim/simulation.ts";
import { startChatter } from "./sim/chatter.ts";

/** Options of {@link runDemo}. */
export interface DemoOptions {
  readonly nodes?: number;
  readonly seconds?: number;
  readonly seed?: number;
  /** Where lines go; default `console.log`. */
  readonly print?: (line: string) => void;
}

/**
 * Runs a small simulated cluster: hosts discover each other by broadcast and link up; one
 * crashes and restarts. Prints one line per lifecycle event and returns the trace hash.
 *
 * @example
 * ```ts
 * import { runDemo } from "./mod.ts";
 * const lines: string[] = [];
 * const hash = runDemo({ nodes: 3, seconds: 3, seed: 1, print: (line) => lines.push(line) });
 * console.assert(hash.length === 16 && lines.length > 0);
 * ```
 */
export function runDemo(options: DemoOptions = {}): string {
  const nodes = options.nodes ?? 4;
  const seconds = options.seconds ?? 8;
  const seed = options.seed ?? 1;
  const print = options.print ?? ((line: string) => console.log(line));
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 1000) {
    throw new RangeError(`Cannot run demo with ${nodes} nodes: need an integer in 2..1000`);
  }
  if (!(seconds > 0 && seconds <= 3600)) {
    throw new RangeError(`Cannot run demo for ${seconds} s: need 0 < seconds <= 3600`);
  }
  const sim = new Simulation({
    seed,
    latencyMsMin: 1,
    latencyMsMax: 10,
    logLevel: "info",
    onLog: (entry) => {
      const fields = Object.entries(entry.fields ?? {}).map(([k, v]) => `${k}=${v}`).join(" ");
      print(
        `${(entry.timeMs / 1000).toFixed(3).padStart(8)}s  ${
          entry.host.padEnd(6)
        } ${entry.event} ${fields}`,
      );
    },
  });
  print(`AutoMPI demo: ${nodes} simulated hosts on 10.0.0.0/16, seed ${seed}, ${seconds} s`);
  const hosts = Array.from({ length: nodes }, (_, i) =>
    sim.addHost(
      `n${i}`,
      (platform, host) =>
        startChatter(platform, { address: host.address, broadcastAddress: "10.0.255.255" }),
    ));
  const victim = hosts[nodes - 1].name;
  sim.schedule(seconds * 400, () => {
    print(`${(sim.now / 1000).toFixed(3).padStart(8)}s  ${victim.padEnd(6)} CRASH (simulated)`);
    sim.crash(victim);
  });
  sim.schedule(seconds * 600, () => {
    print(`${(sim.now / 1000).toFixed(3).padStart(8)}s  ${victim.padEnd(6)} RESTART (simulated)`);
    sim.restart(victim);
  });
  sim.run(seconds * 1000);
  const links = hosts.map((host) => `${host.name}:${host.app?.linked.size ?? 0}`).join(" ");
  print(`done: ${sim.events} events, open links per host ${links}`);
  print(`trace hash ${sim.traceHash}; the same --seed ${seed} replays this run exactly`);
  return sim.traceHash;
}

function flag(args: readonly string[], name: string): number | undefined {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return undefined;
  const value = Number(args[index + 1]);
  if (!Number.isFinite(value)) throw new TypeError(`Cannot parse --${name} "${args[index + 1]}"`);
  return value;
}

if (import.meta.main) {
  const g = globalThis as { Deno?: { args: string[] }; process?: { argv: string[] } };
  const args = g.Deno?.args ?? g.process?.argv.slice(2) ?? [];
  if (args.includes("--help")) {
    console.log("usage: deno run -A mod.ts [--nodes N] [--seconds S] [--seed X]");
  } else {
    runDemo({
      nodes: flag(args, "nodes"),
      seconds: flag(args, "seconds"),
      seed: flag(args, "seed"),
    });
  }
}
