"""Message send under `wrk`: the real app against a bare one-INSERT endpoint, side by side.

What is measured: `POST /api/v1/rooms/{id}/messages` of the real app (`create_app` under
uvicorn in a child process) against a bare FastAPI app in another child whose one endpoint
`POST /rooms/{id}/messages` parses the same JSON body and does one INSERT:

- `--db postgresql`: a fresh migrated database on the local server; the baseline INSERTs
  through a plain asyncpg pool (no ORM, no pre-ping) into a scratch table of it.
- `--db sqlite`: the app in embedded mode (no Redis, the in-process worker running) on a
  fresh SQLite file; the baseline INSERTs through one plain aiosqlite connection (WAL,
  synchronous=NORMAL, like the app) into a scratch table of its own file.

Load: `wrk` (the Debian package; C, so the generator is not the bottleneck) with a
generated Lua script that posts the same body to R rooms round-robin, each with its own
user key (`--rooms 1`: every request contends for one room's lock). Both sides get a
warm-up, then alternating rounds (ABBA) of `--duration` seconds each.

Printed per side: req/s, mean and p50/p99 latency (wrk's), the server's CPU per request
(from /proc), wrk's CPU (its rusage) as a share of one core; then the ratios ours/baseline,
and a check that every room's seq is gapless (max(seq) == count). `--profile out.txt`
also runs py-spy (`record --format raw`, collapsed stacks) on ours during one extra round
and prints the hottest frames.

    python bench/message_send_wrk.py                         # PostgreSQL, 64 rooms
    python bench/message_send_wrk.py --rooms 1               # one contended room
    python bench/message_send_wrk.py --db sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench._support import (
    ADMIN_KEY,
    DEFAULT_PG_SERVER,
    BenchError,
    Figure,
    ServerProcess,
    add_json_argument,
    asyncpg_dsn,
    create_pg_database,
    create_sqlite_database,
    drop_pg_database,
    machine_line,
    meets,
    require_local,
    run_uvicorn,
    write_figures,
)
from bench.message_send import CONTENT, ScratchBody, setup_app

SCRIPT = Path(__file__).resolve()
SCRATCH_TABLE = "bench_scratch_messages"
SCRATCH_DDL = (
    f"CREATE TABLE {SCRATCH_TABLE} (id varchar(26) PRIMARY KEY, room_id varchar(26) NOT NULL, "
    "content text NOT NULL, created_at {ts} NOT NULL)"
)

# wrk's Lua side: round-robin over the rooms; done() prints one JSON line for the parent.
LUA = """
local rooms = {ROOMS}
local i = 0
local body = '{BODY}'
request = function()
  i = i + 1
  local r = rooms[(i % #rooms) + 1]
  return wrk.format("POST", r[1], {["Authorization"] = r[2],
    ["Content-Type"] = "application/json"}, body)
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


def serve(spec: dict[str, Any]) -> None:
    """Child process: the real app or a bare baseline, under uvicorn."""
    if spec["kind"] == "app":
        from app.core.config import Settings
        from app.main import create_app

        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=spec["database_url"],
            REDIS_URL=spec["redis_url"],
            REDIS_KEY_PREFIX=spec["redis_prefix"],
            ADMIN_API_KEY=spec["admin_key"],
            BCRYPT_ROUNDS=4,
            # Counted as in production but never refused: the bench measures the request
            # path, and a fast side would otherwise run into the per-minute limits.
            RATE_LIMIT_REQUESTS_PER_MINUTE=1_000_000_000,
            RATE_LIMIT_CLIENT_REQUESTS_PER_MINUTE=1_000_000_000,
            LOG_LEVEL=spec["log_level"],
        )
        embedded_worker = spec["database_url"].startswith("sqlite")
        run_uvicorn(create_app(settings, run_embedded_worker=embedded_worker), spec["port"])
    elif spec["kind"] == "asyncpg":
        run_uvicorn(asyncpg_baseline(spec["dsn"]), spec["port"])
    else:
        run_uvicorn(aiosqlite_baseline(spec["path"]), spec["port"])


def _bare_app(lifespan: Any, insert: Any) -> Any:
    from fastapi import FastAPI

    from app.core.clock import utcnow
    from app.core.ids import new_id

    app = FastAPI(lifespan=lifespan)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/rooms/{room_id}/messages", status_code=201)
    async def send(room_id: str, body: ScratchBody) -> dict[str, Any]:
        row = {"id": new_id(), "room_id": room_id, "content": body.content, "created_at": utcnow()}
        await insert(row)
        return row

    return app


def asyncpg_baseline(dsn: str) -> Any:
    """Bare FastAPI: parse the body, one INSERT through an asyncpg pool, answer the row."""
    pool: asyncpg.Pool | None = None
    sql = f"INSERT INTO {SCRATCH_TABLE} (id, room_id, content, created_at) VALUES ($1,$2,$3,$4)"

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=10, max_size=30)
        yield
        await pool.close()

    async def insert(row: dict[str, Any]) -> None:
        assert pool is not None
        await pool.execute(sql, row["id"], row["room_id"], row["content"], row["created_at"])

    return _bare_app(lifespan, insert)


