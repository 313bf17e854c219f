"""Message send through the real app against a bare one-INSERT FastAPI endpoint.

What is measured: `POST /api/v1/rooms/{id}/messages` of the real app (`create_app`, under
uvicorn in a child process, on a fresh migrated PostgreSQL database) against a baseline:
a bare FastAPI app defined here, in another uvicorn child, whose one endpoint
`POST /rooms/{id}/messages` parses the same JSON body and does one INSERT into a scratch
table of the same database through the same kind of engine (`app.core.db.create_engine`:
SQLAlchemy asyncpg, same pool settings).

Load: C concurrent httpx clients (one keep-alive connection each), the same body and
headers to both servers. Setup goes through the API: a client (ADMIN_API_KEY), then per
room a user, its user key (login) and a group room it owns, so each sender writes to its
own room (use --rooms 1 to make every sender contend for one room's lock). Both sides are
warmed up, then driven in alternating rounds (ABBA order) so machine noise hits both.

Reported per side: req/s, p50/p90/p99 latency, the server process's CPU time per request
(from /proc, so a saturated load generator does not hide server cost), the load
generator's CPU use; then the ratios ours/baseline. Finally the rows are counted.

Run from the repository root:

    python bench/message_send.py                      # 2000 requests per side, 16 clients
    python bench/message_send.py --concurrency 32 --requests 4000 --rooms 1
    python bench/message_send.py --redis-url redis://127.0.0.1:6379/0   # scaled mode
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
from pydantic import BaseModel, Field

from bench._support import (
    ADMIN_KEY,
    DEFAULT_PG_SERVER,
    BenchError,
    ServerProcess,
    asyncpg_dsn,
    create_pg_database,
    drop_pg_database,
    machine_line,
    ms,
    percentile,
    require_local,
    run_uvicorn,
)

SCRATCH_TABLE = "bench_scratch_messages"
SCRIPT = Path(__file__).resolve()
CONTENT = "Hello from the bench: " + "lorem ipsum dolor sit amet " * 3


def serve(spec: dict[str, Any]) -> None:
    """Child process: the real app or the bare baseline, under uvicorn."""
    if spec["kind"] == "app":
        from app.core.config import Settings
        from app.main import create_app

        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=spec["database_url"],
            REDIS_URL=spec["redis_url"],
            REDIS_KEY_PREFIX=spec["redis_prefix"],
            ADMIN_API_KEY=spec["admin_key"],
            BCRYPT_ROUNDS=spec["bcrypt_rounds"],
            LOG_LEVEL=spec["log_level"],
        )
        run_uvicorn(create_app(settings, run_embedded_worker=False), spec["port"])
    else:
        run_uvicorn(baseline_app(spec["database_url"]), spec["port"])


class ScratchBody(BaseModel):
    """The baseline's request body (module level, so FastAPI resolves the annotation)."""

    content: str = Field(min_length=1)


