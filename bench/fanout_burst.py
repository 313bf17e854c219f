"""Row 4: fan-out burst — C clients in one room, M messages emitted as fast as the target
can, deliveries/s; ChatAPI over Socket.IO and over plain WebSocket beside bare
python-socketio and Node socket.io, all clients driven by the Node driver.

Per target: start the server, prepare C clients (ChatAPI: C users in one `channel` room),
connect them through the Node driver, wait for quiet, warm up with 5 messages, then the
measured burst. deliveries/s = delivered / (last receipt - just before the first send).
Server CPU per delivery and the driver's CPU (all driver processes, over the same window)
are printed. ChatAPI's messages are `POST /rooms/{id}/messages` (`--post-concurrency` at a
time); the baselines emit from a `POST /trigger`.

Targets: bare, node, chatapi (Socket.IO), chatapi-ws (plain WebSocket /api/v1/websocket/open).

Usage:
    python bench/fanout_burst.py [--clients 1000] [--messages 100] [--procs 1]
        [--targets bare,node,chatapi,chatapi-ws] [--post-concurrency 4] [--rest-setup]
        [--json PATH]

ChatAPI's users and keys are written straight into its database (one INSERT per table, see
targets.ChatapiTarget._insert_users_and_keys; `--rest-setup`: POST /users + /auth/login
each); the room is made through REST either way.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "fanout"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node_driver import NodeFleet, ratio
from targets import Target, TargetUnavailable, make_target

from bench._support import (
    Figure,
    add_json_argument,
    meets,
    progress,
    safe_ratio,
    write_figures,
)

ALL_TARGETS = ("bare", "node", "chatapi", "chatapi-ws")


@dataclass
class Figures:
    target: str
    connected: int
    expected: int
    delivered: int
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    server_us_per_delivery: float
    driver_cpu_pct: float  # drivers' CPU / window
    window_s: float
    disconnected: int


async def run_phase(
    target: Target, fleet: NodeFleet, connected: int, messages: int, payload: int, rate: float
) -> tuple[int, float, float, float, float, float, float, int]:
    """Reset, trigger `messages` (burst or paced), wait; answers delivered, deliveries/s,
    p50, p99, server us/delivery, driver CPU %, window s, disconnected."""
    await fleet.reset()
    before = await fleet.report()
    cpu0 = target.cpu_seconds()
    trig = await target.trigger(messages, payload, rate)
    rep = await fleet.wait(messages, timeout=max(60.0, 3 * messages / max(rate, 1)))
    server_cpu = target.cpu_seconds() - cpu0
    end = rep.last or time.time()
    window = max(end - trig.started, 1e-9)
    return (
        rep.delivered,
        rep.delivered / window,
        rep.p50_ms,
        rep.p99_ms,
        1e6 * server_cpu / max(rep.delivered, 1),
        100 * (rep.cpu_s - before.cpu_s) / window,
        window,
        rep.disconnected,
    )


async def measure(
    name: str, clients: int, procs: int, post_concurrency: int, body: PhaseRunner, direct: bool
) -> list[Figures]:
    base = "chatapi" if name.startswith("chatapi") else name
    target = make_target(base, post_concurrency=post_concurrency)
    await target.start()
    progress(name, "server up")
    try:
        auths = await target.prepare(clients, room=True, direct=direct)
        progress(name, f"{len(auths)} clients prepared; connecting")
        fleet = NodeFleet(
            target.url,
            auths,
            transport="websocket" if name == "chatapi-ws" else "socketio",
            latency_path=target.latency_path,
            procs=procs,
        )
        try:
            conn = await fleet.start()
            progress(name, f"{conn.connected} connected in {conn.connect_s:.1f} s")
            if conn.failed:
                print(f"  [{name}] {conn.failed} failed: {conn.errors}", file=sys.stderr)
            await fleet.quiet(1000)
            await target.trigger(5, 64)  # warm-up
            await fleet.wait(5, timeout=60)
            return await body(name, target, fleet, conn.connected)
        finally:
            await fleet.close()
    finally:
        await target.stop()


class PhaseRunner:
    async def __call__(
        self, name: str, target: Target, fleet: NodeFleet, connected: int
    ) -> list[Figures]:
        raise NotImplementedError


class Burst(PhaseRunner):
    def __init__(self, messages: int, payload: int) -> None:
        self.messages = messages
        self.payload = payload

    async def __call__(
        self, name: str, target: Target, fleet: NodeFleet, connected: int
    ) -> list[Figures]:
        d, rate, p50, p99, us, drv, window, disc = await run_phase(
            target, fleet, connected, self.messages, self.payload, 0.0
        )
        return [
            Figures(
                name, connected, connected * self.messages, d, rate, p50, p99, us, drv, window, disc
            )
        ]


def print_table(rows: list[Figures], title: str) -> None:
    print(f"\n{title}")
    print(
        f"{'target':11} {'delivered':>17} {'deliveries/s':>13} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'server us/deliv':>16} {'driver CPU':>11} {'window s':>9}"
    )
    for f in rows:
        print(
            f"{f.target:11} {f'{f.delivered}/{f.expected}':>17} {f.deliveries_per_s:>13,.0f}"
            f" {f.p50_ms:>8.1f} {f.p99_ms:>8.1f} {f.server_us_per_delivery:>16.1f}"
            f" {f.driver_cpu_pct:>10.0f}% {f.window_s:>9.2f}"
            + (f"  ({f.disconnected} dropped)" if f.disconnected else "")
        )


async def run_targets(
    names: list[str],
    clients: int,
    procs: int,
    post_concurrency: int,
    body: PhaseRunner,
    direct: bool = True,
) -> dict[str, list[Figures]]:
    out: dict[str, list[Figures]] = {}
    for name in names:
        try:
            out[name] = await measure(name, clients, procs, post_concurrency, body, direct)
        except TargetUnavailable as exc:
            print(f"[{name}] skipped: {exc}", file=sys.stderr)
            continue
        print(f"{name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def add_rest_setup_argument(parser: argparse.ArgumentParser) -> None:
    """`--rest-setup`: ChatAPI's users and keys through REST instead of written straight
    into its database (targets.ChatapiTarget._insert_users_and_keys); the room is made
    through REST either way."""
    parser.add_argument(
        "--rest-setup",
        action="store_true",
        help="ChatAPI users and keys through REST (POST /users + /auth/login each)",
    )


def compare(
    figure: str,
    what: str,
    rows: dict[str, Figures],
    ours: str,
    base: str,
    value: Callable[[Figures], float],
    show: Callable[[Figures], str],
    goal: tuple[str, float] | None,
) -> Figure:
    """A row of run_all's table: target `ours` against target `base` on `value`
    (goal: the ratio's comparison and bound, e.g. (">=", 1.0)); a missing target
    (skipped, see stderr) leaves the ratio and the verdict empty."""
    o, b = rows.get(ours), rows.get(base)
    r = safe_ratio(value(o), value(b)) if o and b else None
    names = {"chatapi": "ChatAPI Socket.IO", "chatapi-ws": "ChatAPI WebSocket",
             "bare": "bare python-socketio", "node": "Node socket.io"}  # fmt: skip
    return Figure(
        figure=figure,
        what=what,
        ours=f"{names[ours]} {show(o)}" if o else f"{names[ours]}: not measured",
        baseline=f"{names[base]} {show(b)}" if b else f"{names[base]}: not measured",
        ratio=r,
        goal=f"ratio {goal[0].replace('>=', '≥').replace('<=', '≤')} {goal[1]:g}"
        if goal
        else "report",
        met=meets(r, *goal) if goal else None,
        driver_cpu=(
            f"Node driver {o.driver_cpu_pct:.0f}% / {b.driver_cpu_pct:.0f}%" if o and b else "n/a"
        ),
    )


def burst_figures(rows: list[Figures], clients: int, messages: int) -> list[Figure]:
    """P2's rows: Socket.IO against bare python-socketio, WebSocket against Node."""
    by = {f.target: f for f in rows}
    what = f"fan-out burst deliveries/s, {clients:,} clients x {messages} messages"

    def show(f: Figures) -> str:
        return f"{f.deliveries_per_s:,.0f}/s (p50 {f.p50_ms:,.0f} / p99 {f.p99_ms:,.0f} ms)"

    def rate(f: Figures) -> float:
        return f.deliveries_per_s

    return [
        compare("P2 (#15 row 4)", what, by, "chatapi", "bare", rate, show, (">=", 1.0)),
        compare("P2 (#15 row 4)", what, by, "chatapi-ws", "node", rate, show, (">=", 0.5)),
    ]


def report_burst(rows: list[Figures], clients: int, messages: int) -> None:
    """Print the burst's table and its ratios."""
    print_table(rows, f"Fan-out burst: {clients} clients x {messages} messages, Node driver")
    rate = {f.target: f.deliveries_per_s for f in rows}
    if "chatapi" in rate and "bare" in rate:
        print(
            f"chatapi (Socket.IO) / bare python-socketio: {ratio(rate['chatapi'], rate['bare'])}  (goal >= 1.0x)"
        )
    if "chatapi" in rate and "node" in rate:
        print(f"chatapi (Socket.IO) / Node socket.io: {ratio(rate['chatapi'], rate['node'])}")
    if "chatapi-ws" in rate and "node" in rate:
        print(
            f"chatapi (plain WebSocket) / Node socket.io: {ratio(rate['chatapi-ws'], rate['node'])}  (goal >= 0.5x)"
        )
    if "chatapi-ws" in rate and "bare" in rate:
        print(
            f"chatapi (plain WebSocket) / bare python-socketio: {ratio(rate['chatapi-ws'], rate['bare'])}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--payload-bytes", type=int, default=64)
    parser.add_argument("--procs", type=int, default=1, help="Node driver processes")
    parser.add_argument("--post-concurrency", type=int, default=4)
    parser.add_argument("--targets", default=",".join(ALL_TARGETS))
    add_rest_setup_argument(parser)
    add_json_argument(parser)
    args = parser.parse_args()
    names = [n for n in args.targets.split(",") if n]
    res = await run_targets(
        names,
        args.clients,
        args.procs,
        args.post_concurrency,
        Burst(args.messages, args.payload_bytes),
        direct=not args.rest_setup,
    )
    rows = [f for name in names for f in res.get(name, [])]
    report_burst(rows, args.clients, args.messages)
    write_figures(args.json, "fanout_burst.py", burst_figures(rows, args.clients, args.messages))


if __name__ == "__main__":
    asyncio.run(main())
