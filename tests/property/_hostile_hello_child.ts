/**
 * Child process of tests/property/decoder_fuzz_test.ts: decodes one hostile hello in a fresh process and
 * prints, as one JSON line, how much the resident set grew. A fresh process is the only place
 * where that number means something: in the test process earlier tests have already grown and
 * shrunk the heap.
 *
 * Usage: `<runtime> run tests/property/_hostile_hello_child.ts <levels> <claim>`: the hello is `levels`
 * nested msgpack `array 32` headers, each claiming `claim` elements (5 bytes per level).
 *
 * @module
 */
import process from "node:process";
import { decodeHello } from "../../src/system.ts";

const args = process.argv.slice(2).filter((arg) => /^\d+$/.test(arg));
const levels = Number(args[0] ?? 40);
const claim = Number(args[1] ?? 1_000_000);

const hello = new Uint8Array(levels * 5);
for (let i = 0; i < levels; i++) {
  hello.set([0xdd, claim >>> 24, (claim >>> 16) & 0xff, (claim >>> 8) & 0xff, claim & 0xff], i * 5);
}
const before = process.memoryUsage().rss;
let error: unknown;
try {
  decodeHello(hello);
} catch (caught) {
  error = caught;
}
const after = process.memoryUsage().rss;
console.log(JSON.stringify({
  helloBytes: hello.length,
  rssGrowthBytes: after - before,
  errorName: error instanceof Error ? error.name : String(error),
  errorMessage: error instanceof Error ? error.message : "",
}));
