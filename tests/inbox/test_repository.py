"""Inbox queries on both databases: a user's items and nobody else's, each showing its
notification's content, state changes, counts from the partial indexes, visibility from
send_at, retention purge."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import text

from app.core.db import Database
from app.core.ids import new_id
from app.inbox import repository as inbox
from app.inbox.repository import Counts
from app.notifications.models import Notification
from app.users.models import User

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


async def _user(db: Database, client_id: str) -> str:
    user_id = new_id()
    async with db.session() as session:
        session.add(User(id=user_id, client_id=client_id, external_id=f"ext-{user_id}"))
        await session.commit()
    return user_id


async def _items(
    db: Database,
    client_id: str,
    user_id: str,
    n: int,
    *,
    at: datetime = NOW,
    event: str = "e",
    data: dict[str, Any] | None = None,
) -> list[str]:
    """`n` items of one new notification whose websocket content is (`event`, `data`)."""
    ids = [new_id() for _ in range(n)]
    notification = Notification(
        id=new_id(),
        client_id=client_id,
        channels=["websocket"],
        content={"websocket": {"event": event, "data": {"n": 1} if data is None else data}},
        send_at=at,
        created_at=at,
    )
    async with db.session() as session:
        session.add(notification)
        await session.flush()
        await inbox.add_items(
            session,
            client_id,
            notification.id,
            [(i, user_id) for i in ids],
            event=event,
            visible_at=at,
        )
        await session.commit()
    return ids


async def _counts(db: Database, client_id: str, user_id: str, now: datetime = NOW) -> Counts:
    async with db.read_session() as session:
        return await inbox.counts(session, client_id, user_id, now=now)


async def test_items_are_listed_newest_first_only_for_their_user_and_client(
    db: Database, client_id: str, other_client_id: str
) -> None:
    me, other = await _user(db, client_id), await _user(db, client_id)
    stranger = await _user(db, other_client_id)
    mine = await _items(db, client_id, me, 3)
    await _items(db, client_id, other, 2)
    await _items(db, other_client_id, stranger, 2)
    async with db.read_session() as session:
        page = await inbox.list_page(session, client_id, me, now=NOW, limit=2)
        rest = await inbox.list_page(session, client_id, me, now=NOW, limit=2, after=page[1].id)
        # The same user id under another client finds nothing.
        crossed = await inbox.list_page(session, other_client_id, me, now=NOW, limit=10)
        foreign = await inbox.get(
            session, client_id, me, (await _items(db, client_id, other, 1))[0], now=NOW
        )
    assert [i.id for i in page] == sorted(mine, reverse=True)
    assert [i.id for i in rest] == sorted(mine, reverse=True)[2:]
    assert crossed == [] and foreign is None
    assert await _counts(db, client_id, me) == Counts(unread=3, unseen=3, total=3)


async def test_read_seen_archive_and_their_undo_change_the_counts(
    db: Database, client_id: str
) -> None:
    me = await _user(db, client_id)
    a, b, c = await _items(db, client_id, me, 3)
    later = NOW + timedelta(minutes=1)
    async with db.session() as session:
        assert await inbox.apply(session, client_id, me, a, "read", now=later)
        assert not await inbox.apply(session, client_id, me, a, "read", now=later)  # no change
        assert await inbox.apply(session, client_id, me, b, "seen", now=later)
        assert await inbox.apply(session, client_id, me, c, "archive", now=later)
        await session.commit()
    # a read (so seen), b seen, c archived (out of the counts).
    assert await _counts(db, client_id, me, later) == Counts(unread=1, unseen=0, total=2)
    async with db.session() as session:
        item = await inbox.get(session, client_id, me, a, now=later)
        assert item is not None and item.item.read_at == later and item.item.seen_at == later
        assert await inbox.apply(session, client_id, me, a, "unread", now=later)
        assert await inbox.apply(session, client_id, me, c, "unarchive", now=later)
        await session.commit()
    # Unread again but still seen; unarchived: counted again.
    assert await _counts(db, client_id, me, later) == Counts(unread=3, unseen=1, total=3)
    async with db.read_session() as session:
        unread = await inbox.list_page(session, client_id, me, now=later, limit=10, read=False)
        seen = await inbox.list_page(session, client_id, me, now=later, limit=10, seen=True)
    assert {i.id for i in unread} == {a, b, c} and {i.id for i in seen} == {a, b}


async def test_read_all_then_archive_read_empty_the_counts(db: Database, client_id: str) -> None:
    me, other = await _user(db, client_id), await _user(db, client_id)
    await _items(db, client_id, me, 4)
    await _items(db, client_id, other, 1)
    async with db.session() as session:
        assert await inbox.read_all(session, client_id, me, now=NOW) == 4
        assert await inbox.archive_read(session, client_id, me, now=NOW) == 4
        await session.commit()
    assert await _counts(db, client_id, me) == Counts(unread=0, unseen=0, total=0)
    assert await _counts(db, client_id, other) == Counts(unread=1, unseen=1, total=1)
    async with db.read_session() as session:
        archived = await inbox.list_page(session, client_id, me, now=NOW, limit=10, archived=True)
    assert len(archived) == 4


async def test_an_item_is_invisible_before_its_send_time(db: Database, client_id: str) -> None:
    me = await _user(db, client_id)
    [item] = await _items(db, client_id, me, 1, at=NOW + timedelta(hours=1))
    assert await _counts(db, client_id, me) == Counts(0, 0, 0)
    async with db.session() as session:
        assert await inbox.list_page(session, client_id, me, now=NOW, limit=5) == []
        assert not await inbox.apply(session, client_id, me, item, "read", now=NOW)
    later = NOW + timedelta(hours=2)
    assert await _counts(db, client_id, me, later) == Counts(1, 1, 1)


async def test_purge_deletes_only_items_older_than_the_cutoff(db: Database, client_id: str) -> None:
    me = await _user(db, client_id)
    old = await _items(db, client_id, me, 2, at=NOW - timedelta(days=91))
    young = await _items(db, client_id, me, 1, at=NOW - timedelta(days=89))
    async with db.session() as session:
        deleted = 0
        while n := await inbox.purge(session, before=NOW - timedelta(days=90), limit=1):
            deleted += n
        await session.commit()
        left = await inbox.list_page(session, client_id, me, now=NOW, limit=10)
    assert deleted >= len(old)  # other tests' old rows may go too: retention is global
    assert [i.id for i in left] == young


async def test_counts_are_answered_from_the_partial_indexes(db: Database, client_id: str) -> None:
    me = await _user(db, client_id)
    await _items(db, client_id, me, 3)
    async with db.session() as session:
        sql = (
            "SELECT count(*) FROM inbox_items WHERE client_id = :c AND user_id = :u "
            "AND created_at <= :now AND {where}"
        )
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            # A tiny table would be scanned anyway; forbid that to see the index is usable.
            # And hide the (client_id, user_id, id) index in this transaction (rolled back):
            # when the table's statistics say a user has one item (other tests' data), it
            # costs the same as the partial index and either may be chosen.
            await session.execute(text("SET LOCAL enable_seqscan = off"))
            await session.execute(text("DROP INDEX ix_inbox_items_user"))
        for index, where in (
            ("ix_inbox_items_unread", "read_at IS NULL AND archived_at IS NULL"),
            ("ix_inbox_items_unseen", "seen_at IS NULL AND archived_at IS NULL"),
            ("ix_inbox_items_active", "archived_at IS NULL"),
        ):
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = await session.execute(
                text(explain + sql.format(where=where)),
                {"c": client_id, "u": me, "now": NOW.isoformat() if not postgres else NOW},
            )
            plan = " ".join(str(r) for r in rows.all())
            assert index in plan, plan


async def test_items_show_their_notifications_content_read_in_one_statement(
    db: Database, client_id: str
) -> None:
    me = await _user(db, client_id)
    first = await _items(db, client_id, me, 1, event="a", data={"order": "A-1", "n": [1, 2]})
    second = await _items(db, client_id, me, 2, event="b", data={"text": "é" * 10})
    empty = await _items(db, client_id, me, 1, event="c", data={})
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = db.read_engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        async with db.read_session() as session:
            page = await inbox.list_page(session, client_id, me, now=NOW, limit=10)
            one = await inbox.get(session, client_id, me, second[0], now=NOW)
            only_b = await inbox.list_page(session, client_id, me, now=NOW, limit=10, event="b")
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    shown = {entry.id: (entry.item.event, entry.data) for entry in page}
    assert shown == {
        first[0]: ("a", {"order": "A-1", "n": [1, 2]}),
        second[0]: ("b", {"text": "é" * 10}),
        second[1]: ("b", {"text": "é" * 10}),
        empty[0]: ("c", {}),
    }
    assert one is not None and one.data == {"text": "é" * 10}
    assert {entry.id for entry in only_b} == set(second)
    # A page is one statement (a join), not one more per item; so is one item.
    assert len([s for s in statements if "inbox_items" in s]) == 3, statements
