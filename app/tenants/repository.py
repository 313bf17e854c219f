"""Queries on clients."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.tenants.models import Client


async def get(session: AsyncSession, client_id: str) -> Client | None:
    """The client by id."""
    return await session.get(Client, client_id)


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    """Whether a client already uses `slug`."""
    result = await session.execute(select(col(Client.id)).where(col(Client.slug) == slug))
    return result.first() is not None


async def get_by_slug(session: AsyncSession, slug: str) -> Client | None:
    """The client with `slug`."""
    result = await session.execute(select(Client).where(col(Client.slug) == slug))
    return result.scalar_one_or_none()


def add(session: AsyncSession, client: Client) -> None:
    """Stage a new client."""
    session.add(client)


async def all_settings(session: AsyncSession) -> list[tuple[str, dict[str, object]]]:
    """(client id, stored settings) of every client: O(clients), read once per sweep."""
    result = await session.execute(select(col(Client.id), col(Client.settings)))
    return [(row[0], dict(row[1] or {})) for row in result.all()]
