"""The scaled relay as separate processes on throwaway servers, for fault tests.

`Stack` runs `chatapi serve`, `chatapi worker` and `chatapi beat` as child processes on a
PostgreSQL database and a Redis server of the fault tests' own (scripts/throwaway.py), so a
test may SIGKILL a worker or restart Redis without touching the suite's shared servers.
`SigningReceiver` is a fast HTTP receiver that verifies every request with
`standardwebhooks` and counts how often it saw each `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, insert, select, update
from sqlmodel import col
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.core.clock import utcnow
from app.core.config import Settings
from app.core.db import Database
from app.core.ids import new_id
from app.notifications.models import Delivery, DeliveryAttempt, Notification
from app.notifications.repository import NewDelivery, create_notification
from app.users.models import User
from scripts.throwaway import Server
from tests.conftest import ADMIN_KEY, child_env, make_settings
from tests.support.api import Api, Tenant, bearer
from tests.support.processes import ChildProcess, free_port, wait_until

# Short enough that a dead worker's leases are re-claimed within seconds, longer than any
# channel timeout (config refuses otherwise).
FAULT_SETTINGS: dict[str, Any] = {
    "DELIVERY_LEASE_SECONDS": 5,
    "WEBHOOK_TIMEOUT_SECONDS": 3,
    "SMTP_TIMEOUT_SECONDS": 3,
    "DELIVERY_SWEEP_INTERVAL_SECONDS": 0.5,
    "DELIVERY_RETRY_SCHEDULE": [1, 1, 2, 2, 2],
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": True,
    "SMTP_ALLOW_PRIVATE_TARGETS": True,  # the tests' aiosmtpd servers are on 127.0.0.1
    "HEARTBEAT_INTERVAL_SECONDS": 3600,
    "LOG_LEVEL": "INFO",
    # These tests are about losing nothing, not about quotas (tests/ratelimit has those):
    # the default 1,000 e-mails an hour would defer most of a 10,000-recipient send.
    "RATE_LIMIT_EMAILS_PER_HOUR": 100_000,
    "RATE_LIMIT_WEBHOOKS_PER_SECOND_PER_ENDPOINT": 1_000,
}


class Stack:
    """API, worker(s) and beat as child processes; started on demand, all stopped at exit."""

    def __init__(self, database_url: str, redis: Server, workdir: Path, **overrides: Any) -> None:
        self.redis = redis
        self.workdir = workdir
        self.settings: Settings = make_settings(
            database_url,
            REDIS_URL=redis.url,
            REDIS_KEY_PREFIX="faults:",
            **{**FAULT_SETTINGS, **overrides},
        )
        self.env = child_env(self.settings)
        self.db = Database(database_url)
        self._children: list[ChildProcess] = []
        self.base = ""

    def spawn(self, args: list[str], name: str) -> ChildProcess:
        """Start `chatapi ARGS` (its output in WORKDIR/NAME.log)."""
        child = ChildProcess(args, self.env, self.workdir, self.workdir / f"{name}.log")
        self._children.append(child)
        return child

    def serve(self, name: str = "serve") -> ChildProcess:
        """`chatapi serve` on a free port; returns once /health/live answers."""
        return self.serve_many(name)[0]

    def serve_many(self, *names: str) -> list[ChildProcess]:
        """One `chatapi serve` per name, each on a free port, started together (they start
        up side by side); returns once every one answers /health/live. `base` is the last
        one's URL, each child's `base` its own."""
        children = []
        for name in names:
            port = free_port()
            child = self.spawn(["serve", "--port", str(port)], name)
            child.base = self.base = f"http://127.0.0.1:{port}"
            children.append(child)

        def live(child: ChildProcess) -> bool:
            if child.proc.poll() is not None:
                raise AssertionError(f"serve exited early:\n{child.output()}")
            try:
                return httpx.get(f"{child.base}/health/live", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        for child in children:
            wait_until(functools.partial(live, child), 60, f"{child.log_path.stem} to answer")
        return children

    def worker(self, name: str = "worker", concurrency: int = 2) -> ChildProcess:
        """`chatapi worker` (a thread pool sharing one event loop)."""
        return self.spawn(["worker", "--concurrency", str(concurrency)], name)

    def beat(self) -> ChildProcess:
        """`chatapi beat` (rings the due-delivery sweep every 0.5 s here)."""
        return self.spawn(["beat"], "beat")

    def logs(self, limit: int = 4000) -> str:
        """The tail of every child's output, for failure messages."""
        return "\n".join(f"--- {c.log_path.name}\n{c.output()[-limit:]}" for c in self._children)

    async def close(self) -> None:
        """Stop every child (SIGTERM, then SIGKILL) and close the engine."""
        # Side by side: each graceful shutdown takes seconds, one after another they add up.
        await asyncio.gather(*(asyncio.to_thread(child.stop) for child in self._children))
        await self.db.dispose()

    async def statuses(self, client_id: str) -> dict[str, int]:
        """See `statuses`."""
        return await statuses(self.db, client_id)

    async def wait_all_delivered(
        self, client_id: str, total: int, timeout: float, progress: Callable[[], str] = str
    ) -> float:
        """See `wait_all_delivered`; a timeout also shows the children's logs."""
        return await wait_all_delivered(
            self.db, client_id, total, timeout, lambda: f"{progress()}\n{self.logs()}"
        )

    async def wait_all_final(
        self, client_id: str, total: int, timeout: float, progress: Callable[[], str] = str
    ) -> dict[str, int]:
        """See `wait_all_final`; a timeout also shows the children's logs."""
        return await wait_all_final(
            self.db, client_id, total, timeout, lambda: f"{progress()}\n{self.logs()}"
        )

    async def deliveries(self, client_id: str) -> list[Delivery]:
        """Every delivery row of the tenant."""
        async with self.db.read_session() as session:
            rows = await session.execute(
                select(Delivery).where(col(Delivery.client_id) == client_id)
            )
            return list(rows.scalars())

    async def delivery_ids(self, client_id: str) -> set[str]:
        """See `delivery_ids`."""
        return await delivery_ids(self.db, client_id)

    async def attempts(self, client_id: str) -> list[DeliveryAttempt]:
        """See `attempts`."""
        return await attempts(self.db, client_id)


