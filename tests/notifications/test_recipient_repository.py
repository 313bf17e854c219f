"""A send's recipient users and their preferences in one read, on both databases
(app/notifications/recipient_repository.py)."""

from __future__ import annotations

from app.core.clock import utcnow
from app.core.db import Database
from app.core.ids import new_id
from app.core.native_sql import autocommit
from app.inbox import repository as inbox
from app.notifications.recipient_repository import users_with_preferences
from app.users.models import User


async def _user(db: Database, client_id: str, external_id: str, **fields: str) -> str:
    user_id = new_id()
    async with db.session() as session:
        session.add(User(id=user_id, client_id=client_id, external_id=external_id, **fields))
        await session.commit()
    return user_id


async def test_users_come_with_their_preferences_by_either_key_once(
    db: Database, client_id: str, other_client_id: str
) -> None:
    quiet = await _user(db, client_id, "quiet", email="q@example.com", phone="+15005550006")
    plain = await _user(db, client_id, "plain")
    theirs = await _user(db, other_client_id, "theirs")
    doc = {"channels": {"email": False}}
    async with db.session() as session:
        await inbox.put_preferences(session, client_id, quiet, doc, now=utcnow())
        await inbox.put_preferences(session, other_client_id, theirs, doc, now=utcnow())
        await session.commit()

    async with db.session() as session:
        await autocommit(session)  # as a send reads it: no transaction on PostgreSQL
        found = await users_with_preferences(
            session,
            client_id,
            user_ids=[quiet, theirs, quiet, "01UNKNOWN0000000000000000"],
            external_ids=["plain", "quiet", "theirs"],
        )
    by_id = {u.id: u for u in found.users}
    assert sorted(by_id) == sorted([quiet, plain])  # once each; another tenant's not at all
    assert (by_id[quiet].external_id, by_id[quiet].email, by_id[quiet].phone) == (
        "quiet",
        "q@example.com",
        "+15005550006",
    )
    assert by_id[plain].email is None
    assert found.preferences == {quiet: doc}


async def test_no_keys_find_nothing(db: Database, client_id: str) -> None:
    async with db.session() as session:
        found = await users_with_preferences(session, client_id, user_ids=[], external_ids=[])
    assert (found.users, found.preferences) == ([], {})
