"""`/inbound-webhooks` (master key) and the public ingestion URL `/webhooks/{slug}/{name}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from app.api.deps import (
    MasterDep,
    PublicBaseUrlDep,
    ReadSessionDep,
    SecretBoxDep,
    SessionDep,
    SettingsDep,
    runtime_of,
)
from app.core.errors import AppError, NotFound, PayloadTooLarge
from app.core.openapi import problems
from app.core.pagination import PageParams, page_params
from app.inbound import service
from app.inbound.schemas import (
    Accepted,
    EventOut,
    EventPage,
    HookCreate,
    HookOut,
    HookPage,
    HookPatch,
    RotateSecret,
)
from app.observability.metrics import count_inbound
from app.ratelimit.policies import hit_inbound, hit_inbound_unverified

router = APIRouter(prefix="/inbound-webhooks", tags=["inbound webhooks"])
public_router = APIRouter(tags=["inbound webhooks"])


@router.post("", status_code=201, response_model=HookOut, responses=problems(409))
async def create_hook(
    body: HookCreate,
    principal: MasterDep,
    session: SessionDep,
    box: SecretBoxDep,
    base_url: PublicBaseUrlDep,
) -> HookOut:
    """A new inbound webhook; the answer carries its `secret`, shown only this once, and
    its absolute `url` to give the sender."""
    return await service.create_hook(session, box, principal.client_id, body, base_url)


@router.get("", response_model=HookPage)
async def list_hooks(
    principal: MasterDep,
    session: ReadSessionDep,
    base_url: PublicBaseUrlDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> HookPage:
    """The client's inbound webhooks, oldest first, by cursor."""
    data, more, cursor = await service.list_hooks(
        session, principal.client_id, page.limit, page.cursor, base_url
    )
    return HookPage(data=data, has_more=more, next_cursor=cursor)


@router.get("/{hook_id}", response_model=HookOut)
async def get_hook(
    hook_id: str, principal: MasterDep, session: ReadSessionDep, base_url: PublicBaseUrlDep
) -> HookOut:
    """One inbound webhook (never its secret)."""
    hook = await service.get_hook(session, principal.client_id, hook_id)
    return await service.hook_out(session, principal.client_id, hook, base_url)


@router.patch("/{hook_id}", response_model=HookOut)
async def patch_hook(
    hook_id: str,
    body: HookPatch,
    principal: MasterDep,
    session: SessionDep,
    base_url: PublicBaseUrlDep,
) -> HookOut:
    """Change the action, config, scheme, signature options, or enable/disable it."""
    return await service.update_hook(session, principal.client_id, hook_id, body, base_url)


@router.delete("/{hook_id}", status_code=204)
async def delete_hook(hook_id: str, principal: MasterDep, session: SessionDep) -> Response:
    """Delete the hook and its events (rooms it created stay)."""
    await service.delete_hook(session, principal.client_id, hook_id)
    return Response(status_code=204)


@router.post("/{hook_id}/rotate-secret", response_model=HookOut)
async def rotate_secret(
    hook_id: str,
    principal: MasterDep,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
    base_url: PublicBaseUrlDep,
    body: RotateSecret | None = None,
) -> HookOut:
    """A new secret (shown once); the old one still verifies for `grace_seconds`."""
    grace = body.grace_seconds if body and body.grace_seconds is not None else None
    if grace is None:
        grace = settings.INBOUND_SECRET_GRACE_SECONDS
    return await service.rotate_secret(session, box, principal.client_id, hook_id, grace, base_url)


@router.get("/{hook_id}/events", response_model=EventPage)
async def list_events(
    hook_id: str,
    principal: MasterDep,
    session: ReadSessionDep,
    page: Annotated[PageParams, Depends(page_params)],
    status: Annotated[str | None, Query(pattern="^(pending|processing|processed|failed)$")] = None,
) -> EventPage:
    """The hook's received events, newest first, with their processing outcome."""
    rows, more, cursor = await service.list_events(
        session, principal.client_id, hook_id, limit=page.limit, cursor=page.cursor, status=status
    )
    return EventPage(data=[EventOut.of(e) for e in rows], has_more=more, next_cursor=cursor)


@router.post(
    "/{hook_id}/events/{event_id}/replay",
    status_code=202,
    response_model=EventOut,
    responses=problems(409),
)
async def replay_event(
    hook_id: str, event_id: str, principal: MasterDep, session: SessionDep, request: Request
) -> EventOut:
    """Process a processed or failed event again (its action acts anew)."""
    doorbell = runtime_of(request).doorbell
    event = await service.replay(session, principal.client_id, hook_id, event_id, doorbell)
    return EventOut.of(event)


# Any body: the sender's own format. Documented so clients (and fuzzers) know it takes one.
_ANY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {}}, "*/*": {"schema": {}}},
    }
}


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@public_router.post(
    "/webhooks/{client_slug}/{name}",
    status_code=202,
    response_model=Accepted,
    responses=problems(401, 403, 404, 413, 429),
    openapi_extra=_ANY_BODY,
)
async def receive_webhook(
    client_slug: str, name: str, request: Request, settings: SettingsDep, box: SecretBoxDep
) -> Accepted:
    """An external system's event, authenticated by its signature (no API key).

    202 once stored (also for a repeated delivery: `duplicate` is true and the first
    event's id is returned); 401 for a missing or invalid signature, 403 when the hook is
    disabled, 404 when there is no such client or hook (one answer for both), 413 over
    INBOUND_MAX_BODY_BYTES, 429 over RATE_LIMIT_INBOUND_PER_MINUTE signed requests for the
    hook, or over the unverified budgets (RATE_LIMIT_INBOUND_UNVERIFIED_PER_MINUTE per hook,
    ..._PER_ADDRESS per source address) for requests that fail verification.
    """
    try:
        accepted = await _receive(client_slug, name, request, settings, box)
    except AppError as exc:
        count_inbound(_REFUSALS.get(exc.status, "refused"))
        raise
    except Exception:
        count_inbound("error")
        raise
    count_inbound("duplicate" if accepted.duplicate else "accepted")
    return accepted


# `chatapi_inbound_events_total{outcome}` for each refusal, by the problem's status.
_REFUSALS = {
    401: "rejected",
    403: "disabled",
    404: "unknown_hook",
    413: "too_large",
    429: "limited",
}


async def _receive(
    client_slug: str, name: str, request: Request, settings: SettingsDep, box: SecretBoxDep
) -> Accepted:
    body = await _read_limited(request, settings.INBOUND_MAX_BODY_BYTES)
    headers = {k.lower(): v for k, v in request.headers.items()}
    # Verified first, then counted: a flood of forgeries spends only the unverified budgets,
    # never the signed sender's. Their path reads the hook and computes an HMAC over a body
    # bounded by INBOUND_MAX_BODY_BYTES; it writes nothing.
    hook_id = None
    try:
        hook = await service.find_hook(request.app.state.db, client_slug, name)
        hook_id = hook.id
        verified = service.verify(box, settings, hook, body, headers)
    except (NotFound, service.SignatureRejected):
        await hit_inbound_unverified(request, hook_id)  # 429 over its budget
        raise
    await hit_inbound(request, hook.id)
    doorbell = runtime_of(request).doorbell
    return await service.store(request.app.state.db, verified, body, headers, doorbell=doorbell)
