"""Notification send under `wrk` (P1): the real relay's send against a bare one-INSERT endpoint.

What is measured: accepted `POST /api/v1/notifications/send` per second — one recipient
(`user_id`), the websocket channel — of the real app (`create_app` under uvicorn in a child
process, PostgreSQL, Redis as the broker: every accepted send enqueues one Celery message on
Redis; no worker consumes them during the run, so the API's cost is measured alone), against
a bare FastAPI app in another child whose one endpoint `POST /notifications/send` parses a
pydantic model of the same JSON body and does one INSERT (the content as jsonb) through a
plain asyncpg pool into a scratch table of the same database.

Load: `wrk` with a generated Lua script posting the same body with the master key
(`--idem`: every request also carries a distinct `Idempotency-Key` header, so the app
reserves a key per send; the baseline ignores the header). Both sides get a warm-up, then
alternating rounds (ABBA) of `--duration` seconds each. At the end the stored rows are
checked: one notification and one pending delivery per accepted request, and one
idempotency record per notification with `--idem`.

Printed per side: req/s, mean and p50/p99 latency (wrk's), the server's CPU per request,
wrk's CPU as a share of one core; then the ratios ours/baseline. `--profile out.txt` also
runs py-spy (`record --format raw`, collapsed stacks) on the app during one extra round and
prints the hottest frames.

    python bench/notification_send.py                 # no idempotency keys
    python bench/notification_send.py --idem          # a fresh Idempotency-Key per request
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
from pydantic import BaseModel

from bench._support import (
    ADMIN_KEY,
    DEFAULT_PG_SERVER,
    BenchError,
    Figure,
    ServerProcess,
    add_json_argument,
    asyncpg_dsn,
    clear_redis,
    create_pg_database,
    drop_pg_database,
    machine_line,
    meets,
    require_local,
    run_uvicorn,
    write_figures,
)
from bench.message_send_wrk import Side, _median, profile, run_wrk

SCRIPT = Path(__file__).resolve()
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
SCRATCH_TABLE = "bench_scratch_notifications"
SCRATCH_DDL = (
    f"CREATE TABLE {SCRATCH_TABLE} (id varchar(26) PRIMARY KEY, client_id varchar(26) NOT NULL, "
    "content jsonb NOT NULL, created_at timestamptz NOT NULL)"
)

LUA = """
local path = '{PATH}'
local auth = '{AUTH}'
local body = '{BODY}'
local idem = {IDEM}
-- Each wrk run (warm-up, every round) gets keys of its own: with the same prefix the
-- counter restarts and later runs' keys were replays (200s) of earlier ones.
math.randomseed(os.time())
local prefix = '{PREFIX}' .. '-' .. os.time() .. '-' .. math.random(1, 1000000000)
local i = 0
local threads = {}
setup = function(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end
request = function()
  i = i + 1
  local headers = {["Authorization"] = auth, ["Content-Type"] = "application/json"}
  if idem then
    headers["Idempotency-Key"] = prefix .. "-" .. (thread_id or 0) .. "-" .. i
  end
  return wrk.format("POST", path, headers, body)
end
local shown = 0
response = function(status, headers, body)
  -- Say what a non-2xx answer was (the first few), so a failed run explains itself.
  if status >= 300 and shown < 3 then
    shown = shown + 1
    io.write("NON2XX " .. status .. " " .. string.sub(body, 1, 300) .. "\\n")
  end
end
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, '
    .. '"mean_us": %f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


class BareRecipient(BaseModel):
    """The baseline's recipient."""

    user_id: str


class BareWebsocket(BaseModel):
    """The baseline's websocket content."""

    event: str
    data: dict[str, Any] = {}


class BareSend(BaseModel):
    """The baseline's request body: the same JSON as the app's, parsed by pydantic."""

    channels: list[str]
    recipients: list[BareRecipient]
    websocket: BareWebsocket


def serve(spec: dict[str, Any]) -> None:
    """Child process: the real app or the bare baseline, under uvicorn."""
    if spec["kind"] == "app":
        from app.core.config import Settings
        from app.main import create_app

        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=spec["database_url"],
            REDIS_URL=spec["redis_url"] or None,
            REDIS_KEY_PREFIX=spec["redis_prefix"],
            ADMIN_API_KEY=spec["admin_key"],
            BCRYPT_ROUNDS=4,
            # Counted as in production but never refused: the bench measures the request
            # path, and a fast side would otherwise run into the per-minute limits.
            RATE_LIMIT_REQUESTS_PER_MINUTE=1_000_000_000,
            RATE_LIMIT_CLIENT_REQUESTS_PER_MINUTE=1_000_000_000,
            LOG_LEVEL=spec["log_level"],
        )
        run_uvicorn(create_app(settings, run_embedded_worker=False), spec["port"])
    else:
        run_uvicorn(asyncpg_baseline(spec["dsn"]), spec["port"])


