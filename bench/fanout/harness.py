"""Fan-out to one room of C connected Socket.IO clients: deliveries/s and p50/p99 latency.

Starts the target server as a subprocess on a free 127.0.0.1 port, connects C python-socketio
AsyncClients (websocket transport only) spread over P worker processes, waits until every
client is connected and the connection noise has settled, sends a small warm-up, then has
the server emit M `message.created` events to the room and times every delivery:

- latency = receive time - the event's send time (`sent_at`, the same machine's clock);
- deliveries/s = events delivered / (last receipt - just before the first send request).

Usage:
    python bench/fanout/harness.py --target bare|node|chatapi [--clients 1000] [--messages 100]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import socketio
from clients import ClientFleet
from targets import (
    EVENT,
    SOCKETIO_PATH,
    TARGET_NAMES,
    Target,
    TargetUnavailable,
    make_target,
    raise_nofile_limit,
)

DEFAULT_CLIENTS = 1000
DEFAULT_MESSAGES = 100
DEFAULT_PAYLOAD_BYTES = 64
DEFAULT_PROCS = 2
DEFAULT_WARMUP = 5
DEFAULT_PACED_MESSAGES = 20
DEFAULT_PACED_RATE = 2.0

Log = Callable[[str], None]


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class FanoutResult:
    """One target's figures."""

    target: str
    clients: int  # connected
    messages: int
    payload_bytes: int
    rate: float  # messages per second asked for; 0: a burst
    expected: int  # clients x messages
    delivered: int
    deliveries_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_rss_bytes: int  # with every client connected, after the burst
    server_cpu_s: float  # server CPU used from the first send to the last receipt
    client_cpu_s: float  # all client workers, same window
    send_s: float  # how long the send request(s) took
    window_s: float  # first send -> last receipt
    connect_s: float
    connect_failed: int
    other_events: int  # non-benchmark events the clients got while connecting
    paced_messages: int  # the latency phase: messages sent at paced_rate per second (0: none)
    paced_rate: float
    paced_delivered: int
    paced_expected: int
    paced_p50_ms: float
    paced_p99_ms: float
    disconnects: int  # clients the server dropped, all told
    dropped_before: int  # of which before the measured burst (while connecting or settling)
    disconnect_reasons: dict[str, int]  # what the server said when it dropped them, if anything
    server_log: str  # the last lines the server printed (shown when something went missing)

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.delivered)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..1)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def probe(target: Target, auth: dict[str, Any] | None, timeout: float = 15.0) -> None:
    """One Socket.IO connection, so a target without a working gateway fails fast and clearly."""
    client = socketio.AsyncClient(reconnection=False)
    try:
        await asyncio.wait_for(
            client.connect(
                target.url,
                socketio_path=SOCKETIO_PATH,
                transports=["websocket"],
                auth=auth,
                wait_timeout=timeout,
            ),
            timeout + 5,
        )
    except Exception as exc:
        raise TargetUnavailable(
            f"{target.name}: Socket.IO connect to {target.url}/{SOCKETIO_PATH}/ failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        await client.disconnect()


async def run_fanout(
    name: str,
    *,
    clients: int = DEFAULT_CLIENTS,
    messages: int = DEFAULT_MESSAGES,
    payload_bytes: int = DEFAULT_PAYLOAD_BYTES,
    procs: int = DEFAULT_PROCS,
    warmup: int = DEFAULT_WARMUP,
    rate: float = 0.0,
    paced_messages: int = DEFAULT_PACED_MESSAGES,
    paced_rate: float = DEFAULT_PACED_RATE,
    post_concurrency: int = 1,
    timeout: float = 120.0,
    log: Log = _log,
) -> FanoutResult:
    """Measure one target; raises TargetUnavailable when it cannot be measured."""
    raise_nofile_limit()
    target = make_target(name, post_concurrency=post_concurrency)
    fleet: ClientFleet | None = None
    try:
        started = time.monotonic()
        await target.start()
        log(f"[{name}] server pid {target.pid} at {target.url}; preparing {clients} clients")
        auths = await target.prepare(clients)
        log(f"[{name}] prepared in {time.monotonic() - started:.1f}s; probing Socket.IO")
        await probe(target, auths[0])
        fleet = ClientFleet(
            url=target.url,
            socketio_path=SOCKETIO_PATH,
            event=EVENT,
            latency_path=target.latency_path,
            auths=auths,
            procs=procs,
        )
        connected = await asyncio.to_thread(fleet.start)
        log(
            f"[{name}] {connected.ok}/{clients} clients connected in {connected.seconds:.1f}s"
            f" ({len(fleet.procs)} processes)"
            + (
                f"; {connected.failed} failed, e.g. {connected.errors[:2]}"
                if connected.failed
                else ""
            )
        )
        if connected.ok == 0:
            raise TargetUnavailable(f"{name}: no client connected: {connected.errors[:3]}")
        other_events = await asyncio.to_thread(fleet.settle)
        dropped_before = fleet.settle_disconnects
        if warmup > 0:
            await target.trigger(warmup, payload_bytes)
            await asyncio.to_thread(fleet.finish, warmup, 60.0, 5.0)
        await asyncio.to_thread(fleet.reset)

        cpu_before = target.cpu_seconds()
        sent = await target.trigger(messages, payload_bytes, rate)
        delivery = await asyncio.to_thread(fleet.finish, messages, timeout)
        server_cpu = target.cpu_seconds() - cpu_before
        rss = await target.rss()

        # Latency at a load every target sustains, so it is not the burst's queueing.
        paced_latencies: list[float] = []
        paced_delivered = paced_expected = 0
        disconnects, reasons = delivery.disconnects, delivery.disconnect_reasons
        if paced_messages > 0 and paced_rate > 0:
            await asyncio.to_thread(fleet.reset)
            await target.trigger(paced_messages, payload_bytes, paced_rate)
            paced = await asyncio.to_thread(fleet.finish, paced_messages, timeout)
            paced_latencies = sorted(paced.latencies)
            paced_delivered, paced_expected = paced.received, paced.clients * paced_messages
            disconnects, reasons = paced.disconnects, paced.disconnect_reasons  # running totals
    finally:
        if fleet is not None:
            await asyncio.to_thread(fleet.close)
        server_log = target.log_tail(5)  # before stop() removes it
        await target.stop()

    latencies = sorted(delivery.latencies)
    window = max(delivery.last_recv - sent.started, 1e-9)
    return FanoutResult(
        target=name,
        clients=delivery.clients,
        messages=messages,
        payload_bytes=payload_bytes,
        rate=rate,
        expected=delivery.clients * messages,
        delivered=delivery.received,
        deliveries_per_s=delivery.received / window if delivery.received else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] * 1000) if latencies else math.nan,
        server_rss_bytes=rss,
        server_cpu_s=server_cpu,
        client_cpu_s=delivery.client_cpu_seconds,
        send_s=sent.finished - sent.started,
        window_s=window,
        connect_s=connected.seconds,
        connect_failed=connected.failed,
        other_events=other_events,
        paced_messages=paced_messages if paced_latencies else 0,
        paced_rate=paced_rate,
        paced_delivered=paced_delivered,
        paced_expected=paced_expected,
        paced_p50_ms=percentile(paced_latencies, 0.50) * 1000,
        paced_p99_ms=percentile(paced_latencies, 0.99) * 1000,
        disconnects=disconnects,
        dropped_before=dropped_before,
        disconnect_reasons=reasons,
        server_log=server_log,
    )


