"""`/providers` and `/routing/{channel}`: the services behind the email, sms and push
channels, and the order they are tried in (master key; docs/providers.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response

from app.api.deps import (
    MasterDep,
    ReadSessionDep,
    SecretBoxDep,
    SessionDep,
    SettingsDep,
    runtime_of,
)
from app.core.openapi import problems
from app.core.pagination import PageParams, make_page, page_params
from app.providers import routing, service
from app.providers.base import ProviderType
from app.providers.schemas import (
    ProviderCreate,
    ProviderOut,
    ProviderPage,
    ProviderPatch,
    ProviderTest,
    ProviderTestResult,
    RoutingOut,
    RoutingPut,
)

router = APIRouter(prefix="/providers", tags=["providers"])
routing_router = APIRouter(prefix="/routing", tags=["providers"])


async def _types(request: Request) -> dict[str, ProviderType]:
    return runtime_of(request).provider_types


TypesDep = Annotated[dict[str, ProviderType], Depends(_types)]


@router.post("", status_code=201, response_model=ProviderOut, responses=problems(409, 422))
async def create_provider(
    body: ProviderCreate,
    principal: MasterDep,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
    types: TypesDep,
) -> ProviderOut:
    """Create a provider of an installed type. Its settings are validated by the type (422
    naming each field); secret ones are sealed and never returned (`secret_fields` names
    those set). An HTTP provider's `base_url` is held to the webhook address policy, an SMTP
    host to the SMTP one (422 naming the setting). 409: the name is taken."""
    row = await service.create_provider(session, box, settings, types, principal.client_id, body)
    return ProviderOut.of(row)


@router.get("", response_model=ProviderPage)
async def list_providers(
    principal: MasterDep,
    session: ReadSessionDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> ProviderPage:
    """The client's providers, oldest first, by cursor."""
    rows = await service.list_providers(session, principal.client_id, page.limit, page.cursor)
    items, has_more, cursor = make_page(rows, page.limit, "id")
    return ProviderPage(
        data=[ProviderOut.of(p) for p in items], has_more=has_more, next_cursor=cursor
    )


@router.get("/{provider_id}", response_model=ProviderOut, responses=problems(404))
async def get_provider(
    provider_id: str, principal: MasterDep, session: ReadSessionDep
) -> ProviderOut:
    """One provider (never its secrets)."""
    return ProviderOut.of(await service.get_provider(session, principal.client_id, provider_id))


@router.patch("/{provider_id}", response_model=ProviderOut, responses=problems(404, 409, 422))
async def patch_provider(
    provider_id: str,
    body: ProviderPatch,
    principal: MasterDep,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
    types: TypesDep,
) -> ProviderOut:
    """Rename, enable/disable, or change settings: they are merged into the stored ones (a
    secret left out keeps its value, `null` clears an optional setting) and validated and
    checked again. A provider a route names cannot be renamed (409 naming the route)."""
    row = await service.update_provider(
        session, box, settings, types, principal.client_id, provider_id, body
    )
    return ProviderOut.of(row)


@router.delete("/{provider_id}", status_code=204, responses=problems(404, 409))
async def delete_provider(provider_id: str, principal: MasterDep, session: SessionDep) -> Response:
    """Delete a provider. 409 when a route names it (the answer says which): take it out of
    `PUT /routing/{channel}` first."""
    await service.delete_provider(session, principal.client_id, provider_id)
    return Response(status_code=204)


@router.post(
    "/{provider_id}/test", response_model=ProviderTestResult, responses=problems(404, 422, 502)
)
async def test_provider(
    provider_id: str,
    principal: MasterDep,
    session: SessionDep,
    box: SecretBoxDep,
    types: TypesDep,
    body: Annotated[ProviderTest | None, Body()] = None,
) -> ProviderTestResult:
    """Check the account with its service: send a test message to `to` (e-mail: an address),
    or without `to` verify the connection and credentials. 200 with what was done; 502 with
    the service's reason when it did not work."""
    to = (body or ProviderTest()).to
    return await service.test_provider(session, box, types, principal.client_id, provider_id, to)


@routing_router.get("/{channel}", response_model=RoutingOut, responses=problems(422))
async def get_routing(
    channel: str, principal: MasterDep, session: ReadSessionDep, types: TypesDep
) -> RoutingOut:
    """The channel's routing; without a stored one, the default (`default: true`): the
    client's enabled providers of the channel, `smtp` and `smtp-fallback` first."""
    return await routing.get_routing(session, types, principal.client_id, channel)


@routing_router.put("/{channel}", response_model=RoutingOut, responses=problems(422))
async def put_routing(
    channel: str, body: RoutingPut, principal: MasterDep, session: SessionDep, types: TypesDep
) -> RoutingOut:
    """Replace the channel's routing: `providers` is the failover chain (first tried first;
    a failure that is the provider's fault moves on to the next in the same attempt), `bulk`
    the chain for sends with at least `min_recipients` recipients on the channel. Every name
    must be a provider of the client on this channel (422)."""
    return await routing.put_routing(session, types, principal.client_id, channel, body)
