import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeMembership, encodeMembership, MEMBERSHIP_MARKER } from "./_membership_codec.ts";
import type { MembershipMessage, MemberUpdate } from "./_membership.ts";
import { ProtocolError } from "./errors.ts";

const update = (guid: string, status: MemberUpdate["status"] = "alive"): MemberUpdate => ({
  guid,
  address: `10.0.0.${guid.length}:7946`,
  version: 1_765_000_000_123.5,
  status,
});

const every: MembershipMessage[] = [
  { kind: "ping", from: "A", seq: 1, updates: [] },
  {
    kind: "ping",
    from: "A",
    seq: 2 ** 40,
    onBehalfOf: { guid: "B", address: "10.0.0.2:7946", seq: 300 },
    updates: [update("C", "suspect")],
  },
  { kind: "ack", from: "B", subject: "C", seq: 127, updates: [update("D", "dead")] },
  {
    kind: "ping-req",
    from: "A",
    seq: 128,
    target: "C",
    targetAddress: "10.0.0.3:7946",
    updates: [],
  },
  { kind: "gossip", from: "nœud-Ω", updates: [update("é"), update("x".repeat(300))] },
  { kind: "beat", from: "B", updates: [update("E")] },
  { kind: "sync", from: "A", digest: -123456789, reply: true, page: 2, pages: 5, updates: [] },
];

test("every membership message comes back as it went, in a compact form", () => {
  for (const message of every) {
    const bytes = encodeMembership(message);
    assert.equal(bytes[0], MEMBERSHIP_MARKER);
    assert.deepEqual(decodeMembership(bytes), message);
  }
  const ping = encodeMembership({ kind: "ping", from: "node-17", seq: 42, updates: [] });
  assert.equal(ping.length, 13, "a plain ping is 13 bytes");
});

test("random messages round-trip (property)", () => {
  const plain = { noNullPrototype: true } as const;
  const status = fc.constantFrom("alive", "suspect", "dead") as fc.Arbitrary<
    MemberUpdate["status"]
  >;
  const guid = fc.string({ minLength: 1, maxLength: 40 });
  const updates = fc.array(
    fc.record({
      guid,
      address: fc.string({ maxLength: 30 }),
      version: fc.double({ noNaN: true, noDefaultInfinity: true }),
      status,
    }, plain),
    { maxLength: 10 },
  );
  const seq = fc.maxSafeNat();
  const message: fc.Arbitrary<MembershipMessage> = fc.oneof(
    fc.record({ kind: fc.constant("ping" as const), from: guid, seq, updates }, plain),
    fc.record(
      { kind: fc.constant("ack" as const), from: guid, subject: guid, seq, updates },
      plain,
    ),
    fc.record({
      kind: fc.constant("ping-req" as const),
      from: guid,
      seq,
      target: guid,
      targetAddress: fc.string(),
      updates,
    }, plain),
    fc.record({ kind: fc.constant("gossip" as const), from: guid, updates }, plain),
    fc.record({ kind: fc.constant("beat" as const), from: guid, updates }, plain),
    fc.integer({ min: 1, max: 50 }).chain((pages) =>
      fc.record({
        kind: fc.constant("sync" as const),
        from: guid,
        digest: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        reply: fc.boolean(),
        page: fc.integer({ min: 0, max: pages - 1 }),
        pages: fc.constant(pages),
        updates,
      }, plain)
    ),
  );
  fc.assert(fc.property(message, (m) => {
    assert.deepEqual(decodeMembership(encodeMembership(m)), m);
  }));
});

test("a datagram that is not one is refused with a ProtocolError saying why", () => {
  const ping = encodeMembership({ kind: "ping", from: "A", seq: 1, updates: [update("B")] });
  const cases: Array<[Uint8Array, RegExp]> = [
    [new Uint8Array([]), /ends early/],
    [new Uint8Array([0x82, 1]), /not a membership datagram/],
    [new Uint8Array([MEMBERSHIP_MARKER, 9, 1, 65]), /kind 9/],
    [ping.subarray(0, ping.length - 3), /ends early/],
    [new Uint8Array([...ping, 0]), /1 bytes are left over/],
    [new Uint8Array([MEMBERSHIP_MARKER, 4, 0, 0]), /sender's GUID is empty/],
    [new Uint8Array([MEMBERSHIP_MARKER, 4, 1, 65, 0xff, 0xff, 0xff, 0x0f]), /cannot fit/],
    [new Uint8Array([MEMBERSHIP_MARKER, 4, 2, 0xc3, 0x28, 0]), /not UTF-8/],
    [new Uint8Array([MEMBERSHIP_MARKER, 1, 1, 65, 1, 2, 0]), /relay flag/],
    [
      new Uint8Array([MEMBERSHIP_MARKER, 5, 1, 65, 0, 0, 0, 0, 0, 3, 3, 0]),
      /page 3 of 3/,
    ],
  ];
  for (const [bytes, why] of cases) {
    assert.throws(() => decodeMembership(bytes), (error: unknown) => {
      assert.ok(error instanceof ProtocolError, String(error));
      assert.match(error.message, /^Cannot decode membership datagram: /);
      assert.match(error.message, why);
      return true;
    });
  }
  // A bad status byte in an otherwise whole update.
  const bad = encodeMembership({ kind: "gossip", from: "A", updates: [update("B")] });
  bad[bad.length - 1] = 7;
  assert.throws(() => decodeMembership(bad), /status is not 0, 1 or 2/);
});

test("random bytes never throw anything but a ProtocolError (property)", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => {
    for (const head of [[], [MEMBERSHIP_MARKER], [MEMBERSHIP_MARKER, 1], [MEMBERSHIP_MARKER, 5]]) {
      try {
        decodeMembership(new Uint8Array([...head, ...tail]));
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
      }
    }
  }));
});

test("what cannot be sent is refused with a Cannot error", () => {
  assert.throws(
    () => encodeMembership({ kind: "ping", from: "A", seq: -1, updates: [] }),
    /^RangeError: Cannot encode membership datagram: -1 is not a whole number/,
  );
  assert.throws(
    () => encodeMembership({ kind: "nope", from: "A", updates: [] } as never),
    /Cannot encode membership datagram: kind "nope"/,
  );
});
