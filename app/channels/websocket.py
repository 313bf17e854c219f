"""The websocket (in-app) channel's worker side.

An in-app delivery is `delivered` when its inbox item is stored, which a send does in its
own transaction (API.md §6); only a scheduled send's in-app deliveries reach a worker, when
they fall due. The push of the `notification` event to live connections is separate and
set-based (app/notifications/push.py: one presence round trip, one publish pipeline and one
update per batch, never one Redis connection per delivery): the worker pushes a batch's
in-app deliveries after recording them, and the push sweep covers what that missed.
"""

from __future__ import annotations

from collections.abc import Sequence
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

_DELIVERED = Outcome(OutcomeKind.DELIVERED, duration_ms=0.0)
_NO_USER = Outcome(OutcomeKind.FAILED, error="websocket delivery needs a user_id")


class WebSocketChannel(BaseChannel):
    """Delivered on arrival: the inbox item already exists (its id is the delivery's)."""

    name = "websocket"
    content_model = WebsocketContent
    stores_inbox_item = True  # each delivery is also the user's inbox item (same id)
    settles_on_claim = True  # delivered when its inbox item exists: nothing to send
    recipient_email = False  # the user's connections, not an address

    def stored_content(self, content: BaseModel) -> dict[str, Any]:
        """The event and its data, as sent."""
        return content.model_dump(mode="json")

    def content_event(self, content: BaseModel) -> str | None:
        """The `event` names it (what `events` preferences match)."""
        return content.event if isinstance(content, WebsocketContent) else None

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        """Delivered: no per-delivery presence read or publish (the batch pushes)."""
        return _DELIVERED if target.user_id is not None else _NO_USER

    async def send_batch(
        self,
        targets: Sequence[DeliveryTarget],
        contents: Sequence[dict[str, Any]],
        ctxs: Sequence[ChannelContext],
    ) -> list[Outcome]:
        """`send` for a batch, without a coroutine per delivery (app/channels/base.py)."""
        return [_DELIVERED if t.user_id is not None else _NO_USER for t in targets]

    async def aclose(self) -> None:
        """Nothing pooled."""


def create(ctx: ChannelFactoryContext) -> WebSocketChannel:
    """Entry point `websocket`: only where an event bus and presence can push its events."""
    if ctx.bus is None or ctx.presence is None:
        raise ChannelUnavailable("no event bus/presence in this process")
    return WebSocketChannel()
