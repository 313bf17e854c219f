"""In-app (websocket channel) deliveries per second of one worker process (issue #21 goal:
>= 5,000/s), on PostgreSQL + Redis, every recipient online (presence in Redis).

Two figures, in this one process (its CPU is the process's, from time.process_time):
- worker path: N due in-app deliveries (a scheduled send falling due) through
  `delivery.deliver_batch`, 100 ids per task message as the doorbell sends them, 8 task
  messages at once (a `chatapi worker --concurrency 8`): claim, channel, record, push;
- push path (this branch only): N owed pushes through `InAppPush.push_online`, the fast
  path's and the sweep's core (one presence round trip, one publish pipeline, one update
  per 1,000).

Usage:
    python bench/inapp_throughput.py [--deliveries 5000]
    BENCH_APP_ROOT=/work/main python bench/inapp_throughput.py   # another checkout (before)
    python bench/inapp_throughput.py --profile /tmp/inapp.prof     # cProfile of the worker path
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, os.environ.get("BENCH_APP_ROOT") or str(Path(__file__).resolve().parents[1]))

from bench._support import (
    DEFAULT_PG_SERVER,
    clear_redis,
    create_pg_database,
    drop_pg_database,
    machine_line,
)

# Imported modules put this checkout first again: BENCH_APP_ROOT wins for `app`.
if os.environ.get("BENCH_APP_ROOT"):
    sys.path.insert(0, os.environ["BENCH_APP_ROOT"])

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
TASK_IDS = 100
TASKS_AT_ONCE = 8


async def _pending_in_app(rt: object, client_id: str, users: list[str]) -> list[str]:
    """One notification with an in-app delivery per user, stored `pending` and due now (as
    a scheduled send's are when they fall due)."""
    from app.core.clock import utcnow
    from app.core.ids import new_id
    from app.notifications import repository
    from app.notifications.models import Notification
    from app.notifications.repository import NewDelivery

    now = utcnow()
    notification = Notification(
        id=new_id(),
        client_id=client_id,
        channels=["websocket"],
        content={"websocket": {"event": "bench", "data": {"x": 1}}},
        send_at=now,
        created_at=now,
    )
    new = [NewDelivery("websocket", {"user_id": u}, u) for u in users]
    async with rt.db.session() as session:  # type: ignore[attr-defined]
        # No inbox content: the rows start pending (the worker's work), on old and new code.
        ids = await repository.create_notification(session, client_id, notification, new, now=now)
        await session.commit()
    assert ids is not None
    return ids


async def _client(rt: object) -> str:
    from app.core.ids import new_id
    from app.tenants.models import Client

    client_id = new_id()
    async with rt.db.session() as session:  # type: ignore[attr-defined]
        session.add(Client(id=client_id, name="bench", slug=f"bench-{client_id.lower()}"))
        await session.commit()
    return client_id


def _push_part(rt: object) -> object | None:
    try:
        from app.notifications.push import InAppPush
    except ImportError:
        return None
    return rt.parts.get(InAppPush)  # type: ignore[attr-defined,no-any-return]


async def run(args: argparse.Namespace) -> None:
    from app.core.config import Settings
    from app.notifications import delivery

    try:
        from app.compose import build_runtime
    except ImportError:  # an older checkout (BENCH_APP_ROOT)
        from app.runtime import build_runtime  # type: ignore[attr-defined,no-redef]

    pg_name, url = await create_pg_database(args.pg_server)
    prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=url,
        REDIS_URL=args.redis_url,
        REDIS_KEY_PREFIX=prefix,
        LOG_LEVEL="WARNING",
        SECRET_KEY=secrets.token_urlsafe(32),
    )
    rt = build_runtime(settings, "worker")
    await rt.start()
    lines = []
    try:
        client_id = await _client(rt)
        users = [f"u{i:06d}" for i in range(args.deliveries)]
        for u in users:
            await rt.presence.connected(client_id, u)
        ids = await _pending_in_app(rt, client_id, users)
        gate = asyncio.Semaphore(TASKS_AT_ONCE)

        async def task(chunk: list[str]) -> int:
            async with gate:
                return await delivery.deliver_batch(rt, client_id, chunk)

        profiler = cProfile.Profile() if args.profile else None
        load = os.getloadavg()
        cpu0, t0 = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        done = await asyncio.gather(
            *(task(ids[i : i + TASK_IDS]) for i in range(0, len(ids), TASK_IDS))
        )
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        lines.append(
            f"worker path: {sum(done)} in-app deliveries in {wall:.2f} s = "
            f"{sum(done) / wall:,.0f}/s wall; {cpu * 1e6 / max(sum(done), 1):,.0f} us CPU each "
            f"= {sum(done) / max(cpu, 1e-9):,.0f}/s per CPU-second (goal >= 5,000/s; load "
            f"{load[0]:.1f})"
        )
        push = getattr(rt, "in_app", None) or _push_part(rt)
        if push is not None:
            from app.notifications.push_repository import OwedPush

            ids = await _pending_in_app(rt, client_id, users)
            owed = [OwedPush(d, client_id, u, "n") for d, u in zip(ids, users, strict=True)]
            load = os.getloadavg()
            cpu0, t0 = time.process_time(), time.perf_counter()
            pushed = await push.push_online(owed, {"n": {"event": "bench", "data": {}}})
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            lines.append(
                f"push path:   {len(owed)} pushes ({pushed} recorded) in {wall:.2f} s = "
                f"{len(owed) / wall:,.0f}/s wall; {cpu * 1e6 / len(owed):,.0f} us CPU each "
                f"(load {load[0]:.1f})"
            )
    finally:
        await rt.stop()
        await drop_pg_database(args.pg_server, pg_name)
        await clear_redis(args.redis_url, prefix)
    print(machine_line())
    print(f"app: {os.environ.get('BENCH_APP_ROOT') or 'this checkout'}")
    for line in lines:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--profile", help="cProfile stats of the worker path to this file")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
