/**
 * What one node's state costs to touch in a large simulated cluster, by how its objects lie in
 * memory: the measurement behind "a data-oriented node" in `docs/scaling.md`.
 *
 * A ring cluster sends each node the same few events per simulated second at any size, yet each
 * event costs about 3x more wall time at 10,000 nodes than at 1,000. Each event walks a chain of
 * the node's objects (its host, socket, ring, membership, watches, clock, timer: some 25-30).
 * This bench builds `--nodes` model nodes of `--objects` small objects each, chained, beside a
 * `--filler-kib` array per node (a member table's size at 10,000 members), and times events that
 * each pick a random node and walk its chain, reading and writing a field of each object:
 *
 * - `apart`: object j of every node is allocated in turn (as in a real cluster, where a node's
 *   objects are made at different times and the collector moves them), filler in between;
 * - `together`: each node's objects allocated in a row (what a data-oriented node gets: its
 *   hot state in one place), the same filler in between;
 * - `apart, small heap`: as `apart`, without the filler.
 *
 * Rows: nanoseconds per object touched, `apart` beside `together` (the baseline). On this
 * machine `together` stays within 15 ns at both sizes, while `apart` costs several times more at
 * 1,000 nodes and 10-22x more at 10,000: an event's cost follows how many scattered objects it
 * touches. The filler usually adds to it (compare `apart, small heap`). Runs vary by up to 2x.
 *
 * ```sh
 * deno run -A --v8-flags=--max-old-space-size=8000 bench/layout_bench.ts [--nodes 1000,10000] [--json]
 * bun run bench/layout_bench.ts
 * ```
 *
 * @module
 */
import { benchArgs, type BenchRow, flagValue, forceGc, report, runtimeName } from "./_harness.ts";

/** One model object: a chain link whose counter each touch reads and writes. */
interface Link {
  touches: number;
  next: Link | null;
}

/** How a model node's objects are laid out (see the module doc). */
export type Layout = "apart" | "together" | "apart, small heap";

/** The size of a layout run. */
export interface LayoutSize {
  readonly nodes: number;
  readonly objects: number;
  readonly fillerKib: number;
  readonly events: number;
}

/** Nanoseconds per object touched, and per event, for one layout and size. */
export interface LayoutResult {
  readonly nsPerTouch: number;
  readonly nsPerEvent: number;
  /** Arrays of filler held while walking. */
  readonly fillerArrays: number;
}

/** A shared object the filler arrays point at (as a member table points at shared claims). */
const SHARED = { shared: true };

/**
 * Builds `size.nodes` chains in `layout` and times `size.events` random walks (best of 3).
 * @throws {RangeError} If a size is not a whole number (at least 1; `fillerKib` at least 0).
 */
export function measureLayout(layout: Layout, size: LayoutSize): LayoutResult {
  const { nodes, objects, fillerKib, events } = size;
  for (const [name, value] of Object.entries(size)) {
    if (!Number.isInteger(value) || value < (name === "fillerKib" ? 0 : 1)) {
      throw new RangeError(
        `Cannot measure layout: ${name} ${value} is not a whole number of at least ${
          name === "fillerKib" ? 0 : 1
        }`,
      );
    }
  }
  const fillerElements = layout === "apart, small heap" ? 0 : Math.round(fillerKib * 1024 / 8);
  const chains: Link[][] = Array.from({ length: nodes }, () => new Array<Link>(objects));
  const filler: unknown[][] = [];
  const addFiller = (share: number) => {
    if (fillerElements > 0) filler.push(new Array(Math.ceil(fillerElements * share)).fill(SHARED));
  };
  if (layout === "together") {
    for (let i = 0; i < nodes; i++) {
      for (let j = 0; j < objects; j++) chains[i][j] = { touches: 0, next: null };
      addFiller(1);
    }
  } else {
    for (let j = 0; j < objects; j++) {
      for (let i = 0; i < nodes; i++) {
        chains[i][j] = { touches: 0, next: null };
        addFiller(1 / objects);
      }
    }
  }
  const heads = chains.map((chain) => {
    for (let j = 0; j + 1 < chain.length; j++) chain[j].next = chain[j + 1];
    return chain[0];
  });
  chains.length = 0;
  forceGc();
  let seed = 0x2545f491;
  const walk = () => {
    for (let e = 0; e < events; e++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      for (let link: Link | null = heads[seed % nodes]; link !== null; link = link.next) {
        link.touches++;
      }
    }
  };
  walk(); // warm up the compiler and the caches alike for every layout
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const start = performance.now();
    walk();
    best = Math.min(best, performance.now() - start);
  }
  const nsPerEvent = best * 1e6 / events;
  // The filler is read after the walks so that it stays alive (and in place) during them.
  return { nsPerTouch: nsPerEvent / objects, nsPerEvent, fillerArrays: filler.length };
}

/** `--nodes a,b` (default 1,000 and 10,000). */
function nodeSizes(args: readonly string[]): number[] {
  const text = flagValue(args, "nodes") ?? "1000,10000";
  return text.split(",").map((part) => {
    const value = Number(part);
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`Cannot read --nodes: "${part}" is not a whole number above 0`);
    }
    return value;
  });
}

/** The bench's rows: at each size, `apart` and `apart, small heap` beside `together`. */
export function layoutRows(args: readonly string[] = benchArgs()): BenchRow[] {
  const objects = Number(flagValue(args, "objects") ?? 30);
  const fillerKib = Number(flagValue(args, "filler-kib") ?? 100);
  const events = Number(flagValue(args, "events") ?? 200_000);
  const runtime = runtimeName();
  const rows: BenchRow[] = [];
  for (const nodes of nodeSizes(args)) {
    const size = { nodes, objects, fillerKib, events };
    const together = measureLayout("together", size);
    for (const layout of ["apart", "apart, small heap"] as const) {
      const result = measureLayout(layout, size);
      rows.push({
        name: `layout ${layout}: ns per object touched, ${nodes} nodes x ${objects} objects`,
        runtime,
        value: result.nsPerTouch,
        unit: "ns",
        baseline: together.nsPerTouch,
        baselineName: "together",
        note: `${Math.round(result.nsPerEvent)} ns per event (together ${
          Math.round(together.nsPerEvent)
        }); filler ${layout === "apart" ? fillerKib : 0} KiB per node`,
      });
    }
  }
  return rows;
}

if (import.meta.main) report(layoutRows());
