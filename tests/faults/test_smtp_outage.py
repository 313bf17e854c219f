"""The tenant's SMTP server goes down for 30 s, then comes back on the same port: every
e-mail delivery retries on DELIVERY_RETRY_SCHEDULE and ends delivered, and its attempts say
what happened — failed attempts carrying the connection error, then the one that succeeded.

The test spends the outage waiting, so everything around it is kept short: the schedule's
gaps are small where the server comes back (a delivery waits at most one short gap after
that), and the processes start side by side. The server also drops the relay's pooled
connection when it stops, so reusing a dead pooled connection is covered too.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from aiosmtpd.controller import Controller

from tests.channels.test_email import Recorder
from tests.faults.stack import Stack, api_client, send, set_smtp, until
from tests.support.processes import free_port

OUTAGE_SECONDS = 30.0
RECIPIENTS = 50
# Cumulative 1, 3, 7, 15, 23, 26, 29, 32, 35, 38, 41, 44 s (±10% each): several failures
# during the outage, 3 s gaps when it ends, and attempts left well after it (even if every
# gap came 10% short, the last attempt is due after 39 s).
SCHEDULE = [1, 2, 4, 8, 8, 3, 3, 3, 3, 3, 3, 3]


def _mail(i: int) -> dict[str, object]:
    return {
        "channels": ["email"],
        "recipients": [{"email": f"r{i}-{n}@shop.example"} for n in range(RECIPIENTS)],
        "email": {"subject": f"Order {i}", "text": "On its way"},
    }


@pytest.mark.slow
async def test_smtp_down_then_up_retries_every_email_until_delivered(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(DELIVERY_RETRY_SCHEDULE=SCHEDULE)
    stack.beat()
    stack.worker()
    stack.serve()
    recorder = Recorder()
    port = free_port()
    smtp = Controller(recorder, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        async with api_client(stack.base) as api:
            tenant = await api.tenant()
            await set_smtp(api, tenant, port)
            await send(api, tenant, {**_mail(0), "recipients": [{"email": "w@x.example"}]})
            await until(lambda: len(recorder.messages) == 1, 60, "the warm-up e-mail")
            smtp.stop()  # also drops the relay's pooled connection
            down_at = time.monotonic()
            sent = await send(api, tenant, _mail(1))
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            failed_so_far = sum(a.outcome != "delivered" for a in await stack.attempts(tenant.id))
            smtp = Controller(recorder, hostname="127.0.0.1", port=port)
            smtp.start()
            up_at = time.monotonic()
            finished = await stack.wait_all_delivered(tenant.id, RECIPIENTS + 1, timeout=60)
    finally:
        smtp.stop()
    assert sorted(m["To"] for m in recorder.messages[1:]) == sorted(
        f"r1-{n}@shop.example" for n in range(RECIPIENTS)
    )
    by_delivery: dict[str, list[str]] = defaultdict(list)
    errors: dict[str, list[str | None]] = defaultdict(list)
    for attempt in await stack.attempts(tenant.id):
        if attempt.notification_id == sent["id"]:
            by_delivery[attempt.delivery_id].append(attempt.outcome)
            errors[attempt.delivery_id].append(attempt.error)
    assert len(by_delivery) == RECIPIENTS
    for delivery_id, outcomes in by_delivery.items():
        # At least two failures while the server was away, then exactly one success, last.
        assert outcomes[-1] == "delivered" and outcomes.count("delivered") == 1, outcomes
        assert len(outcomes) >= 3 and set(outcomes[:-1]) == {"retry"}, outcomes
        for error in errors[delivery_id][:-1]:
            assert error is not None and "connect" in error.lower(), error
    print(
        f"\nSMTP down {OUTAGE_SECONDS:.0f}s: {RECIPIENTS} e-mails, {failed_so_far} failed "
        f"attempts during the outage, all delivered {finished - up_at:.1f}s after it came back"
    )
