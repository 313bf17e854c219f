"""GET /analytics/summary with 1,000,000 deliveries on PostgreSQL.

Seeds one client (made through the API) with 1,000 rooms, 200,000 messages, 200,000
notifications and 1,000,000 deliveries (5 per notification over email / webhook /
websocket, mixed statuses, delivered ones with latencies) spread over 30 days, with
INSERT … SELECT generate_series (seconds, not hours), plus a second client with the same
volume so the client filter matters. Then ANALYZE, and times the endpoint in process
(httpx ASGI transport, the real app and its lifespan): the whole 30 days and one day,
first with no rollup (the summary reads the rows: the exact path, as before the rollups),
then runs the rollup job as beat would (timed; its first run is the backfill) and times
the endpoint again (rollups for whole rolled hours).

Run from the repository root (PostgreSQL on 127.0.0.1:5432 by default):

    python bench/analytics_summary.py [--deliveries 1000000] [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx

from bench._support import (
    ADMIN_KEY,
    DEFAULT_PG_SERVER,
    asyncpg_dsn,
    create_pg_database,
    drop_pg_database,
    machine_line,
)

SEED = """
INSERT INTO rooms (id, client_id, type, is_active, last_activity_at, last_seq, metadata,
                   created_at)
SELECT $P || lpad(g::text, 11, '0'), $1, (ARRAY['support','group','direct','channel'])[1 + g % 4],
       g % 3 <> 0, $2, 0, '{}', $2
FROM generate_series(1, 1000) g;

INSERT INTO messages (id, client_id, room_id, seq, content, content_type, metadata, created_at)
SELECT $P || lpad(g::text, 11, '0'), $1, $P || lpad((1 + g % 1000)::text, 11, '0'),
       g, 'hello', 'text/plain', '{}', $2 + ((g * 13) % 2592000) * interval '1 second'
FROM generate_series(1, $3 / 5) g;

INSERT INTO notifications (id, client_id, status, channels, content, metadata, critical,
                           send_at, created_at)
SELECT $P || lpad(g::text, 11, '0'), $1,
       (ARRAY['delivered','delivered','delivered','partial','failed','pending'])[1 + g % 6],
       '["email","webhook","websocket"]', '{}', '{}', false,
       $2 + ((g * 13) % 2592000) * interval '1 second', $2 + ((g * 13) % 2592000) * interval '1 second'
FROM generate_series(1, $3 / 5) g;

INSERT INTO deliveries (id, client_id, notification_id, channel, recipient, status, attempts,
                        delivered_at, created_at, updated_at)
SELECT $P || lpad(d::text, 11, '0'), $1, $P || lpad((1 + (d - 1) / 5)::text, 11, '0'),
       (ARRAY['email','webhook','websocket'])[1 + d % 3], '{}',
       (ARRAY['delivered','delivered','delivered','delivered','failed','retrying','pending'])
         [1 + d % 7],
       1,
       CASE WHEN d % 7 < 4 THEN $2 + (((1 + (d - 1) / 5) * 13) % 2592000) * interval '1 second'
                               + (d % 5000) * interval '1 millisecond' END,
       $2 + (((1 + (d - 1) / 5) * 13) % 2592000) * interval '1 second',
       $2 + (((1 + (d - 1) / 5) * 13) % 2592000) * interval '1 second'
FROM generate_series(1, $3) d;
"""


async def seed(dsn: str, client_id: str, start: datetime, deliveries: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert client_id.isalnum()  # a ULID: safe to inline
        sql = (
            # Row ids: the client id's random tail + a number (26 characters).
            SEED.replace("$P", f"'{client_id[-15:]}'")
            .replace("$1", f"'{client_id}'")
            .replace("$2", f"'{start.isoformat()}'::timestamptz")
            .replace("$3", str(int(deliveries)))
        )
        await conn.execute(sql)
        # As autovacuum would: visibility map set, so the covering indexes scan index-only.
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def measure(
    http: httpx.AsyncClient, auth: dict[str, str], start: datetime, runs: int, phase: str
) -> None:
    for label, since, until in (
        ("30 days (all 1M)", start, start + timedelta(days=31)),
        ("1 day", start + timedelta(days=10), start + timedelta(days=11)),
    ):
        params = {"since": since.isoformat(), "until": until.isoformat()}
        times = []
        for _ in range(runs + 1):
            t = time.perf_counter()
            r = await http.get("/api/v1/analytics/summary", params=params, headers=auth)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
        times = sorted(times[1:])  # the first warms caches
        body = r.json()
        latency = body["deliveries"]["latency_seconds"]
        print(
            f"{phase:15} {label:17} deliveries {body['deliveries']['total']:>9,}  "
            f"p50 {statistics.median(times) * 1000:7.1f} ms  "
            f"max {times[-1] * 1000:7.1f} ms  "
            f"latency p50/p95 {latency['p50']}/{latency['p95']} s"
            f"{'  (approximate)' if body['approximate'] else ''}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--pg", default=DEFAULT_PG_SERVER)
    parser.add_argument("--keep", action="store_true", help="keep the database (EXPLAIN it)")
    args = parser.parse_args()
    from app.analytics.rollup import roll_up
    from app.core.config import Settings
    from app.main import create_app

    print(machine_line())
    name, url = await create_pg_database(args.pg, "chatapi_bench_analytics")  # migrated
    try:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            DATABASE_URL=url,
            ADMIN_API_KEY=ADMIN_KEY,
            LOG_LEVEL="WARNING",
            SECRET_KEY="bench-secret-key-bench-secret-key-0123",
            RATE_LIMIT_REQUESTS_PER_MINUTE=1_000_000,
        )
        app = create_app(settings, run_embedded_worker=False)
        start = datetime(2030, 1, 1, tzinfo=timezone.utc)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as http:
                admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
                keys = []
                for label in ("a", "b"):
                    r = await http.post("/api/v1/clients", json={"name": label}, headers=admin)
                    keys.append((r.json()["id"], r.json()["master_key"]))
                began = time.perf_counter()
                for client_id, _ in keys:
                    await seed(asyncpg_dsn(url), client_id, start, args.deliveries)
                print(
                    f"seeded 2 clients x {args.deliveries:,} deliveries in "
                    f"{time.perf_counter() - began:.1f} s"
                )
                auth = {"Authorization": f"Bearer {keys[0][1]}"}
                # "before": no rollup yet, so the summary reads the deliveries themselves
                # (the exact path, as before the rollups). Then the rollup job, as beat runs
                # it (its first run is the backfill), and "after".
                await measure(http, auth, start, args.runs, "before (rows)")
                began = time.perf_counter()
                report = await roll_up(app.state.runtime.db, now=start + timedelta(days=31))
                print(
                    f"rollup job (first run = backfill of 2 x {args.deliveries:,}): "
                    f"{time.perf_counter() - began:.1f} s, rolled until {report.rolled_until}"
                )
                began = time.perf_counter()
                await roll_up(app.state.runtime.db, now=start + timedelta(days=31, minutes=1))
                print(
                    f"rollup job (a steady-state run): {(time.perf_counter() - began) * 1000:.0f} ms"
                )
                await measure(http, auth, start, args.runs, "after (rollups)")
        if args.keep:
            print(f"kept database {name}")
    finally:
        if not args.keep:
            await drop_pg_database(args.pg, name)


if __name__ == "__main__":
    asyncio.run(main())
