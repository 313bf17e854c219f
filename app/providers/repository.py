"""Providers and their routing per channel: rows in, rows out (no secrets opened here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.upsert import dialect_insert
from app.providers.models import Provider, ProviderRoute
from app.tenants.models import Client

# The `/email-config` view's providers (app/email): an unrouted tenant's chain starts with
# them, in this order.
FIRST_BY_DEFAULT = ("smtp", "smtp-fallback")


async def add(session: AsyncSession, provider: Provider) -> Provider:
    """Insert a provider (flushed: a duplicate name raises IntegrityError here)."""
    session.add(provider)
    await session.flush()
    return provider


async def get(session: AsyncSession, client_id: str, provider_id: str) -> Provider | None:
    """The client's provider with this id (another client's: None)."""
    query = select(Provider).where(
        col(Provider.client_id) == client_id, col(Provider.id) == provider_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def by_names(session: AsyncSession, client_id: str, names: Sequence[str]) -> list[Provider]:
    """The client's providers among `names` (unknown names are simply absent)."""
    if not names:
        return []
    query = select(Provider).where(
        col(Provider.client_id) == client_id, col(Provider.name).in_(list(names))
    )
    return list((await session.execute(query)).scalars().all())


async def of_channel(session: AsyncSession, client_id: str, channel: str) -> list[Provider]:
    """The client's providers of `channel` in the default chain's order: the `/email-config`
    ones first (`smtp`, `smtp-fallback`), then by creation (ids sort by time)."""
    query = select(Provider).where(
        col(Provider.client_id) == client_id, col(Provider.channel) == channel
    )
    rows = list((await session.execute(query)).scalars().all())
    return sorted(rows, key=_default_order)


def _default_order(p: Provider) -> tuple[int, str]:
    rank = FIRST_BY_DEFAULT.index(p.name) if p.name in FIRST_BY_DEFAULT else len(FIRST_BY_DEFAULT)
    return rank, p.id


async def list_page(
    session: AsyncSession, client_id: str, *, limit: int, after: str | None = None
) -> list[Provider]:
    """`limit + 1` providers by id after the cursor."""
    query = select(Provider).where(col(Provider.client_id) == client_id)
    if after:
        query = query.where(col(Provider.id) > after)
    query = query.order_by(col(Provider.id)).limit(limit + 1)
    return list((await session.execute(query)).scalars().all())


async def remove(session: AsyncSession, client_id: str, provider_id: str) -> bool:
    """Delete the client's provider; False when there was none."""
    result = await session.execute(
        delete(Provider)
        .where(col(Provider.client_id) == client_id, col(Provider.id) == provider_id)
        .returning(col(Provider.id))
    )
    return result.scalar_one_or_none() is not None


async def client_slug(session: AsyncSession, client_id: str) -> str | None:
    """The client's slug (where its providers' delivery events come back)."""
    query = select(col(Client.slug)).where(col(Client.id) == client_id)
    return (await session.execute(query)).scalar_one_or_none()


async def get_route(session: AsyncSession, client_id: str, channel: str) -> ProviderRoute | None:
    """The client's stored routing of `channel`, if it set one."""
    query = select(ProviderRoute).where(
        col(ProviderRoute.client_id) == client_id, col(ProviderRoute.channel) == channel
    )
    return (await session.execute(query)).scalar_one_or_none()


async def routes_of(session: AsyncSession, client_id: str) -> list[ProviderRoute]:
    """Every stored routing of the client (one per channel at most: a handful)."""
    query = select(ProviderRoute).where(col(ProviderRoute.client_id) == client_id)
    return list((await session.execute(query)).scalars().all())


async def put_route(
    session: AsyncSession,
    client_id: str,
    channel: str,
    *,
    providers: list[str],
    bulk_min_recipients: int | None,
    bulk_providers: list[str] | None,
    now: datetime,
) -> ProviderRoute:
    """Create or replace the client's routing of `channel` in one statement."""
    values: dict[str, Any] = {
        "providers": providers,
        "bulk_min_recipients": bulk_min_recipients,
        "bulk_providers": bulk_providers,
        "updated_at": now,
    }
    stmt = dialect_insert(session, ProviderRoute).values(
        client_id=client_id, channel=channel, **values
    )
    stmt = (
        stmt.on_conflict_do_update(index_elements=["client_id", "channel"], set_=values)
        .returning(ProviderRoute)
        .execution_options(populate_existing=True)
    )
    row: ProviderRoute = (await session.execute(stmt)).scalar_one()
    return row


async def delete_route(session: AsyncSession, client_id: str, channel: str) -> None:
    """Forget the client's routing of `channel` (it falls back to the default chain)."""
    await session.execute(
        delete(ProviderRoute).where(
            col(ProviderRoute.client_id) == client_id, col(ProviderRoute.channel) == channel
        )
    )
