"""Row 3: how long C Socket.IO clients take to connect, ChatAPI beside bare python-socketio
and Node socket.io, all driven by the Node driver (socket.io-client, 50 connects in flight).

For each target, in one run: start the server, prepare C clients (ChatAPI: a tenant, C
users, one `channel` room with all of them, one user key each — as in the fan-out rows),
connect them all through the Node driver, and report the wall time until the last one is
connected, the server's CPU during it, and the driver's CPU. Rounds alternate targets.

Usage:
    python bench/connect_1000.py [--clients 1000] [--concurrency 50] [--rounds 1]
        [--targets bare,node,chatapi] [--no-room] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "fanout"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node_driver import NodeFleet, ratio
from targets import TARGET_NAMES, TargetUnavailable, make_target

from bench._support import (
    Figure,
    add_json_argument,
    meets,
    progress,
    safe_ratio,
    write_figures,
)

CWD = os.getcwd()  # where --py-spy writes its samples


async def measure(
    name: str, clients: int, concurrency: int, room: bool, py_spy: str | None = None
) -> dict[str, float]:
    target = make_target(name)
    await target.start()
    progress(name, "server up")
    try:
        auths = await target.prepare(clients, room=room)
        progress(name, f"{len(auths)} clients prepared; connecting")
        fleet = NodeFleet(target.url, auths, concurrency=concurrency)
        spy = None
        if py_spy and name == "chatapi":
            # Sample the server only while the clients connect (flat, by function).
            out = f"{CWD}/connect_{name}.pyspy.txt"
            spy = await asyncio.create_subprocess_exec(
                *[py_spy, "record", "--pid", str(target.pid), "--format", "raw"],
                *["--rate", "200", "--output", str(out), "--nonblocking"],
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.sleep(1.0)
        cpu0 = target.cpu_seconds()
        try:
            conn = await fleet.start()
            server_cpu = target.cpu_seconds() - cpu0
            if spy is not None:
                spy.send_signal(2)
                await spy.wait()
                print(f"  py-spy samples: {out}", file=sys.stderr)
            await fleet.quiet(500)
            after = await fleet.report()
        finally:
            await fleet.close()
        if conn.failed:
            print(f"  [{name}] {conn.failed} failed: {conn.errors}", file=sys.stderr)
        return {
            "connected": conn.connected,
            "failed": conn.failed,
            "connect_s": conn.connect_s,
            "server_cpu_ms_per_conn": 1000 * server_cpu / max(conn.connected, 1),
            "driver_cpu_s": conn.cpu_s,
            "driver_cpu_pct": 100 * conn.cpu_s / max(conn.connect_s, 1e-9),
            "other_events": after.other_events,
        }
    finally:
        await target.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--targets", default=",".join(TARGET_NAMES))
    parser.add_argument("--no-room", action="store_true", help="ChatAPI users in no room")
    parser.add_argument(
        "--py-spy", help="py-spy binary: record ChatAPI's server during the connect"
    )
    add_json_argument(parser)
    args = parser.parse_args()
    names = [n for n in args.targets.split(",") if n]
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            try:
                res = await measure(
                    name, args.clients, args.concurrency, not args.no_room, args.py_spy
                )
            except TargetUnavailable as exc:
                print(f"[{name}] skipped: {exc}", file=sys.stderr)
                continue
            print(f"round {r + 1} {name}: {res}", file=sys.stderr, flush=True)
            results[name].append(res)

    def med(name: str, key: str) -> float:
        return median_of(results, name, key)

    print(
        f"\n{args.clients} Socket.IO clients connecting, Node driver, {args.concurrency} in flight,"
        f" median of {args.rounds} round(s)"
    )
    print(
        f"{'target':8} {'connected':>10} {'time s':>8} {'conn/s':>8} {'server CPU ms/conn':>19}"
        f" {'driver CPU':>11} {'other ev':>9}"
    )
    for name in names:
        if not results[name]:
            continue
        t = med(name, "connect_s")
        print(
            f"{name:8} {int(med(name, 'connected')):>10} {t:>8.2f} {args.clients / t:>8.0f}"
            f" {med(name, 'server_cpu_ms_per_conn'):>19.2f}"
            f" {med(name, 'driver_cpu_pct'):>10.0f}% {int(med(name, 'other_events')):>9}"
        )
    if "chatapi" in results:
        for base in ("bare", "node"):
            if results.get(base):
                print(
                    f"chatapi/{base} connect time: "
                    f"{ratio(med('chatapi', 'connect_s'), med(base, 'connect_s'))}"
                    f"  (goal vs bare: <= 1.5x)"
                    if base == "bare"
                    else f"chatapi/{base} connect time: "
                    f"{ratio(med('chatapi', 'connect_s'), med(base, 'connect_s'))}"
                )
    write_figures(args.json, "connect_1000.py", [connect_figure(args, results)])


def median_of(results: dict[str, list[dict[str, float]]], name: str, key: str) -> float:
    """The median of `key` over the target's rounds (NaN when it has none)."""
    vals = [x[key] for x in results.get(name, [])]
    return statistics.median(vals) if vals else float("nan")


def connect_figure(args: argparse.Namespace, results: dict[str, list[dict[str, float]]]) -> Figure:
    """#15 row 3: ChatAPI's connect time against bare python-socketio's (Node beside it)."""

    def med(name: str, key: str) -> float:
        return median_of(results, name, key)

    def show(name: str) -> str:
        if not results.get(name):
            return "not measured"
        return (
            f"{med(name, 'connect_s'):.2f} s ({med(name, 'server_cpu_ms_per_conn'):.2f} ms "
            "CPU/conn)"
        )

    r = safe_ratio(med("chatapi", "connect_s"), med("bare", "connect_s"))
    room = "" if args.no_room else ", all in one room"
    return Figure(
        figure="#15 row 3",
        what=f"{args.clients:,} Socket.IO clients connecting, {args.concurrency} in flight{room}",
        ours=f"ChatAPI {show('chatapi')}",
        baseline=f"bare python-socketio {show('bare')}; Node {show('node')}",
        ratio=r,
        goal="time ratio ≤ 1.5",
        met=meets(r, "<=", 1.5),
        driver_cpu=(
            f"Node driver {med('chatapi', 'driver_cpu_pct'):.0f}% / "
            f"{med('bare', 'driver_cpu_pct'):.0f}%"
        ),
    )


if __name__ == "__main__":
    asyncio.run(main())
