/**
 * What `npm pack` would put in the tarball, summarised by folder, and a check that nothing
 * but the manifest, README, LICENSE and `esm/` is in it.
 *
 * @module
 */
import { NpmBuildError, run } from "./_common.ts";

/** One file of the tarball, as `npm pack --json` lists it. */
export interface PackFile {
  readonly path: string;
  readonly size: number;
}

/** The parts of `npm pack --dry-run --json`'s report the summary uses. */
export interface PackInfo {
  readonly filename: string;
  /** Bytes packed. */
  readonly size: number;
  readonly unpackedSize: number;
  readonly files: readonly PackFile[];
}

const kB = (bytes: number) => `${(bytes / 1000).toFixed(1)} kB`;

/**
 * The summary printed for a pack: a line with the totals, then one per folder (sorted) with
 * its count, bytes and either its file names (the top folder) or how many `.js` and `.d.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packSummaryLines } from "./_pack.ts";
 * const lines = packSummaryLines({
 *   filename: "automp-0.1.0.tgz",
 *   size: 2_000,
 *   unpackedSize: 6_000,
 *   files: [
 *     { path: "package.json", size: 1_000 },
 *     { path: "esm/mod.js", size: 3_000 },
 *     { path: "esm/mod.d.ts", size: 2_000 },
 *   ],
 * });
 * assert.deepEqual(lines, [
 *   "npm pack --dry-run: automp-0.1.0.tgz, 3 files, 2.0 kB packed, 6.0 kB unpacked",
 *   "  ./                         1 files    1.0 kB  package.json",
 *   "  esm/                       2 files    5.0 kB  1 .js, 1 .d.ts",
 * ]);
 * ```
 */
export function packSummaryLines(info: PackInfo): string[] {
  const lines = [
    `npm pack --dry-run: ${info.filename}, ${info.files.length} files, ` +
    `${kB(info.size)} packed, ${kB(info.unpackedSize)} unpacked`,
  ];
  const groups = new Map<string, { count: number; bytes: number; js: number; dts: number }>();
  for (const file of info.files) {
    const dir = file.path.includes("/") ? file.path.slice(0, file.path.lastIndexOf("/")) : ".";
    const group = groups.get(dir) ?? { count: 0, bytes: 0, js: 0, dts: 0 };
    group.count++;
    group.bytes += file.size;
    if (file.path.endsWith(".d.ts")) group.dts++;
    else if (file.path.endsWith(".js")) group.js++;
    groups.set(dir, group);
  }
  for (const [dir, group] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const names = dir === "."
      ? info.files.filter((f) => !f.path.includes("/")).map((f) => f.path).sort().join(", ")
      : `${group.js} .js, ${group.dts} .d.ts`;
    lines.push(
      `  ${(dir + "/").padEnd(24)} ${String(group.count).padStart(3)} files ${
        kB(group.bytes).padStart(9)
      }  ${names}`,
    );
  }
  return lines;
}

/**
 * Files of the pack in a folder other than `esm/`: the tarball should hold only the top-level
 * files and the compiled modules.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { strayFiles } from "./_pack.ts";
 * const files = [{ path: "README.md", size: 1 }, { path: "esm/mod.js", size: 1 }, {
 *   path: ".test/a_test.js",
 *   size: 1,
 * }];
 * assert.deepEqual(strayFiles(files), [".test/a_test.js"]);
 * ```
 */
export function strayFiles(files: readonly PackFile[]): string[] {
  return files.filter((f) => !f.path.startsWith("esm/") && f.path.includes("/"))
    .map((f) => f.path);
}

/**
 * Runs `npm pack --dry-run` in the package directory, prints {@link packSummaryLines}, and
 * returns the files; throws {@link NpmBuildError} if npm fails or the pack holds
 * {@link strayFiles}.
 *
 * @example
 * ```ts ignore
 * import { packSummary } from "./_pack.ts";
 * const files = packSummary("/tmp/automp-npm", console.log);
 * console.log(files.length);
 * ```
 */
export function packSummary(outDir: string, print: (line: string) => void): PackFile[] {
  const ran = run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: outDir });
  if (ran.status !== 0) throw new NpmBuildError(`Cannot npm pack --dry-run:\n${ran.stderr}`);
  const [info] = JSON.parse(ran.stdout) as PackInfo[];
  for (const line of packSummaryLines(info)) print(line);
  const stray = strayFiles(info.files);
  if (stray.length > 0) {
    throw new NpmBuildError(`Cannot pack: unexpected files ${stray.join(", ")}`);
  }
  return [...info.files];
}
