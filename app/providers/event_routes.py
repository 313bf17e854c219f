"""`POST /provider-events/{client_slug}/{provider_name}`: providers' delivery events, for
every provider type (its own `verify_events` checks the request), no API key.

Verified first, then counted: a request that fails verification (or names no provider)
spends only the per-address budget of unverified requests
(RATE_LIMIT_INBOUND_UNVERIFIED_PER_MINUTE_PER_ADDRESS); a verified one spends the tenant's
RATE_LIMIT_PROVIDER_EVENTS_PER_MINUTE. Nothing is stored for a refused request.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import SecretBoxDep, SettingsDep, runtime_of
from app.core.clock import utcnow
from app.core.crypto import SecretBox, SecretBoxError
from app.core.errors import AppError, NotFound, PayloadTooLarge
from app.core.openapi import problems
from app.observability.metrics import count_provider_event
from app.providers import accounts, events
from app.providers.base import ProviderEvent, SignatureRefused, SignedRequest
from app.providers.event_schemas import EventsReceived
from app.providers.models import Provider
from app.providers.nonces import NonceGuard
from app.ratelimit.policies import hit_inbound_unverified, hit_provider_events
from app.runtime import Runtime

log = logging.getLogger("chatapi.providers")

router = APIRouter(tags=["providers"])

# Any body: the provider's own format (Mailgun: JSON; Twilio: a form).
_ANY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {}}, "*/*": {"schema": {}}},
    }
}


class EventSignatureRefused(AppError):
    """401 for a request the provider's signing key did not sign (no API-key challenge)."""

    status, code, title = 401, "invalid-signature", "Invalid provider event signature"


@router.post(
    "/provider-events/{client_slug}/{provider_name}",
    response_model=EventsReceived,
    responses=problems(401, 404, 413, 429),
    openapi_extra=_ANY_BODY,
)
async def receive_provider_events(
    client_slug: str,
    provider_name: str,
    request: Request,
    settings: SettingsDep,
    box: SecretBoxDep,
) -> EventsReceived:
    """A provider's delivery events (the URL to give the provider: Mailgun's webhooks),
    verified by the provider's own signature scheme. 200 once stored (duplicates too, so the
    provider stops retrying); 401 for a missing, wrong, stale or replayed signature (nothing
    stored); 404 when the client or provider does not exist (one answer for both); 413 over
    INBOUND_MAX_BODY_BYTES; 429 over RATE_LIMIT_PROVIDER_EVENTS_PER_MINUTE."""
    rt = runtime_of(request)
    body = await _read_limited(request, settings.INBOUND_MAX_BODY_BYTES)
    try:
        provider = await events.find_provider(rt.db, client_slug, provider_name)
        verified = _verify(rt, box, provider, request, body)
    except (NotFound, EventSignatureRefused):
        await hit_inbound_unverified(request, None)  # 429 over its budget
        raise
    await hit_provider_events(request, provider.client_id)
    try:
        done = await events.record(rt.db, provider, verified, nonces=_nonces(rt), now=utcnow())
    except SignatureRefused as exc:
        raise EventSignatureRefused(str(exc)) from None
    for kind in done.kinds:
        count_provider_event(provider.type, kind)
    return EventsReceived(received=len(verified), stored=done.stored, duplicates=done.duplicates)


def _verify(
    rt: Runtime, box: SecretBox, provider: Provider, request: Request, body: bytes
) -> list[ProviderEvent]:
    provider_type = rt.provider_types.get(provider.type)
    if provider_type is None:
        raise NotFound(events.UNKNOWN)
    try:
        account = accounts.opened(box, provider_type, provider)
    except (SecretBoxError, ValueError):
        # Sealed under another SECRET_KEY (or settings a newer type refuses): nothing can be
        # verified until an operator fixes it.
        log.warning("provider %s: its settings cannot be opened to verify events", provider.id)
        raise EventSignatureRefused("the provider's signing key cannot be used") from None
    signed = SignedRequest(
        url=_called_url(rt, request),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        now=utcnow(),
    )
    try:
        return provider_type.verify_events(account, signed)
    except SignatureRefused as exc:
        raise EventSignatureRefused(str(exc)) from None


def _called_url(rt: Runtime, request: Request) -> str:
    # The URL the provider called, which Twilio signs: behind a proxy the request's own URL
    # is the internal one, so with PUBLIC_BASE_URL (the base every callback URL we hand out is
    # built on) it is rebuilt from that; the root path is already part of PUBLIC_BASE_URL.
    public = rt.settings.PUBLIC_BASE_URL
    if not public:
        return str(request.url)
    path = request.url.path
    root = request.scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :]
    query = request.url.query
    return public.rstrip("/") + path + (f"?{query}" if query else "")


def _nonces(rt: Runtime) -> NonceGuard:
    # Made on first use: shared through Redis when the process has it.
    guard = rt.parts.get(NonceGuard)
    if not isinstance(guard, NonceGuard):
        guard = rt.parts[NonceGuard] = NonceGuard(rt.redis, rt.settings.REDIS_KEY_PREFIX)
    return guard


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