def aiosqlite_baseline(path: str) -> Any:
    """Bare FastAPI: parse the body, one INSERT (its own commit) on one aiosqlite connection."""
    import aiosqlite

    db: aiosqlite.Connection | None = None
    sql = f"INSERT INTO {SCRATCH_TABLE} (id, room_id, content, created_at) VALUES (?,?,?,?)"

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        nonlocal db
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        yield
        await db.close()

    async def insert(row: dict[str, Any]) -> None:
        assert db is not None
        await db.execute(
            sql, (row["id"], row["room_id"], row["content"], row["created_at"].isoformat())
        )
        await db.commit()

    return _bare_app(lifespan, insert)


@dataclass
class Side:
    """One server under wrk and what it measured."""

    label: str
    server: ServerProcess
    lua: Path
    requests: int = 0
    seconds: float = 0.0
    non2xx: int = 0
    socket_errors: int = 0
    latency_weighted_us: float = 0.0
    p50s: list[int] = field(default_factory=list)
    p99s: list[int] = field(default_factory=list)
    server_cpu: float = 0.0
    wrk_cpu: float = 0.0


def write_lua(folder: Path, prefix: str, senders: list[tuple[str, str]]) -> Path:
    rooms = ", ".join(
        f'{{"{prefix}/rooms/{rid}/messages", "Bearer {key}"}}' for rid, key in senders
    )
    body = json.dumps({"content": CONTENT})
    path = folder / f"send{prefix.replace('/', '_')}.lua"
    path.write_text(LUA.replace("{ROOMS}", "{" + rooms + "}").replace("{BODY}", body))
    return path


def run_wrk(side: Side, args: argparse.Namespace, seconds: int, record: bool) -> None:
    """One wrk run against `side`; adds its figures when `record`."""
    cmd = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s",
        "--timeout", "10s", "-s", str(side.lua), side.server.base_url,
    ]  # fmt: skip
    cpu0 = side.server.cpu_seconds()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    server_cpu = side.server.cpu_seconds() - cpu0
    match = re.search(r"WRKJSON (\{.*\})", out)
    if proc.returncode != 0 or match is None:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{out}")
    figures = json.loads(match.group(1))
    if figures["non2xx"]:
        raise BenchError(
            f"{side.label}: {figures['non2xx']} non-2xx answers\n{out}\n"
            f"{side.label} server's log:\n{side.server.log_tail()}"
        )
    if not record:
        return
    side.requests += figures["requests"]
    side.seconds += figures["duration_us"] / 1e6
    side.non2xx += figures["non2xx"]
    side.socket_errors += figures["socket_errors"]
    side.latency_weighted_us += figures["mean_us"] * figures["requests"]
    side.p50s.append(figures["p50_us"])
    side.p99s.append(figures["p99_us"])
    side.server_cpu += server_cpu
    side.wrk_cpu += usage.ru_utime + usage.ru_stime


