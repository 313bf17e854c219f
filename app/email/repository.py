"""A client's SMTP configuration: one row per client, replaced as a whole."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.upsert import dialect_insert
from app.email.models import EmailConfig


async def get(session: AsyncSession, client_id: str) -> EmailConfig | None:
    """The client's configuration, if it has one."""
    query = select(EmailConfig).where(col(EmailConfig.client_id) == client_id)
    return (await session.execute(query)).scalar_one_or_none()


async def upsert(
    session: AsyncSession,
    client_id: str,
    *,
    host: str,
    port: int,
    username: str | None,
    password_sealed: str | None,
    security: str,
    from_email: str,
    from_name: str | None,
    fallback: dict[str, Any] | None,
    now: datetime,
) -> EmailConfig:
    """Create or replace the client's configuration in one statement (`PUT` semantics)."""
    values: dict[str, Any] = {
        "host": host,
        "port": port,
        "username": username,
        "password_sealed": password_sealed,
        "security": security,
        "from_email": from_email,
        "from_name": from_name,
        "fallback": fallback,
        "updated_at": now,
    }
    stmt = dialect_insert(session, EmailConfig).values(client_id=client_id, **values)
    stmt = (
        stmt.on_conflict_do_update(index_elements=["client_id"], set_=values)
        .returning(EmailConfig)
        .execution_options(populate_existing=True)
    )
    row: EmailConfig = (await session.execute(stmt)).scalar_one()
    return row


async def delete_config(session: AsyncSession, client_id: str) -> bool:
    """Remove the client's configuration; False when there was none."""
    result = await session.execute(
        delete(EmailConfig)
        .where(col(EmailConfig.client_id) == client_id)
        .returning(col(EmailConfig.client_id))
    )
    return result.scalar_one_or_none() is not None
