"""Every room and member helper is scoped by client id: another client's ids find nothing."""

from __future__ import annotations

from app.core.db import Database
from app.rooms import repository
from tests.support.api import Api


async def test_member_and_seq_helpers_return_nothing_for_another_clients_ids(api: Api) -> None:
    owner, other = await api.tenant(), await api.tenant()
    user = await api.user(owner)
    room = await api.room(owner, member_ids=[user["id"]])
    room_id, user_id = room["id"], user["id"]
    assert api.app is not None
    db: Database = api.app.state.db
    async with db.session() as session:
        assert await repository.member_ids(session, other.id, [room_id]) == {room_id: []}
        assert await repository.count_members(session, other.id, room_id) == 0
        assert await repository.member_counts(session, other.id, [room_id]) == {room_id: 0}
        assert await repository.members_page(session, other.id, room_id, limit=10, after=None) == []
        assert await repository.members_among(session, other.id, room_id, [user_id]) == set()
        conn = await session.connection()
        assert await repository.rooms_of_user(conn, other.id, user_id, 100) == []
        await session.commit()
    # The owner's view: the same calls find the rows.
    async with db.session() as session:
        assert await repository.member_ids(session, owner.id, [room_id]) == {room_id: [user_id]}
        assert await repository.count_members(session, owner.id, room_id) == 1
        assert await repository.member_counts(session, owner.id, [room_id]) == {room_id: 1}
        page = await repository.members_page(session, owner.id, room_id, limit=10, after=None)
        assert [m.user_id for m in page] == [user_id]
        assert await repository.members_among(session, owner.id, room_id, [user_id]) == {user_id}
        conn = await session.connection()
        assert await repository.rooms_of_user(conn, owner.id, user_id, 100) == [(room_id, True)]
        await session.rollback()
