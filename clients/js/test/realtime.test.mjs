// The realtime client across cut connections: every message once, in order, both transports.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ChatAPI, RealtimeClient } from "../dist/index.js";
import { Proxy } from "./support/proxy.mjs";
import { createTenant, startServer, waitFor } from "./support/stack.mjs";

const TOTAL = 200;
let server;

before(async () => {
  server = await startServer("realtime");
});
after(async () => {
  await server?.stop();
});

async function setUp(name) {
  const tenant = await createTenant(server.base, name);
  const master = new ChatAPI({ baseUrl: server.base, apiKey: tenant.master_key });
  const user = await master.users.upsert({ external_id: "ada" });
  const room = await master.rooms.create({ name: "cut", member_ids: [user.id] });
  const login = await master.auth.login({ user_id: user.id });
  return { master, room, userKey: login.api_key };
}

for (const transport of ["websocket", "socketio"]) {
  test(`${transport}: ${TOTAL} messages sent while the connection is cut twice arrive once, in order`, async () => {
    const { master, room, userKey } = await setUp(`rt-${transport}`);
    const proxy = await new Proxy(server.base).start();
    const rt = new RealtimeClient({
      baseUrl: proxy.url,
      apiKey: userKey,
      transport,
      positions: { [room.id]: 0 },
      reconnect: { initialMs: 50, maxMs: 500 },
    });
    const got = [];
    let reconnects = 0;
    rt.on("message.created", (m) => got.push(m));
    rt.on("reconnecting", () => (reconnects += 1));
    const opens = [];
    rt.on("open", (data) => opens.push(data));
    try {
      await rt.connect();
      for (let i = 1; i <= TOTAL; i++) {
        await master.messages.send(room.id, `m${i}`);
        if (i === 50 || i === 130) proxy.down(); // drops the socket, refuses reconnects…
        if (i === 80 || i === 160) proxy.up(); // …for 30 sends
      }
      await waitFor(() => got.length >= TOTAL, `${TOTAL} messages (got ${got.length})`);
      // A sentinel after the last: anything duplicated or late would come before it.
      await master.messages.send(room.id, "sentinel");
      await waitFor(() => got.some((m) => m.content === "sentinel"), "the sentinel");
      assert.deepEqual(
        got.map((m) => m.seq),
        Array.from({ length: TOTAL + 1 }, (_, i) => i + 1),
      );
      assert.equal(new Set(got.map((m) => m.id)).size, TOTAL + 1);
      assert.equal(got[0].content, "m1");
      assert.ok(opens.length >= 3, `connected ${opens.length} times`);
      assert.ok(reconnects >= 2, "reconnect attempts were refused while the proxy was down");
      assert.deepEqual(rt.positions(), { [room.id]: TOTAL + 1 });
    } finally {
      rt.close();
      await proxy.close();
    }
  });
}

test("a message.send over the socket and a ping answer; errors are problems", async () => {
  const { room, userKey } = await setUp("rt-send");
  for (const transport of ["websocket", "socketio"]) {
    const rt = new RealtimeClient({ baseUrl: server.base, apiKey: userKey, transport });
    try {
      await rt.connect();
      const sent = await rt.send(room.id, `over ${transport}`);
      assert.equal(sent.content, `over ${transport}`);
      await assert.rejects(rt.request("sync", { room_id: "nope", after_seq: 0 }), (e) => e.status >= 400);
    } finally {
      rt.close();
    }
  }
});

test("a revoked key is not retried forever: the open fails as fatal", async () => {
  const rt = new RealtimeClient({ baseUrl: server.base, apiKey: "ck_bad_key", transport: "websocket" });
  await assert.rejects(rt.connect(), (e) => e.fatal === true);
  const sio = new RealtimeClient({ baseUrl: server.base, apiKey: "ck_bad_key", transport: "socketio" });
  await assert.rejects(sio.connect(), (e) => e.fatal === true);
});
