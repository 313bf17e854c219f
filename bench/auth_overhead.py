"""Authentication overhead: the same trivial endpoint with and without `get_principal`.

What is measured: the real app (`create_app`) gets two extra routes with one shared trivial
handler, `GET /bench/open` (no dependency, the baseline) and `GET /bench/auth` (depending on
`app.api.deps.get_principal`). The app runs under uvicorn in a child process on a free
127.0.0.1 port, on a fresh database (PostgreSQL by default, or a SQLite file). A master key
is made through `POST /api/v1/clients` with the ADMIN_API_KEY. One keep-alive httpx
connection then sends N sequential requests to each route, the same headers on both,
interleaved in blocks (ABBA order) so machine noise hits both sides; client-side latency.

Reported: p50/p90/p99 of each route, the p50 overhead (auth - open) against the goal of
<= 1 ms, the ratio, and separately the first request of a fresh key (cold cache: the key
row is read and its bcrypt hash verified) next to a bare bcrypt verify at the same rounds.
Steady state includes the authenticator's periodic row re-check (every 5 s per key).

Run from the repository root:

    python bench/auth_overhead.py                    # PostgreSQL on 127.0.0.1:5432
    python bench/auth_overhead.py --db sqlite --requests 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._support import (
    ADMIN_KEY,
    DEFAULT_PG_SERVER,
    BenchError,
    Figure,
    ServerProcess,
    add_json_argument,
    create_pg_database,
    create_sqlite_database,
    drop_pg_database,
    machine_line,
    meets,
    ms,
    percentile,
    require_local,
    run_uvicorn,
    write_figures,
)

OPEN_PATH = "/bench/open"
AUTH_PATH = "/bench/auth"
GOAL_OVERHEAD_MS = 1.0
SCRIPT = Path(__file__).resolve()


def serve(spec: dict[str, Any]) -> None:
    """Child process: the real app plus the two bench routes, under uvicorn."""
    from fastapi import Depends

    from app.api.deps import get_principal
    from app.core.config import Settings
    from app.main import create_app

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=spec["database_url"],
        REDIS_URL=None,
        ADMIN_API_KEY=spec["admin_key"],
        BCRYPT_ROUNDS=spec["bcrypt_rounds"],
        LOG_LEVEL=spec["log_level"],
    )
    app = create_app(settings, run_embedded_worker=False)

    async def trivial() -> dict[str, bool]:
        return {"ok": True}

    app.add_api_route(OPEN_PATH, trivial, methods=["GET"])
    app.add_api_route(AUTH_PATH, trivial, methods=["GET"], dependencies=[Depends(get_principal)])
    run_uvicorn(app, spec["port"])


@dataclass
class Samples:
    """Per-request latencies of one side, in seconds."""

    label: str
    seconds: list[float] = field(default_factory=list)

    def pct(self, p: float) -> float:
        return percentile(sorted(self.seconds), p)


def _timed_get(client: httpx.Client, path: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    response = client.get(path, headers=headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise BenchError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
    return elapsed


def measure(
    base_url: str, key: str, requests: int, block: int, warmup: int
) -> tuple[Samples, Samples]:
    """Sequential keep-alive requests to both routes, interleaved in ABBA-ordered blocks."""
    headers = {"Authorization": f"Bearer {key}"}
    plain, authed = Samples("open"), Samples("auth")
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for _ in range(warmup):  # warms the connection, the route code and the key cache
            _timed_get(client, AUTH_PATH, headers)
            _timed_get(client, OPEN_PATH, headers)
        done = 0
        turn = 0
        while done < requests:
            n = min(block, requests - done)
            order = [(plain, OPEN_PATH), (authed, AUTH_PATH)]
            if turn % 2:
                order.reverse()
            for samples, path in order:
                samples.seconds.extend(_timed_get(client, path, headers) for _ in range(n))
            done += n
            turn += 1
    return plain, authed


def first_requests(base_url: str, keys: list[str]) -> tuple[list[float], list[float]]:
    """For each fresh key: its first authed request (cold cache) and its second (cached)."""
    cold, warm = [], []
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for _ in range(20):
            _timed_get(client, OPEN_PATH, {})
        for key in keys:
            headers = {"Authorization": f"Bearer {key}"}
            cold.append(_timed_get(client, AUTH_PATH, headers))
            warm.append(_timed_get(client, AUTH_PATH, headers))
    return cold, warm


def bare_bcrypt_verify(rounds: int, times: int = 3) -> float:
    """The median time of one bcrypt verify at `rounds` in this process."""
    from app.auth.secrets import hash_secret, verify_secret

    hashed = hash_secret("x" * 43, rounds)
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        verify_secret("x" * 43, hashed)
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


async def make_keys(base_url: str, count: int) -> list[str]:
    """`count` clients made with the admin key; their master keys."""
    keys = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        for i in range(count):
            r = await client.post(
                "/api/v1/clients",
                json={"name": f"bench auth {i}"},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            if r.status_code != 201:
                raise BenchError(f"POST /api/v1/clients answered {r.status_code}: {r.text[:300]}")
            keys.append(str(r.json()["master_key"]))
    return keys


def report(
    args: argparse.Namespace,
    plain: Samples,
    authed: Samples,
    cold: list[float],
    warm: list[float],
    bcrypt_alone: float,
    client_cpu: float,
    machine: str,
) -> Figure:
    """Print both routes, the overhead and the cold-key cost; answer the P5 row."""
    print(
        "auth_overhead: GET with vs without get_principal, real HTTP "
        "(uvicorn child process, one keep-alive connection, sequential)"
    )
    print(f"  {machine}")
    print(
        f"  database={args.db}  bcrypt_rounds={args.bcrypt_rounds}  log_level={args.log_level}  "
        f"requests={args.requests} per route, blocks of {args.block} in ABBA order, "
        f"warm-up {args.warmup} each"
    )
    print(f"  {'':<26}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for name, s in (("baseline: no dependency", plain), ("ours: get_principal", authed)):
        mean = statistics.fmean(s.seconds)
        print(f"  {name:<26}{ms(s.pct(50)):>9}{ms(s.pct(90)):>9}{ms(s.pct(99)):>9}{ms(mean):>9}")
    overhead_ms = (authed.pct(50) - plain.pct(50)) * 1000
    verdict = "met" if overhead_ms <= GOAL_OVERHEAD_MS else "NOT met"
    print(
        f"  p50 overhead (ours - baseline): {overhead_ms:.3f} ms   "
        f"goal <= {GOAL_OVERHEAD_MS:g} ms: {verdict}"
    )
    print(f"  ratio ours/baseline at p50: {authed.pct(50) / plain.pct(50):.2f}x")
    cold_sorted = sorted(cold)
    print(
        f"  first request of a fresh key (row read + bcrypt verify): "
        f"median {ms(statistics.median(cold))} ms over {len(cold)} keys "
        f"(min {ms(cold_sorted[0])}, max {ms(cold_sorted[-1])}); "
        f"its second request: median {ms(statistics.median(warm))} ms"
    )
    print(
        f"  bare bcrypt verify at {args.bcrypt_rounds} rounds in the bench process: "
        f"{ms(bcrypt_alone)} ms"
    )
    print(f"  the client's CPU while measuring: {client_cpu:.0%} of a core")
    return Figure(
        figure="P5",
        what=f"auth overhead per request, p50 ({args.db}, cached key, keep-alive)",
        ours=f"{overhead_ms:+.3f} ms (p50 {ms(authed.pct(50))} ms)",
        baseline=f"same route, no auth: p50 {ms(plain.pct(50))} ms",
        ratio=authed.pct(50) / plain.pct(50),
        goal=f"overhead ≤ {GOAL_OVERHEAD_MS:g} ms",
        met=meets(overhead_ms, "<=", GOAL_OVERHEAD_MS),
        driver_cpu=f"httpx client {client_cpu:.0%} (sequential)",
    )


async def run(args: argparse.Namespace) -> None:
    machine = machine_line()
    pg_name: str | None = None
    tmp: Path | None = None
    if args.db == "postgresql":
        pg_name, url = await create_pg_database(args.pg_server)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="chatapi-bench-"))
        url = await create_sqlite_database(tmp)
    server = ServerProcess(
        SCRIPT,
        {
            "database_url": url,
            "admin_key": ADMIN_KEY,
            "bcrypt_rounds": args.bcrypt_rounds,
            "log_level": args.log_level,
        },
        label="auth",
    )
    try:
        await server.start("/health/live")
        keys = await make_keys(server.base_url, 1 + args.cold_keys)
        cold, warm = await asyncio.to_thread(first_requests, server.base_url, keys[1:])
        cpu0, wall0 = time.process_time(), time.monotonic()
        plain, authed = await asyncio.to_thread(
            measure, server.base_url, keys[0], args.requests, args.block, args.warmup
        )
        client_cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        bcrypt_alone = await asyncio.to_thread(bare_bcrypt_verify, args.bcrypt_rounds)
        figure = report(args, plain, authed, cold, warm, bcrypt_alone, client_cpu, machine)
        write_figures(args.json, "auth_overhead.py", [figure])
    finally:
        await server.stop()
        if pg_name is not None:
            await drop_pg_database(args.pg_server, pg_name)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument(
        "--pg-server",
        default=DEFAULT_PG_SERVER,
        help="PostgreSQL server (a scratch database is created and dropped there)",
    )
    parser.add_argument("--requests", type=int, default=3000, help="requests per route")
    parser.add_argument("--block", type=int, default=100, help="requests per interleaved block")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests per route")
    parser.add_argument(
        "--cold-keys", type=int, default=5, help="fresh keys whose first request is timed"
    )
    parser.add_argument("--bcrypt-rounds", type=int, default=12, help="the app default is 12")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    add_json_argument(parser)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(json.loads(args.serve))
        return
    require_local(args.pg_server)
    if args.requests < 1 or args.block < 1 or args.cold_keys < 1:
        parser.error("--requests, --block and --cold-keys must be at least 1")
    try:
        asyncio.run(run(args))
    except BenchError as exc:
        sys.exit(f"auth_overhead: {exc}")


if __name__ == "__main__":
    main()
