"""Queries on connect_tokens; redeeming one is a single conditional UPDATE (atomic in every
process and on both databases)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.auth.models import ConnectToken


def add(session: AsyncSession, token: ConnectToken) -> None:
    """Stage a new token."""
    session.add(token)


async def purge_expired(session: AsyncSession, client_id: str, before: datetime) -> None:
    """Delete the client's tokens that expired before `before` (minting keeps the table small)."""
    await session.execute(
        delete(ConnectToken)
        .where(col(ConnectToken.client_id) == client_id, col(ConnectToken.expires_at) < before)
        .execution_options(synchronize_session=False)
    )


async def consume(session: AsyncSession, token_hash: str, now: datetime) -> ConnectToken | None:
    """Mark the token used if it is unused and unexpired, and return it; None otherwise.

    The WHERE clause is the single-use guarantee: of concurrent redemptions (any process),
    exactly one UPDATE matches the row.
    """
    result = await session.execute(
        update(ConnectToken)
        .where(
            col(ConnectToken.token_hash) == token_hash,
            col(ConnectToken.used_at).is_(None),
            col(ConnectToken.expires_at) > now,
        )
        .values(used_at=now)
        .returning(
            col(ConnectToken.client_id),
            col(ConnectToken.kind),
            col(ConnectToken.user_id),
            col(ConnectToken.key_id),
            col(ConnectToken.scopes),
            col(ConnectToken.expires_at),
        )
        .execution_options(synchronize_session=False)
    )
    row = result.first()
    if row is None:
        return None
    client_id, kind, user_id, key_id, scopes, expires_at = row
    return ConnectToken(
        token_hash=token_hash,
        client_id=client_id,
        kind=kind,
        user_id=user_id,
        key_id=key_id,
        scopes=list(scopes),
        expires_at=expires_at,
        used_at=now,
    )
