"""Inbound webhook ingestion under `wrk`: signed GitHub deliveries accepted per second by the
real app, against the bare one-INSERT endpoint of `message_send_wrk.py`, side by side.

What is measured: `POST /api/v1/webhooks/{slug}/{name}` of the real app (`create_app` under
uvicorn in a child process, PostgreSQL, the doorbell sent to a local Redis, no worker
consuming it) for a `github` hook: each request finds the hook, verifies
`X-Hub-Signature-256`, stores the event (deduplicated by `X-GitHub-Delivery`) and answers
202. The baseline is `message_send_wrk.py`'s bare FastAPI endpoint parsing a JSON body and
doing one INSERT through a plain asyncpg pool into a scratch table of the same database.

Load: `wrk` with a generated Lua script. wrk's Lua has no HMAC, but GitHub signs only the
body, so the script carries N bodies pre-signed here (different issues) and cycles through
them, giving every request its own `X-GitHub-Delivery` (run, thread and counter): each one
is a new event, none a duplicate. Both sides get a warm-up, then alternating rounds (ABBA).

Printed per side: req/s, mean and p50/p99 latency (wrk's), the server's CPU per request
(from /proc) and wrk's CPU as a share of one core; then the ratios ours/baseline, and a
check that every accepted request is one stored event with its own delivery id.

    python bench/inbound_ingest.py
    python bench/inbound_ingest.py --duration 8 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
from redis.asyncio import Redis

from bench._support import (
    ADMIN_KEY,
    DEFAULT_PG_SERVER,
    BenchError,
    ServerProcess,
    asyncpg_dsn,
    create_pg_database,
    drop_pg_database,
    machine_line,
    require_local,
)
from bench.message_send_wrk import (
    LUA as BASELINE_LUA,
)
from bench.message_send_wrk import (
    SCRATCH_DDL,
    Side,
    _median,
    run_wrk,
    serve,
    write_lua,
)

SCRIPT = Path(__file__).resolve()
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

# The signed bodies cycle; the delivery id is unique per request (`tid` is set per thread
# by setup(), the run stamp by init(): every wrk run, warm-up included, has its own).
LUA = """
local bodies = {BODIES}
local path = '{PATH}'
local n = 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
init = function(args)
  stamp = string.format("%x-%d", os.time(), tid or 0)
