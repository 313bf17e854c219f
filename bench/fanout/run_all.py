"""Fan-out figures for ChatAPI beside its two baselines, in one run, with the ratios.

Runs harness.run_fanout for `bare` (bare python-socketio), `node` (Node socket.io) and
`chatapi`, one after another with the same C clients and M messages, then prints one table
and the ratios chatapi/bare and chatapi/node. A target that cannot be measured (e.g. its
Socket.IO connect fails) is skipped with the reason; the others still run.

Usage:
    python bench/fanout/run_all.py [--clients 1000] [--messages 100] [--targets bare,node,chatapi]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import sys
import time

from harness import FanoutResult, add_common_arguments, describe, run_fanout
from report import format_table
from targets import TARGET_NAMES

COLUMNS = (
    "target",
    "delivered",
    "deliveries/s",
    "p50 ms",
    "p99 ms",
    "paced p50",
    "paced p99",
    "server RSS MB",
    "server us/delivery",
)


def _row(r: FanoutResult) -> tuple[str, ...]:
    return (
        r.target,
        f"{r.delivered}/{r.expected}",
        f"{r.deliveries_per_s:,.0f}",
        f"{r.p50_ms:.1f}",
        f"{r.p99_ms:.1f}",
        f"{r.paced_p50_ms:.1f}",
        f"{r.paced_p99_ms:.1f}",
        f"{r.server_rss_bytes / 2**20:.1f}",
        f"{1e6 * r.server_cpu_s / max(r.delivered, 1):.1f}",
    )


def table(results: list[FanoutResult], skipped: dict[str, str]) -> str:
    rows = [COLUMNS, *(_row(r) for r in results)]
    rows += [(name, "skipped", *[""] * (len(COLUMNS) - 2)) for name in skipped]
    return format_table(rows)


def _ratio(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.2f}x"


def ratio_line(ours: FanoutResult, base: FanoutResult) -> str:
    """ours/base for each figure; for deliveries/s higher is better, for the rest lower."""
    return (
        f"{ours.target}/{base.target}:"
        f" deliveries/s {_ratio(ours.deliveries_per_s, base.deliveries_per_s)}"
        f"  p50 {_ratio(ours.p50_ms, base.p50_ms)}"
        f"  p99 {_ratio(ours.p99_ms, base.p99_ms)}"
        f"  paced p50 {_ratio(ours.paced_p50_ms, base.paced_p50_ms)}"
        f"  paced p99 {_ratio(ours.paced_p99_ms, base.paced_p99_ms)}"
        f"  server RSS {_ratio(ours.server_rss_bytes, base.server_rss_bytes)}"
        f"  server CPU/delivery"
        f" {_ratio(ours.server_cpu_s / max(ours.delivered, 1), base.server_cpu_s / max(base.delivered, 1))}"
    )


async def main_async(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGET_NAMES]
    if unknown:
        print(f"unknown target(s) {unknown}; choose from {', '.join(TARGET_NAMES)}")
        return 2
    print(
        f"fan-out: {args.clients} clients in one room, {args.messages} messages x"
        f" {args.payload_bytes} B, "
        + (f"{args.rate:g} msg/s" if args.rate > 0 else "one burst")
        + f", {args.procs} client processes; Python {platform.python_version()},"
        f" {os.cpu_count()} CPUs",
        flush=True,
    )
    results: dict[str, FanoutResult] = {}
    skipped: dict[str, str] = {}
    for name in names:
        started = time.monotonic()
        print(f"\n== {name}", flush=True)
        try:
            result = await run_fanout(
                name,
                clients=args.clients,
                messages=args.messages,
                payload_bytes=args.payload_bytes,
                procs=args.procs,
                warmup=args.warmup,
                rate=args.rate,
                paced_messages=args.paced_messages,
                paced_rate=args.paced_rate,
                post_concurrency=args.post_concurrency,
                timeout=args.timeout,
            )
        except Exception as exc:  # one target failing must not lose the others' figures
            skipped[name] = f"{type(exc).__name__}: {exc}"
            print(f"{name}: SKIPPED: {skipped[name]}", flush=True)
            continue
        results[name] = result
        print(describe(result), flush=True)
        print(f"({time.monotonic() - started:.0f}s for this target)", flush=True)

    print("\n" + table(list(results.values()), skipped))
    for name, reason in skipped.items():
        print(f"{name} skipped: {reason.splitlines()[0] if reason else ''}")
    print()
    ours = results.get("chatapi")
    for base_name in ("bare", "node"):
        base = results.get(base_name)
        if ours is not None and base is not None:
            print(ratio_line(ours, base))
        elif "chatapi" in names:
            missing = "chatapi" if ours is None else base_name
            print(f"chatapi/{base_name}: n/a ({missing} not measured)")
    if "node" in results and "bare" in results:
        print(ratio_line(results["node"], results["bare"]) + "   (baselines, for scale)")
    return 0 if results else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets",
        default=",".join(TARGET_NAMES),
        help="comma-separated, in run order (default: bare,node,chatapi)",
    )
    add_common_arguments(parser)
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
