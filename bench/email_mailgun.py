"""Bulk e-mail through Mailgun (#22): N e-mails in one send, through the API and one real
`chatapi worker`, to the fake Mailgun on the bulk chain; beside it the same send through the
`smtp` provider to a local aiosmtpd sink.

Processes, each its own: the API (`chatapi`'s app under uvicorn, PostgreSQL, Redis broker:
its doorbell rings the worker), one `chatapi worker --concurrency T`, the fake Mailgun
(tests/support/fake_mailgun.py: checks the key, parses the form, expands the recipient
variables) and the SMTP sink (bench/email_throughput.py's). Two tenants:

- mailgun: `PUT /routing/email {"providers": ["smtp"], "bulk": {"min_recipients": 1000,
  "providers": ["mailgun"]}}`: an N-recipient send takes the bulk chain;
- baseline: `{"providers": ["smtp"]}` to the sink (10 pooled SMTP sessions per server).

Measured for each: from the send's 202 to the last of its N deliveries in a final status
(polled in PostgreSQL every 20 ms), the worker's CPU over that span, and the driver's (the
fake's or the sink's) CPU. The e-mail quota is lifted (still counted).

    python bench/email_mailgun.py                 # 10,000 e-mails, goal: Mailgun under 10 s
    python bench/email_mailgun.py --emails 2000 --worker-threads 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
from bench.email_throughput import CONTENT, EMAIL_QUOTA, sink_app
from bench.webhook_throughput import Worker

SCRIPT = Path(__file__).resolve()
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
MAILGUN_KEY = "key-bench-" + secrets.token_hex(8)
DOMAIN = "mg.shop.example"
GOAL_SECONDS = 10.0


def serve(spec: dict[str, Any]) -> None:
    """Child process: the fake Mailgun, the SMTP sink or the API."""
    import logging

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    if spec["kind"] == "mailgun":
        from tests.support.fake_mailgun import FakeMailgun

        fake = FakeMailgun(api_key=spec["key"], domains={DOMAIN}, port=spec["port"])
        run_uvicorn(fake.app(), spec["port"])
        return
    if spec["kind"] == "sink":
        run_uvicorn(sink_app(spec["smtp_port"]), spec["port"])
        return
    from app.core.config import Settings
    from app.main import create_app

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=spec["database_url"],
        REDIS_URL=spec["redis_url"],
        REDIS_KEY_PREFIX=spec["prefix"],
        SECRET_KEY=spec["secret_key"],
        ADMIN_API_KEY=spec["admin_key"],  # ADMIN_KEY is made anew in each process
        BCRYPT_ROUNDS=4,
        LOG_LEVEL="WARNING",
        SMTP_ALLOW_PRIVATE_TARGETS=True,
        WEBHOOK_ALLOW_PRIVATE_TARGETS=True,
    )
    run_uvicorn(create_app(settings), spec["port"])


async def tenant(http: httpx.AsyncClient, name: str, providers: list[dict[str, Any]],
                 routing: dict[str, Any]) -> dict[str, str]:  # fmt: skip
    """A client with these providers and e-mail routing; its master key header."""
    r = await http.post(
        "/api/v1/clients", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    if r.status_code != 201:
        raise BenchError(f"creating the client: {r.status_code} {r.text[:300]}")
    master = {"Authorization": f"Bearer {r.json()['master_key']}"}
    for body in providers:
        r = await http.post("/api/v1/providers", json=body, headers=master)
        if r.status_code != 201:
            raise BenchError(f"POST /providers: {r.status_code} {r.text[:300]}")
    r = await http.put("/api/v1/routing/email", json=routing, headers=master)
    if r.status_code != 200:
        raise BenchError(f"PUT /routing/email: {r.status_code} {r.text[:300]}")
    return master


async def one_send(
    http: httpx.AsyncClient,
    master: dict[str, str],
    n: int,
    conn: asyncpg.Connection,
    worker: Worker,
    driver: ServerProcess,
    timeout: float,
) -> dict[str, Any]:
    """One N-recipient send; seconds from its 202 to all N final, and the CPU spent."""
    body = {
        "channels": ["email"],
        "recipients": [{"email": f"user{i}@example.com"} for i in range(n)],
        "email": CONTENT,
    }
    cpu0, dcpu0 = worker.cpu_seconds(), driver.cpu_seconds()
    posted = time.monotonic()
    r = await http.post("/api/v1/notifications/send", json=body, headers=master)
    accepted = time.monotonic()
    if r.status_code != 202:
        raise BenchError(f"send: {r.status_code} {r.text[:300]}")
    notification_id = r.json()["id"]
    query = (
        "SELECT count(*) FROM deliveries WHERE notification_id = $1 "
        "AND status NOT IN ('pending', 'sending', 'retrying')"
    )
    deadline = accepted + timeout
    while (done := await conn.fetchval(query, notification_id)) < n:
        if time.monotonic() > deadline:
            raise BenchError(f"only {done} of {n} final after {timeout:.0f}s")
        await asyncio.sleep(0.02)
    span = time.monotonic() - accepted
    statuses = dict(
        await conn.fetch(  # type: ignore[arg-type]
            "SELECT status, count(*) FROM deliveries WHERE notification_id = $1 GROUP BY status",
            notification_id,
        )
    )
    served = dict(
        await conn.fetch(  # type: ignore[arg-type]
            "SELECT served_by, count(*) FROM delivery_attempts WHERE notification_id = $1 "
            "GROUP BY served_by",
            notification_id,
        )
    )
    return {
        "span": span,
        "send_s": accepted - posted,
        "cpu": worker.cpu_seconds() - cpu0,
        "driver_cpu": driver.cpu_seconds() - dcpu0,
        "statuses": statuses,
        "served": served,
    }


async def run(args: argparse.Namespace) -> None:
    machine = machine_line()
    n = args.emails
    pg_name, url = await create_pg_database(args.pg_server)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    secret_key = secrets.token_urlsafe(32)
    smtp_port = free_port()
    fake = ServerProcess(SCRIPT, {"kind": "mailgun", "key": MAILGUN_KEY}, "mailgun")
    sink = ServerProcess(SCRIPT, {"kind": "sink", "smtp_port": smtp_port}, "sink")
    common = {
        "redis_url": args.redis_url,
        "prefix": prefix,
        "secret_key": secret_key,
        "admin_key": ADMIN_KEY,
    }
    api = ServerProcess(SCRIPT, {"kind": "api", "database_url": url, **common}, "api")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": args.redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "SECRET_KEY": secret_key,
        "LOG_LEVEL": "WARNING",
        "SMTP_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "PYTHONPATH": str(REPO_ROOT),
        **LIFTED_QUOTAS,
        **EMAIL_QUOTA,
    }
    os.environ.update(EMAIL_QUOTA)  # the API child inherits it
    smtp_provider = {
        "name": "smtp",
        "type": "smtp",
        "settings": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                     "from_email": "relay@shop.example", "from_name": "Shop"},
    }  # fmt: skip
    mailgun_provider = {
        "name": "mailgun",
        "type": "mailgun",
        "settings": {"api_key": MAILGUN_KEY, "domain": DOMAIN, "base_url": fake.base_url,
                     "from_email": "relay@shop.example", "from_name": "Shop"},
    }  # fmt: skip
    worker: Worker | None = None
    try:
        await asyncio.gather(fake.start("/_fake/stats"), sink.start("/stats"))
        await api.start("/health/ready")
        worker = Worker(env, args.worker_threads)
        await worker.ready()
        progress("email_mailgun", "API, worker, fake Mailgun and sink up")
        async with httpx.AsyncClient(base_url=api.base_url, timeout=120.0) as http:
            bulk = await tenant(
                http, "bench mailgun", [smtp_provider, mailgun_provider],
                {"providers": ["smtp"], "bulk": {"min_recipients": 1000, "providers": ["mailgun"]}},
            )  # fmt: skip
            plain = await tenant(http, "bench smtp", [smtp_provider], {"providers": ["smtp"]})
            ours = await one_send(http, bulk, n, conn, worker, fake, args.timeout)
            progress("email_mailgun", f"mailgun: {n} final in {ours['span']:.2f}s; smtp next")
            base = await one_send(http, plain, n, conn, worker, sink, args.timeout)
        async with httpx.AsyncClient(base_url=fake.base_url) as control:
            fake_stats = (await control.get("/_fake/stats")).json()
    finally:
        if worker is not None:
            worker.stop()
        await asyncio.gather(api.stop(), fake.stop(), sink.stop())
        await conn.close()
        await drop_pg_database(args.pg_server, pg_name)
        await clear_redis(args.redis_url, prefix)
    print("email_mailgun: one N-recipient send, API -> one `chatapi worker` -> provider")
    print(f"  {machine}")
    print(f"  {n:,} e-mails in one send; worker --concurrency {args.worker_threads}")
    head = ("202 -> all final s", "e-mails/s", "worker CPU ms/e-mail", "driver CPU s")
    print(f"  {'':<40}" + "".join(f"{h:>22}" for h in head))
    for name, fig in (("ours: bulk chain -> fake Mailgun", ours),
                      ("baseline: smtp -> aiosmtpd sink", base)):  # fmt: skip
        cells = (f"{fig['span']:.2f}", f"{n / fig['span']:,.0f}",
                 f"{fig['cpu'] / n * 1000:.3f}", f"{fig['driver_cpu']:.2f}")  # fmt: skip
        print(f"  {name:<40}" + "".join(f"{c:>22}" for c in cells))
    ratio = base["span"] / ours["span"]
    print(f"  ratio smtp/mailgun time: {ratio:.2f}x")
    print(
        f"  the send's own answer (202): mailgun {ours['send_s']:.2f}s, smtp {base['send_s']:.2f}s"
    )
    print(
        f"  check: fake Mailgun got {fake_stats['calls']} calls, {fake_stats['delivered']} "
        f"recipients; statuses mailgun {ours['statuses']}, smtp {base['statuses']}; "
        f"served_by {ours['served']} / {base['served']}"
    )
    goal = meets(ours["span"], "<=", GOAL_SECONDS)
    print(
        f"  goal: {n:,} via Mailgun in under {GOAL_SECONDS:.0f} s: {'met' if goal else 'NOT met'}"
    )
    write_figures(
        args.json,
        "email_mailgun.py",
        [
            Figure(
                figure="#22 bulk e-mail",
                what=f"{n:,} e-mails in one send, 202 -> all final, one worker",
                ours=f"Mailgun bulk chain {ours['span']:.2f} s ({fake_stats['calls']} API calls)",
                baseline=f"smtp to an aiosmtpd sink {base['span']:.2f} s",
                ratio=ratio,
                goal=f"≤ {GOAL_SECONDS:.0f} s",
                met=goal,
                driver_cpu=f"fake {ours['driver_cpu'] / ours['span']:.0%}",
            )
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--worker-threads", type=int, default=8, help="worker --concurrency")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per send")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER)
    add_json_argument(parser)
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
        sys.exit(f"email_mailgun: {exc}")


if __name__ == "__main__":
    main()
