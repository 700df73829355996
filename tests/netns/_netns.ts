/**
 * Helpers of the namespace tests: `ip` with a bound, test namespaces named
 * `ampt-<pid>-<suffix>-<role>` (reaped when the process that made them is gone), whether this
 * machine can make them at all, and HTTP requests run inside one.
 *
 * @module
 */
import process from "node:process";
import {
  currentRuntime,
  findRuntime,
  reapLeftoverProcesses,
  runAsync,
  runSync,
  whichSync,
} from "../_processes.ts";

const NAMESPACE_PATTERN = /^ampt-(\d+)-[a-z0-9]+-(?:sw|n\d|go|ts)$/;

/** `ip …` with a bound; throws with its stderr when it fails. */
export function ip(...args: string[]): string {
  const result = runSync("ip", args, { timeoutMs: 10_000 });
  if (result.status !== 0) {
    throw new Error(`Cannot run ip ${args.join(" ")}: ${result.stderr.trim() || result.error}`);
  }
  return result.stdout;
}

export function namespaceNames(): string[] {
  const result = runSync("ip", ["netns", "list"], { timeoutMs: 10_000 });
  return result.stdout.split("\n").map((line) => line.split(" ")[0]).filter(Boolean);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Deletes test namespaces whose creating test process is gone. */
export function reapLeftoverNamespaces(): void {
  for (const name of namespaceNames()) {
    const match = NAMESPACE_PATTERN.exec(name);
    if (match && Number(match[1]) !== process.pid && !isAlive(Number(match[1]))) {
      runSync("ip", ["netns", "delete", name], { timeoutMs: 10_000 });
    }
  }
}

/** Why this machine cannot run the test, or undefined if it can. */
export function whyNot(): string | undefined {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (process.getuid?.() !== 0) return "network namespaces need root";
  if (whichSync("ip") === undefined) return "the ip command (iproute2) is missing";
  reapLeftoverProcesses();
  reapLeftoverNamespaces();
  const probe = `ampt-${process.pid}-probe-sw`;
  const added = runSync("ip", ["netns", "add", probe], { timeoutMs: 10_000 });
  runSync("ip", ["netns", "delete", probe], { timeoutMs: 10_000 });
  if (added.status !== 0) {
    return `"ip netns add" fails here (${added.stderr.trim() || added.error})`;
  }
  return undefined;
}

/** Something that runs an HTTP request inside a namespace and prints the response body. */
function httpCommand(url: string, body?: unknown): string[] {
  if (whichSync("curl") !== undefined) {
    return body === undefined ? ["curl", "-sS", "-f", "-m", "3", url] : [
      "curl",
      "-sS",
      "-m",
      "3",
      "-H",
      "content-type: application/json",
      "--data-binary",
      "@-",
      url,
    ];
  }
  // Without curl, this runtime itself fetches (slower to start, but always there).
  const runtime = currentRuntime();
  const script = `const body = ${JSON.stringify(body === undefined ? null : JSON.stringify(body))};
const response = await fetch(${JSON.stringify(url)}, body === null ? {} : {
  method: "POST", headers: { "content-type": "application/json" }, body });
console.log(await response.text());`;
  return runtime === "deno"
    ? [findRuntime("deno")!, "eval", script]
    : [findRuntime("bun")!, "-e", script];
}

/** An HTTP request to `127.0.0.1:<port>` from inside namespace `ns`, as JSON. */
export async function httpInNamespace<T>(ns: string, port: number, path: string, body?: unknown) {
  const command = httpCommand(`http://127.0.0.1:${port}${path}`, body);
  const result = await runAsync("ip", ["netns", "exec", ns, ...command], {
    timeoutMs: 8000,
    input: body === undefined ? undefined : JSON.stringify(body),
  });
  if (result.status !== 0) {
    throw new Error(`Cannot fetch ${path} in ${ns}: ${result.stderr.trim()}`);
  }
  return JSON.parse(result.stdout) as T;
}

/** One host of a test LAN: its namespace and its address on the bridge. */
export interface LanHost {
  readonly ns: string;
  readonly address: string;
}

/**
 * Builds a LAN of test namespaces: a bridge `br0` in namespace `bridgeNs`, and for each host a
 * namespace with `eth0` (a veth whose other end is a bridge port) at `address/24`, `lo` up and a
 * default route via eth0 (so that the limited broadcast 255.255.255.255 has a way out, as on a
 * real LAN). Every interface is created directly inside its namespace: nothing is added to the
 * machine's own. Pushes each namespace it makes onto `created`, so the caller deletes them even
 * when this throws half-way.
 */
export function buildLan(bridgeNs: string, hosts: readonly LanHost[], created: string[]): void {
  ip("netns", "add", bridgeNs);
  created.push(bridgeNs);
  ip("-n", bridgeNs, "link", "add", "br0", "type", "bridge");
  ip("-n", bridgeNs, "link", "set", "br0", "up");
  for (const [i, h] of hosts.entries()) {
    ip("netns", "add", h.ns);
    created.push(h.ns);
    const port = `p${i + 1}`;
    ip("-n", bridgeNs, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns);
    ip("-n", bridgeNs, "link", "set", port, "master", "br0", "up");
    ip("-n", h.ns, "addr", "add", `${h.address}/24`, "dev", "eth0");
    ip("-n", h.ns, "link", "set", "eth0", "up");
    ip("-n", h.ns, "link", "set", "lo", "up");
    ip("-n", h.ns, "route", "add", "default", "dev", "eth0");
  }
}

/** The names of the machine's own interfaces (to check a test added none). */
export function rootLinkNames(): string[] {
  return ip("-o", "link", "show").split("\n").map((line) => line.split(":")[1]?.trim() ?? "");
}
