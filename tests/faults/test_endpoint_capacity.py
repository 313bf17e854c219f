"""Our own limits defer, never fail (DESIGN.md §4): a burst far beyond the per-endpoint
in-flight cap, to one healthy receiver, ends with every delivery `delivered` on its first
attempt, and a worker stopped by SIGTERM gives back what it had not sent without spending it.

Real processes on a throwaway PostgreSQL + Redis (tests/faults/stack.py): `chatapi serve`,
`chatapi worker`, `chatapi beat`, and a receiver that verifies every request with
`standardwebhooks` and answers after a delay. The retry schedule, the cap (4 in flight per
endpoint and worker), the endpoint quota (20/s) and the lease (60 s) are the defaults, so a
row that waited for a timer instead of a free slot could not finish within the test.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from app.core.config import Settings
from tests.faults.stack import (
    SigningReceiver,
    Stack,
    add_endpoints,
    api_client,
    bulk_scheduled_webhooks,
    running_signing_receiver,
    until,
)
from tests.support.api import Api, Tenant

DEFAULTS: dict[str, Any] = {
    "DELIVERY_RETRY_SCHEDULE": Settings.model_fields["DELIVERY_RETRY_SCHEDULE"].default,
    "DELIVERY_LEASE_SECONDS": 60,
    "WEBHOOK_TIMEOUT_SECONDS": 15,
    "WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT": 4,
    "RATE_LIMIT_WEBHOOKS_PER_SECOND_PER_ENDPOINT": 20,
}
SENDS = 300
ANSWER_AFTER_SECONDS = 0.2


async def _one_endpoint(api: Api, tenant: Tenant, receiver: SigningReceiver) -> str:
    [(endpoint_id, secret)] = await add_endpoints(api, tenant, [receiver.url("/hook")])
    receiver.expect("/hook", secret)
    return endpoint_id


async def _assert_endpoint_healthy(api: Api, tenant: Tenant, endpoint_id: str) -> None:
    r = await api.http.get(f"/api/v1/webhook-endpoints/{endpoint_id}", headers=tenant.auth)
    assert r.status_code == 200, r.text
    endpoint = r.json()
    assert endpoint["failure_count"] == 0, endpoint
    assert endpoint["failing_since"] is None, endpoint
    assert endpoint["disabled"] is False, endpoint


@pytest.mark.slow
async def test_a_scheduled_burst_to_one_healthy_endpoint_is_all_delivered_first_time(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(**DEFAULTS)
    stack.serve()
    stack.beat()
    worker = stack.worker()
    async with running_signing_receiver() as receiver, api_client(stack.base) as api:
        # A worker that starts after the sends fell due rings them only a lease later
        # (its first sweep takes the last two intervals as new): not what this measures.
        await until(lambda: "ready." in worker.output(), 60, "the worker to start")
        receiver.delay = ANSWER_AFTER_SECONDS
        tenant = await api.tenant()
        endpoint_id = await _one_endpoint(api, tenant, receiver)
        # All due at one instant: the sweep rings all 300 together.
        send_at = await bulk_scheduled_webhooks(stack.db, tenant.id, endpoint_id, SENDS, 2)
        counts = await stack.wait_all_final(
            tenant.id, SENDS, timeout=120, progress=lambda: f"receiver saw {receiver.requests}"
        )
        took = (datetime.now(timezone.utc) - send_at).total_seconds()
        assert counts == {"delivered": SENDS}, counts
        rows = await stack.deliveries(tenant.id)
        assert sorted({d.attempts for d in rows}) == [1], sorted(d.attempts for d in rows)
        recorded = await stack.attempts(tenant.id)
        assert [a.outcome for a in recorded] == ["delivered"] * SENDS
        assert set(receiver.seen) == {d.id for d in rows}
        assert receiver.requests == SENDS and receiver.forged == 0
        await _assert_endpoint_healthy(api, tenant, endpoint_id)
    print(
        f"\n{SENDS} sends due together to one endpoint answering after "
        f"{ANSWER_AFTER_SECONDS}s: all delivered on the first attempt, {took:.1f}s after send_at"
    )


@pytest.mark.slow
async def test_a_worker_stopped_by_sigterm_gives_back_what_it_had_not_sent(
    make_stack: Callable[..., Stack],
) -> None:
    # Held requests must not time out before the SIGTERM: the test holds them for a while.
    stack = make_stack(**{**DEFAULTS, "WEBHOOK_TIMEOUT_SECONDS": 45})
    stack.serve()
    stack.beat()
    worker = stack.worker("worker-1")
    n = 40
    async with running_signing_receiver() as receiver, api_client(stack.base) as api:
        await until(lambda: "ready." in worker.output(), 60, "the worker to start")
        tenant = await api.tenant()
        endpoint_id = await _one_endpoint(api, tenant, receiver)
        receiver.hold_after(0)  # every request waits: the cap (4) stays full
        # One batch (the sweep rings them together): 4 requests held, 36 refused by the cap.
        await bulk_scheduled_webhooks(stack.db, tenant.id, endpoint_id, n, 1)
        await until(lambda: receiver.held >= 4, 60, "the cap's requests in flight")

        async def given_back() -> bool:
            # Refused by the cap: back as they were, no attempt spent, nothing recorded.
            rows = await stack.deliveries(tenant.id)
            waiting = [d for d in rows if d.status == "pending"]
            return len(waiting) == n - 4 and all(d.attempts == 0 for d in waiting)

        try:
            await until(given_back, 30, "the refused deliveries to be given back unspent")
        except AssertionError:
            rows = await stack.deliveries(tenant.id)
            raise AssertionError(
                sorted((d.status, d.attempts, d.last_error) for d in rows), stack.logs()
            ) from None
        worker.proc.send_signal(signal.SIGTERM)  # a warm shutdown: requests in flight finish
        receiver.release()
        await asyncio.to_thread(worker.proc.wait, 60)  # the receiver answers meanwhile
        rows = await stack.deliveries(tenant.id)
        undelivered = [d for d in rows if d.status != "delivered"]
        assert undelivered, "the stopped worker should have left work behind"
        assert all(d.status == "pending" and d.attempts == 0 for d in undelivered), [
            (d.status, d.attempts, d.last_error) for d in undelivered
        ]
        recorded = await stack.attempts(tenant.id)
        assert all(a.outcome == "delivered" for a in recorded), [
            (a.outcome, a.error) for a in recorded
        ]
        stack.worker("worker-2")
        # Well within the 60 s lease: the stopped worker handed its rows over and rang for
        # them, so the next worker takes them as it starts, not by the sweep's backstop.
        counts = await stack.wait_all_final(tenant.id, n, timeout=30)
        assert counts == {"delivered": n}, counts
        assert sorted({d.attempts for d in await stack.deliveries(tenant.id)}) == [1]
        assert receiver.requests == n and receiver.duplicates == 0
