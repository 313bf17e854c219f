"""Server memory per idle Socket.IO connection at N connections (default 5,000).

For each target (bare python-socketio, Node socket.io, ChatAPI) in one run: start the server,
prepare N clients (ChatAPI: N users and N logins through the REST API), read the server's
RSS with no client connected (RSS_0), connect N idle python-socketio clients (websocket
transport, spread over worker processes), let them settle, read RSS again (RSS_N) and report
(RSS_N - RSS_0) / N, then the ratios chatapi/bare and chatapi/node.

ChatAPI users are in no room by default, so connections stay idle: with all N users in one
room (`--room`) every connect sends a presence event to everyone already online, O(N^2).

Usage:
    python bench/fanout/idle_memory.py [--connections 5000] [--targets bare,node,chatapi]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass

from clients import ClientFleet
from harness import probe
from report import format_table
from targets import EVENT, SOCKETIO_PATH, TARGET_NAMES, Target, make_target, raise_nofile_limit

DEFAULT_CONNECTIONS = 5000
DEFAULT_PROCS = 4


@dataclass(frozen=True)
class IdleResult:
    target: str
    connections: int  # connected
    failed: int
    dropped: int  # connected, then dropped by the server before RSS_N was read
    rss_0: int
    rss_n: int
    connect_s: float
    other_events: int

    @property
    def kb_per_connection(self) -> float:
        return (self.rss_n - self.rss_0) / max(self.connections, 1) / 1024


async def steady_rss(target: Target, reads: int = 3, gap: float = 0.5) -> int:
    """The median of a few RSS reads, `gap` seconds apart."""
    values = []
    for i in range(reads):
        if i:
            await asyncio.sleep(gap)
        values.append(await target.rss())
    return int(statistics.median(values))


async def measure(
    name: str, *, connections: int, procs: int, room: bool, idle_seconds: float
) -> IdleResult:
    raise_nofile_limit()
    target = make_target(name)
    fleet: ClientFleet | None = None
    try:
        started = time.monotonic()
        await target.start()
        auths = await target.prepare(connections, room=room)
        print(f"[{name}] prepared {connections} clients in {time.monotonic() - started:.1f}s")
        await probe(target, auths[0])
        await asyncio.sleep(idle_seconds)
        rss_0 = await steady_rss(target)
        fleet = ClientFleet(
            url=target.url,
            socketio_path=SOCKETIO_PATH,
            event=EVENT,
            latency_path=target.latency_path,
            auths=auths,
            procs=procs,
        )
        connected = await asyncio.to_thread(fleet.start)
        print(
            f"[{name}] {connected.ok}/{connections} connected in {connected.seconds:.1f}s"
            + (
                f"; {connected.failed} failed, e.g. {connected.errors[:2]}"
                if connected.failed
                else ""
            ),
            flush=True,
        )
        other_events = await asyncio.to_thread(fleet.settle, 1.0, 300.0)
        await asyncio.sleep(idle_seconds)
        rss_n = await steady_rss(target)
        await asyncio.to_thread(fleet.settle, 0.0, 0.0)  # fresh drop count
        dropped = fleet.settle_disconnects
    finally:
        if fleet is not None:
            await asyncio.to_thread(fleet.close)
        await target.stop()
    return IdleResult(
        target=name,
        connections=connected.ok - dropped,
        failed=connected.failed,
        dropped=dropped,
        rss_0=rss_0,
        rss_n=rss_n,
        connect_s=connected.seconds,
        other_events=other_events,
    )


def table(results: list[IdleResult], skipped: dict[str, str]) -> str:
    header = ("target", "connections", "RSS_0 MB", "RSS_N MB", "KB/connection")
    rows = [header]
    for r in results:
        rows.append(
            (
                r.target,
                f"{r.connections}"
                + (f" ({r.failed} failed, {r.dropped} dropped)" if r.failed or r.dropped else ""),
                f"{r.rss_0 / 2**20:.1f}",
                f"{r.rss_n / 2**20:.1f}",
                f"{r.kb_per_connection:.1f}",
            )
        )
    rows += [(name, "skipped", "", "", "") for name in skipped]
    return format_table(rows)


async def main_async(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGET_NAMES]
    if unknown:
        print(f"unknown target(s) {unknown}; choose from {', '.join(TARGET_NAMES)}")
        return 2
    print(
        f"idle memory: {args.connections} connections, {args.procs} client processes"
        + ("; chatapi users all in one room" if args.room else ""),
        flush=True,
    )
    results: dict[str, IdleResult] = {}
    skipped: dict[str, str] = {}
    for name in names:
        print(f"\n== {name}", flush=True)
        started = time.monotonic()
        try:
            result = await measure(
                name,
                connections=args.connections,
                procs=args.procs,
                room=args.room,
                idle_seconds=args.idle_seconds,
            )
        except Exception as exc:  # one target failing must not lose the others' figures
            skipped[name] = f"{type(exc).__name__}: {exc}"
            print(f"{name}: SKIPPED: {skipped[name]}", flush=True)
            continue
        results[name] = result
        print(
            f"[{name}] RSS {result.rss_0 / 2**20:.1f} MB -> {result.rss_n / 2**20:.1f} MB:"
            f" {result.kb_per_connection:.1f} KB per connection"
            + (f"; {result.other_events:,} other events" if result.other_events else "")
            + f" ({time.monotonic() - started:.0f}s for this target)",
            flush=True,
        )

    print("\n" + table(list(results.values()), skipped))
    for name, reason in skipped.items():
        print(f"{name} skipped: {reason.splitlines()[0] if reason else ''}")
    print()
    ours = results.get("chatapi")
    for base_name in ("bare", "node"):
        base = results.get(base_name)
        if ours is not None and base is not None and base.kb_per_connection > 0:
            print(
                f"chatapi/{base_name}: memory per idle connection"
                f" {ours.kb_per_connection / base.kb_per_connection:.2f}x"
            )
        elif "chatapi" in names:
            missing = "chatapi" if ours is None else base_name
            print(f"chatapi/{base_name}: n/a ({missing} not measured)")
    if "node" in results and "bare" in results and results["bare"].kb_per_connection > 0:
        ratio = results["node"].kb_per_connection / results["bare"].kb_per_connection
        print(f"node/bare: memory per idle connection {ratio:.2f}x   (baselines, for scale)")
    return 0 if results else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument(
        "--targets",
        default=",".join(TARGET_NAMES),
        help="comma-separated, in run order (default: bare,node,chatapi)",
    )
    parser.add_argument("--procs", type=int, default=DEFAULT_PROCS, help="client processes")
    parser.add_argument(
        "--room",
        action="store_true",
        help="chatapi: put every user in one room (presence on connect is O(N^2) events)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=3.0,
        help="quiet time before each RSS read",
    )
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
