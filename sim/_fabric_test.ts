import { test } from "node:test";
import assert from "node:assert/strict";
import { Kernel } from "./_kernel.ts";
import { HostTable } from "./_hosts.ts";
import {
  Fabric,
  mergeConditions,
  PATH_CUT,
  PATH_HELD,
  PATH_OPEN,
  type Resender,
} from "./_fabric.ts";
import { parseSubnet } from "./_ipv4.ts";
import { SeededRandom } from "./_random.ts";
import type { NetworkConditions } from "./simulation.ts";

const CONDITIONS: NetworkConditions = {
  latencyMsMin: 1,
  latencyMsMax: 5,
  lossProbability: 0,
  duplicateProbability: 0,
};

function world(names = ["a", "b", "c"], conditions = CONDITIONS, seed = 1) {
  const kernel = new Kernel({ traceLimit: 0, logLimit: 0, logLevel: "info", hostErrors: "throw" });
  const hosts = new HostTable(kernel, { seed, subnet: parseSubnet("10.0.0.0/16"), epochMs: 0 });
  const list = names.map((name) => hosts.add(name, () => undefined, {}));
  const fabric = new Fabric(kernel, hosts, conditions, new SeededRandom(seed));
  return { kernel, hosts, list, fabric };
}

test("a partition cuts both ways, a one-way cut one way, and a cut wins over a hold", () => {
  const { fabric, list: [a, b, c] } = world();
  assert.equal(fabric.hasFaults, false);
  fabric.partition("a", ["b"]);
  assert.equal(fabric.pathBetween(a, b), PATH_CUT);
  assert.equal(fabric.pathBetween(b, a), PATH_CUT);
  assert.equal(fabric.pathBetween(a, c), PATH_OPEN);
  fabric.partitionOneWay("c", "a");
  assert.equal(fabric.pathBetween(c, a), PATH_CUT);
  assert.equal(fabric.pathBetween(a, c), PATH_OPEN);
  fabric.hold("a", "b");
  assert.equal(fabric.pathBetween(a, b), PATH_CUT);
  fabric.heal("a", "b");
  assert.equal(fabric.pathBetween(a, b), PATH_HELD);
  assert.equal(fabric.isPartitioned("c", "a"), true, "healing a-b leaves c-a cut");
  fabric.heal();
  fabric.release();
  assert.equal(fabric.hasFaults, false);
});

test("a host is never cut from itself", () => {
  const { fabric, list: [a] } = world();
  fabric.partition(["a", "b"], ["a", "b"]);
  assert.equal(fabric.pathBetween(a, a), PATH_OPEN);
});

test("parked packets go on when their path opens, paths in first-parked order", () => {
  const { fabric, list: [a, b, c] } = world();
  const resent: string[] = [];
  const via: Resender<string> = { resend: (packet) => resent.push(packet) };
  fabric.hold("a", ["b", "c"]);
  fabric.partition("a", "c");
  fabric.park(a, c, "a→c 1", via);
  fabric.park(b, a, "b→a 1", via);
  fabric.park(a, c, "a→c 2", via);
  fabric.park(b, a, "b→a 2", via);
  fabric.release();
  assert.deepEqual(resent, ["b→a 1", "b→a 2"], "a→c is still cut");
  fabric.heal();
  assert.deepEqual(resent, ["b→a 1", "b→a 2", "a→c 1", "a→c 2"]);
});

test("latency draws stay within [min, max] and repeat for the same seed", () => {
  const draws = (seed: number) => {
    const { fabric } = world(["a"], CONDITIONS, seed);
    return Array.from({ length: 200 }, () => fabric.latencyUs());
  };
  const first = draws(7);
  assert.ok(first.every((us) => us >= 1000 && us <= 5000));
  assert.deepEqual(draws(7), first);
  assert.notDeepEqual(draws(8), first);
});

test("a loss or duplication probability of 0 or 1 takes no draw from the network's stream", () => {
  const { fabric: plain } = world(["a"], { ...CONDITIONS, lossProbability: 0 });
  const { fabric: sure } = world(["a"], { ...CONDITIONS, lossProbability: 1 });
  assert.equal(plain.drawLoss(), false);
  assert.equal(sure.drawLoss(), true);
  assert.equal(sure.drawDuplicate(), false);
  assert.equal(sure.latencyUs(), plain.latencyUs());
});

test("bad conditions are refused with a RangeError and the old ones stay", () => {
  const { fabric } = world();
  assert.throws(() => fabric.setConditions({ latencyMsMin: 9, latencyMsMax: 2 }), RangeError);
  assert.throws(() => fabric.setConditions({ lossProbability: 1.5 }), RangeError);
  assert.deepEqual(fabric.conditions, CONDITIONS);
  fabric.setConditions({ latencyMsMin: 2, latencyMsMax: 2 });
  assert.equal(fabric.latencyUs(), 2000);
  assert.deepEqual(mergeConditions(CONDITIONS, { duplicateProbability: undefined }), CONDITIONS);
});

test("the packet rule is asked only while set, and a verdict it cannot mean is refused", () => {
  const { fabric } = world();
  let asked = 0;
  const info = () => {
    asked++;
    return {
      kind: "datagram" as const,
      from: "a",
      to: "b",
      fromAddress: { host: "10.0.0.1", port: 1 },
      toAddress: { host: "10.0.0.2", port: 2 },
      data: undefined,
      timeMs: 0,
      attempt: 0,
    };
  };
  assert.equal(fabric.verdict(info), "pass");
  assert.equal(asked, 0);
  fabric.rule = () => undefined;
  assert.equal(fabric.verdict(info), "pass");
  fabric.rule = () => ({ delayMs: 3 });
  assert.deepEqual(fabric.verdict(info), { delayMs: 3 });
  fabric.rule = () => "explode" as never;
  assert.throws(() => fabric.verdict(info), TypeError);
  assert.equal(asked, 3);
});
