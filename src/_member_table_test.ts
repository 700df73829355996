import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { hash32, MemberTable } from "./_member_table.ts";

type Status = "alive" | "suspect" | "dead";
interface TestClaim {
  readonly guid: string;
  readonly ring: number;
  readonly status: Status;
}

/** Places that collide often: names ending in "~" share place 7. */
const place = (guid: string) => guid.endsWith("~") ? 7 : hash32(guid);
const claim = (guid: string, status: Status = "alive"): TestClaim => ({
  guid,
  ring: place(guid),
  status,
});

/** The order the ring must have: by place, then by GUID. */
const ringOrder = (a: TestClaim, b: TestClaim) =>
  a.ring - b.ring || (a.guid < b.guid ? -1 : a.guid > b.guid ? 1 : 0);

/** Checks `table` against a plain map of what it should hold. */
function assertHolds(table: MemberTable<TestClaim>, model: Map<string, TestClaim>): void {
  const live = [...model.values()].filter((c) => c.status !== "dead").sort(ringOrder);
  assert.deepEqual(table.live().map((c) => c.guid), live.map((c) => c.guid));
  assert.equal(table.size, model.size);
  assert.equal(table.liveCount, live.length);
  assert.equal(table.deadCount, model.size - live.length);
  for (const [guid, expected] of model) assert.equal(table.get(guid), expected);
  assert.deepEqual(
    new Set([...table.values()].map((c) => c.guid)),
    new Set(model.keys()),
  );
}

describe("member table", () => {
  it("keeps live members in ring order and tombstones apart", () => {
    const table = new MemberTable<TestClaim>(place);
    const model = new Map<string, TestClaim>();
    for (const guid of ["A", "B", "C", "D", "E"]) {
      const c = claim(guid);
      table.set(c);
      model.set(guid, c);
    }
    const dead = claim("C", "dead");
    assert.equal(table.set(dead), model.get("C"));
    model.set("C", dead);
    assertHolds(table, model);
    assert.equal(table.get("nobody"), undefined);
  });

  it("orders members whose ring places collide by GUID and finds each", () => {
    const table = new MemberTable<TestClaim>(place);
    const model = new Map<string, TestClaim>();
    for (const guid of ["m3~", "m1~", "m2~", "zz~", "aa~"]) {
      const c = claim(guid);
      table.set(c);
      model.set(guid, c);
    }
    assertHolds(table, model);
    assert.equal(table.search(7, "m2~"), 2);
    assert.equal(table.search(8, ""), 5);
  });

  it("a batch counts new members at once and merges them into the ring when it ends", () => {
    const table = new MemberTable<TestClaim>(place);
    table.set(claim("self"));
    const joined = table.batch(() => {
      for (let i = 0; i < 50; i++) table.set(claim(`N${i}`));
      assert.equal(table.liveCount, 51);
      assert.equal(table.live().length, 1, "ring walks see the batch only when it ends");
      assert.equal(table.get("N7")?.guid, "N7");
      table.set(claim("N7", "suspect"));
      table.set(claim("N8", "dead"));
    });
    assert.equal(joined, true);
    assert.equal(table.liveCount, 50);
    assert.equal(table.get("N7")?.status, "suspect");
    assert.equal(table.get("N8")?.status, "dead");
    const ring = table.live();
    for (let i = 1; i < ring.length; i++) assert.ok(ringOrder(ring[i - 1], ring[i]) < 0);
    assert.equal(table.batch(() => table.set(claim("self", "suspect"))), false);
  });

  it("a random tombstone comes from the draw it is given", () => {
    const table = new MemberTable<TestClaim>(place);
    assert.equal(table.randomDead(() => 0), undefined);
    table.set(claim("A", "dead"));
    table.set(claim("B", "dead"));
    const dead = [...table.values()];
    assert.equal(table.randomDead(() => 1), dead[1]);
  });

  it("any sequence of stores, in and out of batches, holds what a plain map holds", () => {
    const op = fc.record({
      guid: fc.integer({ min: 0, max: 40 }),
      status: fc.constantFrom<Status>("alive", "suspect", "dead"),
      // A few places collide on purpose.
      collide: fc.boolean(),
    }, { noNullPrototype: true });
    fc.assert(
      fc.property(fc.array(fc.array(op, { maxLength: 30 }), { maxLength: 12 }), (batches) => {
        const table = new MemberTable<TestClaim>(place);
        const model = new Map<string, TestClaim>();
        batches.forEach((ops, b) => {
          const run = () => {
            for (const { guid, status, collide } of ops) {
              const name = collide ? `G${guid}~` : `G${guid}`;
              const stored = claim(name, status);
              assert.equal(table.set(stored), model.get(name));
              model.set(name, stored);
              assert.equal(table.get(name), stored);
            }
          };
          if (b % 2 === 0) table.batch(run);
          else run();
          assertHolds(table, model);
        });
      }),
      { numRuns: 300 },
    );
  });
});
