import { test } from "node:test";
import assert from "node:assert/strict";
import { isTolerated, parseDiagnostics } from "./_compile.ts";

test("parseDiagnostics groups indented lines with the diagnostic above them", () => {
  const output = [
    "src/a.ts(1,2): error TS2322: Type 'A' is not assignable to type 'B'.",
    "  Property 'x' is missing.",
    "    More detail.",
    "src/b.ts(3,4): error TS2304: Cannot find name 'y'.",
    "",
  ].join("\n");
  assert.deepEqual(parseDiagnostics(output, "/repo"), [
    { file: "src/a.ts", text: output.split("\n").slice(0, 3).join("\n") },
    { file: "src/b.ts", text: "src/b.ts(3,4): error TS2304: Cannot find name 'y'." },
  ]);
});

test("parseDiagnostics makes absolute file paths relative to the root", () => {
  const [diagnostic] = parseDiagnostics(
    "/repo/adapters/deno/mod.ts(9,1): error TS2304: x",
    "/repo",
  );
  assert.equal(diagnostic.file, "adapters/deno/mod.ts");
});

test("parseDiagnostics gives a line that names no file a diagnostic with an empty file", () => {
  assert.deepEqual(parseDiagnostics("error TS6053: File 'x.ts' not found.\n", "/repo"), [
    { file: "", text: "error TS6053: File 'x.ts' not found." },
  ]);
});

test("only diagnostics in the Deno adapter are tolerated", () => {
  assert.equal(isTolerated({ file: "adapters/deno/mod.ts", text: "" }), true);
  assert.equal(isTolerated({ file: "adapters/bun/mod.ts", text: "" }), false);
  assert.equal(isTolerated({ file: "", text: "" }), false);
});
