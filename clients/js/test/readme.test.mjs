// The README's quick start, run verbatim against a real server.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ChatAPI } from "../dist/index.js";
import { createTenant, startServer } from "./support/stack.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let server;
before(async () => {
  server = await startServer("readme");
});
after(async () => {
  await server?.stop();
});

test("the README's five-line quick start runs as written", async () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const block = readme.split("## Quick start")[1].match(/```js\n([\s\S]*?)```/)[1];
  assert.equal(block.trim().split("\n").length, 5);
  const tenant = await createTenant(server.base, "readme");
  // Inside the package, so "@chatapi/client" resolves to it (self-reference).
  const script = join(root, `quickstart-${process.pid}.mjs`);
  writeFileSync(script, block);
  try {
    await promisify(execFile)(process.execPath, [script], {
      env: { ...process.env, CHATAPI_URL: server.base, CHATAPI_KEY: tenant.master_key },
    });
  } finally {
    rmSync(script);
  }
  const api = new ChatAPI({ baseUrl: server.base, apiKey: tenant.master_key });
  const [room] = await api.rooms.list().toArray();
  const [message] = (await api.messages.page(room.id)).data;
  assert.equal(message.content, "Hello from the quick start");
});