def asyncpg_baseline(dsn: str) -> Any:
    """Bare FastAPI: parse the body, one INSERT through an asyncpg pool, answer 202 + row."""
    from fastapi import FastAPI

    from app.core.clock import utcnow
    from app.core.ids import new_id

    pool: asyncpg.Pool | None = None
    sql = f"INSERT INTO {SCRATCH_TABLE} (id, client_id, content, created_at) VALUES ($1,$2,$3,$4)"

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        nonlocal pool
        # 20, not the app's 30: plenty for one INSERT per request on 2 cores, and leaves
        # room under max_connections=100 for the app and whatever else shares the server.
        pool = await asyncpg.create_pool(dsn, min_size=10, max_size=20)
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/notifications/send", status_code=202)
    async def send(body: BareSend) -> dict[str, Any]:
        assert pool is not None
        row = {"id": new_id(), "status": "pending", "created_at": utcnow()}
        content = json.dumps(body.websocket.model_dump())
        await pool.execute(sql, row["id"], "bench", content, row["created_at"])
        return row

    return app


async def setup_app(base_url: str) -> tuple[str, str]:
    """A client and one user: (master key, the user's id)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as http:
        r = await http.post(
            "/api/v1/clients",
            json={"name": "bench notifications"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        if r.status_code != 201:
            raise BenchError(f"creating the client: {r.status_code} {r.text[:300]}")
        master = str(r.json()["master_key"])
        r = await http.post(
            "/api/v1/users",
            json={"external_id": "recipient"},
            headers={"Authorization": f"Bearer {master}"},
        )
        if r.status_code != 201:
            raise BenchError(f"creating the user: {r.status_code} {r.text[:300]}")
        return master, str(r.json()["id"])


def send_body(user_id: str) -> str:
    """The JSON body both sides receive."""
    return json.dumps(
        {
            "channels": ["websocket"],
            "recipients": [{"user_id": user_id}],
            "websocket": {"event": "order.shipped", "data": {"order": "A-1042", "items": 3}},
        }
    )


def write_lua(folder: Path, path: str, master: str, body: str, idem: bool, name: str) -> Path:
    out = folder / f"{name}.lua"
    text = (
        LUA.replace("{PATH}", path)
        .replace("{AUTH}", f"Bearer {master}")
        .replace("{BODY}", body)
        .replace("{IDEM}", "true" if idem else "false")
        .replace("{PREFIX}", secrets.token_hex(6))
    )
    out.write_text(text)
    return out


def report(args: argparse.Namespace, ours: Side, base: Side, check: str, machine: str) -> Figure:
    """Print both sides and the ratios; answer the P1 row of run_all's table."""
    print(
        "notification_send: POST /api/v1/notifications/send (1 recipient, websocket) "
        "vs bare FastAPI + asyncpg INSERT"
    )
    print(f"  {machine}")
    broker = "Redis broker (no worker consuming)" if args.redis_url else "in-memory broker"
    keys = "a fresh Idempotency-Key per request" if args.idem else "no idempotency key"
    print(
        f"  PostgreSQL, {broker}, one uvicorn process per server, log_level={args.log_level}; "
        f"{keys}; wrk -t{args.threads} -c{args.connections}, {args.rounds} alternating rounds "
        f"of {args.duration}s per side after a {args.warmup}s warm-up"
    )
    head = ("req/s", "mean ms", "p50 ms", "p99 ms", "srv CPU ms/req", "wrk CPU")
    print(f"  {'':<36}" + "".join(f"{h:>15}" for h in head))
    figs: dict[str, tuple[float, float, float]] = {}
    for name, side in (("ours: real app", ours), ("baseline: bare FastAPI + INSERT", base)):
        rps = side.requests / side.seconds
        mean = side.latency_weighted_us / side.requests / 1000
        srv = side.server_cpu / side.requests * 1000
        figs[side.label] = (rps, mean, srv)
        cells = (
            f"{rps:,.0f}", f"{mean:.1f}", f"{_median(side.p50s) / 1000:.1f}",
            f"{_median(side.p99s) / 1000:.1f}", f"{srv:.3f}", f"{side.wrk_cpu / side.seconds:.0%}",
        )  # fmt: skip
        print(f"  {name:<36}" + "".join(f"{c:>15}" for c in cells))
    o, b = figs["ours"], figs["baseline"]
    print(
        f"  ratio ours/baseline: throughput {o[0] / b[0]:.2f}x, mean latency {o[1] / b[1]:.2f}x, "
        f"server CPU per request {o[2] / b[2]:.2f}x"
    )
    print(f"  check: {check}; socket errors ours={ours.socket_errors} base={base.socket_errors}")
    throughput = o[0] / b[0]
    keys = ", a fresh Idempotency-Key each" if args.idem else ""
    return Figure(
        figure="P1",
        what=f"POST /notifications/send accepted/s (1 recipient, websocket{keys})",
        ours=f"{o[0]:,.0f} req/s",
        baseline=f"bare FastAPI + 1 INSERT {b[0]:,.0f} req/s",
        ratio=throughput,
        goal="ratio ≥ 0.5",
        met=meets(throughput, ">=", 0.5),
        driver_cpu=f"wrk {ours.wrk_cpu / ours.seconds:.0%} / {base.wrk_cpu / base.seconds:.0%}",
    )


