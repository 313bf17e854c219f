"""E-mail delivery throughput (#21): one `chatapi worker` process against a bare aiosmtplib loop.

Both send to the same local SMTP sink (aiosmtpd on the sink process's own event loop,
answering 250 to everything without parsing the message; it counts messages and the
connections that carried them, and notes the first and last message's arrival; its HTTP
side serves the counts), the same message (`app.channels.email.build_message`: text and
html alternatives, ~0.6 KB).

- ours: `--deliveries` N e-mail deliveries are created up front through the real API (`PUT
  /email-config` pointing at the sink, security "none"; `POST /notifications/send`, channel
  email, 1,000 address recipients per send; the API runs without Redis, so its own doorbell
  goes nowhere), then one real `chatapi worker --concurrency T` process (Redis broker,
  PostgreSQL) starts and the bench rings every id (100 per Celery message, as the API
  does). The e-mail quota is lifted (`RATE_LIMIT_EMAILS_PER_HOUR`, still counted: one Redis
  hit per delivery) and `SMTP_ALLOW_PRIVATE_TARGETS=true` lets the channel reach
  127.0.0.1. Measured: N / (last - first message at the sink), and from the ring to the
  last `delivered_at`; the worker's CPU seconds per delivery.
- baseline: the bench process itself on uvloop, `app.channels.smtp_pool.
  MAX_CONNECTIONS_PER_SERVER` aiosmtplib sessions (what the channel's pool holds per server),
  each sending its share of the N messages one after another: the same connection reuse and
  concurrency, none of the relay's work (claim, quota, result rows). Run before and after
  ours, the mean reported.

    python bench/email_throughput.py                     # 5,000 deliveries
    python bench/email_throughput.py --deliveries 2000 --profile /tmp/worker.txt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx

from bench._support import (
    ADMIN_KEY,
    DEFAULT_PG_SERVER,
    LIFTED_QUOTAS,
    REPO_ROOT,
    BenchError,
    Figure,
    ServerProcess,
    add_json_argument,
    asyncpg_dsn,
    clear_redis,
    create_pg_database,
    drop_pg_database,
    free_port,
    machine_line,
    meets,
    progress,
    require_local,
    run_uvicorn,
    write_figures,
)
from bench.webhook_throughput import Worker, print_profile

SCRIPT = Path(__file__).resolve()
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
CONTENT = {
    "subject": "Your order A-1042 shipped",
    "text": "Your order is on its way. " * 8,
    "html": "<p>Your order is on its way.</p>" * 8,
}
FROM = "relay@shop.example"
RECIPIENTS_PER_SEND = 1000
# Lifted like the other quotas (_support.LIFTED_QUOTAS): 1,000 e-mails an hour by default.
EMAIL_QUOTA = {
    "RATE_LIMIT_EMAILS_PER_HOUR": "1000000000",
    "RATE_LIMIT_MAX_EMAILS_PER_HOUR": "1000000000",
}


def sink_app(smtp_port: int) -> Any:
    """Raw ASGI (GET /stats, POST /reset) whose lifespan runs the aiosmtpd sink."""
    from aiosmtpd.smtp import SMTP

    state: dict[str, float] = {"count": 0, "first": 0.0, "last": 0.0, "connections": 0}

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.time()
            if not state["count"]:
                state["first"] = now
            state["count"] += 1
            state["last"] = now
            return "250 2.0.0 queued"

    class Counted(SMTP):
        def connection_made(self, transport: Any) -> None:
            state["connections"] += 1
            super().connection_made(transport)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    loop = asyncio.get_running_loop()
                    await loop.create_server(
                        lambda: Counted(Sink(), hostname="sink.local"), "127.0.0.1", smtp_port
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        if scope["path"] == "/stats":
            body = json.dumps(state).encode()
        elif scope["path"] == "/reset":
            state.update(count=0, first=0.0, last=0.0, connections=0)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def serve(spec: dict[str, Any]) -> None:
    """Child process: the sink or the API."""
    import logging

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per command
    if spec["kind"] == "sink":
        run_uvicorn(sink_app(spec["smtp_port"]), spec["port"])
        return
    from app.core.config import Settings
    from app.main import create_app

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=spec["database_url"],
        REDIS_URL=None,
        SECRET_KEY=spec["secret_key"],
        ADMIN_API_KEY=spec["admin_key"],
        BCRYPT_ROUNDS=4,
        LOG_LEVEL="WARNING",
        SMTP_ALLOW_PRIVATE_TARGETS=True,
    )
    run_uvicorn(create_app(settings, run_embedded_worker=False), spec["port"])


async def create_deliveries(api_url: str, smtp_port: int, n: int) -> list[str]:
    """A client whose e-mail goes to the sink, and N e-mail deliveries; every delivery id."""
    async with httpx.AsyncClient(base_url=api_url, timeout=120.0) as http:
        r = await http.post(
            "/api/v1/clients",
            json={"name": "bench e-mail"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        if r.status_code != 201:
            raise BenchError(f"creating the client: {r.status_code} {r.text[:300]}")
        master = {"Authorization": f"Bearer {r.json()['master_key']}"}
        config = {
            "host": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "from_email": FROM,
            "from_name": "Shop",
        }
        r = await http.put("/api/v1/email-config", json=config, headers=master)
        if r.status_code != 200:
            raise BenchError(f"PUT /email-config: {r.status_code} {r.text[:300]}")
        ids: list[str] = []
        for start in range(0, n, RECIPIENTS_PER_SEND):
            body = {
                "channels": ["email"],
                "recipients": [
                    {"email": f"user{i}@example.com"}
                    for i in range(start, min(start + RECIPIENTS_PER_SEND, n))
                ],
                "email": CONTENT,
            }
            r = await http.post("/api/v1/notifications/send", json=body, headers=master)
            if r.status_code != 202:
                raise BenchError(f"send: {r.status_code} {r.text[:300]}")
            ids.extend(d["id"] for d in r.json()["deliveries"])
        return ids


async def sink_stats(http: httpx.AsyncClient) -> dict[str, float]:
    stats: dict[str, float] = (await http.get("/stats")).json()
    return stats


async def run_ours(
    args: argparse.Namespace,
    ids: list[str],
    sink: ServerProcess,
    env: dict[str, str],
    conn: asyncpg.Connection,
) -> dict[str, Any]:
    from app.core.config import Settings
    from app.worker.celery_app import configure_celery
    from app.worker.doorbell import delivery_messages

    celery = configure_celery(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=env["DATABASE_URL"],
            REDIS_URL=env["REDIS_URL"],
            REDIS_KEY_PREFIX=env["REDIS_KEY_PREFIX"],
        )
    )
    worker = Worker(env, args.worker_threads)
    spy = None
    try:
        await worker.ready()
        progress("email", "worker ready; ringing")
        async with httpx.AsyncClient(base_url=sink.base_url) as http:
            await http.post("/reset")
            client_id = await conn.fetchval("SELECT client_id FROM deliveries LIMIT 1")
            if args.profile:
                import subprocess

                spy = subprocess.Popen(  # noqa: ASYNC220 (starting it is quick)
                    [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                     str(worker.proc.pid), "--format", "raw", "--rate", "200",
                     "--output", args.profile, "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                )  # fmt: skip
                await asyncio.sleep(1.0)
            cpu0, scpu0 = worker.cpu_seconds(), sink.cpu_seconds()
            t0 = time.time()
            for name, task_args, queue in delivery_messages(client_id, ids):
                await asyncio.to_thread(celery.send_task, name, args=task_args, queue=queue)
            deadline = time.monotonic() + args.timeout
            while True:
                stats = await sink_stats(http)
                if stats["count"] >= len(ids) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            # The sink has them all; the worker may still be recording the last ones.
            while time.monotonic() < deadline:
                done = await conn.fetchval(
                    "SELECT count(*) FROM deliveries WHERE status NOT IN ('pending','sending')"
                )
                if done >= len(ids):
                    break
                await asyncio.sleep(0.1)
            cpu, scpu = worker.cpu_seconds() - cpu0, sink.cpu_seconds() - scpu0
            stats = await sink_stats(http)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        statuses = dict(
            await conn.fetch("SELECT status, count(*) FROM deliveries GROUP BY status")  # type: ignore[arg-type]
        )
        last_db = await conn.fetchval(
            "SELECT extract(epoch FROM max(delivered_at)) FROM deliveries"
        )
        attempts = await conn.fetchval("SELECT count(*) FROM delivery_attempts")
    finally:
        worker.stop()
    span = stats["last"] - stats["first"]
    return {
        "received": stats["count"],
        "connections": stats["connections"],
        "rate": stats["count"] / span if span > 0 else float("nan"),
        "rate_db": statuses.get("delivered", 0) / (float(last_db or t0) - t0),
        "cpu": cpu,
        "sink_cpu": scpu,
        "span": span,
        "statuses": statuses,
        "attempts": attempts,
    }


async def run_baseline(n: int, sink: ServerProcess, smtp_port: int) -> dict[str, float]:
    """N messages over MAX_CONNECTIONS_PER_SERVER aiosmtplib sessions, each sequential."""
    import aiosmtplib

    from app.channels.base import SmtpServer
    from app.channels.email import build_message
    from app.channels.smtp_pool import MAX_CONNECTIONS_PER_SERVER

    server = SmtpServer("127.0.0.1", smtp_port, FROM, security="none", from_name="Shop")
    sessions = MAX_CONNECTIONS_PER_SERVER

    async def one_session(k: int) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, start_tls=False)
        await smtp.connect()
        try:
            for i in range(k, n, sessions):
                msg = build_message(
                    server, f"user{i}@example.com", CONTENT, f"<base{i}@shop.example>"
                )
                await smtp.send_message(msg)
        finally:
            await smtp.quit()

    async with httpx.AsyncClient(base_url=sink.base_url) as control:
        await control.post("/reset")
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        scpu0 = sink.cpu_seconds()
        await asyncio.gather(*(one_session(k) for k in range(sessions)))
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        scpu = sink.cpu_seconds() - scpu0
        stats = await sink_stats(control)
    if stats["count"] != n:
        raise BenchError(f"baseline: the sink got {stats['count']:.0f} of {n}")
    span = stats["last"] - stats["first"]
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {"rate": n / span, "cpu": cpu, "sink_cpu": scpu, "span": span}


async def run(args: argparse.Namespace) -> None:
    machine = machine_line()
    os.environ.update(EMAIL_QUOTA)  # the API's children and the worker inherit it
    pg_name, url = await create_pg_database(args.pg_server)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    secret_key = secrets.token_urlsafe(32)
    smtp_port = free_port()
    sink = ServerProcess(SCRIPT, {"kind": "sink", "smtp_port": smtp_port}, "sink")
    api = ServerProcess(
        SCRIPT,
        {"kind": "api", "database_url": url, "secret_key": secret_key, "admin_key": ADMIN_KEY},
        "api",
    )
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": args.redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "SECRET_KEY": secret_key,
        "LOG_LEVEL": "WARNING",
        "SMTP_ALLOW_PRIVATE_TARGETS": "true",
        "PYTHONPATH": str(REPO_ROOT),
        **LIFTED_QUOTAS,
        **EMAIL_QUOTA,
    }
    try:
        await asyncio.gather(sink.start("/stats"), api.start("/health/live"))
        progress("email", "sink and API up; creating the deliveries")
        ids = await create_deliveries(api.base_url, smtp_port, args.deliveries)
        progress("email", f"{len(ids)} deliveries created; baseline run 1")
        await api.stop()
        first = await run_baseline(len(ids), sink, smtp_port) if args.baselines else None
        progress("email", "baseline run 1 done; starting the worker")
        ours = await run_ours(args, ids, sink, env, conn)
        progress("email", f"ours {ours['rate']:,.0f}/s; baseline run 2")
        second = await run_baseline(len(ids), sink, smtp_port) if args.baselines else None
    finally:
        await asyncio.gather(sink.stop(), api.stop())
        await conn.close()
        await drop_pg_database(args.pg_server, pg_name)
        await clear_redis(args.redis_url, prefix)
    from app.channels.smtp_pool import MAX_CONNECTIONS_PER_SERVER

    n = len(ids)
    base = None
    if first is not None and second is not None:
        base = {k: (first[k] + second[k]) / 2 for k in first}
    print("email_throughput: one `chatapi worker` process vs a bare aiosmtplib loop, same sink")
    print(f"  {machine}")
    print(
        f"  {n} e-mail deliveries to one aiosmtpd sink; worker --concurrency "
        f"{args.worker_threads}; {MAX_CONNECTIONS_PER_SERVER} SMTP sessions per server both sides"
    )
    head = ("deliveries/s", "span s", "CPU ms/delivery", "sink CPU ms/msg")
    print(f"  {'':<34}" + "".join(f"{h:>18}" for h in head))
    rows = [("ours: chatapi worker", ours)] + (
        [("baseline: bare aiosmtplib", base)] if base else []
    )
    for name, fig in rows:
        cells = (
            f"{fig['rate']:,.0f}", f"{fig['span']:.2f}", f"{fig['cpu'] / n * 1000:.2f}",
            f"{fig['sink_cpu'] / n * 1000:.3f}",
        )  # fmt: skip
        print(f"  {name:<34}" + "".join(f"{c:>18}" for c in cells))
    if first is not None and second is not None:
        print(f"  baseline runs: {first['rate']:,.0f} and {second['rate']:,.0f}/s")
    print(f"  ours from the ring to the last delivered_at: {ours['rate_db']:,.0f}/s")
    if base:
        print(
            f"  ratio ours/baseline: throughput {ours['rate'] / base['rate']:.2f}x, "
            f"CPU per delivery {ours['cpu'] / base['cpu']:.2f}x"
        )
    print(
        f"  check: sink got {ours['received']:.0f} over {ours['connections']:.0f} SMTP "
        f"connections; statuses {ours['statuses']}; {ours['attempts']} attempt rows"
    )
    write_figures(
        args.json,
        "email_throughput.py",
        [
            Figure(
                figure="#21 e-mail",
                what=f"e-mail deliveries/s, one worker process ({n:,} to an aiosmtpd sink)",
                ours=(
                    f"{ours['rate']:,.0f}/s ({ours['cpu'] / n * 1000:.2f} ms CPU each, "
                    f"{ours['connections']:.0f} connections)"
                ),
                baseline=(
                    f"bare aiosmtplib {base['rate']:,.0f}/s ({base['cpu'] / n * 1000:.2f} ms CPU each)"
                    if base
                    else "none (--no-baselines)"
                ),
                ratio=ours["rate"] / base["rate"] if base else None,
                goal="ours ≥ 500/s",
                met=meets(ours["rate"], ">=", 500),
                driver_cpu=f"sink {ours['sink_cpu'] / ours['span']:.0%}",
            )
        ],
    )
    if args.profile:
        print_profile(Path(args.profile))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument(
        "--worker-threads", type=int, default=8, help="chatapi worker --concurrency"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for ours")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    parser.add_argument("--profile", help="py-spy collapsed stacks of the worker to this file")
    add_json_argument(parser)
    parser.add_argument(
        "--no-baselines",
        dest="baselines",
        action="store_false",
        help="run ours alone (profiling); no ratio is printed",
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(json.loads(args.serve))
        return
    require_local(args.pg_server)
    require_local(args.redis_url)
    try:
        import uvloop

        uvloop.run(run(args))
    except BenchError as exc:
        sys.exit(f"email_throughput: {exc}")


if __name__ == "__main__":
    main()
