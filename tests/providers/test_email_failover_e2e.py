"""The email channel through a tenant's provider chain, end to end (the embedded relay, on
both databases): the first SMTP provider answers 421 or refuses the connection, the second
delivers, in ONE attempt that names the second; a notification with enough e-mail
recipients takes the bulk chain; a tenant with no provider fails with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.channels.test_email import Recorder, SmtpHost
from tests.notifications.relay import Relay, attempts, running_relay, send, wait_for_status
from tests.support.api import Tenant
from tests.support.processes import free_port


@pytest.fixture
async def relay(db_url: str) -> AsyncIterator[Relay]:
    async for r in running_relay(db_url):
        yield r


@pytest.fixture
def hosts() -> Iterator[list[SmtpHost]]:
    started: list[SmtpHost] = []
    yield started
    for host in started:
        host.stop()


def _start(hosts: list[SmtpHost], recorder: Recorder | None = None) -> SmtpHost:
    host = SmtpHost(recorder or Recorder())
    hosts.append(host)
    return host


async def _provider(relay: Relay, tenant: Tenant, name: str, port: int) -> None:
    body = {
        "name": name,
        "type": "smtp",
        "settings": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "from_email": "relay@shop.example",
        },
    }
    r = await relay.api.http.post("/api/v1/providers", json=body, headers=tenant.auth)
    assert r.status_code == 201, r.text


async def _route(relay: Relay, tenant: Tenant, body: dict[str, Any]) -> None:
    r = await relay.api.http.put("/api/v1/routing/email", json=body, headers=tenant.auth)
    assert r.status_code == 200, r.text


async def _mail(relay: Relay, tenant: Tenant, *to: str) -> dict[str, Any]:
    body = {
        "channels": ["email"],
        "recipients": [{"email": address} for address in to],
        "email": {"subject": "Shipped", "text": "On its way"},
    }
    sent = await send(relay.api, tenant, body)
    return await wait_for_status(relay.api, tenant, sent["id"], {"delivered", "failed"})


@pytest.mark.parametrize("first_fails", ["421", "refused"])
async def test_the_second_provider_delivers_in_the_same_attempt(
    relay: Relay, hosts: list[SmtpHost], first_fails: str
) -> None:
    tenant = await relay.api.tenant()
    second = _start(hosts)
    if first_fails == "421":
        first_port = _start(hosts, Recorder(rcpt_reply="421 4.3.2 Service shutting down")).port
    else:
        first_port = free_port()  # nothing listens: the connection is refused
    await _provider(relay, tenant, "first", first_port)
    await _provider(relay, tenant, "second", second.port)
    await _route(relay, tenant, {"providers": ["first", "second"]})

    done = await _mail(relay, tenant, "ops@example.com")

    assert done["status"] == "delivered", done
    [delivery] = done["deliveries"]
    assert delivery["attempts"] == 1
    [attempt] = await attempts(relay.api, tenant, done["id"])
    assert (attempt["outcome"], attempt["served_by"]) == ("delivered", "second"), attempt
    assert attempt["error"] is not None and attempt["error"].startswith("first:")
    [message] = second.recorder.messages
    assert message["To"] == "ops@example.com"


async def test_a_send_with_enough_recipients_takes_the_bulk_chain(
    relay: Relay, hosts: list[SmtpHost]
) -> None:
    tenant = await relay.api.tenant()
    transactional, bulk = _start(hosts), _start(hosts)
    await _provider(relay, tenant, "transactional", transactional.port)
    await _provider(relay, tenant, "bulk", bulk.port)
    await _route(
        relay,
        tenant,
        {"providers": ["transactional"], "bulk": {"min_recipients": 3, "providers": ["bulk"]}},
    )

    small = await _mail(relay, tenant, "a@example.com", "b@example.com")
    large = await _mail(relay, tenant, "c@example.com", "d@example.com", "e@example.com")

    assert (small["status"], large["status"]) == ("delivered", "delivered")
    assert sorted(m["To"] for m in transactional.recorder.messages) == [
        "a@example.com",
        "b@example.com",
    ]
    assert sorted(m["To"] for m in bulk.recorder.messages) == [
        "c@example.com",
        "d@example.com",
        "e@example.com",
    ]
    served = {a["served_by"] for a in await attempts(relay.api, tenant, large["id"])}
    assert served == {"bulk"}


async def test_without_a_route_the_smtp_providers_serve_and_without_any_it_fails(
    relay: Relay, hosts: list[SmtpHost]
) -> None:
    tenant = await relay.api.tenant()
    done = await _mail(relay, tenant, "ops@example.com")
    assert done["status"] == "failed", done
    [attempt] = await attempts(relay.api, tenant, done["id"])
    assert attempt["error"] == "no e-mail provider is configured"

    host = _start(hosts)
    await _provider(relay, tenant, "only", host.port)
    done = await _mail(relay, tenant, "ops@example.com")
    assert done["status"] == "delivered", done
    [attempt] = await attempts(relay.api, tenant, done["id"])
    assert attempt["served_by"] == "only"
