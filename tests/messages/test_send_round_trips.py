"""The send path's cost on PostgreSQL: what reaches the server per message."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from asyncpg.prepared_stmt import PreparedStatement

from tests.messages.test_messages import _room_with_user
from tests.support.api import Api


async def test_a_send_on_postgresql_is_one_statement_without_ping_begin_or_commit(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not api.app.state.settings.DATABASE_URL.startswith("postgresql"):
        pytest.skip("round trips are counted at the asyncpg driver")
    tenant, _, key, room = await _room_with_user(api)
    warm = await api.send(tenant, room["id"], "warm-up: the key is now cached", key)
    assert warm.status_code == 201
    sent: list[str] = []

    # Every way SQLAlchemy's asyncpg adapter reaches the server: statements (prepared, then
    # fetched), BEGIN / COMMIT (Connection.execute) and the pre-ping (fetchrow(";")); and
    # the driver's own fetch, which the send's statement goes through.
    def counting(cls: Any, name: str, label: Any) -> None:
        original = getattr(cls, name)

        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(label(self, args))
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    counting(PreparedStatement, "fetch", lambda s, a: " ".join(s.get_query().split())[:30])
    counting(asyncpg.Connection, "execute", lambda s, a: str(a[0])[:30])
    counting(asyncpg.Connection, "fetchrow", lambda s, a: str(a[0])[:30])
    counting(asyncpg.Connection, "fetch", lambda s, a: str(a[0])[:30])

    response = await api.send(tenant, room["id"], "measured", key)
    monkeypatch.undo()

    assert response.status_code == 201
    assert response.json()["seq"] == 2
    # Before: a pre-ping, BEGIN, SELECT … FOR UPDATE, the membership SELECT, UPDATE rooms,
    # INSERT, UPDATE room_members, COMMIT.
    assert len(sent) == 1, sent
    assert sent[0].startswith("WITH locked AS")
