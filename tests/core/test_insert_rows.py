"""`insert_rows` stores what a Core INSERT of the same rows stores, on both databases
(on SQLite the driver runs it, with the values bound by the columns' own types)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select

from app.core.db import Database
from app.core.ids import new_id
from app.core.native_sql import insert_rows
from app.notifications.models import Notification
from tests.support.db import client_id, db

__all__ = ["client_id", "db"]  # fixtures of this module

_T = datetime(2026, 12, 7, 12, 30, 15, 123456, tzinfo=timezone.utc)


def _row(**overrides: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "status": "pending",
        "channels": ["websocket", "email"],
        "content": {"websocket": {"event": "x", "data": {"n": 1, "s": "é \u2603"}}},
        "metadata": {"k": [1, 2.5, None, True]},
        "critical": True,
        "send_at": _T + timedelta(hours=1),
        "created_at": _T,
        "idempotency_key": None,
        "request_hash": None,
        **overrides,
    }


async def test_insert_rows_stores_what_a_core_insert_stores(db: Database, client_id: str) -> None:
    table = Notification.__table__  # type: ignore[attr-defined]
    ours = [_row(client_id=client_id), _row(client_id=client_id, critical=False)]
    core = [_row(client_id=client_id), _row(client_id=client_id, critical=False)]
    async with db.session() as session:
        await insert_rows(session, table, ours)
        await session.execute(insert(table), core)
        await session.commit()
    async with db.session() as session:
        found = {
            n.id: n
            for n in (
                await session.execute(
                    select(Notification).where(Notification.client_id == client_id)
                )
            ).scalars()
        }
    assert len(found) == 4
    for mine, theirs in zip(ours, core, strict=True):
        a, b = found[mine["id"]], found[theirs["id"]]
        for field in (
            "status",
            "channels",
            "content",
            "metadata_",
            "critical",
            "send_at",
            "created_at",
        ):
            assert getattr(a, field) == getattr(b, field), field
        assert a.send_at == _T + timedelta(hours=1) and a.content == mine["content"]


async def test_insert_rows_of_nothing_does_nothing(db: Database) -> None:
    table = Notification.__table__  # type: ignore[attr-defined]
    async with db.session() as session:
        await insert_rows(session, table, [])
        assert not session.in_transaction()
