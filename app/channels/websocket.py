"""The websocket (in-app) channel's worker side.

An in-app delivery is `delivered` when its inbox item is stored, which a send does in its
own transaction (API.md §6); only a scheduled send's in-app deliveries reach a worker, when
they fall due. The push of the `notification` event to live connections is separate and
set-based (app/notifications/push.py: one presence round trip, one publish pipeline and one
update per batch, never one Redis connection per delivery): the worker pushes a batch's
in-app deliveries after recording them, and the push sweep covers what that missed.
"""

from __future__ import annotations

from typing import Any

from app.channels.base import (
    ChannelContext,
    ChannelFactoryContext,
    ChannelUnavailable,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
)


class WebSocketChannel:
    """Delivered on arrival: the inbox item already exists (its id is the delivery's)."""

    name = "websocket"

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        """Delivered: no per-delivery presence read or publish (the batch pushes)."""
        if target.user_id is None:
            return Outcome(OutcomeKind.FAILED, error="websocket delivery needs a user_id")
        return Outcome(OutcomeKind.DELIVERED, duration_ms=0.0)

    async def aclose(self) -> None:
        """Nothing pooled."""


def create(ctx: ChannelFactoryContext) -> WebSocketChannel:
    """Entry point `websocket`: only where an event bus and presence can push its events."""
    if ctx.bus is None or ctx.presence is None:
        raise ChannelUnavailable("no event bus/presence in this process")
    return WebSocketChannel()
