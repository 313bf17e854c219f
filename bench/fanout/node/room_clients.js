// Room clients for bench/churn.py and bench/broker_restart.py: N "stable" Socket.IO clients
// of one room that record which message seqs each received (so a lost delivery is seen per
// client, not as a total), plus a churn loop that connects and closes other clients at a
// fixed rate. Driven by line commands on stdin, answering JSON lines on stdout.
//
// Usage: node room_clients.js --config FILE
//   FILE: {"url": "http://127.0.0.1:P", "path": "/sockets", "auths": [{"api_key": ...}],
//          "churn_auths": [...], "concurrency": 50, "reconnect": false,
//          "event": "message.created"}
// On start it connects every stable client and prints {"type":"connected", connected,
// failed, connect_s, errors}.
// Commands (one per line):
//   quiet MS                 wait until no event arrived for MS ms -> {"type":"quiet"}
//   churn RATE SECONDS HOLD  open RATE connections/s for SECONDS (each closed HOLD ms after
//                            its connect) -> {"type":"churned", attempted, connected, failed,
//                            closed, connect_p50_ms, connect_p99_ms, connect_max_ms, errors}
//   report FROM TO           stable clients against seqs FROM..TO -> {"type":"report",
//                            clients, connected_now, delivered, missing, clients_missing,
//                            missed_seqs (any client's, at most 5,000), p50_ms, p99_ms, max_ms, disconnects, reconnects, cpu}
//   sync ROOM FROM TO        each stable client asks `sync` from the last seq it holds without
//                            a gap (as a reconnecting client would) until has_more is false
//                            -> {"type":"synced", asked, recovered, missing, clients_missing,
//                            sync_s, failed}
//   exit
// Latencies are receipt time minus the message's metadata.sent_at (wall-clock seconds).
"use strict";

const fs = require("node:fs");
const readline = require("node:readline");
const { performance } = require("node:perf_hooks");
const { io } = require("socket.io-client");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const config = JSON.parse(fs.readFileSync(arg("config"), "utf8"));
const EVENT = config.event ?? "message.created";
const PATH = config.path ?? "/sockets";

function now() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

