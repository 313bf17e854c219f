"""Churn (#25 "Also measure"): connects and disconnects at a steady rate on one API process
while a large room receives a steady stream of deliveries.

One `chatapi serve` in embedded mode (SQLite, no Redis); one room of `--clients` stable
Socket.IO clients plus a pool of churning members; all held by the Node room clients
(node/room_clients.js, socket.io-client), so the load generator is not the bottleneck.
For `--seconds`: `--churn-rate` new connections a second, each closed `--hold-ms` after it
connected (so as many disconnects a second once the first ones close), while messages are
posted to the room at `--deliveries-per-second` / `--clients` a second (each reaches every
member: the stable clients receive `--deliveries-per-second` deliveries a second between
them; the churning members currently connected receive theirs too, not counted).

Printed: whether every stable client received every message posted (by seq, per client:
a delivery to a connected client lost shows as a missing seq), the stable clients' receipt
p50/p99 (receipt minus the message's sent_at), the churning connects' p50/p99 (socket
open to Socket.IO `connect`, i.e. authenticated and subscribed), failures, and the CPU of
the server and of the Node process, with the load average.

    python bench/churn.py [--clients 1000] [--churn-rate 200] [--seconds 30] [--hold-ms 1000]
        [--deliveries-per-second 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "fanout"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from room_clients import PostLog, RoomClients, post_paced, room_last_seq
from targets import ChatapiTarget

from bench._support import (
    Figure,
    add_json_argument,
    machine_line,
    meets,
    progress,
    write_figures,
)


async def run(args: argparse.Namespace) -> list[Figure]:
    machine = machine_line()
    target = ChatapiTarget()
    pool = max(100, int(2 * args.churn_rate * args.hold_ms / 1000))
    clients: RoomClients | None = None
    try:
        await target.start()
        auths = await target.prepare(args.clients + pool, room=True, direct=True)
        stable, churners = auths[: args.clients], auths[args.clients :]
        progress("churn", f"{len(stable)} stable + {len(churners)} churning members; connecting")
        clients = RoomClients(target.url, stable, churners)
        connected = await clients.start()
        if connected["connected"] != args.clients:
            raise RuntimeError(f"stable clients did not all connect: {connected}")
        log = PostLog()
        await post_paced(target.http, target.room_id, target.master_key, 3, 10.0, log)
        await clients.ask("quiet 1000", "quiet")
        rate = args.deliveries_per_second / args.clients
        count = max(1, round(rate * args.seconds))
        progress("churn", f"churning {args.churn_rate}/s for {args.seconds}s, {rate:g} msg/s")
        cpu0 = target.cpu_seconds()
        load0 = os.getloadavg()
        await clients.send(f"churn {args.churn_rate} {args.seconds} {args.hold_ms}")
        started = time.monotonic()
        await post_paced(
            target.http, target.room_id, target.master_key, count, rate, log,
            payload_bytes=args.payload_bytes,
        )  # fmt: skip
        churned = await clients.read("churned", args.seconds + 300)
        wall = time.monotonic() - started
        server_cpu = target.cpu_seconds() - cpu0
        await clients.ask("quiet 1500", "quiet")
        last_seq = await room_last_seq(target.http, target.room_id, target.master_key)
        report = await clients.ask(f"report 1 {last_seq}", "report")
    finally:
        if clients is not None:
            await clients.close()
        await target.stop()
    load1 = os.getloadavg()
    failed_posts = len(log.failed)
    lost = report["missing"]
    print("churn: connects/disconnects on one API process while a room receives deliveries")
    print(f"  {machine}; load average during the run {load0[0]:.2f} -> {load1[0]:.2f}")
    print(
        f"  ChatAPI embedded (SQLite), one process; {args.clients} stable Socket.IO clients in "
        f"one room, {pool} churning members; {args.churn_rate} connects/s for {args.seconds}s, "
        f"each closed {args.hold_ms} ms after its connect; {count} messages at {rate:g}/s "
        f"({args.deliveries_per_second:,} deliveries/s to the stable clients)"
    )
    print(
        f"  churn: {churned['attempted']} attempted in {churned['scheduled_s']:.1f}s, "
        f"{churned['connected']} connected, {churned['failed']} failed, {churned['closed']} "
        f"closed; connect p50 {churned['connect_p50_ms']:.1f} / p99 "
        f"{churned['connect_p99_ms']:.1f} / max {churned['connect_max_ms']:.1f} ms"
    )
    print(
        f"  stable clients: {report['connected_now']}/{report['clients']} still connected, "
        f"{report['disconnects']} dropped; seqs 1..{last_seq}: {lost} deliveries missing "
        f"({report['clients_missing']} clients short); receipt p50 {report['p50_ms']:.1f} / "
        f"p99 {report['p99_ms']:.1f} / max {report['max_ms']:.1f} ms "
        f"({report['samples']:,} samples); posts refused/failed: {failed_posts}"
    )
    node_cpu = report["cpu"]["user_s"] + report["cpu"]["system_s"]
    print(
        f"  CPU: server {server_cpu:.1f} s over {wall:.1f} s ({server_cpu / wall:.0%} of a "
        f"core); Node clients {node_cpu:.1f} s in all"
    )
    if report["errors"] or churned["errors"]:
        print(f"  first errors: {(report['errors'] or churned['errors'])[:3]}")
    return [
        Figure(
            figure="#25 churn",
            what=f"{args.churn_rate} connects+disconnects/s, {args.clients}-client room at "
            f"{args.deliveries_per_second:,} deliveries/s, one process",
            ours=f"{lost} lost; delivery p99 {report['p99_ms']:.0f} ms; connect p99 "
            f"{churned['connect_p99_ms']:.0f} ms ({churned['failed']} failed)",
            baseline="none (absolute)",
            ratio=None,
            goal="no delivery lost; report p99s",
            met=meets(1.0 if lost == 0 and churned["failed"] == 0 else 0.0, ">=", 1.0),
            driver_cpu=f"Node {node_cpu:.1f} s CPU",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--churn-rate", type=int, default=200, help="connects per second")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--hold-ms", type=int, default=1000, help="each churner's life")
    parser.add_argument("--deliveries-per-second", type=int, default=1000)
    parser.add_argument("--payload-bytes", type=int, default=64)
    add_json_argument(parser)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    write_figures(args.json, "churn.py", figures)


if __name__ == "__main__":
    main()
