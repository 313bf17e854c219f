// A 429 with Retry-After is waited out (its own file: the wait runs beside the others).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ChatAPI } from "../dist/index.js";
import { createTenant, startServer } from "./support/stack.mjs";

let server;

/** Spends the key's window (fixed, one minute) with raw calls; answers the Retry-After. */
async function spendWindow(key) {
  for (let i = 0; i < 50; i++) {
    const res = await fetch(`${server.base}/api/v1/clients/me`, {
      headers: { Authorization: `Bearer ${key}` },
    });
    await res.arrayBuffer();
    if (res.status === 429) return Number(res.headers.get("retry-after"));
  }
  throw new Error("no 429 after 50 calls");
}
before(async () => {
  server = await startServer("ratelimit");
});
after(async () => {
  await server?.stop();
});

test("a 429 with Retry-After is waited out, then the call succeeds", async () => {
  const tenant = await createTenant(server.base, "limited");
  const admin = new ChatAPI({ baseUrl: server.base, apiKey: tenant.master_key });
  await admin.clients.update({ settings: { rate_limits: { requests_per_minute: 3 } } });
  const limited = await spendWindow(tenant.master_key);
  const started = Date.now();
  const me = await admin.clients.me();
  const waited = (Date.now() - started) / 1000;
  assert.equal(me.id, tenant.id);
  // Retry-After counts whole seconds up to the window's end.
  assert.ok(waited >= limited - 1.5, `waited ${waited}s for Retry-After ${limited}s`);
});

test("a client that may not wait long enough gives up with the 429", async () => {
  const tenant = await createTenant(server.base, "impatient");
  const api = new ChatAPI({
    baseUrl: server.base,
    apiKey: tenant.master_key,
    maxRetries: 1,
    maxDelayMs: 10,
  });
  await api.clients.update({ settings: { rate_limits: { requests_per_minute: 1 } } });
  await spendWindow(tenant.master_key);
  await assert.rejects(api.clients.me(), (error) => error.status === 429 && error.problem.status === 429);
});
