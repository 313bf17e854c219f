"""`kill -9` of the worker while 2,000 webhook deliveries are in flight loses none of them.

The real processes on a throwaway PostgreSQL + Redis: `chatapi serve`, `chatapi worker`,
`chatapi beat`, and a receiver verifying every request with `standardwebhooks`. The receiver
holds requests after the first few hundred, so the kill lands with deliveries mid-request
and more of them leased, queued, or prefetched by the dying worker. A second worker and the
beat sweep (expired leases, rows whose message died with the worker) finish the work.
Delivery is at-least-once: requests the dead worker made but never recorded are sent again
with the same `webhook-id`; the test prints how many.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from app.core.config import Settings
from tests.faults.stack import (
    Stack,
    add_signed_endpoints,
    api_client,
    running_signing_receiver,
    send,
    sigkill,
    until,
)

SENDS = 20
ENDPOINTS = 100  # one delivery per endpoint per send: 2,000 deliveries
TOTAL = SENDS * ENDPOINTS


@pytest.mark.slow
async def test_a_worker_killed_mid_run_loses_no_delivery(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.serve()
    stack.beat()
    async with running_signing_receiver() as receiver, api_client(stack.base) as api:
        tenant = await api.tenant()
        await add_signed_endpoints(api, tenant, receiver, ENDPOINTS)
        receiver.hold_after(300)
        worker = stack.worker("worker-1")
        started = time.monotonic()
        for i in range(SENDS):
            await send(
                api,
                tenant,
                {
                    "channels": ["webhook"],
                    "webhook": {"event_type": "order.shipped", "payload": {"send": i}},
                },
            )
        await until(lambda: receiver.held >= 20, 60, "requests in flight at the receiver")
        seen_at_kill = len(receiver.seen)
        sigkill(worker)
        receiver.release()  # the held requests' worker is gone: their answers go nowhere
        assert 0 < seen_at_kill < TOTAL
        stack.worker("worker-2")
        finished = await stack.wait_all_delivered(
            tenant.id,
            TOTAL,
            timeout=120,
            progress=lambda: f"receiver saw {len(receiver.seen)} ids",
        )
        ids = await stack.delivery_ids(tenant.id)
        assert set(receiver.seen) == ids  # every delivery reached the receiver, no stray id
        assert receiver.forged == 0
        print(
            f"\nkill -9 mid-run: {TOTAL} deliveries, {seen_at_kill} distinct ids seen before "
            f"the kill, all delivered {finished - started:.1f}s after the first send; "
            f"{receiver.duplicates} duplicate requests (same webhook-id again) in "
            f"{receiver.requests} requests"
        )


BURST = 500


@pytest.mark.slow
async def test_a_worker_killed_during_a_burst_to_one_endpoint_leaves_no_dead_letter(
    make_stack: Callable[..., Stack],
) -> None:
    """500 sends to one healthy endpoint (far beyond its in-flight cap) with the default
    retry schedule; the worker is killed with the cap's requests held at the receiver and
    the rest refused by the cap. Nothing may end `failed`: the refusals spent no attempt,
    and the killed worker's claims are re-claimed once their lease ends."""
    stack = make_stack(
        DELIVERY_RETRY_SCHEDULE=Settings.model_fields["DELIVERY_RETRY_SCHEDULE"].default,
        WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT=4,
    )
    stack.serve()
    stack.beat()
    async with running_signing_receiver() as receiver, api_client(stack.base) as api:
        receiver.delay = 0.05
        tenant = await api.tenant()
        await add_signed_endpoints(api, tenant, receiver, 1)
        receiver.hold_after(40)
        worker = stack.worker("worker-1")
        body = {"channels": ["webhook"], "webhook": {"event_type": "t", "payload": {}}}
        gate = asyncio.Semaphore(16)

        async def one() -> None:
            async with gate:
                await send(api, tenant, body)

        await asyncio.gather(*(one() for _ in range(BURST)))
        await until(lambda: receiver.held >= 4, 60, "the cap's requests held at the receiver")
        sigkill(worker)
        receiver.release()
        stack.worker("worker-2")
        counts = await stack.wait_all_final(
            tenant.id, BURST, timeout=120, progress=lambda: f"receiver saw {receiver.requests}"
        )
        assert counts == {"delivered": BURST}, counts
        rows = await stack.deliveries(tenant.id)
        assert set(receiver.seen) == {d.id for d in rows}
        assert receiver.forged == 0
        # Only a claim that may have sent its request counts; the held ones were sent.
        assert max(d.attempts for d in rows) <= 2
        recorded = await stack.attempts(tenant.id)
        assert [a.outcome for a in recorded] == ["delivered"] * BURST
    print(
        f"\nkill -9 during a {BURST}-send burst to one endpoint: all delivered; "
        f"{receiver.duplicates} duplicate requests in {receiver.requests}"
    )
