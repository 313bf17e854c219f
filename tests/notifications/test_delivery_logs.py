"""What the relay says at INFO: a delivery that ends badly, an endpoint it disables, and a
sweep that rang something, each in one line; nothing for the routine (a delivered message,
a sweep that found nothing). Embedded relay, real HTTP receiver."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from tests.channels.receiver import Receiver, running_receiver
from tests.notifications.relay import Relay, add_endpoint, running_relay, send, wait_for_status
from tests.notifications.test_delivery_e2e import webhook_body


@pytest.fixture
async def relay(own_sqlite_url: str) -> AsyncIterator[Relay]:
    async for r in running_relay(own_sqlite_url):
        yield r


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


def lines(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


async def _logged(caplog: pytest.LogCaptureFixture, message: str, timeout: float = 5.0) -> None:
    """Wait until a line with `message` has been logged (or fail after `timeout`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not lines(caplog, message):
        assert asyncio.get_running_loop().time() < deadline, f"{message!r} was never logged"
        await asyncio.sleep(0.02)


async def test_a_failed_delivery_and_the_endpoint_it_disabled_are_logged_at_info(
    relay: Relay, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatapi")
    tenant = await relay.api.tenant()
    endpoint_id, _ = await add_endpoint(relay.app, tenant, receiver.url("/gone"))
    receiver.answer("/gone", 410)
    sent = await send(relay.api, tenant, webhook_body())
    done = await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "failed"})
    assert done["status"] == "failed"
    [delivery] = done["deliveries"]
    # Both lines are written after the result's commit, so the status can be seen first.
    await _logged(caplog, "delivery failed")
    await _logged(caplog, "webhook endpoint disabled")
    [failed] = lines(caplog, "delivery failed")
    assert failed.levelno == logging.INFO
    expected = {
        "client_id": tenant.id,
        "notification_id": sent["id"],
        "delivery_id": delivery["id"],
        "channel": "webhook",
        "attempts": 1,
    }
    assert {key: failed.__dict__.get(key) for key in expected} == expected
    assert "410" in failed.__dict__["error"]
    [disabled] = lines(caplog, "webhook endpoint disabled")
    assert disabled.levelno == logging.INFO
    assert disabled.__dict__["endpoint_id"] == endpoint_id
    assert disabled.__dict__["client_id"] == tenant.id


async def test_a_delivered_message_logs_nothing_and_a_sweep_only_what_it_rang(
    relay: Relay, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatapi")
    tenant = await relay.api.tenant()
    await add_endpoint(relay.app, tenant, receiver.url("/flaky"))
    receiver.script("/flaky", 500)  # then 200: the retry is rung by the sweep (every 0.2 s)
    sent = await send(relay.api, tenant, webhook_body())
    done = await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "failed"})
    assert done["status"] == "delivered"
    assert lines(caplog, "delivery failed") == []
    sweeps = lines(caplog, "notifications sweep")
    assert sweeps, "the sweep that rang the retry says so"
    # Sweeps ran every 0.2 s throughout; only those that rang or expired something logged.
    assert all(r.__dict__["due"] + r.__dict__["expired_leases"] > 0 for r in sweeps), [
        r.__dict__ for r in sweeps
    ]
    assert sum(r.__dict__["due"] for r in sweeps) >= 1