end
request = function()
  n = n + 1
  local b = bodies[(n % #bodies) + 1]
  return wrk.format("POST", path, {["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "issues", ["X-Hub-Signature-256"] = b[2],
    ["X-GitHub-Delivery"] = stamp .. "-" .. n}, b[1])
end
"""


def issue_body(n: int) -> bytes:
    """A GitHub `issues` payload (as tests/inbound/signing.py's, ~450 bytes)."""
    return json.dumps(
        {
            "action": "opened",
            "issue": {
                "id": 100_000 + n,
                "number": n,
                "title": f"Crash number {n} on start",
                "html_url": f"https://github.com/acme/app/issues/{n}",
                "user": {"login": "octocat", "id": 1},
                "labels": [{"name": "bug"}],
                "body": "It crashes.",
            },
            "repository": {"full_name": "acme/app"},
            "sender": {"login": "octocat"},
        },
        separators=(",", ":"),
    ).encode()


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write_ingest_lua(folder: Path, path: str, secret: str, count: int) -> Path:
    """The Lua script posting `count` pre-signed bodies round-robin to `path`."""
    entries = []
    for n in range(count):
        body = issue_body(n)
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        entries.append(f"{{{_lua_string(body.decode())}, {_lua_string(signature)}}}")
    done = BASELINE_LUA[BASELINE_LUA.index("done = function") :]
    script = LUA.replace("{BODIES}", "{" + ",\n".join(entries) + "}").replace("{PATH}", path)
    out = folder / "ingest.lua"
    out.write_text(script + done)
    return out


async def setup_hook(base_url: str) -> tuple[str, str, str]:
    """A client and its `github` hook: (hook id, ingestion path, secret)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as http:
        r = await http.post(
            "/api/v1/clients",
            json={"name": "bench inbound"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        if r.status_code != 201:
            raise BenchError(f"POST /clients: {r.status_code} {r.text[:300]}")
        master = {"Authorization": f"Bearer {r.json()['master_key']}"}
        r = await http.post(
            "/api/v1/inbound-webhooks",
            json={"name": "github", "scheme": "github", "action": "room"},
            headers=master,
        )
        if r.status_code != 201:
            raise BenchError(f"POST /inbound-webhooks: {r.status_code} {r.text[:300]}")
        hook = r.json()
        return str(hook["id"]), str(hook["path"]), str(hook["secret"])


def report(args: argparse.Namespace, ours: Side, base: Side, stored: str, machine: str) -> None:
    print(
        "inbound_ingest: POST /api/v1/webhooks/{slug}/{name} (github, signed) "
        "vs bare FastAPI + asyncpg INSERT"
    )
    print(f"  {machine}")
    print(
        f"  postgresql, doorbells to Redis, one uvicorn process per server, "
        f"log_level={args.log_level}; wrk -t{args.threads} -c{args.connections}, "
        f"{args.rounds} alternating rounds of {args.duration}s per side after a "
        f"{args.warmup}s warm-up; {args.bodies} pre-signed bodies, a unique delivery id each"
    )
    head = ("req/s", "mean ms", "p50 ms", "p99 ms", "srv CPU ms/req", "wrk CPU")
    print(f"  {'':<36}" + "".join(f"{h:>15}" for h in head))
    figs: dict[str, tuple[float, float, float]] = {}
    for name, side in (
        ("ours: signed ingest", ours),
        ("baseline: bare FastAPI + INSERT", base),
    ):
        rps = side.requests / side.seconds
        mean = side.latency_weighted_us / side.requests / 1000
        p50, p99 = _median(side.p50s) / 1000, _median(side.p99s) / 1000
        srv = side.server_cpu / side.requests * 1000
        figs[side.label] = (rps, mean, srv)
        cells = (
            f"{rps:,.0f}", f"{mean:.1f}", f"{p50:.1f}", f"{p99:.1f}", f"{srv:.3f}",
            f"{side.wrk_cpu / side.seconds:.0%}",
        )  # fmt: skip
        print(f"  {name:<36}" + "".join(f"{c:>15}" for c in cells))
    o, b = figs["ours"], figs["baseline"]
    print(
        f"  ratio ours/baseline: throughput {o[0] / b[0]:.2f}x, mean latency {o[1] / b[1]:.2f}x, "
        f"server CPU per request {o[2] / b[2]:.2f}x"
    )
    print(f"  stored check: {stored}")


async def check_stored(
    conn: asyncpg.Connection, hook_id: str, answered: int, runs: int, c: int
) -> str:
    """Every answered request is one stored event with its own delivery id (requests cut
    off by wrk's end may be stored without their answer counted: at most one per
    connection per run)."""
    rows, keys = await conn.fetchrow(
        "SELECT count(*), count(DISTINCT dedupe_key) FROM inbound_events WHERE hook_id = $1",
        hook_id,
    )
    if rows != keys:
        raise BenchError(f"{rows} events but {keys} distinct delivery ids")
    if not answered <= rows <= answered + runs * c:
        raise BenchError(f"{answered} requests answered 202 but {rows} events stored")
    return f"{answered} requests answered 202, {rows} events stored, each delivery id once"


async def run(args: argparse.Namespace) -> None:
    machine = machine_line()
    folder = Path(tempfile.mkdtemp(prefix="chatapi-bench-inbound-"))
    pg_name, url = await create_pg_database(args.pg_server)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    await conn.execute(SCRATCH_DDL.format(ts="timestamptz"))
    prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    app_spec = {
        "kind": "app",
        "database_url": url,
        "redis_url": args.redis_url,
        "redis_prefix": prefix,
        "log_level": args.log_level,
        "admin_key": ADMIN_KEY,
    }
    base_spec = {"kind": "asyncpg", "dsn": asyncpg_dsn(url)}
    app_server = ServerProcess(SCRIPT, app_spec, "app")
    base_server = ServerProcess(SCRIPT, base_spec, "baseline")
    try:
        await asyncio.gather(app_server.start("/health/live"), base_server.start("/health/live"))
        hook_id, path, secret = await setup_hook(app_server.base_url)
        ours = Side("ours", app_server, write_ingest_lua(folder, path, secret, args.bodies))
        base = Side("baseline", base_server, write_lua(folder, "", [("r", "none")]))
        warm_requests = 0
        for side in (ours, base):
            before = side.requests
            # A recorded warm-up, subtracted again: its requests count for the stored check.
            await asyncio.to_thread(run_wrk, side, args, args.warmup, True)
            if side is ours:
                warm_requests = side.requests - before
            _reset(side)
        for i in range(args.rounds):
            for side in (ours, base) if i % 2 == 0 else (base, ours):
                await asyncio.to_thread(run_wrk, side, args, args.duration, True)
        stored = await check_stored(
            conn, hook_id, ours.requests + warm_requests, args.rounds + 1, args.connections
        )
        report(args, ours, base, stored, machine)
    finally:
        await asyncio.gather(app_server.stop(), base_server.stop())
        await conn.close()
        await drop_pg_database(args.pg_server, pg_name)
        redis = Redis.from_url(args.redis_url)
        try:
            async for key in redis.scan_iter(match=f"{prefix}*", count=500):
                await redis.delete(key)
        finally:
            await redis.aclose()


def _reset(side: Side) -> None:
    """Forget a warm-up's figures."""
    side.requests = 0
    side.seconds = 0.0
    side.non2xx = side.socket_errors = 0
    side.latency_weighted_us = 0.0
    side.p50s.clear()
    side.p99s.clear()
    side.server_cpu = side.wrk_cpu = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=32, help="wrk -c")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per side")
    parser.add_argument("--bodies", type=int, default=256, help="pre-signed bodies cycled")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="local Redis for doorbells")
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(json.loads(args.serve))
        return
    require_local(args.pg_server)
    require_local(args.redis_url)
    try:
        asyncio.run(run(args))
    except BenchError as exc:
        sys.exit(f"inbound_ingest: {exc}")


if __name__ == "__main__":
    main()
