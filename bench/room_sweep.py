"""The inactive-room sweep over many synthetic rooms, against bare UPDATEs on the same rows.

What is measured: a fresh, migrated PostgreSQL database gets N synthetic rooms (default
100 000, bulk-loaded with COPY) spread over a few clients and the four room types. A known
fraction (default 10%) is due for deactivation under the default per-type thresholds; the
rest is not due: some already inactive (old), the others active and recent enough.

Ours: `app.rooms.sweep.sweep_inactive_rooms(db, bus, batch_size=1000)` with an EventBus over
a started MemoryBroadcast that nobody listens to (the `room.deactivated` events are still
built and published). Baseline: one bare `UPDATE rooms SET is_active = false, deactivated_at
= now() WHERE is_active AND type = ... AND last_activity_at < ...` per type, through the
same SQLAlchemy asyncpg engine (no batching, no events). Each side runs several times in
alternating order; before each run the due rows are reset and the table is VACUUM ANALYZEd.
Reported: rooms deactivated, batches, median seconds, rooms/s, the time ratio, and the
EXPLAIN of the sweep's batch statement (captured from the engine) showing ix_rooms_sweep.

Run from the repository root:

    python bench/room_sweep.py                  # 100 000 rooms, PostgreSQL on 127.0.0.1
    python bench/room_sweep.py --rooms 20000 --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from sqlalchemy import event, text

from app.core.broadcast import MemoryBroadcast
from app.core.clock import utcnow
from app.core.db import Database
from app.core.ids import new_id
from app.realtime.bus import EventBus
from app.rooms.sweep import sweep_inactive_rooms
from app.tenants.schemas import DEFAULT_ROOM_INACTIVITY_SECONDS
from bench._support import (
    DEFAULT_PG_SERVER,
    BenchError,
    asyncpg_dsn,
    create_pg_database,
    drop_pg_database,
    machine_line,
    require_local,
)

ROOM_COLUMNS = (
    "id",
    "client_id",
    "name",
    "type",
    "is_active",
    "last_activity_at",
    "deactivated_at",
    "last_seq",
    "direct_key",
    "created_by",
    "metadata",
    "created_at",
)
HOUR = 3600.0
DAY = 86_400.0


@dataclass
class Seeded:
    """What was loaded."""

    due_ids: list[str]
    already_inactive: int
    active_not_due: int
    seconds: float


@dataclass
class Run:
    """One timed run of one side."""

    deactivated: int
    batches: int
    seconds: float


async def seed(conn: asyncpg.Connection, args: argparse.Namespace) -> Seeded:
    """Clients and rooms; exactly round(rooms * due_fraction) rooms are due."""
    started = time.perf_counter()
    rng = random.Random(args.seed)
    now = utcnow()
    clients = [new_id() for _ in range(args.clients)]
    await conn.copy_records_to_table(
        "clients",
        records=[
            (cid, f"bench {i}", f"bench-{i}-{cid.lower()}", "{}", now)
            for i, cid in enumerate(clients)
        ],
        columns=("id", "name", "slug", "settings", "created_at"),
    )
    types = list(DEFAULT_ROOM_INACTIVITY_SECONDS)
    n = args.rooms
    due_count = round(n * args.due_fraction)
    inactive_count = round(n * args.inactive_fraction)
    kinds = ["due"] * due_count + ["inactive"] * inactive_count
    kinds += ["fresh"] * (n - len(kinds))
    rng.shuffle(kinds)
    due_ids: list[str] = []
    records: list[tuple[Any, ...]] = []
    for i, kind in enumerate(kinds):
        room_type = types[i % len(types)]
        threshold = float(DEFAULT_ROOM_INACTIVITY_SECONDS[room_type])
        room_id = new_id()
        deactivated_at: datetime | None = None
        if kind == "due":
            idle = threshold + rng.uniform(HOUR, 60 * DAY)
            due_ids.append(room_id)
        elif kind == "inactive":
            idle = threshold + rng.uniform(HOUR, 365 * DAY)
            deactivated_at = now - timedelta(seconds=idle - threshold)
        else:  # active, at least an hour short of its threshold
            idle = rng.uniform(0, threshold - HOUR)
        last_activity = now - timedelta(seconds=idle)
        records.append(
            (
                room_id,
                clients[i % len(clients)],
                f"room {i}",
                room_type,
                kind != "inactive",
                last_activity,
                deactivated_at,
                rng.randint(0, 500),
                None,
                None,
                "{}",
                last_activity - timedelta(days=1),
            )
        )
    await conn.copy_records_to_table("rooms", records=records, columns=ROOM_COLUMNS)
    return Seeded(
        due_ids=due_ids,
        already_inactive=inactive_count,
        active_not_due=n - due_count - inactive_count,
        seconds=time.perf_counter() - started,
    )


async def reset(conn: asyncpg.Connection, due_ids: list[str]) -> None:
    """Make the due rooms active again, then VACUUM ANALYZE so each run starts alike."""
    await conn.execute(
        "UPDATE rooms SET is_active = true, deactivated_at = NULL WHERE id = ANY($1::text[])",
        due_ids,
    )
    await conn.execute("VACUUM ANALYZE rooms")


async def check(conn: asyncpg.Connection, due_ids: list[str], since: datetime, label: str) -> None:
    """Exactly the due rooms were deactivated by the run that started at `since`."""
    changed = await conn.fetchval("SELECT count(*) FROM rooms WHERE deactivated_at >= $1", since)
    due_done = await conn.fetchval(
        "SELECT count(*) FROM rooms WHERE id = ANY($1::text[]) AND NOT is_active", due_ids
    )
    if changed != len(due_ids) or due_done != len(due_ids):
        raise BenchError(
            f"{label}: expected {len(due_ids)} due rooms deactivated, got {changed} "
            f"changed rows of which {due_done} due"
        )


async def run_sweep(db: Database, bus: EventBus, batch_size: int) -> Run:
    started = time.perf_counter()
    result = await sweep_inactive_rooms(db, bus, batch_size=batch_size)
    return Run(result.deactivated, result.batches, time.perf_counter() - started)


async def run_baseline(db: Database) -> Run:
    started = time.perf_counter()
    now = utcnow()
    total = 0
    for room_type, seconds in DEFAULT_ROOM_INACTIVITY_SECONDS.items():
        async with db.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE rooms SET is_active = false, deactivated_at = now() "
                    "WHERE is_active AND type = :type AND last_activity_at < :cutoff"
                ),
                {"type": room_type, "cutoff": now - timedelta(seconds=seconds)},
            )
            total += result.rowcount
    return Run(total, len(DEFAULT_ROOM_INACTIVITY_SECONDS), time.perf_counter() - started)


async def explain(db: Database, statement: str, parameters: Any, analyze: bool) -> list[str]:
    """The plan PostgreSQL picks for a statement the sweep sent; with `analyze` it runs
    inside a transaction that is rolled back."""
    options = "(ANALYZE, BUFFERS) " if analyze else ""
    async with db.engine.connect() as conn:
        result = await conn.exec_driver_sql(f"EXPLAIN {options}{statement}", parameters)
        plan = [str(row[0]) for row in result.all()]
        await conn.rollback()
    return plan


def capture_first_update(db: Database) -> tuple[list[tuple[str, Any]], Callable[[], None]]:
    """Record the first `UPDATE rooms` the engine sends; and a function to stop recording."""
    seen: list[tuple[str, Any]] = []

    def before(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        if not seen and statement.lstrip().upper().startswith("UPDATE ROOMS"):
            seen.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    return seen, lambda: event.remove(db.engine.sync_engine, "before_cursor_execute", before)


def line(name: str, runs: list[Run]) -> str:
    secs = statistics.median(r.seconds for r in runs)
    r = runs[0]
    return (
        f"  {name:<40}{r.deactivated:>12}{r.batches:>9}{secs:>10.3f}{r.deactivated / secs:>12,.0f}"
    )


async def run(args: argparse.Namespace) -> None:
    total_started = time.perf_counter()
    machine = machine_line()
    pg_name, url = await create_pg_database(args.pg_server)
    db = Database(url)
    broadcast = MemoryBroadcast()
    await broadcast.start()
    bus = EventBus(broadcast)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        seeded = await seed(conn, args)
        await conn.execute("VACUUM ANALYZE")
        ours: list[Run] = []
        base: list[Run] = []
        captured, stop_capture = capture_first_update(db)
        sides: list[tuple[str, list[Run], Callable[[], Awaitable[Run]]]] = [
            ("sweep", ours, lambda: run_sweep(db, bus, args.batch_size)),
            ("baseline", base, lambda: run_baseline(db)),
        ]
        first = True
        for i in range(args.runs):
            for label, into, fn in sides if i % 2 == 0 else sides[::-1]:
                if not first:
                    await reset(conn, seeded.due_ids)
                first = False
                since = await conn.fetchval("SELECT now()")
                into.append(await fn())
                await check(conn, seeded.due_ids, since, label)
                if label == "sweep" and len(ours) == 1:
                    stop_capture()
        await reset(conn, seeded.due_ids)
        if not captured:
            raise BenchError("the sweep sent no UPDATE rooms statement")
        plan = await explain(db, *captured[0], analyze=args.analyze)
    finally:
        await conn.close()
        await broadcast.stop()
        await db.dispose()
        await drop_pg_database(args.pg_server, pg_name)

    n = args.rooms
    due = len(seeded.due_ids)
    print(f"room_sweep: sweep_inactive_rooms over {n:,} synthetic rooms on PostgreSQL")
    print(f"  {machine}")
    print(
        f"  seeded in {seeded.seconds:.1f} s (COPY): {args.clients} clients, 4 types round-robin; "
        f"{due:,} due ({due / n:.0%}), {seeded.already_inactive:,} already inactive, "
        f"{seeded.active_not_due:,} active and not due (default thresholds)"
    )
    print(
        f"  runs per side: {args.runs}, alternating order; due rows reset and VACUUM ANALYZE "
        "before each run; median seconds shown"
    )
    print(f"  {'':<40}{'deactivated':>12}{'batches':>9}{'seconds':>10}{'rooms/s':>12}")
    print(line(f"ours: sweep (batch_size={args.batch_size}, events)", ours))
    print(line("baseline: 1 bare UPDATE per type", base))
    ratio = statistics.median(r.seconds for r in ours) / statistics.median(r.seconds for r in base)
    print(f"  ratio ours/baseline (time): {ratio:.2f}x")
    print(
        "  every run (s): ours "
        + ", ".join(f"{r.seconds:.3f}" for r in ours)
        + "; baseline "
        + ", ".join(f"{r.seconds:.3f}" for r in base)
    )
    uses = any("ix_rooms_sweep" in p for p in plan)
    print(
        "  EXPLAIN of the sweep's first batch (UPDATE ... WHERE id IN (batch SELECT)): "
        f"uses ix_rooms_sweep: {'yes' if uses else 'NO'}"
    )
    print(f"    first line: {plan[0].strip()}")
    print("    whole plan:")
    for p in plan:
        print(f"      {p}")
    print(f"  whole bench took {time.perf_counter() - total_started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rooms", type=int, default=100_000, help="synthetic rooms to load")
    parser.add_argument("--due-fraction", type=float, default=0.10, help="share of rooms due")
    parser.add_argument(
        "--inactive-fraction", type=float, default=0.30, help="share already inactive"
    )
    parser.add_argument("--clients", type=int, default=10, help="clients owning the rooms")
    parser.add_argument("--batch-size", type=int, default=1000, help="the sweep's batch size")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the synthetic data")
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="EXPLAIN (ANALYZE, BUFFERS) the batch statement (run, then rolled back)",
    )
    parser.add_argument(
        "--pg-server",
        default=DEFAULT_PG_SERVER,
        help="PostgreSQL server (a scratch database is created and dropped there)",
    )
    args = parser.parse_args()
    require_local(args.pg_server)
    if args.rooms < 1 or args.clients < 1 or args.runs < 1 or args.batch_size < 1:
        parser.error("--rooms, --clients, --runs and --batch-size must be at least 1")
    if not (args.due_fraction > 0 and args.due_fraction + args.inactive_fraction <= 1):
        parser.error("need 0 < --due-fraction and --due-fraction + --inactive-fraction <= 1")
    try:
        asyncio.run(run(args))
    except BenchError as exc:
        sys.exit(f"room_sweep: {exc}")


if __name__ == "__main__":
    main()
