// Load driver for bench/: N Socket.IO (socket.io-client) or plain WebSocket (ws) clients in
// one Node process, driven by line commands on stdin, answering JSON lines on stdout.
//
// Usage: node driver.js --config FILE
//   FILE: {"url": "http://127.0.0.1:P", "transport": "socketio"|"websocket",
//          "path": "/sockets" (socketio) or "/api/v1/websocket/open" (websocket),
//          "auths": [ {"api_key": "..."} | null, ... ], "concurrency": 50,
//          "event": "message.created", "latency_path": ["sent_at"]}
// On start it connects every client, `concurrency` connection attempts in flight at a time,
// and prints {"type":"connected", connected, failed, connect_s, errors, cpu}.
// Commands (one per line):
//   quiet MS           wait until no event of any kind has arrived for MS ms -> {"type":"quiet"}
//   reset              forget the counted benchmark events -> {"type":"reset"}
//   wait N TIMEOUT_MS  wait until N benchmark events arrived (or the timeout) -> report
//   report             -> {"type":"report", delivered, first, last, p50_ms, p99_ms, max_ms,
//                          other_events, disconnected, cpu}
//   exit               close every client and exit
// Times are wall-clock seconds (comparable with Python's time.time()); cpu is this
// process's {user_s, system_s} so far.
"use strict";

const fs = require("node:fs");
const readline = require("node:readline");
const { performance } = require("node:perf_hooks");
const { io } = require("socket.io-client");
const WebSocket = require("ws");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const config = JSON.parse(fs.readFileSync(arg("config"), "utf8"));
const EVENT = config.event ?? "message.created";
const LATENCY_PATH = config.latency_path ?? ["sent_at"];
const CONCURRENCY = Number(config.concurrency ?? 50);

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

// Benchmark events: latency samples (ms) and receipt window.
let latencies = [];
let first = 0;
let last = 0;
let otherEvents = 0;
let lastEventAt = now();
let disconnected = 0;
const errors = [];
let waiter = null; // {target, resolve}

function onBenchEvent(data) {
  const t = now();
  lastEventAt = t;
  let sentAt = data;
  for (const key of LATENCY_PATH) sentAt = sentAt == null ? undefined : sentAt[key];
  if (typeof sentAt === "number") latencies.push((t - sentAt) * 1000);
  else latencies.push(NaN);
  if (first === 0) first = t;
  last = t;
  if (waiter && latencies.length >= waiter.target) {
    const w = waiter;
    waiter = null;
    w.resolve();
  }
}

function onOtherEvent() {
  lastEventAt = now();
  otherEvents++;
}

function noteError(what) {
  if (errors.length < 5) errors.push(String(what).slice(0, 300));
}

const clients = [];

function connectSocketIO(auth) {
  return new Promise((resolve) => {
    const socket = io(config.url, {
      path: config.path ?? "/sockets",
      transports: ["websocket"],
      reconnection: false,
      auth: auth ?? undefined,
      timeout: 60000,
    });
    let done = false;
    socket.on("connect", () => {
      if (!done) {
        done = true;
        clients.push({ close: () => socket.close() });
        resolve(true);
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
      if (done && reason !== "io client disconnect") {
        disconnected++;
        noteError(`disconnect: ${reason}`);
      }
    });
    socket.onAny((event, data) => {
      if (event === EVENT) onBenchEvent(data);
      else onOtherEvent();
    });
  });
}

function connectWebSocket(auth) {
  return new Promise((resolve) => {
    const base = config.url.replace(/^http/, "ws") + (config.path ?? "/api/v1/websocket/open");
    const url = auth && auth.api_key ? `${base}?api_key=${encodeURIComponent(auth.api_key)}` : base;
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let done = false;
    ws.on("open", () => {
      done = true;
      clients.push({ close: () => ws.close() });
      resolve(true);
    });
    ws.on("error", (err) => {
      if (!done) {
        done = true;
        noteError(err && err.message ? err.message : err);
        resolve(false);
      }
    });
    ws.on("close", (code, reason) => {
      if (!done) {
        done = true;
        noteError(`closed ${code} ${reason}`);
        resolve(false);
      } else if (!closing) {
        disconnected++;
        noteError(`closed ${code} ${reason}`);
      }
    });
    ws.on("message", (raw) => {
      let frame;
      try {
        frame = JSON.parse(raw.toString());
      } catch {
        onOtherEvent();
        return;
      }
      if (frame.event === EVENT) onBenchEvent(frame.data);
      else onOtherEvent();
    });
  });
}

let closing = false;

async function connectAll() {
  const auths = config.auths;
  const connect = config.transport === "websocket" ? connectWebSocket : connectSocketIO;
  let next = 0;
  let connected = 0;
  let failed = 0;
  const started = now();
  const cpu0 = cpu();
  async function worker() {
    while (next < auths.length) {
      const auth = auths[next++];
      if (await connect(auth)) connected++;
      else failed++;
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, auths.length) }, worker));
  const cpu1 = cpu();
  out({
    type: "connected",
    connected,
    failed,
    started,
    connect_s: now() - started,
    errors: errors.slice(),
    cpu: { user_s: cpu1.user_s - cpu0.user_s, system_s: cpu1.system_s - cpu0.system_s },
  });
}

function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

function report(extra = {}) {
  const sorted = latencies.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  out({
    type: "report",
    delivered: latencies.length,
    first,
    last,
    p50_ms: percentile(sorted, 0.5),
    p99_ms: percentile(sorted, 0.99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : NaN,
    other_events: otherEvents,
    disconnected,
    errors: errors.slice(),
    rss: process.memoryUsage().rss,
    cpu: cpu(),
    ...extra,
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
    out({ type: "quiet", other_events: otherEvents });
  } else if (cmd === "reset") {
    latencies = [];
    first = 0;
    last = 0;
    out({ type: "reset" });
  } else if (cmd === "wait") {
    const target = Number(rest[0]);
    const timeout = Number(rest[1] ?? 60000);
    let timedOut = false;
    if (latencies.length < target) {
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          timedOut = true;
          waiter = null;
          resolve();
        }, timeout);
        waiter = {
          target,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
      });
    }
    report({ timed_out: timedOut });
  } else if (cmd === "report") {
    report();
  } else if (cmd === "exit") {
    closing = true;
    for (const c of clients) c.close();
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
    queue = queue.then(() => handle(line));
  });
});
rl.on("close", () => {
  closing = true;
  setTimeout(() => process.exit(0), 100);
});
