"""A misconfigured SMTP server fails the delivery after one attempt, with the reason, instead
of being retried for hours (issue 20, point 8); a peer that is not SMTP is recorded as such
without its bytes (point 3); an unopenable configuration fails only the e-mail copies of a
batch that mixes channels (issue 21). The embedded relay (SQLite, in-process worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook

from app.core.clock import utcnow
from app.core.crypto import SecretBox
from app.email import repository as email_repo
from app.runtime import Runtime
from tests.channels.banner import BANNERS, MARKER, banner_server
from tests.channels.receiver import Receiver, running_receiver
from tests.channels.test_email import Recorder, SmtpHost
from tests.notifications.relay import (
    Relay,
    add_endpoint,
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
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
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


async def _sealed_elsewhere_config(relay: Relay, tenant: Tenant) -> None:
    """An SMTP configuration whose password was sealed under another SECRET_KEY."""
    runtime: Runtime = relay.app.state.runtime
    async with runtime.db.session() as session:
        await email_repo.upsert(
            session,
            tenant.id,
            host="127.0.0.1",
            port=2525,
            username="relay",
            password_sealed=SecretBox("another deployment's key").seal("hunter2"),
            security="none",
            from_email="relay@shop.example",
            from_name="Shop",
            fallback=None,
            now=utcnow(),
        )
        await session.commit()


async def test_an_unopenable_email_config_fails_only_the_email_copies_of_a_mixed_batch(
    relay: Relay, receiver: Receiver
) -> None:
    """One send with e-mail and webhook copies is one claimed batch: the e-mail config's
    error belongs to the e-mail deliveries; the webhook copy still goes out, signed."""
    tenant = await relay.api.tenant()
    # Subscribed to the send's type only: the failed e-mails' `delivery.exhausted` events
    # would reach a catch-all endpoint too.
    _, secret = await add_endpoint(relay.app, tenant, receiver.url("/hook"), ["order.shipped"])
    await _sealed_elsewhere_config(relay, tenant)
    body = {
        "channels": ["email", "webhook"],
        "recipients": [{"email": "ops@example.com"}, {"email": "ada@example.com"}],
        "email": {"subject": "Shipped", "text": "On its way"},
        "webhook": {"event_type": "order.shipped", "payload": {"order": "A-1"}},
    }
    sent = await send(relay.api, tenant, body)
    done = await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "partial", "failed"})

    by_channel = {
        ch: sorted(d["status"] for d in done["deliveries"] if d["channel"] == ch)
        for ch in ("email", "webhook")
    }
    assert by_channel == {"email": ["failed", "failed"], "webhook": ["delivered"]}, done
    [got] = receiver.requests
    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "order.shipped" and payload["data"] == {"order": "A-1"}
    recorded = await attempts(relay.api, tenant, sent["id"])
    assert sorted(a["channel"] for a in recorded) == ["email", "email", "webhook"]
    for attempt in recorded:
        if attempt["channel"] == "email":
            assert "SECRET_KEY" in attempt["error"], attempt
        else:
            assert (attempt["outcome"], attempt["response_code"]) == ("delivered", 204)
