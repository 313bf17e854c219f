// Copies the built ESM (dist/**/*.js) into examples/browser-chat/vendor/chatapi-client/, so
// the example runs in a browser without a bundler. `npm run vendor-example` rebuilds first;
// test/example.test.mjs fails when the copy differs from a fresh build.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const VENDORED = join(root, "..", "..", "examples", "browser-chat", "vendor", "chatapi-client");

rmSync(VENDORED, { recursive: true, force: true });
mkdirSync(VENDORED, { recursive: true });
cpSync(join(root, "dist"), VENDORED, {
  recursive: true,
  filter: (src) => !src.endsWith(".d.ts"),
});
console.log(`vendored dist/ into ${VENDORED}`);
