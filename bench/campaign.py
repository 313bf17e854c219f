"""The campaign (issue #21): one send to N recipients (default 10,000) with C of them
connected (default 1,000), in Redis mode: `chatapi serve` + `chatapi worker` + `chatapi beat`
on a fresh PostgreSQL database and Redis. The connected recipients are Node socket.io-client
sockets (bench/fanout/node), so the load generator is not the bottleneck; the drivers' CPU
is printed.

Prints: the 202 time, the time until every connected recipient has the `notification`
event, and the time until every delivery is terminal (the notification is no longer
`pending`), against the goals 300 ms / 1 s / 5 s, with the load average.

Usage:
    python bench/campaign.py [--recipients 10000] [--connected 1000] [--procs 2]
    BENCH_APP_ROOT=/work/main python bench/campaign.py   # another checkout's app (before)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "fanout"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# BENCH_APP_ROOT: another checkout's app (e.g. main, for a before figure) — its migrations
# make the database and its `chatapi` processes serve it.
sys.path.insert(0, os.environ.get("BENCH_APP_ROOT") or str(Path(__file__).resolve().parents[1]))

import httpx
from node_driver import NodeFleet

from bench._support import (
    DEFAULT_PG_SERVER,
    LIFTED_QUOTAS,
    BenchError,
    clear_redis,
    create_pg_database,
    drop_pg_database,
    free_port,
    machine_line,
    progress,
)
from bench.notification_latency import DEFAULT_REDIS, Stack, proc_cpu, wait_ready

# Imported modules put this checkout first again: BENCH_APP_ROOT wins for `app`.
if os.environ.get("BENCH_APP_ROOT"):
    sys.path.insert(0, os.environ["BENCH_APP_ROOT"])

APP_ROOT = os.environ.get("BENCH_APP_ROOT") or str(Path(__file__).resolve().parents[1])
FINAL = {"delivered", "partial", "failed", "canceled"}


async def insert_users_and_keys(
    database_url: str, client_id: str, count: int, keyed: int
) -> tuple[list[str], list[dict[str, Any] | None]]:
    """`count` users, the first `keyed` with a live user key, in one INSERT per table (REST
    would cost 2N requests and N bcrypt hashes); the user ids and the keyed users' auths."""
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.auth.models import ApiKey
    from app.auth.principal import ALL_SCOPES, KeyKind
    from app.auth.secrets import KEY_PREFIX, hash_secret
    from app.core.clock import utcnow
    from app.core.ids import new_id
    from app.users.models import User

    secret = secrets.token_urlsafe(32)
    secret_hash = await asyncio.to_thread(hash_secret, secret, 4)
    now = utcnow()
    users, keys, ids, auths = [], [], [], []
    for i in range(count):
        user_id = new_id()
        ids.append(user_id)
        users.append(
            {"id": user_id, "client_id": client_id, "external_id": f"u{i}", "metadata": {},
             "created_at": now, "updated_at": now}
        )  # fmt: skip
        if i < keyed:
            key_id = secrets.token_hex(8)
            keys.append(
                {"id": key_id, "client_id": client_id, "kind": KeyKind.user.value,
                 "user_id": user_id, "scopes": sorted(ALL_SCOPES), "secret_hash": secret_hash,
                 "created_at": now}
            )  # fmt: skip
            auths.append({"api_key": f"{KEY_PREFIX}_{key_id}_{secret}"})
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            for start in range(0, len(users), 2000):
                await conn.execute(insert(User.__table__), users[start : start + 2000])  # type: ignore[attr-defined]
            await conn.execute(insert(ApiKey.__table__), keys)  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
    return ids, auths  # type: ignore[return-value]