def baseline_app(database_url: str) -> Any:
    """A bare FastAPI app: parse the body, one INSERT, answer 201 with the row."""
    from fastapi import FastAPI
    from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, insert

    from app.core.clock import utcnow
    from app.core.db import create_engine
    from app.core.ids import new_id

    table = Table(
        SCRATCH_TABLE,
        MetaData(),
        Column("id", String(26), primary_key=True),
        Column("room_id", String(26), nullable=False),
        Column("content", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    engine = create_engine(database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/rooms/{room_id}/messages", status_code=201)
    async def send(room_id: str, body: ScratchBody) -> dict[str, Any]:
        row = {"id": new_id(), "room_id": room_id, "content": body.content, "created_at": utcnow()}
        async with engine.begin() as conn:
            await conn.execute(insert(table), row)
        return row

    return app


@dataclass
class Side:
    """One server under load and what it measured."""

    label: str
    server: ServerProcess
    path_prefix: str
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    clients: list[httpx.AsyncClient] = field(default_factory=list)


async def setup_app(base_url: str, rooms: int) -> list[tuple[str, str]]:
    """A client, then per room a user, its key and a room it owns: [(room_id, user_key)]."""
    out = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as http:
        r = await http.post(
            "/api/v1/clients",
            json={"name": "bench messages"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        _expect(r, 201)
        master = {"Authorization": f"Bearer {r.json()['master_key']}"}
        for i in range(rooms):
            r = await http.post(
                "/api/v1/users", json={"external_id": f"sender-{i}"}, headers=master
            )
            _expect(r, 201)
            r = await http.post(
                "/api/v1/auth/login", json={"user_id": r.json()["id"]}, headers=master
            )
            _expect(r, 200)
            key = str(r.json()["api_key"])
            r = await http.post(
                "/api/v1/rooms",
                json={"name": f"bench room {i}", "type": "group"},
                headers={"Authorization": f"Bearer {key}"},
            )
            _expect(r, 201)
            out.append((str(r.json()["id"]), key))
    return out


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {status}: {response.text[:300]}"
        )


async def drive(side: Side, senders: list[tuple[str, str]], counts: list[int]) -> None:
    """Each client sends its count of messages sequentially; all clients at once."""

    async def one_client(i: int) -> None:
        client = side.clients[i]
        room_id, key = senders[i % len(senders)]
        path = f"{side.path_prefix}/rooms/{room_id}/messages"
        headers = {"Authorization": f"Bearer {key}"}
        body = {"content": CONTENT}
        for _ in range(counts[i]):
            started = time.perf_counter()
            r = await client.post(path, json=body, headers=headers)
            side.latencies.append(time.perf_counter() - started)
            if r.status_code != 201:
                _expect(r, 201)

    await asyncio.gather(*(one_client(i) for i in range(len(side.clients))))


def split(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as whole numbers go."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def run_round(side: Side, senders: list[tuple[str, str]], requests: int) -> None:
    counts = split(requests, len(side.clients))
    cpu0, server0, t0 = time.process_time(), side.server.cpu_seconds(), time.perf_counter()
    await drive(side, senders, counts)
    side.wall += time.perf_counter() - t0
    side.client_cpu += time.process_time() - cpu0
    side.server_cpu += side.server.cpu_seconds() - server0


def report(
    args: argparse.Namespace, ours: Side, base: Side, rows: tuple[int, int], machine: str
) -> None:
    mode = f"scaled (REDIS_URL={args.redis_url})" if args.redis_url else "embedded (no Redis)"
    print("message_send: POST /api/v1/rooms/{id}/messages vs a bare one-INSERT FastAPI endpoint")
    print(f"  {machine}")
    print(
        f"  PostgreSQL, uvicorn child per server, app mode {mode}, log_level={args.log_level}; "
        f"{args.requests} requests per side after {args.warmup} warm-up per client, "
        f"concurrency {args.concurrency}, {args.rounds} alternating rounds, "
        f"{args.rooms} room(s) with one user key each"
    )
    head = ("req/s", "p50 ms", "p90 ms", "p99 ms", "srv CPU ms/req", "client CPU")
    print(f"  {'':<34}" + "".join(f"{h:>15}" for h in head))
    figures = {}
    for name, side in (("ours: real app", ours), ("baseline: bare FastAPI + INSERT", base)):
        lat = sorted(side.latencies)
        n = len(lat)
        rps = n / side.wall
        p50, p90, p99 = (percentile(lat, p) for p in (50, 90, 99))
        srv = side.server_cpu / n if not math.isnan(side.server_cpu) else float("nan")
        figures[side.label] = (rps, p50, p99, srv)
        cells = (
            f"{rps:,.0f}",
            ms(p50),
            ms(p90),
            ms(p99),
            ms(srv),
            f"{side.client_cpu / side.wall:.0%}",
        )
        print(f"  {name:<34}" + "".join(f"{c:>15}" for c in cells))
    o, b = figures["ours"], figures["baseline"]
    print(
        f"  ratios ours/baseline: throughput {o[0] / b[0]:.2f}x, p50 {o[1] / b[1]:.2f}x, "
        f"p99 {o[2] / b[2]:.2f}x, server CPU per request {o[3] / b[3]:.2f}x"
    )
    print(f"  rows written: messages={rows[0]}, {SCRATCH_TABLE}={rows[1]}")
    if max(ours.client_cpu / ours.wall, base.client_cpu / base.wall) > 0.9:
        print(
            "  note: the load generator ran near one full CPU; throughput may be capped by the "
            "client, compare the server CPU per request"
        )


async def run(args: argparse.Namespace) -> None:
    machine = machine_line()
    pg_name, url = await create_pg_database(args.pg_server)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    app_server = ServerProcess(
        SCRIPT,
        {
            "kind": "app",
            "database_url": url,
            "redis_url": args.redis_url,
            "redis_prefix": f"chatapi-bench-{secrets.token_hex(4)}:",
            "admin_key": ADMIN_KEY,
            "bcrypt_rounds": args.bcrypt_rounds,
            "log_level": args.log_level,
        },
        label="app",
    )
    base_server = ServerProcess(SCRIPT, {"kind": "baseline", "database_url": url}, "baseline")
    ours = Side("ours", app_server, "/api/v1")
    base = Side("baseline", base_server, "")
    try:
        await conn.execute(
            f"CREATE TABLE {SCRATCH_TABLE} (id varchar(26) PRIMARY KEY, "
            "room_id varchar(26) NOT NULL, content text NOT NULL, "
            "created_at timestamptz NOT NULL)"
        )
        await asyncio.gather(app_server.start("/health/live"), base_server.start("/health/live"))
        senders = await setup_app(app_server.base_url, args.rooms)
        for side in (ours, base):
            side.clients = [
                httpx.AsyncClient(base_url=side.server.base_url, timeout=60.0)
                for _ in range(args.concurrency)
            ]
            await drive(side, senders, [args.warmup] * args.concurrency)
            side.latencies.clear()
        per_round = split(args.requests, args.rounds)
        for i, n in enumerate(per_round):
            for side in (ours, base) if i % 2 == 0 else (base, ours):
                await run_round(side, senders, n)
        rows = (
            int(await conn.fetchval("SELECT count(*) FROM messages")),
            int(await conn.fetchval(f"SELECT count(*) FROM {SCRATCH_TABLE}")),
        )
        expected = args.requests + args.warmup * args.concurrency
        if rows != (expected, expected):
            raise BenchError(f"expected {expected} rows on each side, found {rows}")
        report(args, ours, base, rows, machine)
    finally:
        for side in (ours, base):
            for client in side.clients:
                await client.aclose()
        await asyncio.gather(app_server.stop(), base_server.stop())
        await conn.close()
        await drop_pg_database(args.pg_server, pg_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per side")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent httpx clients")
    parser.add_argument(
        "--rooms", type=int, default=0, help="rooms (one user each); default: one per client"
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per side")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up requests per client")
    parser.add_argument("--bcrypt-rounds", type=int, default=12, help="the app default is 12")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--redis-url", default=None, help="run the app in scaled mode on this (local) Redis"
    )
    parser.add_argument(
        "--pg-server",
        default=DEFAULT_PG_SERVER,
        help="PostgreSQL server (a scratch database is created and dropped there)",
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(json.loads(args.serve))
        return
    require_local(args.pg_server)
    if args.redis_url:
        require_local(args.redis_url)
    if min(args.requests, args.concurrency, args.rounds) < 1 or args.rooms < 0 or args.warmup < 1:
        parser.error("--requests, --concurrency, --rounds and --warmup must be at least 1")
    args.rooms = args.rooms or args.concurrency
    try:
        asyncio.run(run(args))
    except BenchError as exc:
        sys.exit(f"message_send: {exc}")


if __name__ == "__main__":
    main()
