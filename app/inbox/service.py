"""The in-app inbox (API.md §6b): a user's items, their state, counts, and preferences.

Every change of state is committed, then the user's connections (every device, every
process: the user target on the event bus) receive `notification.count` with the counts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.errors import NotFound
from app.inbox import preferences, repository
from app.inbox.repository import Counts, InboxEntry
from app.inbox.schemas import Preferences
from app.realtime.bus import EventBus
from app.realtime.events import NOTIFICATION_COUNT, user_target
from app.users import service as users


async def publish_counts(
    session: AsyncSession, bus: EventBus, client_id: str, user_ids: Iterable[str]
) -> None:
    """Send each user's current counts to its connections (after the commit)."""
    now = utcnow()
    for user_id in sorted(set(user_ids)):
        found = await repository.counts(session, client_id, user_id, now=now)
        await bus.publish_after_commit(
            client_id, user_target(user_id), NOTIFICATION_COUNT, found.as_dict()
        )


async def list_items(
    session: AsyncSession,
    client_id: str,
    user_id: str,
    *,
    limit: int,
    after: str | None,
    read: bool | None,
    seen: bool | None,
    archived: bool | None,
    event: str | None,
) -> list[InboxEntry]:
    """`limit + 1` of the user's items with their content, newest first."""
    return await repository.list_page(
        session,
        client_id,
        user_id,
        now=utcnow(),
        limit=limit,
        after=after,
        read=read,
        seen=seen,
        archived=archived,
        event=event,
    )


async def user_items(
    session: AsyncSession,
    client_id: str,
    user_id: str,
    **filters: object,
) -> list[InboxEntry]:
    """A user's items for the master key (404 when the user is not the client's)."""
    await users.get_user(session, client_id, user_id)
    return await list_items(session, client_id, user_id, **filters)  # type: ignore[arg-type]


async def counts(session: AsyncSession, client_id: str, user_id: str) -> Counts:
    """The user's counts."""
    return await repository.counts(session, client_id, user_id, now=utcnow())


async def act(
    session: AsyncSession, bus: EventBus, client_id: str, user_id: str, item_id: str, action: str
) -> InboxEntry:
    """Apply `action` (read, unread, seen, archive, unarchive) to one of the user's items;
    the item. Already in that state is not an error (and announces nothing)."""
    now = utcnow()
    changed = await repository.apply(session, client_id, user_id, item_id, action, now=now)
    await session.commit()
    item = await repository.get(session, client_id, user_id, item_id, now=now)
    if item is None:
        raise NotFound("No such notification in this inbox")
    if changed:
        await publish_counts(session, bus, client_id, [user_id])
    return item


async def read_all(
    session: AsyncSession, bus: EventBus, client_id: str, user_id: str
) -> tuple[int, Counts]:
    """Mark all the user's items read; (how many changed, the new counts)."""
    changed = await repository.read_all(session, client_id, user_id, now=utcnow())
    return await _bulk_done(session, bus, client_id, user_id, changed)


async def archive_read(
    session: AsyncSession, bus: EventBus, client_id: str, user_id: str
) -> tuple[int, Counts]:
    """Archive all the user's read items; (how many changed, the new counts)."""
    changed = await repository.archive_read(session, client_id, user_id, now=utcnow())
    return await _bulk_done(session, bus, client_id, user_id, changed)


async def _bulk_done(
    session: AsyncSession, bus: EventBus, client_id: str, user_id: str, changed: int
) -> tuple[int, Counts]:
    await session.commit()
    found = await repository.counts(session, client_id, user_id, now=utcnow())
    if changed:
        await bus.publish_after_commit(
            client_id, user_target(user_id), NOTIFICATION_COUNT, found.as_dict()
        )
    return changed, found


async def purge(session: AsyncSession, *, retention_days: int, limit: int) -> int:
    """Delete up to `limit` items older than the retention (all clients); how many."""
    before = utcnow() - timedelta(days=retention_days)
    return await repository.purge(session, before=before, limit=limit)


async def get_preferences(session: AsyncSession, client_id: str, user_id: str) -> Preferences:
    """The user's preferences (404 when the user is not the client's); none stored: all on."""
    await users.get_user(session, client_id, user_id)
    doc = await repository.get_preferences(session, client_id, user_id)
    return Preferences.model_validate(doc or {})


async def put_preferences(
    session: AsyncSession,
    client_id: str,
    user_id: str,
    body: Preferences,
    *,
    channels: Collection[str],
) -> Preferences:
    """Replace the user's preferences; 422 when a channel is unknown or `webhook`."""
    preferences.check(body, channels)
    await users.get_user(session, client_id, user_id)
    doc = body.model_dump(mode="json")
    await repository.put_preferences(session, client_id, user_id, doc, now=utcnow())
    await session.commit()
    return Preferences.model_validate(doc)