async def check_rows(conn: asyncpg.Connection, idem: bool, accepted_at_least: int) -> str:
    # One statement, one snapshot: requests wrk abandoned at its end may still commit.
    notifications, deliveries, records, odd = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM notifications), "
        # In-app deliveries are stored `delivered` (their inbox item is stored with them).
        "(SELECT count(*) FROM deliveries WHERE status IN ('pending', 'delivered') "
        " AND channel = 'websocket'), "
        "(SELECT count(*) FROM idempotency_records), "
        "(SELECT count(*) FROM notifications n WHERE (SELECT count(*) FROM deliveries d "
        " WHERE d.notification_id = n.id) <> 1)"
    )
    if notifications < accepted_at_least:
        raise BenchError(f"{notifications} notifications stored, wrk counted {accepted_at_least}")
    if deliveries != notifications or odd:
        raise BenchError(
            f"{notifications} notifications, {deliveries} pending deliveries, "
            f"{odd} notification(s) without exactly one delivery"
        )
    if idem and records != notifications:
        raise BenchError(f"{notifications} notifications but {records} idempotency records")
    extra = f", {records} idempotency records" if idem else ""
    return f"{notifications} notifications, one pending or delivered delivery each{extra}"


async def run(args: argparse.Namespace) -> None:
    machine = machine_line()
    folder = Path(tempfile.mkdtemp(prefix="chatapi-bench-notif-"))
    pg_name, url = await create_pg_database(args.pg_server)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    await conn.execute(SCRATCH_DDL)
    prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    app_spec = {
        "kind": "app",
        "database_url": url,
        "redis_url": args.redis_url,
        "redis_prefix": prefix,
        "log_level": args.log_level,
        "admin_key": ADMIN_KEY,
    }
    app_server = ServerProcess(SCRIPT, app_spec, "app")
    base_server = ServerProcess(SCRIPT, {"kind": "asyncpg", "dsn": asyncpg_dsn(url)}, "baseline")
    try:
        await asyncio.gather(app_server.start("/health/live"), base_server.start("/health/live"))
        master, user_id = await setup_app(app_server.base_url)
        body = send_body(user_id)
        ours = Side(
            "ours",
            app_server,
            write_lua(folder, "/api/v1/notifications/send", master, body, args.idem, "ours"),
        )
        base = Side(
            "baseline",
            base_server,
            write_lua(folder, "/notifications/send", master, body, args.idem, "base"),
        )
        for side in (ours, base):
            try:
                await asyncio.to_thread(run_wrk, side, args, args.warmup, False)
            except BenchError:
                # Cold pools open 30 connections at once; on a server shared with other
                # runs some may be refused (503). The measured rounds must be clean.
                await asyncio.to_thread(run_wrk, side, args, args.warmup, False)
        for i in range(args.rounds):
            for side in (ours, base) if i % 2 == 0 else (base, ours):
                await asyncio.to_thread(run_wrk, side, args, args.duration, True)
        check = await check_rows(conn, args.idem, ours.requests)
        figure = report(args, ours, base, check, machine)
        write_figures(args.json, "notification_send.py", [figure])
        if args.profile:
            await asyncio.to_thread(profile, ours, args)
    finally:
        await asyncio.gather(app_server.stop(), base_server.stop())
        await conn.close()
        await drop_pg_database(args.pg_server, pg_name)
        if args.redis_url:
            await clear_redis(args.redis_url, prefix)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--idem", action="store_true", help="a fresh Idempotency-Key per request")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per side")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--redis-url", default=DEFAULT_REDIS, help="the broker ('' for the in-memory one)"
    )
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    parser.add_argument("--profile", help="py-spy collapsed stacks of ours to this file")
    add_json_argument(parser)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(json.loads(args.serve))
        return
    require_local(args.pg_server)
    if args.redis_url:
        require_local(args.redis_url)
    try:
        asyncio.run(run(args))
    except BenchError as exc:
        sys.exit(f"notification_send: {exc}")


if __name__ == "__main__":
    main()
