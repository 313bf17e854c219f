"""A misconfigured SMTP server fails the delivery after one attempt, with the reason, instead
of being retried for hours (issue 20, point 8); a peer that is not SMTP is recorded as such
without its bytes (point 3). The embedded relay (SQLite, in-process worker), public API only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.channels.banner import BANNERS, MARKER, banner_server
from tests.channels.test_email import Recorder, SmtpHost
from tests.notifications.relay import (
    Relay,
    attempts,
    running_relay,
    send,
    wait_for_status,
)
from tests.support.api import Tenant


@pytest.fixture
async def relay(own_sqlite_url: str) -> AsyncIterator[Relay]:
    async for r in running_relay(own_sqlite_url):
        yield r


@pytest.fixture
def smtp() -> Iterator[SmtpHost]:
    host = SmtpHost(Recorder())
    yield host
    host.stop()


async def _configure(relay: Relay, tenant: Tenant, port: int, security: str) -> None:
    body = {
        "host": "127.0.0.1",
        "port": port,
        "security": security,
        "from_email": "relay@shop.example",
    }
    r = await relay.api.http.put("/api/v1/email-config", json=body, headers=tenant.auth)
    assert r.status_code == 200, r.text


async def _mail(relay: Relay, tenant: Tenant) -> dict[str, Any]:
    body = {
        "channels": ["email"],
        "recipients": [{"email": "ops@example.com"}],
        "email": {"subject": "Shipped", "text": "On its way"},
    }
    sent = await send(relay.api, tenant, body)
    return await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "failed"})


async def test_starttls_against_a_server_without_it_fails_after_one_attempt(
    relay: Relay, smtp: SmtpHost
) -> None:
    tenant = await relay.api.tenant()
    # The default `security` is starttls; aiosmtpd here, like Mailpit on :1025, has none.
    await _configure(relay, tenant, smtp.port, "starttls")
    done = await _mail(relay, tenant)

    assert done["status"] == "failed", done
    [delivery] = done["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    [attempt] = await attempts(relay.api, tenant, done["id"])
    assert "STARTTLS" in attempt["error"] and '"none"' in attempt["error"]
    assert smtp.recorder.messages == []

    # Sentinel: with the setting the server needs, the same relay delivers.
    await _configure(relay, tenant, smtp.port, "none")
    assert (await _mail(relay, tenant))["status"] == "delivered"
    assert len(smtp.recorder.messages) == 1


async def test_a_non_smtp_peer_is_recorded_without_its_bytes(relay: Relay) -> None:
    tenant = await relay.api.tenant()
    with banner_server(BANNERS["nats"]) as nats:
        await _configure(relay, tenant, nats.port, "none")
        done = await _mail(relay, tenant)
    assert done["status"] == "failed", done
    [delivery] = done["deliveries"]
    assert delivery["attempts"] == 1
    [attempt] = await attempts(relay.api, tenant, done["id"])
    assert "not an SMTP server" in attempt["error"]
    assert attempt["reply"] is None and attempt["response_code"] is None
    assert MARKER not in repr(done) + repr(attempt)
