// The REST client against a real `chatapi serve` (PostgreSQL + Redis).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ChatAPI, ChatAPIConnectionError, ChatAPIError } from "../dist/index.js";
import { Proxy } from "./support/proxy.mjs";
import { createTenant, startServer } from "./support/stack.mjs";

let server;
let tenant;
let api;

before(async () => {
  server = await startServer("rest");
  tenant = await createTenant(server.base, "rest");
  api = new ChatAPI({ baseUrl: server.base, apiKey: tenant.master_key });
});

after(async () => {
  await server?.stop();
});

test("for await walks a 1,050-item list across pages, each item once", async () => {
  const ids = Array.from({ length: 1050 }, (_, i) => `bulk-${String(i).padStart(4, "0")}`);
  // Concurrent upserts, 25 at a time, so the set-up stays short.
  for (let i = 0; i < ids.length; i += 25) {
    await Promise.all(ids.slice(i, i + 25).map((id) => api.users.upsert({ external_id: id })));
  }
  const seen = [];
  let pages = 0;
  for await (const page of api.users.list({ limit: 100 }).pages()) {
    pages += 1;
    seen.push(...page.data.map((u) => u.external_id));
  }
  assert.equal(pages, 11);
  const walked = [];
  for await (const user of api.users.list({ limit: 200 })) walked.push(user.external_id);
  assert.equal(walked.length, 1050);
  assert.deepEqual(new Set(walked), new Set(ids));
  assert.deepEqual(walked, seen);
});

test("errors are ChatAPIError carrying the problem+json", async () => {
  await assert.rejects(api.rooms.get("01HZZZZZZZZZZZZZZZZZZZZZZZ"), (error) => {
    assert.ok(error instanceof ChatAPIError);
    assert.equal(error.status, 404);
    assert.equal(error.problem.status, 404);
    assert.ok(error.problem.title);
    return true;
  });
  const bad = new ChatAPI({ baseUrl: server.base, apiKey: "ck_nope_nope" });
  await assert.rejects(bad.clients.me(), (error) => error instanceof ChatAPIError && error.status === 401);
});

test("a send whose answer is lost is retried with its Idempotency-Key: one notification", async () => {
  const proxy = await new Proxy(server.base).start();
  try {
    const own = await createTenant(server.base, "drop");
    const client = new ChatAPI({ baseUrl: proxy.url, apiKey: own.master_key, backoffMs: 50 });
    const user = await client.users.upsert({ external_id: "dropped" });
    proxy.dropResponse("POST /api/v1/notifications/send");
    const sent = await client.notifications.send({
      channels: ["websocket"],
      recipients: [{ user_id: user.id }],
      websocket: { event: "order.shipped", data: { n: 1 } },
    });
    assert.equal(proxy.dropped, 1, "the proxy cut the first answer");
    const all = await client.notifications.list().toArray();
    assert.equal(all.length, 1);
    assert.equal(all[0].id, sent.id);
  } finally {
    await proxy.close();
  }
});

test("a message send whose answer is lost is stored once (client_message_id)", async () => {
  const proxy = await new Proxy(server.base).start();
  try {
    const client = new ChatAPI({ baseUrl: proxy.url, apiKey: tenant.master_key, backoffMs: 50 });
    const room = await client.rooms.create({ name: "dropped" });
    proxy.dropResponse(`POST /api/v1/rooms/${room.id}/messages`);
    const message = await client.messages.send(room.id, "once");
    assert.equal(proxy.dropped, 1);
    const stored = [];
    for await (const m of client.messages.iterate(room.id)) stored.push(m);
    assert.deepEqual(stored.map((m) => [m.seq, m.id]), [[1, message.id]]);
  } finally {
    await proxy.close();
  }
});

test("a POST without idempotency is not replayed after a lost answer", async () => {
  const proxy = await new Proxy(server.base).start();
  try {
    const client = new ChatAPI({ baseUrl: proxy.url, apiKey: tenant.master_key, backoffMs: 50 });
    proxy.dropResponse("POST /api/v1/rooms");
    await assert.rejects(client.rooms.create({ name: "maybe" }), ChatAPIConnectionError);
  } finally {
    await proxy.close();
  }
});
