"""Notification → Socket.IO receipt latency (P3) at a steady rate, through the whole pipeline.

API → database → broker → worker → event bus → gateway → the recipient's socket, in two
deployments, each started by the script on 127.0.0.1 and stopped afterwards:

- `embedded`: `chatapi serve` alone (SQLite file, in-process broker and worker, no Redis);
- `redis`: `chatapi serve` + `chatapi worker` + `chatapi beat` on a fresh PostgreSQL
  database and Redis (its own key prefix).

The recipient is one user connected by a python-socketio `AsyncClient` (websocket
transport) in its own process; the sender (this process, httpx, uvloop) posts
`POST /notifications/send` (one recipient, channel websocket, `data.sent_at` = time.time()
just before the request) on an absolute schedule (`t0 + i / rate`, requests not awaited
one by one, so a slow answer does not slow the schedule). Latency = receipt time -
`sent_at` (one machine, one clock). Also printed: the API's 202 time (the part of the
latency spent before the answer), the achieved send rate, receipts missing at the end,
the sender's CPU and that of each chatapi process while sending. There is no baseline
server for this one: the figures are absolute.

    python bench/notification_latency.py                      # both modes, 200/s for 10 s
    python bench/notification_latency.py --modes redis --rate 100 --seconds 20
    python bench/notification_latency.py --modes embedded --profile /tmp/lat   # py-spy
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._support import (
    DEFAULT_PG_SERVER,
    LIFTED_QUOTAS,
    REPO_ROOT,
    BenchError,
    Figure,
    add_json_argument,
    clear_redis,
    create_pg_database,
    create_sqlite_database,
    drop_pg_database,
    free_port,
    machine_line,
    percentile,
    progress,
    require_local,
    write_figures,
)

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def receiver(
    url: str, key: str, expected: int, pipe: multiprocessing.connection.Connection
) -> None:
    """Child process: connect as the recipient, time every `notification` until `expected`
    arrived or the parent says stop; send back the latencies."""
    import socketio
    import uvloop

    async def main() -> None:
        latencies: list[float] = []
        done = asyncio.Event()
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("notification")
        async def on_notification(event: dict[str, Any]) -> None:
            sent_at = event.get("data", {}).get("sent_at")
            if isinstance(sent_at, (int, float)):
                latencies.append(time.time() - sent_at)
                if len(latencies) >= expected:
                    done.set()

        await sio.connect(
            url, socketio_path="sockets", auth={"api_key": key}, transports=["websocket"]
        )
        pipe.send("connected")
        loop = asyncio.get_running_loop()
        stop = loop.run_in_executor(None, pipe.recv)
        await asyncio.wait(
            [asyncio.ensure_future(done.wait()), stop], return_when=asyncio.FIRST_COMPLETED
        )
        if not stop.done():
            # Everything arrived: say so, then wait for the parent's "stop" (the thread
            # blocked in pipe.recv must return before this process can exit).
            pipe.send("done")
            await stop
        await sio.disconnect()
        pipe.send(latencies)

    uvloop.run(main())


class Stack:
    """The chatapi processes of one mode."""

    def __init__(self, env: dict[str, str], commands: list[list[str]]) -> None:
        self.logs = [
            tempfile.NamedTemporaryFile(prefix="chatapi-bench-lat-", suffix=".log", delete=False)  # noqa: SIM115
            for _ in commands
        ]
        self.procs = [
            subprocess.Popen(
                cmd,
                cwd=str(REPO_ROOT),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for cmd, log in zip(commands, self.logs, strict=True)
        ]

    def tail(self) -> str:
        out = []
        for log in self.logs:
            log.flush()
            out.append(Path(log.name).read_text(errors="replace")[-1500:])
        return "\n---\n".join(out)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()
            Path(log.name).unlink(missing_ok=True)


async def wait_ready(base: str, stack: Stack, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in stack.procs):
                raise BenchError(f"a chatapi process exited:\n{stack.tail()}")
            try:
                if (await http.get("/health/live")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise BenchError(f"chatapi not ready:\n{stack.tail()}")


async def setup(http: httpx.AsyncClient, admin: str) -> tuple[str, str, str]:
    """A client and one user: (master key, user id, user key)."""
    r = await http.post(
        "/api/v1/clients",
        json={"name": "bench latency"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    if r.status_code != 201:
        raise BenchError(f"client: {r.status_code} {r.text[:300]}")
    master = str(r.json()["master_key"])
    auth = {"Authorization": f"Bearer {master}"}
    r = await http.post("/api/v1/users", json={"external_id": "recipient"}, headers=auth)
    user_id = str(r.json()["id"])
    r = await http.post("/api/v1/auth/login", json={"user_id": user_id}, headers=auth)
    if r.status_code != 200:
        raise BenchError(f"login: {r.status_code} {r.text[:300]}")
    return master, user_id, str(r.json()["api_key"])


async def drive(
    http: httpx.AsyncClient, master: str, user_id: str, rate: float, count: int
) -> tuple[list[float], float, int]:
    """`count` sends on the absolute schedule; (202 times, achieved rate, non-202 answers)."""
    auth = {"Authorization": f"Bearer {master}"}
    answer_times: list[float] = []
    bad = 0

    async def one(i: int) -> None:
        nonlocal bad
        sent_at = time.time()
        body = {
            "channels": ["websocket"],
            "recipients": [{"user_id": user_id}],
            "websocket": {"event": "bench.tick", "data": {"i": i, "sent_at": sent_at}},
        }
        for attempt in range(2):
            try:
                r = await http.post("/api/v1/notifications/send", json=body, headers=auth)
                break
            except httpx.HTTPError:
                # Once: a pooled keep-alive connection the server closed while idle. The
                # retry keeps the first sent_at, so its latency counts the lost attempt.
                if attempt:
                    bad += 1
                    return
        answer_times.append(time.time() - sent_at)
        if r.status_code != 202:
            bad += 1

    loop = asyncio.get_running_loop()
    tasks = []
    t0 = loop.time()
    for i in range(count):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    elapsed = loop.time() - t0
    await asyncio.gather(*tasks)
    return answer_times, (count - 1) / elapsed if elapsed > 0 else float("nan"), bad


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="chatapi-bench-lat-"))
    port = free_port()
    admin = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SENTRY_DSN")}
    env.update(
        ADMIN_API_KEY=admin,
        BCRYPT_ROUNDS="4",
        LOG_LEVEL="WARNING",
        SECRET_KEY=secrets.token_urlsafe(32),
        PYTHONPATH=str(REPO_ROOT),
        **LIFTED_QUOTAS,
    )
    chatapi = str(Path(sys.executable).with_name("chatapi"))
    serve = [chatapi, "serve", "--host", "127.0.0.1", "--port", str(port)]
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
            [chatapi, "worker", "--concurrency", "8", "--loglevel", "WARNING"],
            [chatapi, "beat", "--loglevel", "WARNING"],
        ]
    stack = Stack(env, commands)
    base = f"http://127.0.0.1:{port}"
    count = int(args.rate * args.seconds)
    warmup = int(args.rate)
    try:
        await wait_ready(base, stack)
        progress(mode, "ready")
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=base, timeout=30.0, limits=limits) as http:
            master, user_id, key = await setup(http, admin)
            parent, child = multiprocessing.Pipe()
            rx = multiprocessing.get_context("spawn").Process(
                target=receiver, args=(base, key, warmup + count, child), daemon=True
            )
            rx.start()
            if not await asyncio.to_thread(parent.poll, 30) or parent.recv() != "connected":
                raise BenchError(f"the receiver did not connect:\n{stack.tail()}")
            progress(mode, "receiver connected")
            await asyncio.sleep(1.0)  # presence settles; the worker (redis mode) is up
            await drive(http, master, user_id, args.rate, warmup)
            spies = start_profiles(args.profile, mode, stack) if args.profile else []
            usage0 = resource.getrusage(resource.RUSAGE_SELF)
            cpu0 = [proc_cpu(p.pid) for p in stack.procs]
            w0 = time.monotonic()
            answers, achieved, bad = await drive(http, master, user_id, args.rate, count)
            wall = time.monotonic() - w0
            progress(mode, f"{count} sent in {wall:.1f} s; waiting for the receipts")
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            stack_cpu = [proc_cpu(p.pid) - c for p, c in zip(stack.procs, cpu0, strict=True)]
            for spy in spies:
                spy.send_signal(2)
                await asyncio.to_thread(spy.wait, 30)
            # Wait for the receiver's "done" (all arrived) or give up after the grace period;
            # either way it answers "stop" with what it received.
            await asyncio.to_thread(parent.poll, args.grace)
            parent.send("stop")
            answer: object = "done"
            while answer == "done":  # a "done" sent just after the grace ran out
                answer = await asyncio.to_thread(parent.recv)
            latencies: list[float] = answer  # type: ignore[assignment]
            rx.join(10)
            progress(mode, f"{len(latencies)} receipts")
    finally:
        stack.stop()
        if pg_name is not None:
            await drop_pg_database(args.pg_server, pg_name)
            await clear_redis(args.redis_url, env["REDIS_KEY_PREFIX"])
    measured = sorted(latencies[warmup:]) if len(latencies) > warmup else []
    answers.sort()
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {
        "mode": mode,
        "achieved": achieved,
        "sent": count,
        "received": len(measured),
        "bad": bad,
        "p50": percentile(measured, 50),
        "p99": percentile(measured, 99),
        "max": measured[-1] if measured else float("nan"),
        "a50": percentile(answers, 50),
        "a99": percentile(answers, 99),
        "sender_cpu": cpu / wall,
        "stack_cpu": [c / wall for c in stack_cpu],
    }


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds so far of a process and its live descendants (Linux /proc):
    `chatapi serve --workers N` answers in child processes."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        ticks[child] = int(fields[11]) + int(fields[12])
    total, tree = 0, {pid}
    for child in sorted(ticks):  # children have higher pids than their parents here
        if child == pid or parents.get(child) in tree:
            tree.add(child)
            total += ticks[child]
    return total / os.sysconf("SC_CLK_TCK")


def start_profiles(prefix: str, mode: str, stack: Stack) -> list[subprocess.Popen[bytes]]:
    """py-spy on the API (and the worker) during the measured sends: PREFIX-MODE-ROLE.txt."""
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    spies = []
    for role, proc in zip(("serve", "worker"), stack.procs, strict=False):
        out = f"{prefix}-{mode}-{role}.txt"
        spies.append(
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--output",
                    out,
                    "--nonblocking",
                    "--gil",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        )
    return spies


async def run(args: argparse.Namespace) -> None:
    machine = machine_line()
    results = [await run_mode(mode, args) for mode in args.modes.split(",")]
    print("notification_latency: POST /notifications/send -> Socket.IO `notification` receipt")
    print(f"  {machine}")
    print(
        f"  {args.rate:g}/s for {args.seconds:g} s after a 1 s warm-up; one recipient, websocket "
        "channel; receiver: python-socketio AsyncClient in its own process; sender: httpx, "
        "absolute schedule"
    )
    head = ("achieved/s", "received", "p50 ms", "p99 ms", "max ms", "202 p50 ms", "202 p99 ms",
            "sender CPU")  # fmt: skip
    print(f"  {'':<40}" + "".join(f"{h:>12}" for h in head))
    names = {
        "embedded": "embedded (serve alone, SQLite)",
        "redis": "redis (serve+worker+beat, PostgreSQL)",
    }
    for r in results:
        cells = (
            f"{r['achieved']:.1f}", f"{r['received']}/{r['sent']}", f"{r['p50'] * 1000:.1f}",
            f"{r['p99'] * 1000:.1f}", f"{r['max'] * 1000:.1f}", f"{r['a50'] * 1000:.1f}",
            f"{r['a99'] * 1000:.1f}", f"{r['sender_cpu']:.0%}",
        )  # fmt: skip
        print(f"  {names[r['mode']]:<40}" + "".join(f"{c:>12}" for c in cells))
        roles = ("serve", "worker", "beat")
        cpu = ", ".join(f"{n} {c:.0%}" for n, c in zip(roles, r["stack_cpu"], strict=False))
        print(f"    CPU of the chatapi processes while sending (of one core): {cpu}")
        if r["bad"]:
            print(f"    {r['bad']} sends were not answered 202 (or not at all)")
    write_figures(args.json, "notification_latency.py", [figure(args, r) for r in results])


def figure(args: argparse.Namespace, r: dict[str, Any]) -> Figure:
    """One mode's row of run_all's table: absolute latencies, no baseline, no goal."""
    missing = "" if r["received"] == r["sent"] else f", only {r['received']:,}/{r['sent']:,} in"
    if r["bad"]:
        missing += f", {r['bad']} sends failed"
    return Figure(
        figure="P3",
        what=f"notification → socket receipt at {args.rate:g}/s, {r['mode']} mode",
        ours=(
            f"p50 {r['p50'] * 1000:,.0f} / p99 {r['p99'] * 1000:,.0f} ms "
            f"(202 p50 {r['a50'] * 1000:,.0f} ms; {r['achieved']:.0f}/s sent{missing})"
        ),
        baseline="none (absolute)",
        ratio=None,
        goal="report",
        met=None,
        driver_cpu=f"sender {r['sender_cpu']:.0%}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--modes", default="embedded,redis", help="embedded,redis")
    parser.add_argument("--rate", type=float, default=200.0, help="notifications per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--grace", type=float, default=15.0, help="wait for late receipts")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    add_json_argument(parser)
    parser.add_argument(
        "--profile", help="py-spy the API (and worker) while sending: PROFILE-MODE-ROLE.txt"
    )
    args = parser.parse_args()
    require_local(args.pg_server)
    require_local(args.redis_url)
    try:
        import uvloop

        uvloop.run(run(args))
    except BenchError as exc:
        sys.exit(f"notification_latency: {exc}")


if __name__ == "__main__":
    main()