# ---- the database, read directly (the truth the API reports from)


async def statuses(db: Database, client_id: str) -> dict[str, int]:
    """The tenant's deliveries counted by status."""
    async with db.read_session() as session:
        rows = (
            await session.execute(
                select(col(Delivery.status), func.count())
                .where(col(Delivery.client_id) == client_id)
                .group_by(col(Delivery.status))
            )
        ).all()
    return {str(status): int(n) for status, n in rows}


async def delivery_ids(db: Database, client_id: str) -> set[str]:
    """Every delivery id of the tenant."""
    async with db.read_session() as session:
        rows = await session.execute(
            select(col(Delivery.id)).where(col(Delivery.client_id) == client_id)
        )
        return {str(r) for r in rows.scalars()}


async def attempts(db: Database, client_id: str) -> list[DeliveryAttempt]:
    """Every attempt of the tenant, in order."""
    async with db.read_session() as session:
        rows = await session.execute(
            select(DeliveryAttempt)
            .where(col(DeliveryAttempt.client_id) == client_id)
            .order_by(col(DeliveryAttempt.attempted_at), col(DeliveryAttempt.id))
        )
        return list(rows.scalars())


ACTIVE = ("pending", "sending", "retrying")


async def wait_all_final(
    db: Database, client_id: str, total: int, timeout: float, progress: Callable[[], str] = str
) -> dict[str, int]:
    """Poll until all `total` deliveries of the tenant have left pending/sending/retrying
    (delivered, failed…); their counts by status. A test then asserts what they ended as,
    so a dead letter fails it at once instead of after a delivery timeout."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await statuses(db, client_id)
        if sum(counts.values()) == total and not any(counts.get(s) for s in ACTIVE):
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(f"still active after {timeout}s: {counts} {progress()}")
        await asyncio.sleep(0.25)


async def wait_all_delivered(
    db: Database, client_id: str, total: int, timeout: float, progress: Callable[[], str] = str
) -> float:
    """Poll until all `total` deliveries of the tenant are `delivered`; when (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await statuses(db, client_id)
        if counts.get("delivered", 0) == total:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"not all delivered after {timeout}s: {counts} {progress()}")
        await asyncio.sleep(0.25)


async def bulk_users(db: Database, client_id: str, n: int, domain: str = "fanout.example") -> None:
    """`n` users `bulk-<i>` with e-mail addresses, inserted in one statement (setup speed)."""
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "id": new_id(),
            "client_id": client_id,
            "external_id": f"bulk-{i}",
            "display_name": None,
            "email": f"user{i}@{domain}",
            "metadata": {},
            "created_at": now,
            "updated_at": now,
        }
        for i in range(n)
    ]
    async with db.session() as session:
        await session.execute(insert(User.__table__), rows)  # type: ignore[attr-defined]
        await session.commit()


async def bulk_scheduled_webhooks(
    db: Database, client_id: str, endpoint_id: str, n: int, due_in: float
) -> datetime:
    """`n` webhook notifications to one endpoint, stored as `POST /notifications/send`
    stores them (the repository), then all made due at one instant `due_in` seconds from
    the end of storing (one UPDATE); that instant. Hundreds of sends through a child API take
    longer than a test should wait for a `send_at`."""
    now = utcnow()
    later = now + timedelta(days=1)
    async with db.session() as session:
        for i in range(n):
            notification = Notification(
                id=new_id(),
                client_id=client_id,
                status="scheduled",
                channels=["webhook"],
                content={"webhook": {"event_type": "t", "payload": {"i": i}}},
                send_at=later,
                created_at=now,
            )
            delivery = NewDelivery("webhook", {"endpoint_id": endpoint_id}, endpoint_id=endpoint_id)
            await create_notification(session, client_id, notification, [delivery], now=now)
        await session.commit()
    send_at = utcnow() + timedelta(seconds=due_in)
    async with db.session() as session:
        await session.execute(
            update(Notification)
            .where(col(Notification.client_id) == client_id)
            .values(send_at=send_at)
        )
        await session.execute(
            update(Delivery)
            .where(col(Delivery.client_id) == client_id)
            .values(next_attempt_at=send_at)
        )
        await session.commit()
    return send_at


