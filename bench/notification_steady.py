"""Steady notifications (#21): N notifications/s for S seconds, one online recipient each,
receipt latency p50/p99/max and the achieved rate, with a load generator that is not the
bottleneck.

API → database → broker → worker → event bus → gateway → the recipient's socket, in two
deployments, each started by the script on 127.0.0.1 and stopped afterwards:

- `redis`: `chatapi serve` + `chatapi worker` + `chatapi beat` on a fresh PostgreSQL
  database and its own Redis key prefix (goal: 500/s, p99 ≤ 100 ms);
- `embedded`: `chatapi serve` alone on a SQLite file (goal: 300/s, p99 ≤ 100 ms).

The receivers are U users (`--users-online`, default 500), all connected through the Node
driver (bench/fanout/node/driver.js, socket.io-client, websocket transport); their users
and keys are written straight into the database (as fanout_burst.py does). The sender is
Node too (bench/fanout/node/sender.js): `POST /notifications/send` with one recipient
(send i goes to user i mod U), channel websocket, `data.sent_at` taken just before the
request, on an absolute schedule `t0 + i / rate` over keep-alive connections, requests not
awaited one by one. Latency = receipt time - sent_at (one machine, one clock).

Each rate of `--rates` runs on the same stack after a 1 s warm-up at that rate (its
receipts are waited for, then forgotten). Printed per rate: achieved send and 202 rates,
received/sent, receipt p50/p99/max, the 202's p50/p99, the CPU share (of one core) of each
chatapi process and of the driver (sender + receivers) over the window from the first send
to the last receipt, the worker's CPU per notification, and goal / met?.

    python bench/notification_steady.py                         # redis 500/s, embedded 300/s, 30 s
    python bench/notification_steady.py --modes redis --rates 10,50,100,200,500 --seconds 10
    python bench/notification_steady.py --modes redis --rates 200 --users-online 1000
    python bench/notification_steady.py --modes redis --rates 200 --profile /tmp/steady
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "fanout"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from node_driver import NodeFleet
from targets import NODE_DIR, ChatapiTarget

from bench._support import (
    DEFAULT_PG_SERVER,
    LIFTED_QUOTAS,
    BenchError,
    Figure,
    add_json_argument,
    clear_redis,
    create_pg_database,
    create_sqlite_database,
    drop_pg_database,
    free_port,
    machine_line,
    meets,
    progress,
    require_local,
    write_figures,
)
from bench.notification_latency import Stack, proc_cpu, wait_ready

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
GOAL_P99_MS = 100.0
#: The issue's rate per mode, the default when --rates is not given.
GOAL_RATE = {"redis": 500.0, "embedded": 300.0}
EVENT = "bench.tick"  # the send's websocket.event; it arrives as Socket.IO `notification`
SOCKET_EVENT = "notification"
ROLES = ("serve", "worker", "beat")


class Sender:
    """bench/fanout/node/sender.js: the steady POSTer."""

    def __init__(self, url: str, master_key: str, recipients: list[str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="steady-sender-"))
        self.config = self.folder / "sender.json"
        self.config.write_text(
            json.dumps(
                {"url": url, "master_key": master_key, "recipients": recipients, "event": EVENT}
            )
        )
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise BenchError("the sender needs node on PATH")
        self.proc = await asyncio.create_subprocess_exec(
            node, str(NODE_DIR / "sender.js"), "--config", str(self.config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**24,
        )  # fmt: skip
        await self._read("ready", 30)

    async def _read(self, kind: str, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                raise BenchError(f"the sender exited waiting for {kind}")
            with contextlib.suppress(ValueError):
                msg: dict[str, Any] = json.loads(line)
                if msg.get("type") == kind:
                    return msg

    async def send(self, count: int, rate: float, offset: int) -> dict[str, Any]:
        """`count` sends at `rate`/s; the sender's summary (rates, 202 times, CPU)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"send {count} {rate} {offset}\n".encode())
        await self.proc.stdin.drain()
        return await self._read("sent", count / rate + 300)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"exit\n")
                await self.proc.stdin.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except (TimeoutError, asyncio.TimeoutError):
                self.proc.kill()
                await self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def environment(admin: str) -> dict[str, str]:
    """What every chatapi process of a run gets (quotas lifted, nothing reported away)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SENTRY_DSN")}
    env.update(
        ADMIN_API_KEY=admin,
        BCRYPT_ROUNDS="4",
        LOG_LEVEL="WARNING",
        SECRET_KEY=secrets.token_urlsafe(32),
        **LIFTED_QUOTAS,
    )
    return env


async def prepare(
    http: httpx.AsyncClient, env: dict[str, str], users: int
) -> tuple[str, list[str], list[dict[str, Any] | None]]:
    """A tenant and `users` users with a key each: (master key, user ids, auths)."""
    r = await http.post(
        "/api/v1/clients",
        json={"name": "bench steady"},
        headers={"Authorization": f"Bearer {env['ADMIN_API_KEY']}"},
    )
    if r.status_code != 201:
        raise BenchError(f"client: {r.status_code} {r.text[:300]}")
    created = r.json()
    # The fan-out benches' direct INSERT of users and keys (one statement per table); it
    # only needs the server's environment, so it is called on a stand-in for the target.
    shim = SimpleNamespace(environment=lambda: env)
    user_ids, auths = await ChatapiTarget._insert_users_and_keys(
        shim,  # type: ignore[arg-type]
        str(created["id"]),
        users,
    )
    return str(created["master_key"]), user_ids, auths


def expected_per_driver(offset: int, count: int, users: int, procs: int) -> list[int]:
    """How many of sends offset..offset+count-1 each driver receives (user u is held by
    driver u mod procs, as NodeFleet splits its auths)."""
    per = Counter(((offset + i) % users) % procs for i in range(count))
    return [per[d] for d in range(procs)]


def start_profiles(prefix: str, label: str, stack: Stack) -> list[subprocess.Popen[bytes]]:
    """py-spy (raw collapsed stacks, idle frames left out) on serve and worker."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spies = []
    for role, proc in zip(ROLES[:2], stack.procs, strict=False):
        out = f"{prefix}-{label}-{role}.txt"
        cmd = [py_spy, "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "100",
               "--output", out, "--nonblocking"]  # fmt: skip
        spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    return spies