def describe(result: FanoutResult) -> str:
    """The figures of one run, one per line."""
    r = result
    lines = [
        f"target            {r.target}",
        f"clients           {r.clients} connected ({r.connect_failed} failed) in {r.connect_s:.1f}s",
        f"messages          {r.messages} x {r.payload_bytes} B payload, "
        + (f"{r.rate:g}/s" if r.rate > 0 else "one burst"),
        f"delivered         {r.delivered}/{r.expected} (missing {r.missing})",
        f"deliveries/s      {r.deliveries_per_s:,.0f}",
        f"latency ms        p50 {r.p50_ms:.1f}  p99 {r.p99_ms:.1f}  max {r.max_ms:.1f}",
        f"window            {r.window_s:.3f}s (send requests took {r.send_s:.3f}s)",
        (
            f"paced latency ms  p50 {r.paced_p50_ms:.1f}  p99 {r.paced_p99_ms:.1f}"
            f"  ({r.paced_messages} messages at {r.paced_rate:g}/s;"
            f" delivered {r.paced_delivered}/{r.paced_expected})"
            if r.paced_messages
            else "paced latency     not measured"
        ),
        f"server RSS        {r.server_rss_bytes / 2**20:.1f} MB",
        f"server CPU        {r.server_cpu_s:.2f}s"
        f" ({1e3 * r.server_cpu_s / max(r.delivered, 1) * 1e3:.1f} us/delivery)",
        f"client CPU        {r.client_cpu_s:.2f}s over all workers",
    ]
    if r.other_events:
        lines.append(f"other events      {r.other_events:,} (e.g. presence) while connecting")
    if r.disconnects:
        lines.append(
            f"dropped clients   {r.disconnects} ({r.dropped_before} before the burst);"
            f" {r.disconnect_reasons}"
        )
    if (r.disconnects or r.missing) and r.server_log.strip():
        lines.append("server log tail   " + r.server_log.strip().replace("\n", "\n" + " " * 18))
    return "\n".join(lines)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options harness.py and run_all.py share."""
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help="connected clients C")
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES, help="messages M")
    parser.add_argument("--payload-bytes", type=int, default=DEFAULT_PAYLOAD_BYTES)
    parser.add_argument("--procs", type=int, default=DEFAULT_PROCS, help="client worker processes")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="warm-up messages")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="messages per second (0: a burst, as fast as the server emits)",
    )
    parser.add_argument(
        "--paced-messages",
        type=int,
        default=DEFAULT_PACED_MESSAGES,
        help="then this many messages at --paced-rate, for latency without queueing (0: skip)",
    )
    parser.add_argument(
        "--paced-rate", type=float, default=DEFAULT_PACED_RATE, help="messages per second"
    )
    parser.add_argument(
        "--post-concurrency",
        type=int,
        default=1,
        help="chatapi: concurrent POST /messages (1: one after another)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for deliveries"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=TARGET_NAMES, required=True)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_common_arguments(parser)
    args = parser.parse_args()
    try:
        result = asyncio.run(
            run_fanout(
                args.target,
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
        )
    except TargetUnavailable as exc:
        print(f"{args.target}: not measured: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.json:
        import json

        print(json.dumps(asdict(result) | {"missing": result.missing}))
    else:
        print(describe(result))


if __name__ == "__main__":
    main()
