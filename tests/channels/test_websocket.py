"""The websocket channel's worker side: delivered on arrival (its inbox item is stored),
with no per-delivery presence read or publish — the batch pushes (app/notifications/push.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.channels.base import DeliveryTarget, OutcomeKind
from app.channels.websocket import WebSocketChannel
from app.core.broadcast import MemoryBroadcast
from app.core.ids import new_id
from app.realtime.bus import Event, EventBus
from app.realtime.events import user_target
from app.realtime.presence import MemoryPresence
from tests.channels.conftest import context


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    broadcast = MemoryBroadcast()
    await broadcast.start()
    yield EventBus(broadcast)
    await broadcast.stop()


async def test_a_delivery_to_a_user_is_delivered_and_publishes_nothing_itself(
    bus: EventBus,
) -> None:
    client_id, user_id = new_id(), new_id()
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    await bus.listen(client_id, user_target(user_id), record)
    outcome = await WebSocketChannel().send(
        DeliveryTarget(new_id(), client_id, user_id=user_id), {"event": "a"}, context()
    )
    assert outcome.kind is OutcomeKind.DELIVERED
    # Sentinel: an event published after the send arrives, so nothing before it was lost.
    await bus.publish(client_id, user_target(user_id), "sentinel", {})
    assert [e.event for e in seen] == ["sentinel"]


async def test_delivery_without_user_fails_permanently() -> None:
    outcome = await WebSocketChannel().send(
        DeliveryTarget(new_id(), new_id(), recipient={"email": "a@b.c"}), {"event": "a"}, context()
    )
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error is not None


async def test_memory_presence_answers_a_batch_per_tenant() -> None:
    presence = MemoryPresence()
    client_id, a, b = new_id(), new_id(), new_id()
    await presence.connected(client_id, a)
    await presence.connected("other-client", b)
    assert await presence.online_users(client_id, [a, b]) == {a}
    await presence.disconnected(client_id, a)
    assert await presence.online_users(client_id, [a, b]) == set()
