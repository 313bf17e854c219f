"""Content marks of inbound hooks: the optional replay window of the schemes whose delivery
id is not signed (github, hmac-sha256; `signature.content_dedupe_seconds`).

Always scoped by client id (and hook). See InboundContentMark for why a mark is claimed
with one upsert.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.upsert import dialect_insert
from app.inbound.models import InboundContentMark, InboundEvent


async def claim(
    session: AsyncSession,
    client_id: str,
    hook_id: str,
    digest: str,
    *,
    event_id: str,
    now: datetime,
    until: datetime,
) -> bool:
    """Mark `digest` as `event_id`'s until `until`; False when a live mark of it exists.

    `INSERT … ON CONFLICT DO UPDATE … WHERE expires_at <= now`: a new digest is inserted, an
    expired mark is taken over, a live one is left alone (no row returned). On PostgreSQL a
    concurrent claim of the same digest waits for the first to commit, then sees its mark.
    """
    insert = dialect_insert(session, InboundContentMark).values(
        hook_id=hook_id, digest=digest, client_id=client_id, event_id=event_id, expires_at=until
    )
    stmt = insert.on_conflict_do_update(
        index_elements=["hook_id", "digest"],
        set_={
            "event_id": insert.excluded.event_id,
            "client_id": insert.excluded.client_id,
            "expires_at": insert.excluded.expires_at,
        },
        where=col(InboundContentMark.expires_at) <= now,
    ).returning(col(InboundContentMark.event_id))
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def event_of(
    session: AsyncSession, client_id: str, hook_id: str, digest: str
) -> InboundEvent | None:
    """The event the hook's mark of `digest` points to (live or expired)."""
    query = (
        select(InboundEvent)
        .join(InboundContentMark, col(InboundContentMark.event_id) == col(InboundEvent.id))
        .where(
            col(InboundContentMark.client_id) == client_id,
            col(InboundContentMark.hook_id) == hook_id,
            col(InboundContentMark.digest) == digest,
            col(InboundEvent.client_id) == client_id,
        )
    )
    return (await session.execute(query)).scalar_one_or_none()
