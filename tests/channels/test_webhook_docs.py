"""The OpenAPI document's `webhooks` section describes the requests the webhook channel really
makes: its body and Standard Webhooks headers, checked against requests a receiver got."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from app.channels.base import OutcomeKind, WebhookEndpoint
from app.channels.webhook import WebhookChannel, WebhookTarget
from app.core.ids import new_id
from app.main import create_app
from app.notifications.operational import DeliveryExhaustedData, EndpointDisabledData
from tests.channels.conftest import context
from tests.channels.receiver import Receiver, running_receiver
from tests.channels.test_webhook import new_secret
from tests.conftest import app_client, make_settings
from tests.support.schemas import errors

SIGNATURE_HEADERS = {"webhook-id", "webhook-timestamp", "webhook-signature"}


@pytest.fixture(scope="module")
async def spec(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('docs') / 'docs.db'}"
    app = create_app(make_settings(url), run_embedded_worker=False)
    async for http in app_client(app):
        yield dict((await http.get("/api/v1/openapi.json")).json())


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


def _webhook(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(spec["webhooks"][name]["post"])


async def test_every_webhook_event_is_described(spec: dict[str, Any]) -> None:
    assert set(spec["webhooks"]) == {"{event_type}", "delivery.exhausted", "endpoint.disabled"}
    for name in spec["webhooks"]:
        op = _webhook(spec, name)
        headers = {p["name"] for p in op["parameters"] if p["in"] == "header" and p["required"]}
        assert headers == SIGNATURE_HEADERS, name
        assert op["requestBody"]["required"] is True
        assert "application/json" in op["requestBody"]["content"]
        # What the receiver's answer means: 2xx delivered, 410 disables, the rest retried.
        assert {"200", "410", "default"} <= set(op["responses"]), name
        assert op["description"], name


async def _deliver(
    receiver: Receiver, event_type: str, payload: dict[str, Any]
) -> tuple[dict[str, str], bytes]:
    channel = WebhookChannel(allow_private=True, timeout=5.0)
    try:
        endpoint = WebhookEndpoint(new_id(), receiver.url("/docs"), (new_secret(),))
        target = WebhookTarget(new_id(), new_id(), endpoint=endpoint)
        content = {"event_type": event_type, "payload": payload}
        outcome = await channel.send(target, content, context())
    finally:
        await channel.aclose()
    assert outcome.kind is OutcomeKind.DELIVERED
    got = receiver.requests[-1]
    return got.headers, got.body


@pytest.mark.parametrize(
    ("name", "event_type", "payload"),
    [
        ("{event_type}", "order.shipped", {"order_id": "o_1", "total": 12.5}),
        (
            "delivery.exhausted",
            "delivery.exhausted",
            DeliveryExhaustedData(
                delivery_id=new_id(),
                notification_id=new_id(),
                channel="email",
                recipient={"user_id": new_id(), "email": "ada@example.com"},
                attempts=8,
                last_error="550 mailbox unavailable",
            ).model_dump(mode="json"),
        ),
        (
            "endpoint.disabled",
            "endpoint.disabled",
            EndpointDisabledData(endpoint_id=new_id()).model_dump(mode="json"),
        ),
    ],
)
async def test_a_real_request_matches_its_description(
    spec: dict[str, Any], receiver: Receiver, name: str, event_type: str, payload: dict[str, Any]
) -> None:
    headers, body = await _deliver(receiver, event_type, payload)
    op = _webhook(spec, name)
    assert set(headers) >= SIGNATURE_HEADERS
    for param in op["parameters"]:
        assert errors(spec, param["schema"], headers[param["name"]]) == [], param["name"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert errors(spec, schema, orjson.loads(body)) == []
    # And the description is not so loose that anything matches.
    assert errors(spec, schema, {"type": event_type, "data": payload}) != []