async def campaign(args: argparse.Namespace) -> None:
    port = free_port()
    admin = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SENTRY_DSN")}
    pg_name, database_url = await create_pg_database(args.pg_server)
    prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    env.update(
        ADMIN_API_KEY=admin,
        BCRYPT_ROUNDS="4",
        LOG_LEVEL="WARNING",
        SECRET_KEY=secrets.token_urlsafe(32),
        PYTHONPATH=str(APP_ROOT),
        DATABASE_URL=database_url,
        REDIS_URL=args.redis_url,
        REDIS_KEY_PREFIX=prefix,
        **LIFTED_QUOTAS,
    )
    chatapi = str(Path(sys.executable).with_name("chatapi"))
    stack = Stack(
        env,
        [
            [chatapi, "serve", "--host", "127.0.0.1", "--port", str(port)],
            [chatapi, "worker", "--concurrency", "8", "--loglevel", "WARNING"],
            [chatapi, "beat", "--loglevel", "WARNING"],
        ],
    )
    base = f"http://127.0.0.1:{port}"
    fleet: NodeFleet | None = None
    try:
        await wait_ready(base, stack)
        async with httpx.AsyncClient(base_url=base, timeout=60.0) as http:
            r = await http.post(
                "/api/v1/clients",
                json={"name": "campaign"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            if r.status_code != 201:
                raise BenchError(f"POST /clients: {r.status_code} {r.text[:300]}")
            tenant = r.json()
            master = {"Authorization": f"Bearer {tenant['master_key']}"}
            user_ids, auths = await insert_users_and_keys(
                database_url, tenant["id"], args.recipients, args.connected
            )
            progress("campaign", f"{len(user_ids)} users, {len(auths)} keys")
            fleet = NodeFleet(
                base, auths, event="notification", latency_path=("data", "sent_at"),
                concurrency=100, procs=args.procs,
            )  # fmt: skip
            connected = await fleet.start()
            if connected.connected != args.connected:
                raise BenchError(
                    f"connected {connected.connected}/{args.connected}: {connected.errors}"
                )
            await fleet.quiet(1000)
            await asyncio.sleep(1.0)  # presence settles
            progress("campaign", f"{connected.connected} connected; sending")
            body = {
                "channels": ["websocket"],
                "recipients": [{"user_id": u} for u in user_ids],
                "websocket": {"event": "sale.started", "data": {"sent_at": time.time()}},
            }
            cpu0 = [proc_cpu(p.pid) for p in stack.procs]
            load = os.getloadavg()
            t0 = time.time()
            body["websocket"]["data"]["sent_at"] = t0  # type: ignore[index]
            r = await http.post("/api/v1/notifications/send", json=body, headers=master)
            accepted = time.time() - t0
            if r.status_code != 202:
                raise BenchError(f"send: {r.status_code} {r.text[:300]}")
            notification_id = r.json()["id"]
            terminal: float | None = None
            watcher = asyncio.create_task(fleet.wait(1, timeout=args.timeout))
            while time.time() - t0 < args.timeout:
                page = await http.get("/api/v1/notifications", params={"limit": 1}, headers=master)
                [item] = page.json()["data"]
                if item["id"] == notification_id and item["status"] in FINAL:
                    terminal = time.time() - t0
                    break
                await asyncio.sleep(0.05)
            report = await watcher
            stack_cpu = [proc_cpu(p.pid) - c for p, c in zip(stack.procs, cpu0, strict=True)]
    finally:
        if fleet is not None:
            await fleet.close()
        stack.stop()
        await drop_pg_database(args.pg_server, pg_name)
        await clear_redis(args.redis_url, prefix)
    received = report.last - t0 if report.delivered >= args.connected else None
    print(machine_line())
    print(f"app: {APP_ROOT}; load average at the send {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"campaign: {args.recipients} recipients, {args.connected} connected (Redis mode, PostgreSQL)"
    )
    print(f"  202 after                          {accepted * 1000:8.0f} ms  (goal <= 300 ms)")
    got = (
        f"{received:8.2f} s "
        if received is not None
        else f"  only {report.delivered}/{args.connected} "
    )
    print(
        f"  every connected recipient has it   {got}  (goal <= 1 s; receipt p50 {report.p50_ms:.0f} ms, p99 {report.p99_ms:.0f} ms)"
    )
    done = f"{terminal:8.2f} s " if terminal is not None else f"  not within {args.timeout:.0f} s"
    print(f"  every delivery terminal            {done}  (goal <= 5 s)")
    roles = ("serve", "worker", "beat")
    print(
        "  CPU s from the send: "
        + ", ".join(f"{r} {c:.2f}" for r, c in zip(roles, stack_cpu, strict=True))
    )
    print(f"  Node driver CPU (cumulative, all drivers): {report.cpu_s:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--connected", type=int, default=1_000)
    parser.add_argument("--procs", type=int, default=2, help="Node driver processes")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    asyncio.run(campaign(args))


if __name__ == "__main__":
    main()
