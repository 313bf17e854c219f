"""Row 5: paced fan-out latency — C clients in one room, messages at R per second (a load
every target sustains), p50/p99 of send -> receipt; ChatAPI (Socket.IO and plain WebSocket)
beside bare python-socketio and Node socket.io, clients driven by the Node driver.

Two phases per target by default: 10 messages/s to C clients (10 x C deliveries/s) and
5,000 deliveries/s (5,000 / C messages per second), each for `--seconds`. Latency is receive
time - `sent_at` (one machine, one clock); ChatAPI's `sent_at` is taken just before its
`POST /rooms/{id}/messages`, so it includes the HTTP request, the insert and the bus.

`--burst M` first runs row 4's burst (fanout_burst.py) of M messages on the same connected
clients, then the paced phases: both rows for one set-up and one connect per target (what
bench/run_all.sh does); ChatAPI's messages are then posted `--post-concurrency` at a time in
both (fanout_burst.py's default is 4; this script's 1).

Usage:
    python bench/fanout_paced.py [--clients 1000] [--seconds 5] [--rates 10,5000d]
        [--targets bare,node,chatapi,chatapi-ws] [--burst 100 --post-concurrency 4]
        [--json PATH]
  (`--rates`: messages/s, or deliveries/s with a trailing "d")
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "fanout"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fanout_burst import (
    ALL_TARGETS,
    Burst,
    Figures,
    PhaseRunner,
    add_rest_setup_argument,
    burst_figures,
    compare,
    print_table,
    report_burst,
    run_phase,
    run_targets,
)
from node_driver import NodeFleet, ratio
from targets import Target

from bench._support import Figure, add_json_argument, write_figures

GOAL_RATE = "5000d"  # the goal: at 5,000 deliveries/s paced, p99 <= bare's p99


class Paced(PhaseRunner):
    def __init__(self, rates: list[str], clients: int, seconds: float) -> None:
        self.rates = rates
        self.clients = clients
        self.seconds = seconds

    async def __call__(
        self, name: str, target: Target, fleet: NodeFleet, connected: int
    ) -> list[Figures]:
        rows = []
        for spec in self.rates:
            per_s = float(spec[:-1]) / self.clients if spec.endswith("d") else float(spec)
            messages = max(2, round(per_s * self.seconds))
            d, _, p50, p99, us, drv, window, disc = await run_phase(
                target, fleet, connected, messages, 64, per_s
            )
            label = f"{name} @{per_s:g}/s"
            rows.append(
                Figures(
                    label,
                    connected,
                    connected * messages,
                    d,
                    d / window,
                    p50,
                    p99,
                    us,
                    drv,
                    window,
                    disc,
                )
            )
        return rows


class Phases(PhaseRunner):
    """Several runners one after another on the same connected clients; their rows in order."""

    def __init__(self, *runners: PhaseRunner) -> None:
        self.runners = runners

    async def __call__(
        self, name: str, target: Target, fleet: NodeFleet, connected: int
    ) -> list[Figures]:
        rows: list[Figures] = []
        for runner in self.runners:
            rows += await runner(name, target, fleet, connected)
        return rows


def paced_figures(res: dict[str, list[Figures]], rates: list[str], clients: int) -> list[Figure]:
    """#15 row 5: each ChatAPI transport's p99 against bare python-socketio's, per rate."""
    out = []
    for i, spec in enumerate(rates):
        by = {name: rows[i] for name, rows in res.items() if len(rows) > i}
        what = f"paced fan-out p99, {clients:,} clients, " + (
            f"{spec[:-1]} deliveries/s" if spec.endswith("d") else f"{spec} messages/s"
        )
        goal = ("<=", 1.0) if spec == GOAL_RATE else None
        for ours in ("chatapi", "chatapi-ws"):
            out.append(
                compare(
                    "#15 row 5",
                    what,
                    by,
                    ours,
                    "bare",
                    lambda f: f.p99_ms,
                    lambda f: f"p50 {f.p50_ms:,.0f} / p99 {f.p99_ms:,.0f} ms",
                    goal,
                )
            )
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="10,5000d")
    parser.add_argument("--procs", type=int, default=1, help="Node driver processes")
    parser.add_argument("--targets", default=",".join(ALL_TARGETS))
    parser.add_argument(
        "--burst", type=int, default=0, help="first a burst of this many messages (row 4)"
    )
    parser.add_argument("--post-concurrency", type=int, default=1, help="ChatAPI's POSTs")
    add_rest_setup_argument(parser)
    add_json_argument(parser)
    args = parser.parse_args()
    names = [n for n in args.targets.split(",") if n]
    rates = [r for r in args.rates.split(",") if r]
    runner: PhaseRunner = Paced(rates, args.clients, args.seconds)
    if args.burst:
        runner = Phases(Burst(args.burst, 64), runner)
    res = await run_targets(
        names, args.clients, args.procs, args.post_concurrency, runner, not args.rest_setup
    )
    figures: list[Figure] = []
    if args.burst:
        bursts = [res[name].pop(0) for name in names if res.get(name)]
        report_burst(bursts, args.clients, args.burst)
        figures += burst_figures(bursts, args.clients, args.burst)
    rows = [f for name in names for f in res.get(name, [])]
    print_table(
        rows, f"Paced fan-out: {args.clients} clients, {args.seconds:g} s per rate, Node driver"
    )
    for i, spec in enumerate(rates):
        p99 = {n: res[n][i].p99_ms for n in res if len(res[n]) > i}
        for ours in ("chatapi", "chatapi-ws"):
            for base in ("bare", "node"):
                if ours in p99 and base in p99:
                    goal = "  (goal <= 1.0x)" if base == "bare" else ""
                    print(
                        f"rate {spec}: {ours} p99 / {base} p99 = {ratio(p99[ours], p99[base])}{goal}"
                    )
    figures += paced_figures(res, rates, args.clients)
    write_figures(args.json, "fanout_paced.py", figures)


if __name__ == "__main__":
    asyncio.run(main())
