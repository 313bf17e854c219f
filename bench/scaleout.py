"""Row 7: scale-out — with Redis, two API processes each holding half of a C-client room,
against one process holding all of it; deliveries/s of a burst and each process's CPU.

Both setups run `chatapi serve` in scaled mode (REDIS_URL set, a scratch PostgreSQL
database, its own Redis key prefix), the same C users in one `channel` room, clients held
by the Node driver (socket.io-client). "one" = one API process with every client; "two" =
two API processes, clients split half and half, messages posted to the first — each
message reaches the second through the Redis bus. Printed: deliveries/s, the ratio
two/one, and the CPU split (each API process, the driver, and the machine's CPU count).
On a 2-core machine the two processes, PostgreSQL, Redis and the driver share the same
cores, so the ratio says what the bus costs there, not what a second machine would give.

Usage:
    python bench/scaleout.py [--clients 1000] [--messages 100] [--post-concurrency 4]
        [--redis-url redis://127.0.0.1:6379/0] [--pg-server postgresql://postgres@127.0.0.1:5432/postgres]
        [--rest-setup] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "fanout"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fanout_burst import add_rest_setup_argument
from node_driver import NodeFleet, ratio
from targets import ChatapiTarget

from bench._support import (
    DEFAULT_PG_SERVER,
    Figure,
    add_json_argument,
    create_pg_database,
    drop_pg_database,
    progress,
    require_local,
    safe_ratio,
    write_figures,
)


class ScaledChatapi(ChatapiTarget):
    """`chatapi serve` in scaled mode on a shared database and Redis."""

    def __init__(
        self, db_url: str, redis_url: str, prefix: str, admin_key: str, post_concurrency: int
    ) -> None:
        super().__init__(post_concurrency=post_concurrency)
        self.db_url = db_url
        self.redis_url = redis_url
        self.prefix = prefix
        self.admin_key = admin_key

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update(DATABASE_URL=self.db_url, REDIS_URL=self.redis_url, REDIS_KEY_PREFIX=self.prefix)
        return env


async def run(setup: str, args: argparse.Namespace, db_url: str) -> dict[str, float]:
    prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    admin = secrets.token_urlsafe(32)
    count = 2 if setup == "two" else 1
    servers = [
        ScaledChatapi(db_url, args.redis_url, prefix, admin, args.post_concurrency)
        for _ in range(count)
    ]
    fleets: list[NodeFleet] = []
    try:
        for s in servers:  # one after another: each migrates on start
            await s.start()
        first = servers[0]
        progress(setup, f"{count} server(s) up")
        auths = await first.prepare(args.clients, room=True, direct=not args.rest_setup)
        progress(setup, f"{len(auths)} clients prepared; connecting")
        for i, s in enumerate(servers):
            share = auths[i::count]
            fleets.append(NodeFleet(s.url, share, latency_path=first.latency_path))
        await asyncio.gather(*(f.start() for f in fleets))
        progress(setup, "connected")
        await asyncio.gather(*(f.quiet(1000) for f in fleets))
        await first.trigger(5, 64)  # warm-up
        await asyncio.gather(*(f.wait(5, timeout=60) for f in fleets))
        await asyncio.gather(*(f.reset() for f in fleets))
        drv0 = sum([(await f.report()).cpu_s for f in fleets])
        cpu0 = [s.cpu_seconds() for s in servers]
        started = time.time()
        await first.trigger(args.messages, 64)
        reps = await asyncio.gather(*(f.wait(args.messages, timeout=120) for f in fleets))
        cpu = [s.cpu_seconds() - c for s, c in zip(servers, cpu0, strict=True)]
        last = max(r.last for r in reps) or time.time()
        window = last - started
        delivered = sum(r.delivered for r in reps)
        return {
            "delivered": delivered,
            "expected": args.clients * args.messages,
            "rate": delivered / window,
            "window": window,
            "p99": max(r.p99_ms for r in reps),
            "cpu": cpu,  # type: ignore[dict-item]
            "driver_cpu": sum(r.cpu_s for r in reps) - drv0,
        }
    finally:
        for f in fleets:
            await f.close()
        for s in servers:
            await s.stop()


def scaleout_figure(args: argparse.Namespace, res: dict[str, dict[str, float]]) -> Figure:
    """#15 row 7: two processes against one; reported, not judged, on a 2-core machine."""

    def show(setup: str) -> str:
        r = res[setup]
        cpus = " + ".join(f"{c:.1f}" for c in r["cpu"])  # type: ignore[attr-defined]
        return f"{r['rate']:,.0f}/s (API CPU {cpus} s)"

    cores = os.cpu_count() or 0
    return Figure(
        figure="#15 row 7",
        what=f"scale-out burst, {args.clients:,} clients x {args.messages}, Redis bus, {cores} cores",
        ours=f"two processes {show('two')}",
        baseline=f"one process {show('one')}",
        ratio=safe_ratio(res["two"]["rate"], res["one"]["rate"]),
        goal="≥ 1.6 with enough cores; report here" if cores < 4 else "ratio ≥ 1.6",
        met=None if cores < 4 else res["two"]["rate"] >= 1.6 * res["one"]["rate"],
        driver_cpu=(
            f"Node driver {res['two']['driver_cpu']:.1f} s / {res['one']['driver_cpu']:.1f} s CPU"
        ),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--post-concurrency", type=int, default=4)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    add_rest_setup_argument(parser)
    add_json_argument(parser)
    args = parser.parse_args()
    require_local(args.redis_url)
    res = {}
    for setup in ("one", "two"):
        name, db_url = await create_pg_database(args.pg_server)
        try:
            res[setup] = await run(setup, args, db_url)
        finally:
            await drop_pg_database(args.pg_server, name)
        print(f"{setup}: {res[setup]}", file=sys.stderr, flush=True)
    print(
        f"\nScale-out burst: {args.clients} clients x {args.messages} messages, Redis bus, PostgreSQL, {os.cpu_count()} cores"
    )
    print(
        f"{'setup':6} {'delivered':>17} {'deliveries/s':>13} {'p99 ms':>8} {'window s':>9}  CPU s (API processes | driver)"
    )
    for setup, r in res.items():
        cpus = " + ".join(f"{c:.2f}" for c in r["cpu"])  # type: ignore[attr-defined]
        print(
            f"{setup:6} {str(r['delivered']) + '/' + str(r['expected']):>17} {r['rate']:>13,.0f} {r['p99']:>8.1f}"
            f" {r['window']:>9.2f}  {cpus} | {r['driver_cpu']:.2f}"
        )
    print(
        f"two processes / one process deliveries/s: {ratio(res['two']['rate'], res['one']['rate'])}"
    )
    write_figures(args.json, "scaleout.py", [scaleout_figure(args, res)])


if __name__ == "__main__":
    asyncio.run(main())
