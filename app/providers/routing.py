"""A tenant's routing per channel: set and shown (`/routing/{channel}`), and read for a batch
of deliveries with its accounts opened (`route_for_delivery`, two queries).

A channel without a stored route routes through the tenant's enabled providers of that
channel: `smtp` and `smtp-fallback` (the `/email-config` view) first, then by creation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.crypto import SecretBox
from app.core.errors import Unprocessable
from app.providers import accounts, repository
from app.providers.base import ProviderAccount, ProviderSettings, ProviderType
from app.providers.failover import Route
from app.providers.models import Provider
from app.providers.schemas import RoutingOut, RoutingPut

log = logging.getLogger("chatapi.providers")


def known_channel(types: Mapping[str, ProviderType], channel: str) -> str:
    """`channel` when an installed provider type delivers for it, else 422."""
    channels = sorted({t.channel for t in types.values()})
    if channel not in channels:
        raise Unprocessable(
            f"no installed provider type delivers for channel {channel!r}; "
            f"channels with providers: {', '.join(channels) or 'none'}",
            loc=("path", "channel"),
        )
    return channel


async def get_routing(
    session: AsyncSession, types: Mapping[str, ProviderType], client_id: str, channel: str
) -> RoutingOut:
    """The stored routing, or the default one (`default: true`)."""
    known_channel(types, channel)
    row = await repository.get_route(session, client_id, channel)
    if row is not None:
        return RoutingOut.of(row)
    providers = await repository.of_channel(session, client_id, channel)
    return RoutingOut(
        channel=channel,
        providers=[p.name for p in providers if p.enabled],
        bulk=None,
        default=True,
        updated_at=None,
    )


async def put_routing(
    session: AsyncSession,
    types: Mapping[str, ProviderType],
    client_id: str,
    channel: str,
    body: RoutingPut,
) -> RoutingOut:
    """Replace the routing: every name must be a provider of the client on this channel."""
    known_channel(types, channel)
    bulk_names = list(body.bulk.providers) if body.bulk else []
    names = [*body.providers, *bulk_names]
    found = {p.name: p for p in await repository.by_names(session, client_id, names)}
    for where, chain in (("providers", body.providers), ("bulk.providers", bulk_names)):
        if len(set(chain)) != len(chain):
            raise Unprocessable(f"{where} names a provider twice", loc=("body", where))
        for name in chain:
            provider = found.get(name)
            if provider is None:
                raise Unprocessable(f"{where}: no provider named {name!r}", loc=("body", where))
            if provider.channel != channel:
                raise Unprocessable(
                    f"{where}: provider {name!r} delivers for {provider.channel!r}, "
                    f"not {channel!r}",
                    loc=("body", where),
                )
    row = await repository.put_route(
        session,
        client_id,
        channel,
        providers=list(body.providers),
        bulk_min_recipients=body.bulk.min_recipients if body.bulk else None,
        bulk_providers=list(body.bulk.providers) if body.bulk else None,
        now=utcnow(),
    )
    await session.commit()
    return RoutingOut.of(row)


async def route_for_delivery(
    session: AsyncSession,
    box: SecretBox,
    types: Mapping[str, ProviderType],
    client_id: str,
    channel: str,
) -> Route:
    """The tenant's route for `channel`, enabled accounts only, secrets opened (two queries:
    the route, then its providers; a third, the tenant's slug, for types that need it).
    Raises SecretBoxError when a secret cannot be opened."""
    row = await repository.get_route(session, client_id, channel)
    if row is None:
        providers = await repository.of_channel(session, client_id, channel)
        route = Route(providers=_opened(box, types, providers, [p.name for p in providers]))
    else:
        bulk_names = row.bulk_providers or []
        rows = await repository.by_names(session, client_id, [*row.providers, *bulk_names])
        route = Route(
            providers=_opened(box, types, rows, row.providers),
            bulk_min_recipients=row.bulk_min_recipients,
            bulk=_opened(box, types, rows, bulk_names),
        )
    return await _with_slug(session, types, client_id, route)


async def _with_slug(
    session: AsyncSession, types: Mapping[str, ProviderType], client_id: str, route: Route
) -> Route:
    """The route's accounts with the tenant's slug, when a type of the route sends it along
    (one more query, only then: e-mail routes never pay it)."""
    accounts = (*route.providers, *route.bulk)
    if not any(getattr(types.get(a.type), "needs_client_slug", False) for a in accounts):
        return route
    slug = await repository.client_slug(session, client_id)
    return replace(
        route,
        providers=tuple(replace(a, client_slug=slug) for a in route.providers),
        bulk=tuple(replace(a, client_slug=slug) for a in route.bulk),
    )


def _opened(
    box: SecretBox,
    types: Mapping[str, ProviderType],
    rows: Sequence[Provider],
    names: Sequence[str],
) -> tuple[ProviderAccount, ...]:
    by_name = {r.name: r for r in rows}
    chain: list[ProviderAccount] = []
    for name in names:
        row = by_name.get(name)
        if row is None or not row.enabled:
            continue
        provider_type = types.get(row.type)
        if provider_type is None:
            # Kept in the chain: send_through answers "not installed in this process" and
            # fails over, so a worker without the plug-in neither loses nor misroutes it.
            chain.append(
                ProviderAccount(
                    row.id, row.client_id, row.name, row.type, row.channel, _NoSettings()
                )
            )
            continue
        try:
            chain.append(accounts.opened(box, provider_type, row))
        except ValidationError as exc:
            # Stored settings the installed type no longer accepts (a plug-in upgrade):
            # left out, loudly; the rest of the chain still delivers.
            log.error(
                "provider %r of client %s has settings its type refuses: %s",
                row.name,
                row.client_id,
                exc.errors(include_input=False),
            )
    return tuple(chain)


class _NoSettings(ProviderSettings):
    """The settings of an account whose type is not installed in this process."""
