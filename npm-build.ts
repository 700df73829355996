/**
 * Builds the npm package into `npm/`.
 *
 * A stub for now: the npm build arrives with issue 7. It exits 0 so that scripts and CI that
 * already call it keep working.
 *
 * @module
 */

if (import.meta.main) {
  console.log("npm-build: the npm build arrives with issue 7; nothing to do yet.");
}
