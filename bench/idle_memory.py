"""Row 6: server memory per idle connection at N connections on one process — ChatAPI over
Socket.IO and plain WebSocket beside bare python-socketio and Node socket.io, the clients
held by Node driver processes (socket.io-client / ws).

Per target: start the server, prepare N clients (ChatAPI: N users and N user keys, in no
room, so connections stay idle; written straight into its database in one INSERT per table,
`--rest-setup` for 2N REST calls instead, see targets.ChatapiTarget._insert_users_and_keys;
the connections themselves take the real path), read the server's RSS with nothing connected (RSS_0, after
one warm-up connection), connect the N clients, wait for quiet, read RSS again (RSS_N) and
report (RSS_N - RSS_0) / N. Each RSS is the median of three reads 0.5 s apart (ChatAPI from
/proc; the baselines' own GET /rss, same figure). The default N keeps the run short; the
row's figure is `--connections 10000`.

Usage:
    python bench/idle_memory.py [--connections 2000] [--procs 2]
        [--targets bare,node,chatapi,chatapi-ws] [--rest-setup] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
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


async def steady_rss(target: Target) -> int:
    reads = []
    for _ in range(3):
        reads.append(await target.rss())
        await asyncio.sleep(0.5)
    return int(statistics.median(reads))


async def measure(name: str, n: int, procs: int, direct: bool) -> dict[str, float]:
    target = make_target("chatapi" if name.startswith("chatapi") else name)
    transport = "websocket" if name == "chatapi-ws" else "socketio"
    await target.start()
    progress(name, "server up")
    try:
        t0 = time.monotonic()
        auths = await target.prepare(n + 1, room=False, direct=direct)
        setup_s = time.monotonic() - t0
        progress(name, f"{n + 1} clients prepared in {setup_s:.1f} s")
        warm = NodeFleet(target.url, auths[:1], transport=transport)
        await warm.start()
        await warm.close()
        rss0 = await steady_rss(target)
        fleet = NodeFleet(target.url, auths[1:], transport=transport, procs=procs)
        try:
            progress(name, f"RSS_0 {rss0 / 2**20:.1f} MB; connecting {n}")
            conn = await fleet.start()
            progress(name, f"{conn.connected} connected in {conn.connect_s:.1f} s")
            await fleet.quiet(1000)
            rss_n = await steady_rss(target)
            rep = await fleet.report()
        finally:
            await fleet.close()
        if conn.failed or rep.disconnected:
            print(
                f"  [{name}] failed {conn.failed}, dropped {rep.disconnected}: {conn.errors or rep.errors}",
                file=sys.stderr,
            )
        return {
            "connected": conn.connected,
            "kb": (rss_n - rss0) / max(conn.connected - rep.disconnected, 1) / 1024,
            "rss0_mb": rss0 / 2**20,
            "rssn_mb": rss_n / 2**20,
            "connect_s": conn.connect_s,
            "driver_cpu_s": conn.cpu_s,
            "setup_s": setup_s,
        }
    finally:
        await target.stop()


def memory_figures(res: dict[str, dict[str, float]], n: int) -> list[Figure]:
    """P6's rows: ChatAPI Socket.IO against bare python-socketio (goal: not more), and
    ChatAPI's plain WebSocket against its absolute goal (≤ 30 KB), bare shown beside it."""
    bare = res.get("bare")
    base_text = f"bare python-socketio {bare['kb']:.1f} KB" if bare else "bare: not measured"
    if "node" in res:
        base_text += f", Node {res['node']['kb']:.1f} KB"
    what = f"memory per idle connection at {n:,} connections, one process"
    out = []
    for name, label, goal, met_of in (
        ("chatapi", "Socket.IO", "ratio ≤ 1.0", lambda r, kb: meets(r, "<=", 1.0)),
        ("chatapi-ws", "WebSocket", "≤ 30 KB", lambda r, kb: meets(kb, "<=", 30.0)),
    ):
        ours = res.get(name)
        r = safe_ratio(ours["kb"], bare["kb"]) if ours and bare else None
        short = f"{int(ours['connected']):,} connected" if ours else ""
        if ours and int(ours["connected"]) != n:
            short = f"only {short}"
        out.append(
            Figure(
                figure="P6",
                what=f"{what} ({label})",
                ours=f"{ours['kb']:.1f} KB ({short})" if ours else "not measured",
                baseline=base_text,
                ratio=r,
                goal=goal,
                met=met_of(r, ours["kb"]) if ours else None,
                driver_cpu=(
                    f"Node driver {ours['driver_cpu_s']:.1f} s CPU to connect"
                    f" ({ours['connect_s']:.0f} s wall)"
                    if ours
                    else "n/a"
                ),
            )
        )
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--procs", type=int, default=2, help="Node driver processes")
    parser.add_argument("--targets", default=",".join(ALL_TARGETS))
    parser.add_argument(
        "--rest-setup",
        action="store_true",
        help="ChatAPI users and keys through REST (POST /users + /auth/login each) instead of "
        "written straight into its database",
    )
    add_json_argument(parser)
    args = parser.parse_args()
    names = [n for n in args.targets.split(",") if n]
    res: dict[str, dict[str, float]] = {}
    for name in names:
        try:
            res[name] = await measure(name, args.connections, args.procs, not args.rest_setup)
        except TargetUnavailable as exc:
            print(f"[{name}] skipped: {exc}", file=sys.stderr)
            continue
        print(f"{name}: {res[name]}", file=sys.stderr, flush=True)
        # After each target, so a run stopped later (time limit) keeps what it measured.
        write_figures(args.json, "idle_memory.py", memory_figures(res, args.connections))
    print(f"\nIdle connections: {args.connections} on one server process, Node driver")
    print(
        f"{'target':11} {'connected':>10} {'RSS_0 MB':>9} {'RSS_N MB':>9} {'KB/conn':>8}"
        f" {'connect s':>10} {'driver CPU s':>13} {'setup s':>8}"
    )
    for name, r in res.items():
        print(
            f"{name:11} {int(r['connected']):>10} {r['rss0_mb']:>9.1f} {r['rssn_mb']:>9.1f}"
            f" {r['kb']:>8.1f} {r['connect_s']:>10.1f} {r['driver_cpu_s']:>13.1f}"
            f" {r['setup_s']:>8.1f}"
        )
    if "chatapi" in res and "bare" in res:
        print(
            f"chatapi (Socket.IO) / bare python-socketio KB/conn: {ratio(res['chatapi']['kb'], res['bare']['kb'])}"
        )
    if "chatapi-ws" in res:
        print(f"chatapi plain WebSocket: {res['chatapi-ws']['kb']:.1f} KB/conn (goal <= 30 KB)")
    write_figures(args.json, "idle_memory.py", memory_figures(res, args.connections))


if __name__ == "__main__":
    asyncio.run(main())
