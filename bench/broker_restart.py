"""Broker restart (#25 "Also measure"): Redis restarted under the churn load with two API
processes; do clients stay connected (or reconnect), and does `sync` recover everything?

Two `chatapi serve` processes in scaled mode (a scratch PostgreSQL database, the bus on a
Redis server of this script's own on a free port, so the machine's Redis is left alone);
one room of `--clients` stable Socket.IO clients split half and half between them (Node
room clients, node/room_clients.js, reconnecting as socket.io-client does by default),
plus churning members on both (`--churn-rate` connects/s in all, each closed `--hold-ms`
later). Messages go to the first process at `--deliveries-per-second` / `--clients` a
second, so the second process's clients receive each one through the Redis bus.
`--restart-at` seconds in, Redis is stopped (SIGTERM), kept down `--down-seconds` and
started again on the same port, empty (no persistence, as a crashed cache would be).

Printed: the restart's timing; the posts refused or failed meanwhile; the stable clients
still connected, dropped and reconnected; the deliveries missing live (per client, by seq)
and "the gap": the span of send times of the messages some client missed; then every
stable client asks `sync` from the last seq it holds without a hole (what a client does
after a reconnect) and what is still missing after it (the goal: nothing).

    python bench/broker_restart.py [--clients 1000] [--churn-rate 200] [--seconds 30]
        [--restart-at 10] [--down-seconds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "fanout"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aioredis
from room_clients import PostLog, RoomClients, post_paced, room_last_seq
from targets import free_port

from bench._support import (
    DEFAULT_PG_SERVER,
    Figure,
    add_json_argument,
    create_pg_database,
    drop_pg_database,
    machine_line,
    meets,
    progress,
    require_local,
    write_figures,
)
from bench.scaleout import ScaledChatapi


class ScratchRedis:
    """A redis-server of this script's own: no persistence, 127.0.0.1, a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip

    async def start(self) -> None:
        """Start it and wait until it answers PING."""
        self.proc = self._spawn()
        client = aioredis.from_url(self.url)
        try:
            for _ in range(200):
                with contextlib.suppress(Exception):
                    if await client.ping():
                        return
                await asyncio.sleep(0.05)
            raise RuntimeError("the scratch redis-server did not answer")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        """SIGTERM and wait."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 30)


async def restart(redis: ScratchRedis, at: float, down: float, times: dict[str, float]) -> None:
    """Stop Redis `at` seconds from now, start it again `down` seconds later."""
    await asyncio.sleep(at)
    times["stop"] = time.time()
    await redis.stop()
    times["stopped"] = time.time()
    await asyncio.sleep(down)
    await redis.start()
    times["up"] = time.time()


async def run(args: argparse.Namespace, db_url: str, redis: ScratchRedis) -> dict[str, Any]:
    prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    admin = secrets.token_urlsafe(32)
    servers = [ScaledChatapi(db_url, redis.url, prefix, admin, 1) for _ in range(2)]
    sides: list[RoomClients] = []
    try:
        for s in servers:  # one after another: each migrates on start
            await s.start()
        first = servers[0]
        pool = max(100, int(2 * args.churn_rate * args.hold_ms / 1000))
        auths = await first.prepare(args.clients + pool, room=True, direct=True)
        stable, churners = auths[: args.clients], auths[args.clients :]
        for i, s in enumerate(servers):
            sides.append(RoomClients(s.url, stable[i::2], churners[i::2], reconnect=True))
        connected = await asyncio.gather(*(c.start() for c in sides))
        progress("broker_restart", f"connected {[c['connected'] for c in connected]}")
        log = PostLog()
        await post_paced(first.http, first.room_id, first.master_key, 3, 10.0, log)
        await asyncio.gather(*(c.ask("quiet 1000", "quiet") for c in sides))
        rate = args.deliveries_per_second / args.clients
        count = max(1, round(rate * args.seconds))
        half = args.churn_rate // 2
        for c in sides:
            await c.send(f"churn {half} {args.seconds} {args.hold_ms}")
        times: dict[str, float] = {"start": time.time()}
        await asyncio.gather(
            post_paced(first.http, first.room_id, first.master_key, count, rate, log),
            restart(redis, args.restart_at, args.down_seconds, times),
        )
        churned = await asyncio.gather(*(c.read("churned", args.seconds + 300) for c in sides))
        await asyncio.gather(*(c.ask("quiet 3000", "quiet", 300) for c in sides))
        last_seq = await room_last_seq(first.http, first.room_id, first.master_key)
        live = await asyncio.gather(*(c.ask(f"report 1 {last_seq}", "report") for c in sides))
        synced = await asyncio.gather(
            *(c.ask(f"sync {first.room_id} 1 {last_seq}", "synced", 600) for c in sides)
        )
        return {
            "times": times, "log": log, "last_seq": last_seq, "churned": churned,
            "live": live, "synced": synced, "count": count, "rate": rate,
            "logs": [s.log_tail(8) for s in servers],
        }  # fmt: skip
    finally:
        for c in sides:
            await c.close()
        for s in servers:
            await s.stop()


def summarise(args: argparse.Namespace, res: dict[str, Any], machine: str) -> Figure:
    """Print the run; answer its row."""
    times, log = res["times"], res["log"]
    t0 = times["stop"]
    sent = {p.seq: p.sent_at for p in log.stored}
    failed = log.failed
    print("broker_restart: Redis restarted under churn with two API processes (scaled mode)")
    print(f"  {machine}; load average at the end {os.getloadavg()[0]:.2f}")
    print(
        f"  {args.clients} stable clients (half on each process), {args.churn_rate} churning "
        f"connects/s, {res['count']} messages at {res['rate']:g}/s to process 1; Redis stopped "
        f"{t0 - times['start']:.1f}s in, down {times['up'] - t0:.1f}s (stop took "
        f"{times['stopped'] - t0:.2f}s)"
    )
    if failed:
        window = f"{failed[0].sent_at - t0:+.1f}s .. {failed[-1].sent_at - t0:+.1f}s"
        statuses = sorted({p.status for p in failed})
        print(f"  posts not accepted: {len(failed)} (statuses {statuses}), sent {window}")
    else:
        print("  posts not accepted: 0")
    lost_total = 0
    for i, (live, synced, churned) in enumerate(
        zip(res["live"], res["synced"], res["churned"], strict=True)
    ):
        missed = [s for s in live["missed_seqs"] if s in sent]
        gap = (
            f"gap: messages sent {sent[missed[0]] - t0:+.1f}s .. {sent[missed[-1]] - t0:+.1f}s "
            f"from the stop ({len(missed)} seqs)"
            if missed
            else "no gap"
        )
        lost_total += synced["missing"]
        print(
            f"  process {i + 1}: {live['connected_now']}/{live['clients']} connected at the end, "
            f"{live['disconnects']} drops, {live['reconnects']} reconnects; live: "
            f"{live['missing']} deliveries missing ({live['clients_missing']} clients); {gap}; "
            f"receipt p99 {live['p99_ms']:.0f} ms"
        )
        print(
            f"    sync: {synced['asked']} calls in {synced['sync_s']:.1f}s recovered "
            f"{synced['recovered']}, {synced['failed']} failed; still missing "
            f"{synced['missing']} ({synced['clients_missing']} clients); churn "
            f"{churned['connected']}/{churned['attempted']} connected, {churned['failed']} "
            f"failed, connect p99 {churned['connect_p99_ms']:.0f} ms"
        )
        errors = live["errors"] + synced["errors"]
        if errors:
            print(f"    first errors: {errors[:3]}")
    if lost_total:
        for i, tail in enumerate(res["logs"]):
            print(f"  process {i + 1} log tail:\n{tail}")
    return Figure(
        figure="#25 broker restart",
        what=f"Redis down {args.down_seconds}s under churn, 2 API processes, "
        f"{args.clients} clients",
        ours=f"{sum(x['missing'] for x in res['live'])} missed live, "
        f"{lost_total} after sync; {len(failed)} posts refused",
        baseline="none (absolute)",
        ratio=None,
        goal="sync recovers everything",
        met=meets(1.0 if lost_total == 0 else 0.0, ">=", 1.0),
        driver_cpu="-",
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--churn-rate", type=int, default=200, help="connects/s, both processes")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--hold-ms", type=int, default=1000)
    parser.add_argument("--deliveries-per-second", type=int, default=1000)
    parser.add_argument("--restart-at", type=float, default=10.0)
    parser.add_argument("--down-seconds", type=float, default=3.0)
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    add_json_argument(parser)
    args = parser.parse_args()
    require_local(args.pg_server)
    machine = machine_line()
    redis = ScratchRedis()
    await redis.start()
    name, db_url = await create_pg_database(args.pg_server)
    try:
        res = await run(args, db_url, redis)
    finally:
        await drop_pg_database(args.pg_server, name)
        await redis.stop()
    write_figures(args.json, "broker_restart.py", [summarise(args, res, machine)])


if __name__ == "__main__":
    asyncio.run(main())
