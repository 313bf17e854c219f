"""Leased-work engine fixtures: the inbound events table as the engine's test queue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import col

from app.core.clock import utcnow
from app.core.db import Database
from app.core.ids import new_id
from app.inbound import repository
from app.inbound.models import InboundEvent, InboundWebhook
from tests.support.db import client_id, db, other_client_id

__all__ = ["client_id", "db", "due_rows", "forget", "other_client_id"]


async def due_rows(
    db: Database, client_id: str, n: int, *, due_at: datetime | None = None
) -> list[str]:
    """`n` due events of a new hook of the client (one transaction); their ids in order."""
    hook = InboundWebhook(
        id=new_id(),
        client_id=client_id,
        name=new_id(),
        action="room",
        scheme="github",
        secret_sealed="x",
    )
    at = due_at or utcnow()
    ids = [new_id() for _ in range(n)]
    async with db.session() as session:
        await repository.add_hook(session, client_id, hook)
        session.add_all(
            InboundEvent(
                id=i,
                client_id=client_id,
                hook_id=hook.id,
                body=b"{}",
                next_attempt_at=at,
                received_at=at,
                updated_at=at,
            )
            for i in ids
        )
        await session.commit()
    return ids


async def forget(db: Database, ids: list[str]) -> None:
    """Delete the events: rows due in a test's past era would be due in every later one."""
    async with db.session() as session:
        await session.execute(delete(InboundEvent).where(col(InboundEvent.id).in_(ids)))
        await session.commit()
