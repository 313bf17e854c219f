"""A connect's owed-push read on both databases: nothing owed costs one statement outside
any transaction (no BEGIN, no ORM session: the common connect); something owed is pushed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event

from app.core.broadcast import MemoryBroadcast
from app.core.db import Database
from app.notifications.push import InAppPush
from app.realtime.bus import EventBus
from app.realtime.events import user_target
from app.realtime.presence import MemoryPresence
from tests.notifications.test_push_repository import T0, _send, _user


async def test_a_connect_owing_nothing_reads_once_and_one_owing_gets_its_push(
    db: Database, client_id: str
) -> None:
    broadcast = MemoryBroadcast()
    await broadcast.start()
    bus = EventBus(broadcast)
    heard: list[Any] = []

    async def hear(event: Any) -> None:
        heard.append(event)

    idle, owing = await _user(db, client_id), await _user(db, client_id)
    await _send(db, client_id, [owing], T0)
    await bus.listen(client_id, user_target(owing), hear)
    push = InAppPush(db, bus, MemoryPresence())
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = db.read_engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        assert await push.on_connect(client_id, idle) == 0
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    # Before: BEGIN (SQLite), the owed read, and the session's close; now the read alone.
    assert len(statements) == 1 and statements[0].lstrip().upper().startswith("SELECT")

    assert await push.on_connect(client_id, owing) == 1
    assert [(e.event, e.data["data"]) for e in heard] == [("notification", {"n": 1})]
    assert await push.on_connect(client_id, owing) == 0  # marked pushed