def profile(side: Side, args: argparse.Namespace) -> None:
    """py-spy record (collapsed stacks) on the app during one more wrk run; top frames."""
    if shutil.which("py-spy") is None and not Path(sys.executable).with_name("py-spy").exists():
        raise BenchError("--profile needs py-spy (pip install py-spy)")
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    pid = side.server.pid
    out = Path(args.profile)
    rec = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
         "--duration", str(args.duration), "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    run_wrk(side, args, args.duration, False)
    rec.wait(timeout=60)
    print_profile(out)


def print_profile(path: Path, top: int = 25) -> None:
    """Inclusive share of samples per app/ frame (and a few framework ones)."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = {
            f.split(" (")[0] + " " + f.split(" (")[-1].split(":")[0] for f in stack.split(";")
        }
        for frame in frames:
            inclusive[frame] += n
    print(f"  py-spy: {total} samples -> {path}; inclusive share of the top frames:")
    shown = 0
    for frame, n in inclusive.most_common():
        if " app/" not in frame and "sqlalchemy" not in frame and "asyncpg" not in frame:
            continue
        print(f"    {n / total:6.1%}  {frame[-110:]}")
        shown += 1
        if shown >= top:
            break


def _median(values: list[int]) -> float:
    ordered = sorted(values)
    return float(ordered[len(ordered) // 2]) if ordered else float("nan")


def report(args: argparse.Namespace, ours: Side, base: Side, gapless: str, machine: str) -> Figure:
    """Print both sides and the ratios; answer the row of run_all's table."""
    baseline_name = (
        "bare FastAPI + asyncpg INSERT"
        if args.db == "postgresql"
        else ("bare FastAPI + aiosqlite INSERT")
    )
    print(f"message_send_wrk: POST /api/v1/rooms/{{id}}/messages vs {baseline_name}")
    print(f"  {machine}")
    print(
        f"  {args.db}, one uvicorn process per server, log_level={args.log_level}; "
        f"wrk -t{args.threads} -c{args.connections}, {args.rounds} alternating rounds of "
        f"{args.duration}s per side after a {args.warmup}s warm-up; {args.rooms} room(s) "
        "round-robin, one user key each"
    )
    head = ("req/s", "mean ms", "p50 ms", "p99 ms", "srv CPU ms/req", "wrk CPU")
    print(f"  {'':<36}" + "".join(f"{h:>15}" for h in head))
    figs: dict[str, tuple[float, float, float, float, float]] = {}
    for name, side in (("ours: real app", ours), (f"baseline: {baseline_name}", base)):
        rps = side.requests / side.seconds
        mean = side.latency_weighted_us / side.requests / 1000
        p50, p99 = _median(side.p50s) / 1000, _median(side.p99s) / 1000
        srv = side.server_cpu / side.requests * 1000
        figs[side.label] = (rps, mean, p50, p99, srv)
        cells = (
            f"{rps:,.0f}", f"{mean:.1f}", f"{p50:.1f}", f"{p99:.1f}", f"{srv:.3f}",
            f"{side.wrk_cpu / side.seconds:.0%}",
        )  # fmt: skip
        print(f"  {name:<36}" + "".join(f"{c:>15}" for c in cells))
    o, b = figs["ours"], figs["baseline"]
    print(
        f"  ratio ours/baseline: throughput {o[0] / b[0]:.2f}x, mean latency {o[1] / b[1]:.2f}x, "
        f"server CPU per request {o[4] / b[4]:.2f}x"
    )
    print(
        f"  seq check: {gapless}; socket errors ours={ours.socket_errors} base={base.socket_errors}"
    )
    throughput = o[0] / b[0]
    row = {"postgresql": "#15 row 1" if args.rooms > 1 else "#15 row 2"}.get(args.db, "#15 SQLite")
    return Figure(
        figure=row,
        what=f"POST /rooms/{{id}}/messages/s, {args.db}, {args.rooms} room(s)",
        ours=f"{o[0]:,.0f} req/s",
        baseline=f"{baseline_name} {b[0]:,.0f} req/s",
        ratio=throughput,
        goal="ratio ≥ 0.5",
        met=meets(throughput, ">=", 0.5),
        driver_cpu=f"wrk {ours.wrk_cpu / ours.seconds:.0%} / {base.wrk_cpu / base.seconds:.0%}",
    )


