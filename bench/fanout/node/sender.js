// Steady sender for bench/notification_steady.py: POST /api/v1/notifications/send on an
// absolute schedule (t0 + i / rate), requests not awaited one by one, over keep-alive
// connections (node:http Agent, at most `max_sockets`), so a slow answer never slows the
// schedule and the sender costs far less CPU than the server it loads.
//
// Usage: node sender.js --config FILE
//   FILE: {"url": "http://127.0.0.1:P", "master_key": "...", "recipients": ["user id", ...],
//          "event": "bench.tick", "max_sockets": 64}
// Prints {"type":"ready"}, then takes commands (one per line):
//   send COUNT RATE OFFSET  send COUNT notifications at RATE/s; send i (0-based, counted
//                           from OFFSET) goes to recipients[(OFFSET + i) % len] with
//                           data {"i", "sent_at"} (sent_at: wall-clock seconds taken just
//                           before the request, comparable with Python's time.time()) ->
//                           {"type":"sent", count, t0, last_send, last_answer, send_rate,
//                            answered_rate, a50_ms, a99_ms, bad, statuses, errors, cpu}
//   exit
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const readline = require("node:readline");
const { performance } = require("node:perf_hooks");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const config = JSON.parse(fs.readFileSync(arg("config"), "utf8"));
const target = new URL("/api/v1/notifications/send", config.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(config.max_sockets ?? 64) });
const EVENT = config.event ?? "bench.tick";
const recipients = config.recipients;

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

// One POST; resolves {status, ms} (status 0: a transport error, retried once: a keep-alive
// connection the server closed while idle; the retry keeps the first sent_at).
function post(i, userId) {
  const sentAt = now();
  const body = JSON.stringify({
    channels: ["websocket"],
    recipients: [{ user_id: userId }],
    websocket: { event: EVENT, data: { i, sent_at: sentAt } },
  });
  const once = () =>
    new Promise((resolve) => {
      const req = http.request(
        target,
        {
          method: "POST",
          agent,
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
            authorization: `Bearer ${config.master_key}`,
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode, error: null }));
        },
      );
      req.on("error", (err) => resolve({ status: 0, error: String(err && err.message) }));
      req.end(body);
    });
  return once()
    .then((r) => (r.status === 0 ? once() : r))
    .then((r) => ({ ...r, ms: (now() - sentAt) * 1000, at: now() }));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function send(count, rate, offset) {
  const cpu0 = cpu();
  const pending = [];
  const t0 = now();
  let lastSend = t0;
  for (let i = 0; i < count; ) {
    const wait = t0 + i / rate - now();
    if (wait > 0.0005) await sleep(wait * 1000);
    // Everything due by now goes out in this turn (a late timer never thins the schedule).
    const due = now();
    while (i < count && t0 + i / rate <= due) {
      const n = offset + i;
      pending.push(post(n, recipients[n % recipients.length]));
      i++;
    }
    lastSend = now();
  }
  const answers = await Promise.all(pending);
  const cpu1 = cpu();
  const statuses = {};
  const errors = [];
  let bad = 0;
  let lastAnswer = t0;
  for (const a of answers) {
    statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    if (a.status !== 202) {
      bad++;
      if (a.error && errors.length < 5) errors.push(a.error);
    }
    if (a.at > lastAnswer) lastAnswer = a.at;
  }
  const ms = answers.map((a) => a.ms).sort((a, b) => a - b);
  out({
    type: "sent",
    count,
    t0,
    last_send: lastSend,
    last_answer: lastAnswer,
    send_rate: count > 1 ? (count - 1) / (lastSend - t0) : NaN,
    answered_rate: (count - bad) / (lastAnswer - t0),
    a50_ms: percentile(ms, 0.5),
    a99_ms: percentile(ms, 0.99),
    bad,
    statuses,
    errors,
    cpu: { user_s: cpu1.user_s - cpu0.user_s, system_s: cpu1.system_s - cpu0.system_s },
  });
}

async function handle(line) {
  const [cmd, ...rest] = line.trim().split(/\s+/);
  if (cmd === "send") {
    await send(Number(rest[0]), Number(rest[1]), Number(rest[2] ?? 0));
  } else if (cmd === "exit") {
    agent.destroy();
    out({ type: "bye" });
    setTimeout(() => process.exit(0), 100);
  } else if (cmd) {
    out({ type: "error", error: `unknown command ${cmd}` });
  }
}

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on("line", (line) => {
  queue = queue.then(() => handle(line));
});
rl.on("close", () => setTimeout(() => process.exit(0), 100));
out({ type: "ready" });
