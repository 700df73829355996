/**
 * AutoMPI for Deno and Bun: nodes host workers whose state is private; nodes discover each
 * other, link up, clean up broken links and route {@link MapMessage}s, so a worker never needs
 * to know where a recipient lives. One core runs on real sockets and in a seeded simulator.
 *
 * Run as a program (`deno run -A mod.ts`, `bun run mod.ts`) it starts a node on real sockets
 * (see `--help`); `--demo` runs a small simulated cluster instead and prints what happens.
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
export * from "./src/events.ts";
export * from "./src/system.ts";
export * from "./src/storage.ts";
export * from "./src/worker.ts";
export * from "./src/workers/kv.ts";
export * from "./src/workers/camera.ts";
export * from "./src/workers/scheduler.ts";
export * from "./src/placement.ts";
export * from "./src/node.ts";
export * from "./src/metrics.ts";
export {
  formatTraceparent,
  parseTraceparent,
  TRACEPARENT_FIELD,
  TRACER_NAME,
  type TracerProvider,
  TRACESTATE_FIELD,
} from "./src/_tracing.ts";

import { createSimCluster, workerGuid } from "./sim/cluster.ts";
import { createMessage } from "./src/message.ts";

/** Options of {@link runDemo}. */
export interface DemoOptions {
  readonly nodes?: number;
  readonly seconds?: number;
  readonly seed?: number;
  /** Where lines go; default `console.log`. */
  readonly print?: (line: string) => void;
}

/**
 * Runs a small simulated cluster of real nodes: they discover each other by broadcast and link
 * up, a message reaches a worker on another node, one node crashes and restarts. Prints one
 * line per lifecycle event and returns the trace hash.
 *
 * @example
 * ```ts
 * import { runDemo } from "./mod.ts";
 * const lines: string[] = [];
 * const hash = runDemo({ nodes: 3, seconds: 6, seed: 1, print: (line) => lines.push(line) });
 * console.assert(hash.length === 16 && lines.length > 0);
 * ```
 */
export function runDemo(options: DemoOptions = {}): string {
  const nodes = options.nodes ?? 4;
  const seconds = options.seconds ?? 10;
  const seed = options.seed ?? 1;
  const print = options.print ?? ((line: string) => console.log(line));
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 1000) {
    throw new RangeError(`Cannot run demo with ${nodes} nodes: need an integer in 2..1000`);
  }
  if (!(seconds >= 5 && seconds <= 3600)) {
    throw new RangeError(`Cannot run demo for ${seconds} s: need 5 <= seconds <= 3600`);
  }
  const stamp = (timeMs: number) => `${(timeMs / 1000).toFixed(3).padStart(8)}s`;
  const cluster = createSimCluster({
    nodes,
    seed,
    latencyMsMin: 1,
    latencyMsMax: 10,
    logLevel: "info",
    onLog: (entry) => {
      if (!/^(node\.|link\.|peer\.)/.test(entry.event)) return;
      const fields = Object.entries(entry.fields ?? {})
        .filter(([key]) => key !== "guid")
        .map(([key, value]) => `${key}=${value}`)
        .join(" ");
      print(`${stamp(entry.timeMs)}  ${entry.host.padEnd(5)} ${entry.event.padEnd(15)} ${fields}`);
    },
  });
  const { sim, hosts } = cluster;
  print(`AutoMPI demo: ${nodes} simulated nodes on 10.0.0.0/16, one worker each, seed ${seed}`);
  const victim = hosts[nodes - 1];
  sim.schedule(1000, () => {
    const from = hosts[0].app!;
    const to = workerGuid(nodes - 1);
    from.send(createMessage(to, { command: "hello" }, { source: from.guid }));
    print(
      `${stamp(sim.now)}  ${
        hosts[0].name.padEnd(5)
      } sends "hello" to worker ${to} on ${victim.name}`,
    );
  });
  sim.schedule(1100, () => {
    const worker = victim.app?.worker(workerGuid(nodes - 1)) as
      | { received?: unknown[] }
      | undefined;
    print(
      `${stamp(sim.now)}  ${victim.name.padEnd(5)} worker ${workerGuid(nodes - 1)} has ${
        worker?.received?.length ?? 0
      } message(s)`,
    );
  });
  sim.schedule(2000, () => {
    print(`${stamp(sim.now)}  ${victim.name.padEnd(5)} CRASH (simulated power cut: no goodbye)`);
    sim.crash(victim);
  });
  sim.schedule(2000 + (seconds * 1000 - 2000) / 2, () => {
    print(`${stamp(sim.now)}  ${victim.name.padEnd(5)} RESTART`);
    sim.restart(victim);
  });
  sim.run(seconds * 1000);
  print(
    `done: ${sim.events} events; ${cluster.linkedPairs()} of ${
      (nodes * (nodes - 1)) / 2
    } pairs linked, ` +
      `${cluster.locationsKnown()} worker locations known`,
  );
  print(`trace hash ${sim.traceHash}; --seed ${seed} replays this run exactly`);
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
  if (args.includes("--demo")) {
    const rest = args.filter((arg) => arg !== "--demo");
    if (rest.includes("--help")) {
      console.log("usage: deno run -A mod.ts --demo [--nodes N] [--seconds S] [--seed X]");
    } else {
      runDemo({
        nodes: flag(rest, "nodes"),
        seconds: flag(rest, "seconds"),
        seed: flag(rest, "seed"),
      });
    }
  } else {
    // The real node: loaded only when run as a program, so importing mod.ts stays runtime-free.
    const { createEnvironment } = await import("./adapters/runtime.ts");
    const { runProgram } = await import("./adapters/program.ts");
    await runProgram(args, await createEnvironment());
  }
}