def check_gapless(rows: list[tuple[str, int, int]]) -> str:
    bad = [r for r in rows if r[1] != r[2]]
    if bad:
        raise BenchError(f"seq gaps (room, max seq, count): {bad[:5]}")
    return f"{len(rows)} room(s), {sum(r[2] for r in rows)} messages, max(seq) == count in each"


SEQ_SQL = "SELECT room_id, max(seq), count(*) FROM messages GROUP BY room_id"


async def run(args: argparse.Namespace) -> None:
    machine = machine_line()
    folder = Path(tempfile.mkdtemp(prefix="chatapi-bench-wrk-"))
    pg_name = None
    conn = None
    if args.db == "postgresql":
        pg_name, url = await create_pg_database(args.pg_server)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        await conn.execute(SCRATCH_DDL.format(ts="timestamptz"))
        base_spec: dict[str, Any] = {"kind": "asyncpg", "dsn": asyncpg_dsn(url)}
    else:
        url = await create_sqlite_database(folder)
        scratch = folder / "baseline.db"
        with sqlite3.connect(scratch) as db:
            db.execute(SCRATCH_DDL.format(ts="text"))
        base_spec = {"kind": "aiosqlite", "path": str(scratch)}
    app_spec = {
        "kind": "app",
        "database_url": url,
        "redis_url": args.redis_url,
        "redis_prefix": f"chatapi-bench-{secrets.token_hex(4)}:",
        "log_level": args.log_level,
        "admin_key": ADMIN_KEY,
    }
    app_server = ServerProcess(SCRIPT, app_spec, "app")
    base_server = ServerProcess(SCRIPT, base_spec, "baseline")
    try:
        await asyncio.gather(app_server.start("/health/live"), base_server.start("/health/live"))
        senders = await setup_app(app_server.base_url, args.rooms)
        ours = Side("ours", app_server, write_lua(folder, "/api/v1", senders))
        base = Side("baseline", base_server, write_lua(folder, "", senders))
        for side in (ours, base):
            await asyncio.to_thread(run_wrk, side, args, args.warmup, False)
        for i in range(args.rounds):
            for side in (ours, base) if i % 2 == 0 else (base, ours):
                await asyncio.to_thread(run_wrk, side, args, args.duration, True)
        if conn is not None:
            rows = [tuple(r) for r in await conn.fetch(SEQ_SQL)]
        else:
            with sqlite3.connect(url.split("///", 1)[1]) as db:
                rows = db.execute(SEQ_SQL).fetchall()
        figure = report(args, ours, base, check_gapless(rows), machine)  # type: ignore[arg-type]
        write_figures(args.json, "message_send_wrk.py", [figure])
        if args.profile:
            await asyncio.to_thread(profile, ours, args)
    finally:
        await asyncio.gather(app_server.stop(), base_server.stop())
        if conn is not None:
            await conn.close()
        if pg_name is not None:
            await drop_pg_database(args.pg_server, pg_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--rooms", type=int, default=64, help="rooms, round-robin (one user each)")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per side")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--redis-url", default=None, help="scaled mode on this local Redis")
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    add_json_argument(parser)
    parser.add_argument("--profile", help="py-spy collapsed stacks of ours to this file")
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
        sys.exit(f"message_send_wrk: {exc}")


if __name__ == "__main__":
    main()
