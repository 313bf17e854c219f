// A real `chatapi serve` (and, on demand, `chatapi worker`) for the tests, on the
// PostgreSQL database and Redis prefix that tests/clients/test_js_client.py prepares and
// passes in the environment (DATABASE_URL, REDIS_URL, ADMIN_API_KEY, …).
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const CHATAPI_BIN =
  process.env.CHATAPI_BIN ?? resolve(here, "../../../../.venv/bin/chatapi");
export const ADMIN_KEY = process.env.ADMIN_API_KEY;

export function requireEnv() {
  const missing = ["DATABASE_URL", "REDIS_URL", "ADMIN_API_KEY"].filter((k) => !process.env[k]);
  if (missing.length) {
    throw new Error(
      `${missing.join(", ")} not set: run through tests/clients/test_js_client.py (scripts/test.sh)`,
    );
  }
}

export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Child {
  constructor(args, name) {
    this.log = join(mkdtempSync(join(tmpdir(), "chatapi-js-")), `${name}.log`);
    const out = openSync(this.log, "w");
    this.proc = spawn(CHATAPI_BIN, args, { env: process.env, stdio: ["ignore", out, out] });
    this.exited = new Promise((r) => this.proc.once("exit", r));
  }
  output() {
    return readFileSync(this.log, "utf8");
  }
  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** `chatapi serve` on a free port, ready; `base` is its origin. */
export async function startServer(name = "serve") {
  requireEnv();
  const port = await freePort();
  const child = new Child(["serve", "--port", String(port)], name);
  child.base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.proc.exitCode !== null) throw new Error(`server exited early:\n${child.output()}`);
    try {
      if ((await fetch(`${child.base}/health/ready`)).status === 200) return child;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`server not ready in 60 s:\n${child.output()}`);
    }
    await sleep(100);
  }
}

/** `chatapi worker` (deliveries); stop it with `stop()`. */
export function startWorker() {
  requireEnv();
  return new Child(["worker", "--concurrency", "1"], "worker");
}

/** A new tenant through the admin API: `{id, slug, master_key}`. */
export async function createTenant(base, name = "js") {
  const slug = `${name}-${Math.random().toString(36).slice(2, 10)}`;
  const res = await fetch(`${base}/api/v1/clients`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: slug, slug }),
  });
  if (res.status !== 201) throw new Error(`create tenant: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Poll `check` until truthy; fail naming `what` after `ms`. */
export async function waitFor(check, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}
