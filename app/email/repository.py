"""`/email-config`'s rows: the client's `smtp` providers named `smtp` and `smtp-fallback`
(app/providers' table), and the `email` route naming them, written as one configuration.

A PUT replaces both providers (the fallback is deleted when the configuration has none) and,
when the client has no `email` route yet, sets it to `smtp` then `smtp-fallback`; with a
route, the fallback's name is kept in it (after `smtp`) or taken out, so a route never
names a provider that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.ids import new_id
from app.core.upsert import dialect_insert
from app.email.models import EmailConfig
from app.providers import repository as providers
from app.providers.models import Provider, ProviderRoute

PRIMARY = "smtp"
FALLBACK = "smtp-fallback"
TYPE = "smtp"
CHANNEL = "email"
_FIELDS = ("host", "port", "username", "security", "from_email", "from_name")


async def get(session: AsyncSession, client_id: str) -> EmailConfig | None:
    """The client's configuration, if it has its `smtp` provider."""
    rows = {
        p.name: p
        for p in await providers.by_names(session, client_id, [PRIMARY, FALLBACK])
        if p.type == TYPE
    }
    primary = rows.get(PRIMARY)
    if primary is None:
        return None
    fallback = rows.get(FALLBACK)
    return _view(primary, fallback)


def _fields(row: Provider) -> dict[str, Any]:
    out = {k: row.settings.get(k) for k in _FIELDS}
    out["password_sealed"] = row.secrets_sealed.get("password")
    return out


def _view(primary: Provider, fallback: Provider | None) -> EmailConfig:
    fields = _fields(primary)
    return EmailConfig(
        client_id=primary.client_id,
        host=fields["host"],
        port=int(fields["port"]),
        username=fields["username"],
        password_sealed=fields["password_sealed"],
        security=fields["security"],
        from_email=fields["from_email"],
        from_name=fields["from_name"],
        fallback=_fields(fallback) if fallback is not None else None,
        updated_at=primary.updated_at,
    )


async def _upsert_provider(
    session: AsyncSession, client_id: str, name: str, fields: dict[str, Any], now: datetime
) -> Provider:
    sealed = fields.get("password_sealed")
    values: dict[str, Any] = {
        "type": TYPE,
        "channel": CHANNEL,
        "settings": {k: fields.get(k) for k in _FIELDS},
        "secrets_sealed": {"password": sealed} if sealed else {},
        "enabled": True,
        "updated_at": now,
    }
    stmt = dialect_insert(session, Provider).values(
        id=new_id(), client_id=client_id, name=name, created_at=now, **values
    )
    stmt = (
        stmt.on_conflict_do_update(index_elements=["client_id", "name"], set_=values)
        .returning(Provider)
        .execution_options(populate_existing=True)
    )
    row: Provider = (await session.execute(stmt)).scalar_one()
    return row


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
    """Create or replace the client's configuration (`PUT` semantics), route included."""
    fields = {
        "host": host,
        "port": port,
        "username": username,
        "password_sealed": password_sealed,
        "security": security,
        "from_email": from_email,
        "from_name": from_name,
    }
    primary = await _upsert_provider(session, client_id, PRIMARY, fields, now)
    second: Provider | None = None
    if fallback is not None:
        second = await _upsert_provider(session, client_id, FALLBACK, fallback, now)
    else:
        await _delete_named(session, client_id, [FALLBACK])
    route = await providers.get_route(session, client_id, CHANNEL)
    if route is None:
        chain = [PRIMARY, FALLBACK] if second is not None else [PRIMARY]
        await providers.put_route(
            session,
            client_id,
            CHANNEL,
            providers=chain,
            bulk_min_recipients=None,
            bulk_providers=None,
            now=now,
        )
    else:
        await _keep_route_true(session, route, has_fallback=second is not None, now=now)
    return _view(primary, second)


async def _keep_route_true(
    session: AsyncSession, route: ProviderRoute, *, has_fallback: bool, now: datetime
) -> None:
    chain = [n for n in route.providers if has_fallback or n != FALLBACK]
    if has_fallback and FALLBACK not in chain and PRIMARY in chain:
        chain.insert(chain.index(PRIMARY) + 1, FALLBACK)
    bulk = [n for n in route.bulk_providers or [] if has_fallback or n != FALLBACK]
    if chain == route.providers and bulk == (route.bulk_providers or []):
        return
    await providers.put_route(
        session,
        route.client_id,
        CHANNEL,
        providers=chain,
        bulk_min_recipients=route.bulk_min_recipients if bulk else None,
        bulk_providers=bulk or None,
        now=now,
    )


async def _delete_named(session: AsyncSession, client_id: str, names: list[str]) -> int:
    result = await session.execute(
        delete(Provider)
        .where(
            col(Provider.client_id) == client_id,
            col(Provider.name).in_(names),
            col(Provider.type) == TYPE,
        )
        .returning(col(Provider.id))
    )
    return len(result.all())


async def delete_config(session: AsyncSession, client_id: str) -> bool:
    """Remove the client's `smtp` providers (and their names from its `email` route);
    False when it had no configuration."""
    if await get(session, client_id) is None:
        return False
    await _delete_named(session, client_id, [PRIMARY, FALLBACK])
    route = await providers.get_route(session, client_id, CHANNEL)
    if route is not None:
        chain = [n for n in route.providers if n not in (PRIMARY, FALLBACK)]
        bulk = [n for n in route.bulk_providers or [] if n not in (PRIMARY, FALLBACK)]
        if not chain and not bulk:
            await providers.delete_route(session, client_id, CHANNEL)
        else:
            await providers.put_route(
                session,
                client_id,
                CHANNEL,
                providers=chain,
                bulk_min_recipients=route.bulk_min_recipients if bulk else None,
                bulk_providers=bulk or None,
                now=route.updated_at,
            )
    return True
