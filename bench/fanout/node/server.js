// Baseline for bench/fanout: a bare Node socket.io broadcast server.
//
// Every client that connects joins room "bench". POST /trigger {"count": N, "payload_bytes": B}
// emits N `message.created` events {seq, sent_at, pad} to the room (all at once, or one every
// `interval_ms` when that is given), answering once all are emitted; GET /rss answers the
// process RSS in bytes. Usage: node server.js --port P [--host 127.0.0.1]
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const { performance } = require("node:perf_hooks");
const { Server } = require("socket.io");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = arg("host", "127.0.0.1");
const port = Number(arg("port", "8002"));

// Wall-clock seconds with sub-millisecond resolution (Date.now() only has ms), comparable
// with Python's time.time() on the same machine.
function nowSeconds() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

function send(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(data),
  });
  res.end(data);
}

const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/rss") {
    send(res, 200, { rss: process.memoryUsage().rss });
    return;
  }
  if (req.method === "POST" && req.url === "/trigger") {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString() || "{}");
      } catch (err) {
        send(res, 400, { error: String(err) });
        return;
      }
      const count = Number(body.count ?? 1);
      const pad = "x".repeat(Number(body.payload_bytes ?? 0));
      const interval = Number(body.interval_ms ?? 0);
      const start = performance.now();
      for (let i = 0; i < count; i++) {
        if (interval > 0 && i > 0) {
          // paced: emit number i at start + i x interval
          const wait = Math.max(0, start + i * interval - performance.now());
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
        io.to("bench").emit("message.created", { seq: i, sent_at: nowSeconds(), pad });
      }
      send(res, 200, { emitted: count, members: io.sockets.adapter.rooms.get("bench")?.size ?? 0 });
    });
    return;
  }
  send(res, 404, { error: "not found" });
});

const io = new Server(httpServer, { path: "/sockets", serveClient: false });
io.on("connection", (socket) => {
  socket.join("bench");
});

httpServer.listen(port, host, () => {
  const pkg = path.join(__dirname, "node_modules", "socket.io", "package.json");
  const version = JSON.parse(fs.readFileSync(pkg, "utf8")).version;
  console.log(`node ${process.version} socket.io ${version} listening on ${host}:${port}`);
});

function shutdown() {
  io.close();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