function cpu() {
  const u = process.cpuUsage();
  return { user_s: u.user / 1e6, system_s: u.system / 1e6 };
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

const errors = [];
function noteError(what) {
  if (errors.length < 5) errors.push(String(what).slice(0, 300));
}

let lastEventAt = now();
let latencies = [];
const stable = []; // {socket, seqs: Set, disconnects, reconnects}

function connectStable(auth) {
  return new Promise((resolve) => {
    const socket = io(config.url, {
      path: PATH,
      transports: ["websocket"],
      forceNew: true,
      reconnection: Boolean(config.reconnect),
      reconnectionDelay: 200,
      reconnectionDelayMax: 2000,
      auth,
      timeout: 60000,
    });
    const client = { socket, seqs: new Set(), disconnects: 0, reconnects: 0, up: false };
    let done = false;
    socket.on("connect", () => {
      client.up = true;
      if (!done) {
        done = true;
        stable.push(client);
        resolve(true);
      } else {
        client.reconnects++;
      }
    });
    socket.on("connect_error", (err) => {
      if (!done) {
        done = true;
        noteError(err && err.message ? err.message : err);
        socket.close();
        resolve(false);
      }
    });
    socket.on("disconnect", (reason) => {
      client.up = false;
      if (reason !== "io client disconnect") {
        client.disconnects++;
        noteError(`disconnect: ${reason}`);
      }
    });
    socket.onAny((event, data) => {
      const t = now();
      lastEventAt = t;
      if (event !== EVENT || data == null) return;
      client.seqs.add(data.seq);
      const sentAt = data.metadata ? data.metadata.sent_at : undefined;
      if (typeof sentAt === "number") latencies.push((t - sentAt) * 1000);
    });
  });
}

async function connectAll() {
  const auths = config.auths;
  let next = 0;
  let connected = 0;
  let failed = 0;
  const started = now();
  async function worker() {
    while (next < auths.length) {
      if (await connectStable(auths[next++])) connected++;
      else failed++;
    }
  }
  const concurrency = Math.min(Number(config.concurrency ?? 50), auths.length);
  await Promise.all(Array.from({ length: concurrency }, worker));
  out({ type: "connected", connected, failed, connect_s: now() - started, errors: errors.slice() });
}

function churnOne(auth, hold, tally) {
  return new Promise((resolve) => {
    const t0 = now();
    const socket = io(config.url, {
      path: PATH,
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      auth,
      timeout: 30000,
    });
    let done = false;
    // socket.io-client's `timeout` covers the transport's open, not the namespace's
    // CONNECT answer: a connect the server never answers fails here.
    const giveUp = setTimeout(() => {
      if (done) return;
      done = true;
      tally.failed++;
      noteError("churn: no connect within 30 s");
      socket.close();
      resolve();
    }, 30000);
    socket.on("connect", () => {
      if (done) return;
      done = true;
      clearTimeout(giveUp);
      tally.connected++;
      tally.times.push((now() - t0) * 1000);
      setTimeout(() => {
        socket.close();
        tally.closed++;
        resolve();
      }, hold);
    });
    socket.on("connect_error", (err) => {
      if (done) return;
      done = true;
      clearTimeout(giveUp);
      tally.failed++;
      noteError(`churn: ${err && err.message ? err.message : err}`);
      socket.close();
      resolve();
    });
  });
}

async function churn(rate, seconds, hold) {
  const auths = config.churn_auths;
  const tally = { connected: 0, failed: 0, closed: 0, times: [] };
  const total = Math.round(rate * seconds);
  const t0 = now();
  const pending = [];
  for (let i = 0; i < total; i++) {
    const wait = (t0 + i / rate - now()) * 1000;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(churnOne(auths[i % auths.length], hold, tally));
  }
  const scheduled = now() - t0;
  await Promise.all(pending);
  const sorted = tally.times.slice().sort((a, b) => a - b);
  out({
    type: "churned",
    attempted: total,
    scheduled_s: scheduled,
    connected: tally.connected,
    failed: tally.failed,
    closed: tally.closed,
    connect_p50_ms: percentile(sorted, 0.5),
    connect_p99_ms: percentile(sorted, 0.99),
    connect_max_ms: sorted.length ? sorted[sorted.length - 1] : NaN,
    errors: errors.slice(),
    cpu: cpu(),
  });
}

function missingOf(client, from, to) {
  let missing = 0;
  for (let s = from; s <= to; s++) if (!client.seqs.has(s)) missing++;
  return missing;
}

function report(from, to) {
  let missing = 0;
  let clientsMissing = 0;
  let delivered = 0;
  const missed = new Set(); // seqs some stable client lacks
  for (const c of stable) {
    const m = missingOf(c, from, to);
    missing += m;
    if (m) {
      clientsMissing++;
      for (let s = from; s <= to && missed.size < 5000; s++) if (!c.seqs.has(s)) missed.add(s);
    }
    delivered += c.seqs.size;
  }
  const sorted = latencies.slice().sort((a, b) => a - b);
  out({
    type: "report",
    clients: stable.length,
    connected_now: stable.filter((c) => c.up).length,
    delivered,
    missing,
    clients_missing: clientsMissing,
    missed_seqs: Array.from(missed).sort((a, b) => a - b),
    samples: sorted.length,
    p50_ms: percentile(sorted, 0.5),
    p99_ms: percentile(sorted, 0.99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : NaN,
    disconnects: stable.reduce((n, c) => n + c.disconnects, 0),
    reconnects: stable.reduce((n, c) => n + c.reconnects, 0),
    errors: errors.slice(),
    cpu: cpu(),
  });
}

async function syncOne(client, room, from, tally) {
  let after = from - 1;
  while (client.seqs.has(after + 1)) after++;
  for (;;) {
    let answer;
    try {
      answer = await client.socket
        .timeout(30000)
        .emitWithAck("sync", { room_id: room, after_seq: after, limit: 200 });
    } catch (err) {
      tally.failed++;
      noteError(`sync: ${err && err.message ? err.message : err}`);
      return;
    }
    tally.asked++;
    if (!answer || answer.error) {
      tally.failed++;
      noteError(`sync: ${JSON.stringify(answer && answer.error)}`);
      return;
    }
    for (const m of answer.messages) {
      if (!client.seqs.has(m.seq)) tally.recovered++;
      client.seqs.add(m.seq);
      after = Math.max(after, m.seq);
    }
    if (!answer.has_more || answer.messages.length === 0) return;
  }
}

async function sync(room, from, to) {
  const tally = { asked: 0, recovered: 0, failed: 0 };
  const t0 = now();
  let next = 0;
  async function worker() {
    while (next < stable.length) await syncOne(stable[next++], room, from, tally);
  }
  await Promise.all(Array.from({ length: Math.min(50, stable.length) }, worker));
  let missing = 0;
  let clientsMissing = 0;
  for (const c of stable) {
    const m = missingOf(c, from, to);
    missing += m;
    if (m) clientsMissing++;
  }
  out({
    type: "synced",
    asked: tally.asked,
    recovered: tally.recovered,
    failed: tally.failed,
    missing,
    clients_missing: clientsMissing,
    sync_s: now() - t0,
    errors: errors.slice(),
  });
}

async function handle(line) {
  const [cmd, ...rest] = line.trim().split(/\s+/);
  if (cmd === "quiet") {
    const ms = Number(rest[0] ?? 1000);
    lastEventAt = now();
    while ((now() - lastEventAt) * 1000 < ms) {
      await new Promise((r) => setTimeout(r, Math.max(10, ms / 5)));
    }
    out({ type: "quiet" });
  } else if (cmd === "churn") {
    await churn(Number(rest[0]), Number(rest[1]), Number(rest[2]));
  } else if (cmd === "report") {
    report(Number(rest[0]), Number(rest[1]));
  } else if (cmd === "sync") {
    await sync(rest[0], Number(rest[1]), Number(rest[2]));
  } else if (cmd === "exit") {
    for (const c of stable) c.socket.close();
    out({ type: "bye" });
    setTimeout(() => process.exit(0), 200);
  } else if (cmd) {
    out({ type: "error", error: `unknown command ${cmd}` });
  }
}

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
connectAll().then(() => {
  rl.on("line", (line) => {
    // churn runs beside the other commands (report while churning is not needed, but
    // a sync or report must not wait for a 30 s churn queued before it).
    if (line.startsWith("churn")) handle(line);
    else queue = queue.then(() => handle(line));
  });
});
rl.on("close", () => setTimeout(() => process.exit(0), 100));
