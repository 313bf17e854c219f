"""In-app status and owed pushes on both databases: a send stores its in-app deliveries
`delivered` with a push owed; a user's owed pushes come oldest first until marked; the
sweep's window; giving up old ones."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.core.db import Database
from app.core.ids import new_id
from app.inbox.repository import InboxContent
from app.notifications import delivery_repository as deliveries
from app.notifications import push_repository as owed
from app.notifications import repository as notifications
from app.notifications.models import Delivery, Notification
from app.notifications.repository import NewDelivery
from app.users.models import User

# Before every other test's rows, so window queries see only this module's.
T0 = datetime(1989, 1, 1, tzinfo=timezone.utc)
T1 = datetime(1988, 1, 1, tzinfo=timezone.utc)


async def _user(db: Database, client_id: str) -> str:
    user_id = new_id()
    async with db.session() as session:
        session.add(User(id=user_id, client_id=client_id, external_id=f"ext-{user_id}"))
        await session.commit()
    return user_id


async def _send(
    db: Database,
    client_id: str,
    user_ids: list[str],
    now: datetime,
    *,
    send_at: datetime | None = None,
    email: bool = False,
) -> tuple[Notification, list[str]]:
    notification = Notification(
        id=new_id(),
        client_id=client_id,
        channels=["websocket"],
        content={"websocket": {"event": "e", "data": {"n": 1}}},
        send_at=send_at or now,
        created_at=now,
    )
    items = [NewDelivery("websocket", {"user_id": u}, u, inbox_item=True) for u in user_ids]
    if email:
        items.append(NewDelivery("email", {"email": "a@b.c"}))
    async with db.session() as session:
        ids = await notifications.create_notification(
            session,
            client_id,
            notification,
            items,
            now=now,
            inbox=InboxContent(event="e", visible_at=notification.send_at),
        )
        await session.commit()
    assert ids is not None
    return notification, ids


async def _rows(db: Database, client_id: str, ids: list[str]) -> list[Delivery]:
    async with db.read_session() as session:
        rows = [await deliveries.get(session, client_id, i) for i in ids]
    assert all(r is not None for r in rows)
    return [r for r in rows if r is not None]


async def test_in_app_deliveries_are_stored_delivered_with_a_push_owed(
    db: Database, client_id: str
) -> None:
    user = await _user(db, client_id)
    _, [in_app, email] = await _send(db, client_id, [user], T0, email=True)
    _, [scheduled] = await _send(db, client_id, [user], T0, send_at=T0 + timedelta(hours=1))
    rows = {r.id: r for r in await _rows(db, client_id, [in_app, email, scheduled])}
    assert (rows[in_app].status, rows[in_app].delivered_at, rows[in_app].pushed_at) == (
        "delivered",
        T0,
        None,
    )
    assert rows[in_app].next_attempt_at is None
    assert rows[email].status == "pending" and rows[email].delivered_at is None
    # A scheduled one is delivered when it falls due (a worker takes it then).
    assert rows[scheduled].status == "pending" and rows[scheduled].next_attempt_at is not None


async def test_a_users_owed_pushes_come_oldest_first_until_marked(
    db: Database, client_id: str, other_client_id: str
) -> None:
    user, other = await _user(db, client_id), await _user(db, client_id)
    first, [a] = await _send(db, client_id, [user], T0)
    _, [b, _others] = await _send(db, client_id, [user, other], T0 + timedelta(seconds=1))
    async with db.read_session() as session:
        found = await owed.owed_for_user(session, client_id, user, limit=10)
        paged = await owed.owed_for_user(session, client_id, user, limit=1, after=a)
        foreign = await owed.owed_for_user(session, other_client_id, user, limit=10)
        contents = await owed.contents(session, [first.id])
    assert [p.delivery_id for p in found] == [a, b]
    assert [p.delivery_id for p in paged] == [b]
    assert foreign == []
    assert contents == {first.id: {"event": "e", "data": {"n": 1}}}
    async with db.session() as session:
        assert await owed.mark_pushed(session, [a, b], now=T0) == 2
        assert await owed.mark_pushed(session, [a], now=T0) == 0  # no longer owed
        await session.commit()
    async with db.read_session() as session:
        assert await owed.owed_for_user(session, client_id, user, limit=10) == []
    [row] = await _rows(db, client_id, [a])
    assert row.pushed_at == T0 and row.status == "delivered"


async def test_the_sweep_window_and_giving_up(db: Database, client_id: str) -> None:
    # Its own time: the other tests' rows (at T0) stay out of the window.
    user = await _user(db, client_id)
    _, [old] = await _send(db, client_id, [user], T1 - timedelta(days=30))
    _, [recent] = await _send(db, client_id, [user], T1)
    async with db.read_session() as session:
        window = await owed.owed_between(
            session, since=T1 - timedelta(minutes=5), until=T1 + timedelta(seconds=1), limit=10
        )
    assert [p.delivery_id for p in window] == [recent]
    async with db.session() as session:
        given_up = await owed.give_up_before(
            session, before=T1 - timedelta(days=7), now=T1, limit=10
        )
        await session.commit()
    assert given_up == 1
    async with db.read_session() as session:
        left = await owed.owed_for_user(session, client_id, user, limit=10)
    assert [p.delivery_id for p in left] == [recent]
    [row] = await _rows(db, client_id, [old])
    assert row.status == "delivered"  # the inbox keeps it; only the push is no longer owed
