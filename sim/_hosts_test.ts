import { test } from "node:test";
import assert from "node:assert/strict";
import { Kernel } from "./_kernel.ts";
import { HostTable } from "./_hosts.ts";
import { parseSubnet } from "./_ipv4.ts";
import type { SimListener } from "./_tcp.ts";
import type { Platform } from "../src/platform.ts";

function table(seed = 1) {
  const kernel = new Kernel({
    traceLimit: 0,
    logLimit: 10,
    logLevel: "debug",
    hostErrors: "throw",
  });
  const hosts = new HostTable(kernel, { seed, subnet: parseSubnet("10.0.0.0/16"), epochMs: 1000 });
  return { kernel, hosts };
}

test("addresses are handed out in order, skipping taken ones, per subnet", () => {
  const { hosts } = table();
  hosts.add("fixed", () => {}, { address: "10.0.0.2" });
  assert.equal(hosts.add("a", () => {}, {}).address, "10.0.0.1");
  assert.equal(hosts.add("b", () => {}, {}).address, "10.0.0.3");
  const other = hosts.add("x", () => {}, { subnet: "192.168.1.0/24" });
  assert.equal(other.address, "192.168.1.1");
  assert.equal(other.subnet, "192.168.1.0/24");
  assert.deepEqual(hosts.list.map((h) => h.index), [0, 1, 2, 3]);
  assert.throws(() => hosts.add("a", () => {}, {}), TypeError);
  assert.throws(() => hosts.add("c", () => {}, { address: "10.0.0.2" }), TypeError);
  assert.throws(() => hosts.add("d", () => {}, { address: "10.1.0.0" }), TypeError);
});

test("ephemeral ports skip ports in use and wrap around to 49152", () => {
  const { hosts } = table();
  const host = hosts.add("a", () => {}, {});
  host.nextPort = 65535;
  host.datagramSockets.set(49152, []);
  assert.equal(host.ephemeralPort(), 65535);
  assert.equal(host.ephemeralPort(), 49153);
});

test("a crash closes listeners and forgets sockets; start runs a new incarnation", () => {
  const { kernel, hosts } = table();
  const randoms: number[] = [];
  const host = hosts.add("a", (platform) => void randoms.push(platform.random.next()), {});
  const listener = { closed: false } as SimListener;
  host.listeners.set(80, listener);
  host.datagramSockets.set(53, []);
  const ran: number[] = [];
  kernel.call(host, 10, () => ran.push(1));
  hosts.crash(host);
  assert.equal(host.state, "down");
  assert.equal(listener.closed, true);
  assert.equal(host.portInUse(80) || host.portInUse(53), false);
  hosts.start(host);
  kernel.run(1);
  assert.deepEqual(ran, [], "the first incarnation's timer is skipped");
  assert.equal(host.incarnation, 2);
  assert.notEqual(randoms[0], randoms[1], "each incarnation has its own randomness");
});

test("a paused host's code waits and runs on resume, in order", () => {
  const { kernel, hosts } = table();
  const host = hosts.add("a", () => {}, {});
  const ran: string[] = [];
  kernel.call(host, 1000, () => ran.push("first"));
  kernel.call(host, 2000, () => ran.push("second"));
  hosts.pause(host);
  kernel.run(5);
  assert.equal(ran.length, 0);
  hosts.resume(host);
  kernel.run(0);
  assert.deepEqual(ran, ["first", "second"]);
});

test("resolve refuses an unknown name and a look-alike host object", () => {
  const { hosts } = table();
  const a = hosts.add("a", () => {}, {});
  assert.equal(hosts.resolve("a"), a);
  assert.deepEqual(hosts.resolveSet(["a", a]), [a, a]);
  assert.throws(() => hosts.resolve("nope"), TypeError);
  assert.throws(() => hosts.resolve({ ...a, subnet: a.subnet }), TypeError);
});

test("a skewed clock stays continuous and its timers stretch with its rate", () => {
  const { kernel, hosts } = table();
  let platform: Platform | undefined;
  const host = hosts.add("a", (p) => void (platform = p), {});
  kernel.run(10);
  hosts.setClockSkew(host, { rate: 2 });
  assert.equal(platform!.clock.now(), 10);
  assert.equal(platform!.clock.wallNow(), 1010);
  let firedAtUs = -1;
  platform!.clock.schedule(10, () => void (firedAtUs = kernel.nowUs));
  kernel.run(10);
  assert.equal(firedAtUs, 15_000, "10 ms of a clock running twice as fast take 5 ms");
  assert.throws(() => hosts.setClockSkew(host, { rate: 0 }), RangeError);
});

test("a host's log lines stop with its incarnation", () => {
  const { kernel, hosts } = table();
  let platform: Platform | undefined;
  const host = hosts.add("a", (p) => void (platform = p), {});
  platform!.log.log("info", "alive");
  hosts.crash(host);
  platform!.log.log("info", "ghost");
  assert.deepEqual(kernel.logs.map((entry) => entry.event), ["alive"]);
});
