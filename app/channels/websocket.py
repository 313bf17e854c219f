"""The websocket channel: the `notification` event on the user's own target when the user is
online anywhere; otherwise the delivery is parked and flushed when the user next connects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from app.channels.base import (
    ChannelContext,
    ChannelFactoryContext,
    ChannelUnavailable,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
)
from app.channels.content import WebsocketContent
from app.channels.driver import BaseChannel
from app.core.clock import monotonic
from app.realtime.bus import EventBus
from app.realtime.events import NOTIFICATION, user_target
from app.realtime.presence import Presence


class WebSocketChannel(BaseChannel):
    """Publishes on the event bus, which reaches the user's connections in every process."""

    name = "websocket"
    content_model = WebsocketContent
    stores_inbox_item = True  # each delivery is also the user's inbox item (same id)
    recipient_email = False  # the user's connections, not an address

    def stored_content(self, content: BaseModel) -> dict[str, Any]:
        """The event and its data, as sent."""
        return content.model_dump(mode="json")

    def content_event(self, content: BaseModel) -> str | None:
        """The `event` names it (what `events` preferences match)."""
        return content.event if isinstance(content, WebsocketContent) else None

    def __init__(self, bus: EventBus, presence: Presence) -> None:
        self._bus = bus
        self._presence = presence

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        """Deliver to the user's live connections, or park when there are none."""
        started = monotonic()
        if target.user_id is None:
            return Outcome(OutcomeKind.FAILED, error="websocket delivery needs a user_id")
        if not await self._presence.is_online(target.client_id, target.user_id):
            # Not a failure: the gateway flushes parked deliveries when the user connects.
            return Outcome(OutcomeKind.PARKED, duration_ms=_ms_since(started))
        # The inbox item shares the delivery's id (app/inbox/models.py).
        data = {**content, "notification_id": ctx.notification_id, "inbox_id": target.delivery_id}
        await self._bus.publish(target.client_id, user_target(target.user_id), NOTIFICATION, data)
        return Outcome(OutcomeKind.DELIVERED, duration_ms=_ms_since(started))

    async def aclose(self) -> None:
        """Nothing pooled: the bus belongs to the runtime."""


def _ms_since(started: float) -> float:
    return (monotonic() - started) * 1000


def create(ctx: ChannelFactoryContext) -> WebSocketChannel:
    """Entry point `websocket`: needs the process's event bus and presence."""
    if ctx.bus is None or ctx.presence is None:
        raise ChannelUnavailable("no event bus/presence in this process")
    return WebSocketChannel(ctx.bus, ctx.presence)
