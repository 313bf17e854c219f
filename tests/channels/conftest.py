"""Plain-data inputs for channel tests."""

from __future__ import annotations

from app.channels.base import ChannelContext
from app.core.clock import utcnow
from app.core.ids import new_id


def context(**fields: object) -> ChannelContext:
    """A ChannelContext for one attempt of a fresh notification."""
    values: dict[str, object] = {"notification_id": new_id(), "created_at": utcnow()}
    values.update(fields)
    return ChannelContext(**values)  # type: ignore[arg-type]
