// verifyWebhook on a real signed delivery (chatapi worker → a local receiver), and the
// connect token flow when the server has it.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";
import { ChatAPI, RealtimeClient, verifyWebhook, WebhookVerificationError } from "../dist/index.js";
import { createTenant, startServer, startWorker, waitFor } from "./support/stack.mjs";

let server;
let worker;
before(async () => {
  server = await startServer("webhooks");
  worker = startWorker();
});
after(async () => {
  await worker?.stop();
  await server?.stop();
});

function receiver() {
  const received = [];
  const http = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(204).end();
    });
  });
  return new Promise((ok) =>
    http.listen(0, "127.0.0.1", () =>
      ok({ received, url: `http://127.0.0.1:${http.address().port}/hook`, close: () => http.close() }),
    ),
  );
}

test("verifyWebhook accepts a real signed delivery and refuses a tampered one", async () => {
  const hook = await receiver();
  try {
    const tenant = await createTenant(server.base, "hooks");
    const api = new ChatAPI({ baseUrl: server.base, apiKey: tenant.master_key });
    const endpoint = await api.webhookEndpoints.create({ url: hook.url, event_types: ["order.shipped"] });
    await api.notifications.send({
      channels: ["webhook"],
      recipients: [],
      webhook: { endpoint_ids: [endpoint.id], event_type: "order.shipped", payload: { order: "A-1042" } },
    });
    const [delivery] = await waitFor(() => hook.received.length > 0 && hook.received, "the delivery", 60_000);
    const payload = await verifyWebhook(endpoint.secret, delivery.body, delivery.headers);
    assert.equal(JSON.stringify(payload).includes("A-1042"), true);
    // During a rotation the receiver holds several secrets: any one that signed will do.
    const other = "whsec_" + Buffer.alloc(32, 7).toString("base64");
    await verifyWebhook([other, endpoint.secret], delivery.body, new Headers(delivery.headers));
    const tampered = delivery.body.replace("A-1042", "A-1043");
    await assert.rejects(verifyWebhook(endpoint.secret, tampered, delivery.headers), WebhookVerificationError);
    await assert.rejects(verifyWebhook(other, delivery.body, delivery.headers), WebhookVerificationError);
    const forged = { ...delivery.headers, "webhook-id": "msg_forged" };
    await assert.rejects(verifyWebhook(endpoint.secret, delivery.body, forged), WebhookVerificationError);
  } finally {
    hook.close();
  }
});

test("login with device_id keeps other devices; a connect token opens one socket once", async (t) => {
  const tenant = await createTenant(server.base, "kit");
  const api = new ChatAPI({ baseUrl: server.base, apiKey: tenant.master_key });
  const user = await api.users.upsert({ external_id: "grace" });
  const phone = await api.auth.login({ user_id: user.id, device_id: "phone" });
  const laptop = await api.auth.login({ user_id: user.id, device_id: "laptop" });
  const asPhone = new ChatAPI({ baseUrl: server.base, apiKey: phone.api_key });
  assert.equal((await asPhone.auth.me()).kind, "user");
  await new ChatAPI({ baseUrl: server.base, apiKey: laptop.api_key }).auth.logout();
  assert.equal((await asPhone.auth.me()).kind, "user", "logging out the laptop left the phone");

  const { token } = await api.auth.connectToken({ user_id: user.id });
  for (const transport of ["websocket", "socketio"]) {
    const minted = transport === "websocket" ? token : (await api.auth.connectToken({ user_id: user.id })).token;
    const first = new RealtimeClient({ baseUrl: server.base, token: minted, transport });
    await first.connect();
    first.close();
    const again = new RealtimeClient({ baseUrl: server.base, token: minted, transport });
    await assert.rejects(again.connect(), (e) => e.fatal === true, `${transport}: a used token`);
  }
});
