"""`/webhook-endpoints`: where the client receives signed events (master key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response

from app.api.deps import MasterDep, ReadSessionDep, SecretBoxDep, SessionDep, SettingsDep
from app.core.clock import utcnow
from app.core.openapi import problems
from app.core.pagination import PageParams, make_page, page_params
from app.webhooks import service
from app.webhooks.models import WebhookEndpoint
from app.webhooks.schemas import (
    EndpointCreate,
    EndpointOut,
    EndpointPage,
    EndpointPatch,
    EndpointWithSecret,
    RotateSecret,
)

router = APIRouter(prefix="/webhook-endpoints", tags=["webhooks"])


def _with_secret(endpoint: WebhookEndpoint, secret: str) -> EndpointWithSecret:
    shown = EndpointOut.of(endpoint, utcnow())
    return EndpointWithSecret(**shown.model_dump(), secret=secret)


@router.post("", status_code=201, response_model=EndpointWithSecret, responses=problems(422))
async def create_endpoint(
    body: EndpointCreate,
    principal: MasterDep,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
) -> EndpointWithSecret:
    """Create an endpoint; the answer carries its signing secret, shown only this once.

    A URL whose host is (or resolves to) a private or loopback address is refused (422)
    unless WEBHOOK_ALLOW_PRIVATE_TARGETS is set.
    """
    endpoint, secret = await service.create_endpoint(
        session, box, settings, principal.client_id, body
    )
    return _with_secret(endpoint, secret)


@router.get("", response_model=EndpointPage)
async def list_endpoints(
    principal: MasterDep,
    session: ReadSessionDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> EndpointPage:
    """The client's endpoints, oldest first, by cursor."""
    rows = await service.list_endpoints(session, principal.client_id, page.limit, page.cursor)
    items, has_more, cursor = make_page(rows, page.limit, "id")
    now = utcnow()
    return EndpointPage(
        data=[EndpointOut.of(e, now) for e in items], has_more=has_more, next_cursor=cursor
    )


@router.get("/{endpoint_id}", response_model=EndpointOut, responses=problems(404))
async def get_endpoint(
    endpoint_id: str, principal: MasterDep, session: ReadSessionDep
) -> EndpointOut:
    """One endpoint (never its secret)."""
    endpoint = await service.get_endpoint(session, principal.client_id, endpoint_id)
    return EndpointOut.of(endpoint, utcnow())


@router.patch("/{endpoint_id}", response_model=EndpointOut, responses=problems(404, 422))
async def patch_endpoint(
    endpoint_id: str,
    body: EndpointPatch,
    principal: MasterDep,
    session: SessionDep,
    settings: SettingsDep,
) -> EndpointOut:
    """Change URL (checked again), description, event types, or `disabled`.

    `disabled: false` on a disabled endpoint re-enables it and clears its failure run.
    """
    endpoint = await service.update_endpoint(
        session, settings, principal.client_id, endpoint_id, body
    )
    return EndpointOut.of(endpoint, utcnow())


@router.delete("/{endpoint_id}", status_code=204, responses=problems(404))
async def delete_endpoint(endpoint_id: str, principal: MasterDep, session: SessionDep) -> Response:
    """Delete an endpoint."""
    await service.delete_endpoint(session, principal.client_id, endpoint_id)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret, responses=problems(404)
)
async def rotate_secret(
    endpoint_id: str,
    principal: MasterDep,
    session: SessionDep,
    box: SecretBoxDep,
    body: Annotated[RotateSecret | None, Body()] = None,
) -> EndpointWithSecret:
    """A new signing secret, shown only in this answer. For `grace_seconds` (default 24 h,
    at most 7 days) deliveries carry signatures by both; after that only by the new one."""
    grace = (body or RotateSecret()).grace_seconds
    endpoint, secret = await service.rotate_secret(
        session, box, principal.client_id, endpoint_id, grace
    )
    return _with_secret(endpoint, secret)
