"""The websocket channel on a real EventBus (MemoryBroadcast) and MemoryPresence."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.channels.base import DeliveryTarget, OutcomeKind
from app.channels.websocket import WebSocketChannel
from app.core.broadcast import MemoryBroadcast
from app.core.ids import new_id
from app.realtime.bus import Event, EventBus
from app.realtime.events import NOTIFICATION, user_target
from app.realtime.presence import MemoryPresence
from tests.channels.conftest import context


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    broadcast = MemoryBroadcast()
    await broadcast.start()
    yield EventBus(broadcast)
    await broadcast.stop()


async def _capture(bus: EventBus, client_id: str, user_id: str) -> list[Event]:
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    await bus.listen(client_id, user_target(user_id), record)
    return seen


async def test_online_user_receives_notification_and_delivery_is_delivered(bus: EventBus) -> None:
    presence = MemoryPresence()
    client_id, user_id = new_id(), new_id()
    await presence.connected(client_id, user_id)
    seen = await _capture(bus, client_id, user_id)
    ctx = context()
    delivery_id = new_id()

    outcome = await WebSocketChannel(bus, presence).send(
        DeliveryTarget(delivery_id, client_id, user_id=user_id),
        {"event": "order.shipped", "data": {"order": 7}},
        ctx,
    )

    assert outcome.kind is OutcomeKind.DELIVERED
    assert [(e.event, e.data) for e in seen] == [
        (
            NOTIFICATION,
            {
                "event": "order.shipped",
                "data": {"order": 7},
                "notification_id": ctx.notification_id,
                # The recipient's inbox item shares the delivery's id.
                "inbox_id": delivery_id,
            },
        )
    ]


async def test_offline_user_parks_delivery_and_publishes_nothing(bus: EventBus) -> None:
    presence = MemoryPresence()
    client_id, offline, online = new_id(), new_id(), new_id()
    await presence.connected(client_id, online)
    seen_offline = await _capture(bus, client_id, offline)
    seen_online = await _capture(bus, client_id, online)
    channel = WebSocketChannel(bus, presence)

    parked = await channel.send(
        DeliveryTarget(new_id(), client_id, user_id=offline), {"event": "a"}, context()
    )
    # Sentinel: a later delivery to an online user arrives, so the bus was working.
    sentinel = await channel.send(
        DeliveryTarget(new_id(), client_id, user_id=online), {"event": "b"}, context()
    )

    assert parked.kind is OutcomeKind.PARKED
    assert sentinel.kind is OutcomeKind.DELIVERED
    assert [e.data["event"] for e in seen_online] == ["b"]
    assert seen_offline == []


async def test_user_online_in_another_tenant_does_not_count(bus: EventBus) -> None:
    presence = MemoryPresence()
    user_id = new_id()
    await presence.connected("other-client", user_id)
    outcome = await WebSocketChannel(bus, presence).send(
        DeliveryTarget(new_id(), new_id(), user_id=user_id), {"event": "a"}, context()
    )
    assert outcome.kind is OutcomeKind.PARKED


async def test_delivery_without_user_fails_permanently(bus: EventBus) -> None:
    outcome = await WebSocketChannel(bus, MemoryPresence()).send(
        DeliveryTarget(new_id(), new_id(), recipient={"email": "a@b.c"}), {"event": "a"}, context()
    )
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error is not None
