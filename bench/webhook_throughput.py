"""Webhook delivery throughput (P4): one `chatapi worker` process against a bare httpx loop.

Both POST to the same fast local receiver (a raw ASGI app on uvicorn + httptools answering
200 with an empty body, in its own process, counting requests and noting the first and
last arrival), with the same body size and the same signing (Standard Webhooks HMAC over
every request, `app.channels.webhook.sign`) and the same number of requests in flight.

- ours: `--deliveries` N webhook deliveries are created up front through the real API
  (`POST /notifications/send`, channel webhook, `--endpoints` E endpoint ids per send, so
  N/E sends; the API runs without Redis so its own doorbell goes nowhere), then one real
  `chatapi worker --concurrency T` process (Redis broker, PostgreSQL) is started, and when
  it is ready the bench rings every id (`app.worker.doorbell.delivery_messages`: 100 ids per
  Celery message, like the API). Measured: N / (last - first delivery at the receiver),
  and from the ring to the last `delivered_at` in the database. The per-endpoint in-flight
  cap is raised by env (`WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT=--cap`) so the cap never
  answers "busy" (that would park deliveries for a retry in 5 s), and the per-endpoint
  webhook quota likewise (`RATE_LIMIT_WEBHOOKS_PER_SECOND_PER_ENDPOINT`, default 20/s:
  10 endpoints would cap the run at 200/s and defer the rest to a sweep this bench does
  not run); the quota is still counted (one Redis hit per delivery). Any delivery not
  `delivered` at the end is reported.
- baselines: the bench process itself, a semaphore of the same in-flight bound, signing
  each body, N POSTs to the same receiver, before and after ours (two runs each, the mean
  reported): one `httpx.AsyncClient` (the issue's baseline) and one `aiohttp.ClientSession`
  (the client the webhook channel uses), both on uvloop.

In flight: ours is bounded by min(T * 50 per task message, E * cap) and by the webhook
channel's pool (app.channels.webhook.MAX_CONNECTIONS); the baselines use that same figure.
Printed: deliveries/s of each and the ratios, the CPU of the worker, of the baseline loops
and of the receiver.

    python bench/webhook_throughput.py                    # 5,000 deliveries, 10 endpoints
    python bench/webhook_throughput.py --deliveries 2000 --profile /tmp/worker.txt
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
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
    machine_line,
    meets,
    progress,
    require_local,
    run_uvicorn,
    write_figures,
)

SCRIPT = Path(__file__).resolve()
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
PAYLOAD = {"order": "A-1042", "items": 3, "note": "x" * 200}
DELIVERY_CONCURRENCY = 50  # app.notifications.delivery.DELIVERY_CONCURRENCY
CLIENTS = ("httpx", "aiohttp")


def receiver_app() -> Any:
    """Raw ASGI: every POST answers 200 (empty body) and is counted; GET /stats, POST /reset."""
    state: dict[str, float] = {"count": 0, "first": 0.0, "last": 0.0}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:  # drain the body
            message = await receive()
            more = message.get("more_body", False)
        body = b""
        if scope["method"] == "POST" and scope["path"] == "/hook":
            now = time.time()
            if not state["count"]:
                state["first"] = now
            state["count"] += 1
            state["last"] = now
        elif scope["path"] == "/stats":
            body = json.dumps(state).encode()
        elif scope["path"] == "/reset":
            state.update(count=0, first=0.0, last=0.0)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def serve(spec: dict[str, Any]) -> None:
    """Child process: the receiver or the API."""
    if spec["kind"] == "receiver":
        run_uvicorn(receiver_app(), spec["port"])
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
        WEBHOOK_ALLOW_PRIVATE_TARGETS=True,
    )
    run_uvicorn(create_app(settings, run_embedded_worker=False), spec["port"])


async def create_deliveries(api_url: str, hook_url: str, args: argparse.Namespace) -> list[str]:
    """A client, E endpoints, N/E webhook sends; every delivery id."""
    async with httpx.AsyncClient(base_url=api_url, timeout=60.0) as http:
        r = await http.post(
            "/api/v1/clients",
            json={"name": "bench webhooks"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        if r.status_code != 201:
            raise BenchError(f"creating the client: {r.status_code} {r.text[:300]}")
        master = {"Authorization": f"Bearer {r.json()['master_key']}"}
        endpoints = []
        for i in range(args.endpoints):
            r = await http.post(
                "/api/v1/webhook-endpoints",
                json={"url": f"{hook_url}?e={i}", "description": f"bench {i}"},
                headers=master,
            )
            if r.status_code != 201:
                raise BenchError(f"creating an endpoint: {r.status_code} {r.text[:300]}")
            endpoints.append(r.json()["id"])
        body = {
            "channels": ["webhook"],
            "webhook": {
                "endpoint_ids": endpoints,
                "event_type": "order.shipped",
                "payload": PAYLOAD,
            },
        }
        sends = args.deliveries // args.endpoints
        ids: list[str] = []
        gate = asyncio.Semaphore(16)

        async def one() -> None:
            async with gate:
                r = await http.post("/api/v1/notifications/send", json=body, headers=master)
            if r.status_code != 202:
                raise BenchError(f"send: {r.status_code} {r.text[:300]}")
            ids.extend(d["id"] for d in r.json()["deliveries"])

        await asyncio.gather(*(one() for _ in range(sends)))
        return ids


class Worker:
    """`chatapi worker` in a child process; ready once Celery logs `ready`."""

    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop())
            prefix="chatapi-bench-worker-", suffix=".log", delete=False
        )
        chatapi = Path(sys.executable).with_name("chatapi")
        self.proc = subprocess.Popen(
            [str(chatapi), "worker", f"--concurrency={concurrency}", "--loglevel=INFO"],
            cwd=str(REPO_ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"worker exited:\n{self.text()[-3000:]}")
            if " ready." in self.text():
                return
            await asyncio.sleep(0.2)
        raise BenchError(f"worker not ready after {timeout}s:\n{self.text()[-3000:]}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # Celery's warm shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


async def receiver_stats(http: httpx.AsyncClient) -> dict[str, float]:
    stats: dict[str, float] = (await http.get("/stats")).json()
    return stats


async def run_ours(
    args: argparse.Namespace,
    ids: list[str],
    receiver: ServerProcess,
    env: dict[str, str],
    conn: asyncpg.Connection,
) -> dict[str, float]:
    from app.core.config import Settings
    from app.worker.celery_app import configure_celery
    from app.worker.doorbell import delivery_messages

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=env["DATABASE_URL"],
        REDIS_URL=env["REDIS_URL"],
        REDIS_KEY_PREFIX=env["REDIS_KEY_PREFIX"],
    )
    celery = configure_celery(settings)
    worker = Worker(env, args.worker_threads)
    spy: subprocess.Popen[bytes] | None = None
    try:
        await worker.ready()
        progress("P4", "worker ready; ringing")
        async with httpx.AsyncClient(base_url=receiver.base_url) as http:
            await http.post("/reset")
            client_id = await conn.fetchval("SELECT client_id FROM deliveries LIMIT 1")
            if args.profile:
                spy = subprocess.Popen(  # noqa: ASYNC220 (starting it is quick)
                    [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                     str(worker.proc.pid), "--format", "raw", "--rate", "200",
                     "--output", args.profile, "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                )  # fmt: skip
                await asyncio.sleep(1.0)
            cpu0, rcpu0 = worker.cpu_seconds(), receiver.cpu_seconds()
            t0 = time.time()
            for name, task_args, queue in delivery_messages(client_id, ids):
                await asyncio.to_thread(celery.send_task, name, args=task_args, queue=queue)
            deadline = time.monotonic() + args.timeout
            while True:
                stats = await receiver_stats(http)
                if stats["count"] >= len(ids) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            # The receiver has them all; the worker may still be recording the last ones.
            while time.monotonic() < deadline:
                done = await conn.fetchval(
                    "SELECT count(*) FROM deliveries WHERE status NOT IN ('pending','sending')"
                )
                if done >= len(ids):
                    break
                await asyncio.sleep(0.1)
            cpu, rcpu = worker.cpu_seconds() - cpu0, receiver.cpu_seconds() - rcpu0
            stats = await receiver_stats(http)
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
        "rate": stats["count"] / span if span > 0 else float("nan"),
        "rate_db": statuses.get("delivered", 0) / (float(last_db or t0) - t0),
        "cpu": cpu,
        "receiver_cpu": rcpu,
        "span": span,
        "statuses": statuses,  # type: ignore[dict-item]
        "attempts": attempts,
    }


def baseline_request(secret: str, i: int, created: str) -> tuple[bytes, dict[str, str]]:
    """One signed body and its Standard Webhooks headers, as the channel builds them."""
    from app.channels.webhook import sign

    msg_id = f"msg_{i:026d}"
    body = json.dumps({"type": "order.shipped", "timestamp": created, "data": PAYLOAD}).encode()
    ts = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign([secret], msg_id, ts, body),
    }
    return body, headers


async def run_baseline(
    args: argparse.Namespace, n: int, inflight: int, receiver: ServerProcess, client: str
) -> dict[str, float]:
    """N signed POSTs through one `client` ("httpx" or "aiohttp"), `inflight` at a time."""
    import aiohttp

    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    url = f"{receiver.base_url}/hook?e=0"
    created = "2026-11-30T12:00:00Z"
    # The same pool as the webhook channel's (app.channels.webhook.MAX_CONNECTIONS).
    from app.channels.webhook import MAX_CONNECTIONS

    inflight = min(inflight, MAX_CONNECTIONS)
    limits = httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight)
    gate = asyncio.Semaphore(inflight)
    errors = retries = 0

    async def post_httpx(http: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> int:
        return (await http.post(url, content=body, headers=headers)).status_code

    async def post_aiohttp(
        http: aiohttp.ClientSession, body: bytes, headers: dict[str, str]
    ) -> int:
        async with http.post(url, data=body, headers=headers, allow_redirects=False) as r:
            await r.read()
            return r.status

    async with (
        httpx.AsyncClient(base_url=receiver.base_url) as control,
        httpx.AsyncClient(limits=limits, timeout=15.0, trust_env=False) as via_httpx,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=inflight),
            timeout=aiohttp.ClientTimeout(total=15.0),
        ) as via_aiohttp,
    ):
        await control.post("/reset")

        async def one(i: int) -> None:
            nonlocal errors, retries
            body, headers = baseline_request(secret, i, created)
            async with gate:
                for attempt in range(3):
                    try:
                        if client == "httpx":
                            status = await post_httpx(via_httpx, body, headers)
                        else:
                            status = await post_aiohttp(via_aiohttp, body, headers)
                        break
                    except (httpx.TransportError, aiohttp.ClientConnectionError):
                        # A pooled keep-alive connection the receiver closed meanwhile.
                        retries += 1
                        if attempt == 2:
                            raise
            if status != 200:
                errors += 1

        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        rcpu0 = receiver.cpu_seconds()
        await asyncio.gather(*(one(i) for i in range(n)))
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        rcpu = receiver.cpu_seconds() - rcpu0
        stats = await receiver_stats(control)
    span = stats["last"] - stats["first"]
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    if errors:
        raise BenchError(f"baseline {client}: {errors} non-200 answers")
    return {
        "rate": stats["count"] / span,
        "cpu": cpu,
        "receiver_cpu": rcpu,
        "span": span,
        "retries": retries,
    }


def mean_of(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """The two runs of one baseline averaged (rate, CPU, span; retries summed)."""
    out = {k: (a[k] + b[k]) / 2 for k in ("rate", "cpu", "receiver_cpu", "span")}
    out["retries"] = a["retries"] + b["retries"]
    out["runs"] = (a["rate"], b["rate"])  # type: ignore[assignment]
    return out


async def run(args: argparse.Namespace) -> None:
    machine = machine_line()
    pg_name, url = await create_pg_database(args.pg_server)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    secret_key = secrets.token_urlsafe(32)
    receiver = ServerProcess(SCRIPT, {"kind": "receiver"}, "receiver")
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
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT": str(args.cap),
        "RATE_LIMIT_WEBHOOKS_PER_SECOND_PER_ENDPOINT": "1000000",
        "PYTHONPATH": str(REPO_ROOT),
        **LIFTED_QUOTAS,
    }
    inflight = min(args.worker_threads * DELIVERY_CONCURRENCY, args.endpoints * args.cap)
    try:
        await asyncio.gather(receiver.start("/stats"), api.start("/health/live"))
        progress("P4", "receiver and API up; creating the deliveries")
        ids = await create_deliveries(api.base_url, f"{receiver.base_url}/hook", args)
        progress("P4", f"{len(ids)} deliveries created; baseline run 1")
        await api.stop()
        clients = CLIENTS if args.baselines else ()
        first = {c: await run_baseline(args, len(ids), inflight, receiver, c) for c in clients}
        progress("P4", "baseline run 1 done; starting the worker")
        ours = await run_ours(args, ids, receiver, env, conn)
        progress("P4", f"ours {ours['rate']:,.0f}/s; baseline run 2")
        # The second round in the other order, so neither client always runs first.
        second = {
            c: await run_baseline(args, len(ids), inflight, receiver, c) for c in clients[::-1]
        }
    finally:
        await asyncio.gather(receiver.stop(), api.stop())
        await conn.close()
        await drop_pg_database(args.pg_server, pg_name)
        await clear_redis(args.redis_url, prefix)
    clients = tuple(first)
    base = {c: mean_of(first[c], second[c]) for c in clients}
    n = len(ids)
    from app.channels.webhook import MAX_CONNECTIONS

    print("webhook_throughput: one `chatapi worker` process vs bare client loops, same receiver")
    print(f"  {machine}")
    print(
        f"  {n} deliveries to {args.endpoints} endpoints ({len(PAYLOAD['note']) + 60}-byte "
        f"payload, signed both sides); worker --concurrency {args.worker_threads}, "
        f"WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT={args.cap}; at most "
        f"{min(inflight, MAX_CONNECTIONS)} requests in flight, all"
    )
    head = ("deliveries/s", "span s", "CPU ms/delivery", "receiver CPU ms/req")
    print(f"  {'':<34}" + "".join(f"{h:>20}" for h in head))
    rows = [("ours: chatapi worker", ours)] + [
        (f"baseline: bare {c} loop", base[c]) for c in clients
    ]
    for name, fig in rows:
        cells = (
            f"{fig['rate']:,.0f}", f"{fig['span']:.2f}", f"{fig['cpu'] / n * 1000:.2f}",
            f"{fig['receiver_cpu'] / n * 1000:.3f}",
        )  # fmt: skip
        print(f"  {name:<34}" + "".join(f"{c:>20}" for c in cells))
    for c in clients:
        r1, r2 = base[c]["runs"]  # type: ignore[misc]
        print(
            f"  baseline {c} runs: {r1:,.0f} and {r2:,.0f}/s "
            f"({base[c]['retries']:.0f} transport retries)"
        )
    print(f"  ours from the ring to the last delivered_at: {ours['rate_db']:,.0f}/s")
    for c in clients:
        print(
            f"  ratio ours/{c}: throughput {ours['rate'] / base[c]['rate']:.2f}x, "
            f"CPU per delivery {ours['cpu'] / base[c]['cpu']:.2f}x"
        )
    print(
        f"  check: receiver got {ours['received']:.0f}; statuses {ours['statuses']}; "
        f"{ours['attempts']} attempt rows"
    )
    httpx_base = base.get("httpx")
    write_figures(
        args.json,
        "webhook_throughput.py",
        [
            Figure(
                figure="P4",
                what=f"webhook deliveries/s, one worker process ({n:,} to {args.endpoints} endpoints)",
                ours=f"{ours['rate']:,.0f}/s ({ours['cpu'] / n * 1000:.2f} ms CPU each)",
                baseline=(
                    f"bare httpx loop {httpx_base['rate']:,.0f}/s "
                    f"({httpx_base['cpu'] / n * 1000:.2f} ms CPU each)"
                    if httpx_base
                    else "none (--no-baselines)"
                ),
                ratio=ours["rate"] / httpx_base["rate"] if httpx_base else None,
                goal="ours ≥ 500/s",
                met=meets(ours["rate"], ">=", 500),
                driver_cpu=f"receiver {ours['receiver_cpu'] / ours['span']:.0%}",
            )
        ],
    )
    if args.profile:
        print_profile(Path(args.profile))


def print_profile(path: Path, top: int = 30) -> None:
    """Inclusive share of samples per frame (py-spy raw collapsed stacks)."""
    from collections import Counter

    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            inclusive[frame] += int(count)
    print(f"  py-spy on the worker: {total} samples -> {path}")
    for frame, n in inclusive.most_common(top):
        print(f"    {n / total:6.1%}  {frame[:120]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--cap", type=int, default=50, help="WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT")
    parser.add_argument(
        "--worker-threads", type=int, default=8, help="chatapi worker --concurrency"
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for ours")
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
        sys.exit(f"webhook_throughput: {exc}")


if __name__ == "__main__":
    main()
