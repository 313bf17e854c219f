// examples/browser-chat loads a vendored copy of dist/: it must be this build.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vendored = join(root, "..", "..", "examples", "browser-chat", "vendor", "chatapi-client");

function jsFiles(dir) {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((name) => name.endsWith(".js"))
    .sort();
}

test("examples/browser-chat vendors the current build (npm run vendor-example)", () => {
  const built = jsFiles(join(root, "dist"));
  assert.deepEqual(jsFiles(vendored), built, "run `npm run vendor-example` in clients/js");
  for (const name of built) {
    assert.equal(
      readFileSync(join(vendored, name), "utf8"),
      readFileSync(join(root, "dist", name), "utf8"),
      `${relative(root, join(vendored, name))} is stale: run \`npm run vendor-example\``,
    );
  }
});
