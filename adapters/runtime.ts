/**
 * Runs the node program on whichever runtime this is: picks the platform adapter (Deno, Bun or
 * Node), an HTTP server for the state page, signal handling and process exit.
 *
 * @module
 */
import { networkInterfaces } from "node:os";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Platform } from "../src/platform.ts";
import type { ProgramEnvironment } from "./program.ts";
import type { RealPlatformOptions } from "./_net.ts";

type Fetch = (request: Request) => Response | Promise<Response>;

interface DenoLike {
  args: string[];
  exit(code: number): never;
  addSignalListener(signal: string, handler: () => void): void;
  serve(
    options: { hostname: string; port: number; onListen?: () => void },
    handler: Fetch,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}

interface BunLike {
  serve(options: { hostname: string; port: number; fetch: Fetch; idleTimeout?: number }): {
    port: number;
    stop(closeActive?: boolean): void;
  };
}

interface ProcessLike {
  argv: string[];
  exit(code: number): never;
  on(signal: string, handler: () => void): void;
}

const g = globalThis as unknown as { Deno?: DenoLike; Bun?: BunLike; process?: ProcessLike };

/** `"deno"`, `"bun"` or `"node"`. */
export function runtimeName(): "deno" | "bun" | "node" {
  return g.Bun ? "bun" : g.Deno ? "deno" : "node";
}

/** The command-line arguments after the script. */
export function commandLineArgs(): string[] {
  return g.Deno?.args ?? g.process?.argv.slice(2) ?? [];
}

/** The IPv4 broadcast address of the interface holding `host`, from its netmask. */
export function subnetBroadcast(host: string): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const entry of addresses ?? []) {
      if (entry.family !== "IPv4" || entry.address !== host) continue;
      const toNumber = (text: string) =>
        text.split(".").reduce((n, part) => n * 256 + Number(part), 0);
      const address = toNumber(entry.address);
      const mask = toNumber(entry.netmask);
      const broadcast = (address | (~mask >>> 0)) >>> 0;
      return [24, 16, 8, 0].map((shift) => (broadcast >>> shift) & 255).join(".");
    }
  }
  return undefined;
}

/**
 * The platform adapter of this runtime (Deno, Bun, else Node), logging warnings and errors only
 * unless told otherwise: `log` takes a logger of the application's own (any object with
 * `log(level, event, fields)`) or the default logger's options (level, text or JSON, a sink).
 */
export async function createRuntimePlatform(
  runtime: string = runtimeName(),
  options: Pick<RealPlatformOptions, "log"> = { log: { level: "warn" } },
): Promise<Platform & { close(): Promise<void> }> {
  if (runtime === "deno") {
    const { createDenoPlatform } = await import("./deno/mod.ts");
    return createDenoPlatform(options);
  }
  if (runtime === "bun") {
    const { createBunPlatform } = await import("./bun/mod.ts");
    return createBunPlatform(options);
  }
  const { createNodePlatform } = await import("./node/mod.ts");
  return createNodePlatform(options);
}

/** Serves `fetch` with node:http (for Node; Deno and Bun use their own servers). */
function serveWithNodeHttp(fetch: Fetch, host: string, port: number) {
  return new Promise<{ port: number; close(): Promise<void> }>((resolve, reject) => {
    const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
      try {
        const chunks: Uint8Array[] = [];
        if (req.method !== "GET" && req.method !== "HEAD") {
          for await (const chunk of req) chunks.push(chunk as Uint8Array);
        }
        const headers = new Headers();
        for (const [key, value] of Object.entries(req.headers)) {
          if (typeof value === "string") headers.set(key, value);
        }
        const body = chunks.length ? new Blob(chunks as BlobPart[]) : undefined;
        const response = await fetch(
          new Request(`http://${host}:${port}${req.url ?? "/"}`, {
            method: req.method,
            headers,
            body,
          }),
        );
        res.writeHead(response.status, Object.fromEntries(response.headers));
        if (!response.body) return void res.end();
        const reader = response.body.getReader();
        req.on("close", () => void reader.cancel().catch(() => {}));
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          res.write(value);
        }
        res.end();
      } catch (error) {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(error));
      }
    });
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve({
        port: typeof address === "object" && address ? address.port : port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections?.();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Builds the program's environment for this runtime. */
export async function createEnvironment(): Promise<
  ProgramEnvironment & { platform: Platform & { close(): Promise<void> } }
> {
  const runtime = runtimeName();
  // The program prints lifecycle events itself; the platform logs only warnings and errors.
  const platform = await createRuntimePlatform(runtime);
  return {
    runtime,
    platform,
    subnetBroadcast,
    serve(fetch, host, port) {
      if (g.Deno && runtime === "deno") {
        const server = g.Deno.serve({ hostname: host, port, onListen() {} }, fetch);
        return Promise.resolve({ port: server.addr.port, close: () => server.shutdown() });
      }
      if (g.Bun) {
        // idleTimeout 0: the event stream may stay quiet for long.
        const server = g.Bun.serve({ hostname: host, port, fetch, idleTimeout: 0 });
        return Promise.resolve({ port: server.port, close: () => server.stop(true) });
      }
      return serveWithNodeHttp(fetch, host, port);
    },
    onSignal(handler) {
      for (const signal of ["SIGINT", "SIGTERM"]) {
        if (g.Deno && runtime === "deno") g.Deno.addSignalListener(signal, () => handler(signal));
        else g.process?.on(signal, () => handler(signal));
      }
    },
    print: (line) => console.log(line),
    printError: (line) => console.error(line),
    exit: (code) => {
      // Release sockets first, but never let a stuck close keep the process alive.
      const released = Promise.race([
        platform.close(),
        new Promise<void>((resolve) => setTimeout(resolve, 2000)),
      ]);
      void released.finally(() =>
        g.Deno && runtime === "deno" ? g.Deno.exit(code) : g.process?.exit(code)
      );
    },
  };
}
