"""PostgreSQL stopped mid-run, then started again, under the same API, worker and beat
processes: while it is down every request that needs it is refused quickly with 503
problem+json and /health/ready says not ready; once it is back the same processes serve
again (no restart), every send that was accepted (202) has all its deliveries delivered,
and a send refused with 503, retried with its Idempotency-Key, is accepted exactly once.

The server is stopped in PostgreSQL's `fast` mode (what `pg_ctl stop` does by default): it
ends every session and keeps every committed transaction. A crash (`immediate`) would lose
the last commits on the fault server, which runs with `synchronous_commit=off` for speed:
a loss made by that setting, not by the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from app.core.errors import PROBLEM_CONTENT_TYPE
from scripts.throwaway import Server
from tests.faults.stack import (
    Stack,
    add_signed_endpoints,
    api_client,
    running_signing_receiver,
    until,
)
from tests.support.api import Api, Tenant

ENDPOINTS = 5  # deliveries per send
SEND_INTERVAL_SECONDS = 0.1
# The receiver holds requests after the first HOLD_AFTER of the stream until PostgreSQL is
# down, so the stop lands with at least HELD deliveries mid-request (and more leased, queued).
HOLD_AFTER = 50
HELD = 5
ACCEPTED_AFTER = 10  # sends accepted after the start, by the same API process
OUTAGE_SECONDS = 2.0  # several beat sweeps fail meanwhile
# "Refused quickly": an outage must not turn into requests that hang.
ANSWER_WITHIN_SECONDS = 5.0
REFUSALS_WANTED = 5  # 503s seen by the stream while the server is down


def _body(key: str) -> dict[str, object]:
    return {
        "channels": ["webhook"],
        "webhook": {"event_type": "order.shipped", "payload": {"send": key}},
    }


@dataclass
class Stream:
    """Sends one notification every SEND_INTERVAL_SECONDS, each with its own
    Idempotency-Key, and keeps every answer: (key, status, body)."""

    api: Api
    tenant: Tenant
    answers: list[tuple[str, int, dict[str, object]]] = field(default_factory=list)
    slowest: float = 0.0

    async def post(self, key: str) -> httpx.Response:
        started = time.monotonic()
        r = await self.api.http.post(
            "/api/v1/notifications/send",
            json=_body(key),
            headers={**self.tenant.auth, "Idempotency-Key": key},
            timeout=ANSWER_WITHIN_SECONDS,
        )
        self.slowest = max(self.slowest, time.monotonic() - started)
        return r

    async def run(self) -> None:
        for i in range(100_000):
            key = f"stream-{i}"
            r = await self.post(key)
            assert r.status_code in (202, 503), r.text[:1000]
            if r.status_code == 503:
                assert r.headers["content-type"] == PROBLEM_CONTENT_TYPE, r.headers
                assert r.json()["type"].endswith("/database-unavailable"), r.text
            self.answers.append((key, r.status_code, r.json()))
            await asyncio.sleep(SEND_INTERVAL_SECONDS)

    def count(self, status: int, since: int = 0) -> int:
        return sum(s == status for _, s, _ in self.answers[since:])

    def keys(self, status: int) -> list[str]:
        return [k for k, s, _ in self.answers if s == status]


@contextlib.asynccontextmanager
async def streaming(stream: Stream) -> AsyncIterator[asyncio.Task[None]]:
    """Run the stream in the background for the block; its failure fails the test."""
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        if task.done():
            task.result()  # raise what went wrong
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def stopped(server: Server) -> AsyncIterator[None]:
    """PostgreSQL stopped (fast mode) for the block, and started again however it ends:
    the package's other fault tests use the same server."""
    try:
        await asyncio.to_thread(server.stop, "fast")
        yield
    finally:
        await asyncio.to_thread(server.start_again)


@pytest.mark.slow
async def test_api_answers_503_while_postgres_is_down_and_the_same_processes_recover(
    make_stack: Callable[..., Stack], fault_postgres: Server
) -> None:
    stack = make_stack()
    # Worker and beat first: the three start up side by side while serve is awaited.
    children = [stack.beat(), stack.worker(), stack.serve()]
    async with running_signing_receiver() as receiver, api_client(stack.base) as api:
        tenant = await api.tenant()
        await add_signed_endpoints(api, tenant, receiver, ENDPOINTS)
        stream = Stream(api, tenant)
        await stream.post("warm-up")  # the worker is up and its pool warm before the fault
        await until(lambda: len(receiver.seen) == ENDPOINTS, 60, "the warm-up deliveries")
        receiver.hold_after(ENDPOINTS + HOLD_AFTER)
        started = time.monotonic()
        async with streaming(stream) as task:
            await until(lambda: receiver.held >= HELD, 30, "deliveries in flight")
            async with stopped(fault_postgres):
                # The held deliveries are answered now: their results cannot be recorded.
                held, down_at, mark = receiver.held, time.monotonic(), len(stream.answers)
                receiver.release()
                await until(
                    lambda: (
                        task.done()
                        or (
                            stream.count(503, mark) >= REFUSALS_WANTED
                            and time.monotonic() - down_at >= OUTAGE_SECONDS
                        )
                    ),
                    30,
                    "503s while PostgreSQL is down",
                )
                ready = await api.http.get("/health/ready", timeout=ANSWER_WITHIN_SECONDS)
                assert ready.status_code == 503, ready.text
                assert ready.headers["content-type"] == PROBLEM_CONTENT_TYPE
                assert ready.json()["checks"]["database"].startswith("failed"), ready.text
                # A read needs the database as much as a send does.
                listed = await api.http.get(
                    "/api/v1/notifications", headers=tenant.auth, timeout=ANSWER_WITHIN_SECONDS
                )
                assert listed.status_code == 503, listed.text
            up_at, mark = time.monotonic(), len(stream.answers)
            await until(
                lambda: task.done() or stream.count(202, mark) >= ACCEPTED_AFTER,
                30,
                "sends accepted again after PostgreSQL came back",
            )
            recovered_at = time.monotonic()
        assert (await api.http.get("/health/ready")).status_code == 200

        refused = stream.keys(503)
        accepted = {k: body["id"] for k, s, body in stream.answers if s == 202}
        for key in refused:
            # The same request again, as a client told "503, Retry-After" does. 200 would
            # mean the refused request had committed before its connection died: still once.
            r = await stream.post(key)
            assert r.status_code in (200, 202), r.text
            accepted[key] = r.json()["id"]
            again = await stream.post(key)
            assert again.status_code == 200 and again.json()["id"] == accepted[key], again.text
        assert len(set(accepted.values())) == len(accepted)  # one notification per key

        total = (len(accepted) + 1) * ENDPOINTS  # and the warm-up's
        finished = await stack.wait_all_delivered(
            tenant.id, total, timeout=60, progress=lambda: f"receiver saw {len(receiver.seen)}"
        )
        assert set(receiver.seen) == await stack.delivery_ids(tenant.id)
        assert receiver.forged == 0
        for child in children:  # the same processes: none exited, none was restarted
            assert child.proc.poll() is None, f"{child.args} exited:\n{stack.logs()}"
    print(
        f"\nPostgreSQL down {up_at - down_at:.1f}s with {held} webhook requests in flight: "
        f"{len(stream.answers)} sends, {len(refused)} answered 503 (slowest answer "
        f"{stream.slowest:.2f}s), sends accepted again {recovered_at - up_at:.1f}s after it "
        f"came back; {total} deliveries all delivered {finished - started:.1f}s after the "
        f"stream began; {receiver.duplicates} duplicate requests in {receiver.requests}"
    )