@contextlib.asynccontextmanager
async def api_client(base: str) -> AsyncIterator[Api]:
    """The public API of a running `chatapi serve`."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        yield Api(http, admin_key=ADMIN_KEY)


async def add_endpoints(api: Api, tenant: Tenant, urls: list[str]) -> list[tuple[str, str]]:
    """Webhook endpoints made through POST /webhook-endpoints; (id, secret) each."""
    out = []
    for url in urls:
        r = await api.http.post("/api/v1/webhook-endpoints", json={"url": url}, headers=tenant.auth)
        assert r.status_code == 201, r.text
        out.append((r.json()["id"], r.json()["secret"]))
    return out


async def add_signed_endpoints(
    api: Api, tenant: Tenant, receiver: SigningReceiver, n: int
) -> list[str]:
    """`n` endpoints at the receiver's /hook/<i>, their secrets told to it; their paths."""
    paths = [f"/hook/{i}" for i in range(n)]
    made = await add_endpoints(api, tenant, [receiver.url(p) for p in paths])
    for path, (_, secret) in zip(paths, made, strict=True):
        receiver.expect(path, secret)
    return paths


async def set_smtp(api: Api, tenant: Tenant, port: int) -> None:
    """The tenant's SMTP server is 127.0.0.1:`port`, no TLS (PUT /email-config)."""
    r = await api.http.put(
        "/api/v1/email-config",
        json={
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "from_email": "relay@shop.example",
            "from_name": "Shop",
        },
        headers=tenant.auth,
    )
    assert r.status_code == 200, r.text


async def send(api: Api, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    """POST /notifications/send, expecting 202 (or 200, the same send again).

    As a careful client does: with an Idempotency-Key, retried on a transport error. A
    pooled keep-alive connection the server closes as the request goes out (seen once in a
    loaded CI run) is a ReadError on the client; the key makes the retry the same send, so
    it neither loses nor doubles one. A server that is really gone still fails the test."""
    headers = {**bearer(tenant.master_key), "Idempotency-Key": uuid.uuid4().hex}
    for attempt in range(3):
        try:
            r = await api.http.post("/api/v1/notifications/send", json=body, headers=headers)
            if r.status_code != 409 or attempt == 2:  # 409: the first try is still running
                break
            await asyncio.sleep(1)
        except httpx.TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.5)
    assert r.status_code in (200, 202), r.text[:2000]
    return dict(r.json())


def sigkill(child: ChildProcess) -> None:
    """`kill -9` the child and reap it."""
    child.proc.send_signal(signal.SIGKILL)
    child.proc.wait(10)


@dataclass
class SigningReceiver:
    """Verifies each request's Standard Webhooks signature with its endpoint's secret (by
    path) and counts every verified `webhook-id`; 204 when valid, 401 when not.

    `hold_after(n)`: from the n-th request on, requests wait until `release()` — so a test
    knows deliveries are mid-flight when it strikes. `delay`: every valid request is
    answered that many seconds after it arrived (a healthy but not instant receiver).
    """

    port: int = field(default_factory=free_port)
    secrets: dict[str, Webhook] = field(default_factory=dict)
    seen: Counter[str] = field(default_factory=Counter)
    forged: int = 0
    held: int = 0
    delay: float = 0.0
    _hold_from: int | None = None
    _gate: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def expect(self, path: str, secret: str) -> None:
        self.secrets[path] = Webhook(secret)

    @property
    def requests(self) -> int:
        return sum(self.seen.values())

    @property
    def duplicates(self) -> int:
        """Requests beyond the first for the same webhook-id."""
        return sum(n - 1 for n in self.seen.values())

    def hold_after(self, n: int) -> None:
        self._hold_from = n
        self._gate.clear()

    def release(self) -> None:
        self._hold_from = None
        self._gate.set()

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        verifier = self.secrets.get(request.url.path)
        try:
            if verifier is None:
                raise WebhookVerificationError("unknown path")
            verifier.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.forged += 1
            return Response(status_code=401)
        self.seen[request.headers["webhook-id"]] += 1
        if self._hold_from is not None and self.requests > self._hold_from:
            self.held += 1
            await self._gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        return Response(status_code=204)


@contextlib.asynccontextmanager
async def running_signing_receiver() -> AsyncIterator[SigningReceiver]:
    """Serve a SigningReceiver on 127.0.0.1 in this event loop."""
    receiver = SigningReceiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=receiver.port,
        log_level="warning",
        lifespan="off",
        backlog=2048,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        receiver.release()
        server.should_exit = True
        await task


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll `check` (sync or async) until true; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.05)
