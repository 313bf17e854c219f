"""Row 5: paced fan-out latency — C clients in one room, messages at R per second (a load
every target sustains), p50/p99 of send -> receipt; ChatAPI (Socket.IO and plain WebSocket)
beside bare python-socketio and Node socket.io, clients driven by the Node driver.

Two phases per target by default: 10 messages/s to C clients (10 x C deliveries/s) and
5,000 deliveries/s (5,000 / C messages per second), each for `--seconds`. Latency is receive
time - `sent_at` (one machine, one clock); ChatAPI's `sent_at` is taken just before its
`POST /rooms/{id}/messages`, so it includes the HTTP request, the insert and the bus.

Usage:
    python bench/fanout_paced.py [--clients 1000] [--seconds 5] [--rates 10,5000d]
        [--targets bare,node,chatapi,chatapi-ws]
  (`--rates`: messages/s, or deliveries/s with a trailing "d")
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "fanout"))

from fanout_burst import ALL_TARGETS, Figures, PhaseRunner, print_table, run_phase, run_targets
from node_driver import NodeFleet, ratio
from targets import Target


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="10,5000d")
    parser.add_argument("--procs", type=int, default=1, help="Node driver processes")
    parser.add_argument("--targets", default=",".join(ALL_TARGETS))
    args = parser.parse_args()
    names = [n for n in args.targets.split(",") if n]
    rates = [r for r in args.rates.split(",") if r]
    res = await run_targets(
        names, args.clients, args.procs, 1, Paced(rates, args.clients, args.seconds)
    )
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


if __name__ == "__main__":
    asyncio.run(main())
