"""The campaign's send request alone (issue #21): one `POST /notifications/send` to N users
(default 10,000, websocket channel), in process (httpx ASGI transport, the app's lifespan
running, no worker), on a fresh PostgreSQL database with Redis (Redis mode) or on a SQLite
file without Redis (embedded mode). Nobody is connected: the fast-path push finds no one
online, so what is measured is the request itself.

Prints, per round, the request's wall time and this process's CPU time (one process: the
app's CPU, the in-process client's small share included), and the median; `--profile`
runs one more round under cProfile and prints the hottest functions by cumulative time
(the per-stage split of the send).

    python bench/campaign_send.py                        # PostgreSQL + Redis
    python bench/campaign_send.py --db sqlite            # embedded mode
    python bench/campaign_send.py --profile 40
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib
import inspect
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._support import (
    DEFAULT_PG_SERVER,
    LIFTED_QUOTAS,
    clear_redis,
    create_pg_database,
    create_sqlite_database,
    drop_pg_database,
    machine_line,
    progress,
)
from bench.campaign import insert_users_and_keys
from bench.notification_latency import DEFAULT_REDIS

# (module, attribute) of the send's stages, timed by --stages (wall and CPU per call).
STAGES = [
    ("app.notifications.service", "_check_content"),
    ("app.notifications.service", "_resolve_users"),
    ("app.notifications.service", "_resolved"),
    ("app.notifications.service", "_expand"),
    ("app.inbox.preferences", "apply"),
    ("app.notifications.size_bound", "check_total"),
    ("app.notifications.service", "initial_statuses"),
    ("app.notifications.repository", "create_notification"),
    ("app.notifications.service", "sent_answer"),
    ("app.notifications.send_answer", "SendResult.json"),
    ("app.notifications.routes", "service.send"),
]
TIMES: dict[str, list[tuple[float, float]]] = {}
_GC_START: list[float] = []


def _gc_watch(phase: str, info: dict[str, int]) -> None:
    # The collector's pauses, as a stage of their own (they land inside whichever stage
    # allocates the object that triggers them).
    if phase == "start":
        _GC_START[:] = [time.perf_counter(), time.process_time()]
    elif _GC_START:
        name = f"gc gen{info['generation']}"
        TIMES.setdefault(name, []).append(
            (time.perf_counter() - _GC_START[0], time.process_time() - _GC_START[1])
        )


def _timed(name: str, fn: Any) -> Any:
    if inspect.iscoroutinefunction(fn):

        async def awrapper(*a: Any, **k: Any) -> Any:
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                TIMES.setdefault(name, []).append(
                    (time.perf_counter() - t0, time.process_time() - c0)
                )

        return awrapper

    def wrapper(*a: Any, **k: Any) -> Any:
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            TIMES.setdefault(name, []).append((time.perf_counter() - t0, time.process_time() - c0))

    return wrapper


def _instrument() -> None:
    """Wrap each stage where the send looks it up (module globals), to time it."""
    for module_name, attr in STAGES:
        module = importlib.import_module(module_name)
        owner, _, leaf = attr.rpartition(".")
        holder = getattr(module, owner) if owner else module
        if hasattr(holder, leaf):  # a stage another version of the app does not have
            setattr(holder, leaf, _timed(leaf if not owner else attr, getattr(holder, leaf)))


async def _rounds(args: argparse.Namespace, database_url: str, redis_url: str | None) -> None:
    from app.core.config import Settings
    from app.main import create_app

    admin = secrets.token_urlsafe(24)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=args.prefix,
        ADMIN_API_KEY=admin,
        BCRYPT_ROUNDS=4,
        LOG_LEVEL="WARNING",
        SECRET_KEY=secrets.token_urlsafe(32),
        **LIFTED_QUOTAS,
    )
    app = create_app(settings, run_embedded_worker=False)
    if args.stages:
        _instrument()
        gc.callbacks.append(_gc_watch)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=120.0
        ) as http:
            r = await http.post(
                "/api/v1/clients",
                json={"name": "campaign"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            r.raise_for_status()
            tenant = r.json()
            master = {"Authorization": f"Bearer {tenant['master_key']}"}
            user_ids, _ = await insert_users_and_keys(
                database_url, tenant["id"], args.recipients, 1
            )
            body = {
                "channels": ["websocket"],
                "recipients": [{"user_id": u} for u in user_ids],
                "websocket": {"event": "sale.started", "data": {"sent_at": 0}},
            }
            progress("campaign_send", f"{len(user_ids)} users; {args.rounds} rounds")
            walls, cpus = [], []
            for i in range(args.rounds + (1 if args.profile else 0)):
                TIMES.clear()
                profiler = (
                    cProfile.Profile(time.process_time)
                    if args.profile and i == args.rounds
                    else None
                )
                c0, t0 = time.process_time(), time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                r = await http.post("/api/v1/notifications/send", json=body, headers=master)
                if profiler is not None:
                    profiler.disable()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                if r.status_code != 202:
                    raise SystemExit(f"send: {r.status_code} {r.text[:300]}")
                if profiler is None:
                    walls.append(wall)
                    cpus.append(cpu)
                    print(
                        f"  round {i + 1}: 202 in {wall * 1000:7.0f} ms, CPU {cpu * 1000:7.0f} ms"
                    )
                    for stage, calls in TIMES.items():
                        w = sum(c[0] for c in calls) * 1000
                        p = sum(c[1] for c in calls) * 1000
                        print(
                            f"      {stage:<22} wall {w:7.1f} ms  CPU {p:7.1f} ms  ({len(calls)}x)"
                        )
                else:
                    stats = pstats.Stats(profiler).sort_stats("cumulative")
                    stats.print_stats(args.profile)
                await asyncio.sleep(0.5)  # the fast-path push of the round, out of the next
    print(machine_line())
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"send to {args.recipients} users ({args.db}): 202 median {statistics.median(walls) * 1000:.0f} ms, "
        f"CPU median {statistics.median(cpus) * 1000:.0f} ms"
    )


async def main_async(args: argparse.Namespace) -> None:
    if args.db == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = await create_sqlite_database(Path(folder))
            await _rounds(args, url, None)
        return
    name, url = await create_pg_database(args.pg_server)
    try:
        await _rounds(args, url, args.redis_url)
    finally:
        await drop_pg_database(args.pg_server, name)
        await clear_redis(args.redis_url, args.prefix)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--profile", type=int, default=0, help="print the top N by cumulative")
    parser.add_argument("--stages", action="store_true", help="time each stage of the send")
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    args.prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
