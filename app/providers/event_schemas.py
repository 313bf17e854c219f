"""Shapes of `/provider-events/...` answers and `/suppressions`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from app.providers.models import Suppression


class EventsReceived(BaseModel):
    """What a provider's event request did (200 also for duplicates: the provider stops
    retrying)."""

    received: int
    stored: int
    duplicates: int


class SuppressionOut(BaseModel):
    """An address later sends skip, and why (`hard_bounce`, `complaint` or `undeliverable`)."""

    address: str
    channel: str
    reason: str
    detail: str | None
    provider: str | None
    delivery_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Suppression) -> SuppressionOut:
        return cls(
            address=row.address,
            channel=row.channel,
            reason=row.reason,
            detail=row.detail,
            provider=row.provider,
            delivery_id=row.delivery_id,
            created_at=row.created_at,
        )


class SuppressionPage(BaseModel):
    """Suppressions by address; `next_cursor` is the last address of the page."""

    data: list[SuppressionOut]
    has_more: bool
    next_cursor: str | None