def top_frames(path: str, n: int = 15) -> list[str]:
    """The `n` frames with the most samples (self, i.e. on top of the stack), with their
    inclusive share, from a py-spy raw file."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    if not Path(path).exists():
        return ["(no profile written: is py-spy installed, and may it attach?)"]
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            incl[frame] += int(count)
    return [
        f"{c / total:6.1%} self {incl[f] / total:6.1%} incl  {f}" for f, c in own.most_common(n)
    ] + [f"({total} samples)"]


async def measure(
    rate: float, args: argparse.Namespace, stack: Stack, sender: Sender, fleet: NodeFleet,
    offset: int, mode: str,
) -> tuple[dict[str, Any], int]:  # fmt: skip
    """One rate: warm-up, then `seconds` at `rate`; its figures and the next offset."""
    users, procs = len(fleet.auths), fleet.procs
    warm = max(10, int(rate))
    # Counts start from here: the previous rate's receipts must not satisfy this wait.
    await fleet.reset()
    await sender.send(warm, rate, offset)
    await fleet.wait_counts(expected_per_driver(offset, warm, users, procs), args.grace)
    offset += warm
    await fleet.reset()
    count = max(2, int(rate * args.seconds))
    spies = []
    if args.profile and rate == args.profile_rate:
        spies = start_profiles(args.profile, f"{mode}-{rate:g}", stack)
    cpu0 = [proc_cpu(p.pid) for p in stack.procs]
    rx0 = (await fleet.report()).cpu_s
    w0 = time.monotonic()
    sent = await sender.send(count, rate, offset)
    progress(mode, f"{rate:g}/s: {count} sent; waiting for the receipts")
    report = await fleet.wait_counts(expected_per_driver(offset, count, users, procs), args.grace)
    # The CPU window ends with the last receipt (or the grace period's end).
    wall = max(time.monotonic() - w0, 1e-9)
    if report.delivered >= count:
        wall = max(report.last - sent["t0"], 1e-9)
    stack_cpu = [proc_cpu(p.pid) - c for p, c in zip(stack.procs, cpu0, strict=True)]
    for spy in spies:
        spy.send_signal(2)
        await asyncio.to_thread(spy.wait, 60)
    offset += count
    rx_cpu = report.cpu_s - rx0
    tx_cpu = sent["cpu"]["user_s"] + sent["cpu"]["system_s"]
    window = report.last - sent["t0"] if report.delivered else float("nan")
    result = {
        "mode": mode, "rate": rate, "sent": count, "received": report.delivered,
        "send_rate": sent["send_rate"], "answered_rate": sent["answered_rate"],
        "receipt_rate": report.delivered / window if window and window > 0 else float("nan"),
        "bad": sent["bad"], "statuses": sent["statuses"], "errors": sent["errors"],
        "p50": report.p50_ms, "p99": report.p99_ms, "max": report.max_ms,
        "a50": sent["a50_ms"], "a99": sent["a99_ms"],
        "stack_cpu": [c / wall for c in stack_cpu],
        "worker_ms_each": (stack_cpu[1] if len(stack_cpu) > 1 else stack_cpu[0]) / count * 1000,
        "tx_cpu": tx_cpu / wall, "rx_cpu": rx_cpu / wall,
        "users": users, "profiles": [s.args[s.args.index("--output") + 1] for s in spies],
    }  # fmt: skip
    result["met"] = goal_met(result)
    return result, offset


def goal_met(r: dict[str, Any]) -> bool | None:
    """Achieved (202s) ≥ 99% of the rate, everything received, receipt p99 ≤ 100 ms."""
    rate_ok = meets(r["answered_rate"], ">=", 0.99 * r["rate"])
    p99_ok = meets(r["p99"], "<=", GOAL_P99_MS)
    if rate_ok is None or p99_ok is None:
        return None
    return rate_ok and p99_ok and r["received"] >= r["sent"] and not r["bad"]


async def run_mode(mode: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="chatapi-bench-steady-"))
    port = free_port()
    env = environment(secrets.token_urlsafe(24))
    chatapi = str(Path(sys.executable).with_name("chatapi"))
    serve = [chatapi, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if mode == "redis" and args.serve_workers > 1:
        serve += ["--workers", str(args.serve_workers)]
    pg_name = None
    if mode == "embedded":
        env["DATABASE_URL"] = await create_sqlite_database(folder)
        commands = [serve]
    else:
        pg_name, env["DATABASE_URL"] = await create_pg_database(args.pg_server)
        env.update(
            REDIS_URL=args.redis_url, REDIS_KEY_PREFIX=f"chatapi-bench-{secrets.token_hex(4)}:"
        )
        commands = [
            serve,
            [chatapi, "worker", "--concurrency", str(args.worker_concurrency),
             "--loglevel", "WARNING"],
            [chatapi, "beat", "--loglevel", "WARNING"],
        ]  # fmt: skip
    stack = Stack(env, commands)
    base = f"http://127.0.0.1:{port}"
    rates = [float(x) for x in args.rates.split(",")] if args.rates else [GOAL_RATE[mode]]
    results: list[dict[str, Any]] = []
    fleet: NodeFleet | None = None
    sender: Sender | None = None
    try:
        await wait_ready(base, stack)
        async with httpx.AsyncClient(base_url=base, timeout=60.0) as http:
            master, user_ids, auths = await prepare(http, env, args.users_online)
        progress(mode, f"ready; connecting {len(auths)} receivers")
        fleet = NodeFleet(
            base,
            auths,
            latency_path=("data", "sent_at"),
            event=SOCKET_EVENT,
            procs=args.driver_procs,
        )
        connected = await fleet.start()
        if connected.failed:
            raise BenchError(f"{connected.failed} receivers did not connect: {connected.errors}")
        await fleet.quiet(500)
        sender = Sender(base, master, user_ids)
        await sender.start()
        offset = 0
        for rate in rates:
            progress(mode, f"{rate:g}/s for {args.seconds:g} s")
            result, offset = await measure(rate, args, stack, sender, fleet, offset, mode)
            results.append(result)
            print_result(result, stack_roles=len(commands))
            if any(p.poll() is not None for p in stack.procs):
                raise BenchError(f"a chatapi process exited:\n{stack.tail()}")
    finally:
        if sender is not None:
            await sender.close()
        if fleet is not None:
            await fleet.close()
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)
        if pg_name is not None:
            await drop_pg_database(args.pg_server, pg_name)
            await clear_redis(args.redis_url, env["REDIS_KEY_PREFIX"])
    return results


NAMES = {"embedded": "embedded (serve, SQLite)", "redis": "redis (serve+worker+beat, PG)"}
HEAD = ("rate/s", "sent/s", "202/s", "received", "p50 ms", "p99 ms", "max ms", "202 p50",
        "202 p99", "met?")  # fmt: skip


def fmt(x: float, digits: int = 0) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def print_result(r: dict[str, Any], stack_roles: int) -> None:
    met = {True: "met", False: "MISSED", None: "n/a"}[r["met"]]
    cells = (
        fmt(r["rate"]), fmt(r["send_rate"], 1), fmt(r["answered_rate"], 1),
        f"{r['received']}/{r['sent']}", fmt(r["p50"], 1), fmt(r["p99"], 1), fmt(r["max"], 1),
        fmt(r["a50"], 1), fmt(r["a99"], 1), met,
    )  # fmt: skip
    print(f"  {NAMES[r['mode']]:<30}" + "".join(f"{c:>11}" for c in cells))
    cpu = ", ".join(
        f"{n} {c:.0%}" for n, c in zip(ROLES[:stack_roles], r["stack_cpu"], strict=False)
    )
    print(
        f"    CPU (of one core, first send → last receipt): {cpu}; "
        f"{'worker' if stack_roles > 1 else 'serve'} {r['worker_ms_each']:.2f} ms per notification; "
        f"driver: sender {r['tx_cpu']:.0%}, receivers {r['rx_cpu']:.0%} ({r['users']} online)"
    )
    if r["bad"]:
        print(f"    {r['bad']} sends not answered 202: {r['statuses']} {r['errors']}")
    for path in r["profiles"]:
        print(f"    py-spy: {path}")
        for line in top_frames(path):
            print(f"      {line}")
    sys.stdout.flush()


def figure(r: dict[str, Any]) -> Figure:
    """One (mode, rate)'s row of run_all's table."""
    missing = "" if r["received"] >= r["sent"] else f", only {r['received']:,}/{r['sent']:,} in"
    if r["bad"]:
        missing += f", {r['bad']} sends failed"
    cpu = "/".join(f"{c:.0%}" for c in r["stack_cpu"][:2])
    return Figure(
        figure="#21 steady",
        what=f"notification → socket receipt, steady {r['rate']:g}/s, {r['mode']} mode, "
        f"{r['users']:,} online",
        ours=(
            f"p50 {fmt(r['p50'])} / p99 {fmt(r['p99'])} ms; {fmt(r['answered_rate'])}/s "
            f"accepted{missing} (CPU {cpu})"
        ),
        baseline="none (absolute)",
        ratio=None,
        goal=f"≥ {0.99 * r['rate']:g}/s, p99 ≤ {GOAL_P99_MS:g} ms",
        met=r["met"],
        driver_cpu=f"sender {r['tx_cpu']:.0%}, receivers {r['rx_cpu']:.0%}",
    )


async def run(args: argparse.Namespace) -> None:
    print("notification_steady: POST /notifications/send -> Socket.IO `notification` receipt")
    print(f"  {machine_line()}")
    print(
        f"  {args.seconds:g} s per rate after a 1 s warm-up; one recipient per send, spread over "
        f"{args.users_online} connected users (Node socket.io-client); sender: Node, absolute "
        f"schedule, keep-alive; goal: ≥ 99% of the rate accepted, all received, p99 ≤ "
        f"{GOAL_P99_MS:g} ms (#21: redis 500/s, embedded 300/s)"
    )
    print(f"  {'':<30}" + "".join(f"{h:>11}" for h in HEAD))
    sys.stdout.flush()
    results = []
    for mode in args.modes.split(","):
        results += await run_mode(mode, args)
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    print(f"  load average at the end: {load}")
    write_figures(args.json, "notification_steady.py", [figure(r) for r in results])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--modes", default="redis,embedded", help="redis,embedded")
    parser.add_argument(
        "--rates", help="notifications/s, comma-separated (default: 500 redis, 300 embedded)"
    )
    parser.add_argument("--rate", dest="rates", help="alias of --rates")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per rate")
    parser.add_argument("--users-online", type=int, default=500, help="connected recipients")
    parser.add_argument("--driver-procs", type=int, default=1, help="Node receiver processes")
    parser.add_argument("--worker-concurrency", type=int, default=8)
    parser.add_argument(
        "--serve-workers", type=int, default=1, help="API processes in redis mode (serve --workers)"
    )
    parser.add_argument("--grace", type=float, default=30.0, help="wait for late receipts")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    parser.add_argument(
        "--profile", help="py-spy serve and worker at --profile-rate: PROFILE-MODE-RATE-ROLE.txt"
    )
    parser.add_argument("--profile-rate", type=float, default=200.0)
    add_json_argument(parser)
    args = parser.parse_args()
    require_local(args.pg_server)
    require_local(args.redis_url)
    try:
        import uvloop

        uvloop.run(run(args))
    except BenchError as exc:
        sys.exit(f"notification_steady: {exc}")


if __name__ == "__main__":
    main()
