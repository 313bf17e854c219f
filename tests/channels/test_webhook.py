"""The webhook channel against a real HTTP receiver verifying with `standardwebhooks`."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.channels.base import MAX_REPLY_BYTES, Outcome, OutcomeKind, WebhookEndpoint
from app.channels.webhook import WebhookChannel, WebhookTarget
from app.core.clock import ManualClock
from app.core.ids import new_id
from tests.channels.conftest import context
from tests.channels.receiver import Receiver, running_receiver
from tests.support.processes import free_port

CONTENT = {"event_type": "order.shipped", "payload": {"order_id": "o_1", "total": 12.5}}


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


@pytest.fixture
async def channel() -> AsyncIterator[WebhookChannel]:
    ch = WebhookChannel(allow_private=True, timeout=5.0)
    yield ch
    await ch.aclose()


async def post(
    channel: WebhookChannel,
    url: str,
    *,
    secrets_: tuple[str, ...] | None = None,
    endpoint_id: str | None = None,
    delivery_id: str | None = None,
) -> Outcome:
    endpoint = WebhookEndpoint(endpoint_id or new_id(), url, secrets_ or (new_secret(),))
    target = WebhookTarget(delivery_id or new_id(), new_id(), endpoint=endpoint)
    return await channel.send(target, CONTENT, context())


async def test_request_is_a_standard_webhook_the_library_verifies(
    receiver: Receiver, channel: WebhookChannel
) -> None:
    secret, delivery_id = new_secret(), new_id()
    outcome = await post(channel, receiver.url("/ok"), secrets_=(secret,), delivery_id=delivery_id)

    assert outcome.kind is OutcomeKind.DELIVERED
    assert outcome.response_code == 204
    got = receiver.requests[-1]
    payload = Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "order.shipped"
    assert payload["data"] == CONTENT["payload"]
    assert payload["timestamp"].endswith("Z")
    assert got.headers["webhook-id"] == delivery_id
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "ChatAPI-Webhooks/1.0"
    # The reply is stored as text, so it is asked for uncompressed.
    assert "accept-encoding" not in got.headers


async def test_signature_made_with_another_secret_does_not_verify(
    receiver: Receiver, channel: WebhookChannel
) -> None:
    await post(channel, receiver.url("/ok"))
    got = receiver.requests[-1]
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(got.body, got.headers)


async def test_during_rotation_both_old_and_new_secret_verify(
    receiver: Receiver, channel: WebhookChannel
) -> None:
    old, new = new_secret(), new_secret()
    await post(channel, receiver.url("/ok"), secrets_=(new, old))
    got = receiver.requests[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(got.body, got.headers)["type"] == "order.shipped"
    assert Webhook(old).verify(got.body, got.headers)["type"] == "order.shipped"


async def test_retries_of_one_delivery_keep_webhook_id_and_body(
    receiver: Receiver, channel: WebhookChannel
) -> None:
    endpoint = WebhookEndpoint(new_id(), receiver.url("/ok"), (new_secret(),))
    target = WebhookTarget(new_id(), new_id(), endpoint=endpoint)
    ctx = context()
    await channel.send(target, CONTENT, ctx)
    await channel.send(
        target,
        CONTENT,
        context(notification_id=ctx.notification_id, created_at=ctx.created_at, attempt=2),
    )
    first, second = receiver.requests[-2:]
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == target.delivery_id
    assert first.body == second.body


async def test_redirect_is_not_followed_and_is_retried(
    receiver: Receiver, channel: WebhookChannel
) -> None:
    receiver.answer("/moved", 302, location=receiver.url("/elsewhere"))
    outcome = await post(channel, receiver.url("/moved"))
    await post(channel, receiver.url("/sentinel"))

    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.response_code == 302
    assert outcome.error is not None and "not followed" in outcome.error
    assert receiver.paths()[-2:] == ["/moved", "/sentinel"]
    assert "/elsewhere" not in receiver.paths()


async def test_gone_fails_permanently_and_asks_to_disable_the_endpoint(
    receiver: Receiver, channel: WebhookChannel
) -> None:
    receiver.answer("/gone", 410, b"unsubscribed")
    outcome = await post(channel, receiver.url("/gone"))
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.disable_endpoint
    assert (outcome.response_code, outcome.reply) == (410, "unsubscribed")


async def test_too_many_requests_retries_after_the_given_seconds(
    receiver: Receiver, channel: WebhookChannel
) -> None:
    receiver.answer("/busy", 429, retry_after="120")
    outcome = await post(channel, receiver.url("/busy"))
    assert outcome.kind is OutcomeKind.RETRY
    assert (outcome.response_code, outcome.retry_after) == (429, 120.0)


async def test_unavailable_with_http_date_retry_after_uses_the_clock(
    receiver: Receiver, channel: WebhookChannel, clock: ManualClock
) -> None:
    when = clock.now() + timedelta(seconds=90)
    receiver.answer("/down", 503, retry_after=format_datetime(when, usegmt=True))
    outcome = await post(channel, receiver.url("/down"))
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.retry_after is not None
    assert 89.0 <= outcome.retry_after <= 90.0  # HTTP dates have whole seconds


@pytest.mark.parametrize("status", [400, 401, 404, 500, 502])
async def test_other_errors_are_retried_with_a_truncated_body(
    receiver: Receiver, channel: WebhookChannel, status: int
) -> None:
    body = b"e" * (3 * MAX_REPLY_BYTES)
    receiver.answer(f"/fail{status}", status, body)
    outcome = await post(channel, receiver.url(f"/fail{status}"))
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.response_code == status
    assert outcome.retry_after is None
    assert outcome.reply == "e" * MAX_REPLY_BYTES


async def test_refused_connection_is_retried(channel: WebhookChannel) -> None:
    outcome = await post(channel, f"http://127.0.0.1:{free_port()}/nobody")
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.response_code is None
    assert outcome.error


async def test_receiver_that_never_answers_times_out_and_is_retried(receiver: Receiver) -> None:
    release = receiver.hold("/hang")
    channel = WebhookChannel(allow_private=True, timeout=0.5)
    try:
        outcome = await post(channel, receiver.url("/hang"))
    finally:
        release.set()
        await channel.aclose()
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.error is not None and "timeout" in outcome.error.lower()


async def test_answer_whose_body_trickles_past_the_timeout_is_a_timeout() -> None:
    # The head arrives at once, the body never completes: the timeout bounds the whole
    # request, so this is a retry, not a delivery with half a reply.
    head_sent = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        head_sent.set()
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    channel = WebhookChannel(allow_private=True, timeout=0.5)
    try:
        outcome = await post(channel, f"http://127.0.0.1:{port}/trickle")
    finally:
        await channel.aclose()
        server.close()
    assert head_sent.is_set()
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.error is not None and "timeout" in outcome.error.lower()


async def test_a_full_endpoint_defers_unsent_and_reports_the_freed_slot(
    receiver: Receiver,
) -> None:
    channel = WebhookChannel(allow_private=True, max_in_flight_per_endpoint=1)
    released: list[str] = []
    channel.capacity.subscribe(released.append)
    slow_id = new_id()
    release = receiver.hold("/slow")
    try:
        first = asyncio.create_task(post(channel, receiver.url("/slow"), endpoint_id=slow_id))
        await receiver.arrived["/slow"].wait()

        busy = await post(channel, receiver.url("/slow"), endpoint_id=slow_id)
        other = await post(channel, receiver.url("/ok"))
        assert channel.capacity.free(slow_id) == 0
        release.set()
        done = await first
        assert slow_id in released  # the engine hears the slot free, the moment it does
        after = await post(channel, receiver.url("/slow"), endpoint_id=slow_id)
    finally:
        release.set()
        await channel.aclose()

    # Our own cap, not an attempt: a DEFER naming the key to wait for, no timer, no request.
    assert busy.kind is OutcomeKind.DEFER and busy.capacity_key == slow_id
    assert busy.retry_after is None and busy.response_code is None
    assert other.kind is OutcomeKind.DELIVERED
    assert done.kind is OutcomeKind.DELIVERED
    assert after.kind is OutcomeKind.DELIVERED  # the slot was given back
    assert receiver.paths().count("/slow") == 2
    assert channel.capacity.free(slow_id) == 1


async def test_connections_to_an_endpoint_are_reused(receiver: Receiver) -> None:
    channel = WebhookChannel(allow_private=True)
    try:
        for _ in range(3):
            await post(channel, receiver.url("/reuse"))
    finally:
        await channel.aclose()
    ports = [r.peer_port for r in receiver.requests if r.path == "/reuse"]
    assert len(ports) == 3
    assert len(set(ports)) == 1  # one keep-alive connection carried all three
