"""Webhook endpoints: management (secrets shown once, stored sealed; SSRF-checked URLs),
the opened view the delivery tasks sign with, and the failure policy that disables endpoints.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels import base
from app.channels.ssrf import (
    Resolver,
    TargetRefused,
    TargetUnresolvable,
    check_url,
    webhook_refusal,
)
from app.core.clock import utcnow
from app.core.config import Settings, get_settings
from app.core.crypto import SecretBox, SecretBoxError
from app.core.errors import NotFound, Unprocessable
from app.core.ids import new_id
from app.realtime.bus import EventBus
from app.webhooks import repository
from app.webhooks.models import WebhookEndpoint
from app.webhooks.schemas import EndpointCreate, EndpointPatch

log = logging.getLogger("chatapi.webhooks")

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks asks for 24..64 random bytes
# Resolving a URL's host at creation must not hold a request for the resolver's full patience.
RESOLVE_TIMEOUT_SECONDS = 5.0


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


async def check_target(url: str, settings: Settings, resolver: Resolver | None = None) -> None:
    """Refuse (422, saying why) a URL the SSRF guard would refuse to deliver to."""
    try:
        await asyncio.wait_for(
            check_url(url, settings.WEBHOOK_ALLOW_PRIVATE_TARGETS, resolver=resolver),
            RESOLVE_TIMEOUT_SECONDS,
        )
    except TargetRefused as exc:
        raise Unprocessable(f"webhook URL refused: {webhook_refusal(exc)}") from None
    except TargetUnresolvable as exc:
        raise Unprocessable(f"webhook URL refused: {exc}") from None
    except asyncio.TimeoutError:
        raise Unprocessable("webhook URL refused: resolving its host timed out") from None


async def create_endpoint(
    session: AsyncSession,
    box: SecretBox,
    settings: Settings,
    client_id: str,
    body: EndpointCreate,
    *,
    resolver: Resolver | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; return it and its secret (the only time the secret is readable)."""
    await check_target(body.url, settings, resolver)
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=new_id(),
        client_id=client_id,
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        secret_sealed=box.seal(secret),
        created_at=now,
        updated_at=now,
    )
    await repository.add(session, client_id, endpoint)
    await session.commit()
    return endpoint, secret


async def get_endpoint(session: AsyncSession, client_id: str, endpoint_id: str) -> WebhookEndpoint:
    """One endpoint, or 404."""
    endpoint = await repository.get(session, client_id, endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint")
    return endpoint


async def list_endpoints(
    session: AsyncSession, client_id: str, limit: int, after: str | None
) -> list[WebhookEndpoint]:
    """`limit + 1` endpoints after the cursor."""
    return await repository.list_page(session, client_id, limit=limit, after=after)


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    client_id: str,
    endpoint_id: str,
    patch: EndpointPatch,
    *,
    resolver: Resolver | None = None,
) -> WebhookEndpoint:
    """Apply a PATCH: a new URL is checked again; `disabled: false` re-enables a disabled
    endpoint and clears its failure run; `disabled: true` disables it (reason: the client)."""
    changes = patch.model_dump(exclude_unset=True)
    for key in ("url", "event_types", "disabled"):
        # null means "no change" for fields that cannot be empty.
        if key in changes and changes[key] is None:
            del changes[key]
    if "url" in changes:
        await check_target(changes["url"], settings, resolver)
    now = utcnow()
    disabled = changes.pop("disabled", None)
    if disabled is True:
        changes.update(disabled=True, disabled_reason="disabled by the client")
    endpoint: WebhookEndpoint | None
    if changes:
        endpoint = await repository.update_fields(
            session, client_id, endpoint_id, now=now, **changes
        )
    else:
        endpoint = await repository.get(session, client_id, endpoint_id)
    if endpoint is None:
        raise NotFound("No such webhook endpoint")
    if disabled is False and endpoint.disabled:
        endpoint = await repository.enable(session, client_id, endpoint_id, now=now) or endpoint
    await session.commit()
    return endpoint


async def delete_endpoint(session: AsyncSession, client_id: str, endpoint_id: str) -> None:
    """Delete an endpoint, or 404."""
    if not await repository.delete_endpoint(session, client_id, endpoint_id):
        raise NotFound("No such webhook endpoint")
    await session.commit()


async def rotate_secret(
    session: AsyncSession, box: SecretBox, client_id: str, endpoint_id: str, grace_seconds: int
) -> tuple[WebhookEndpoint, str]:
    """Install a new secret; the current one signs too for `grace_seconds`, then never again.

    A second rotation within the grace replaces the older secret: at most two ever sign.
    """
    secret = new_secret()
    now = utcnow()
    endpoint = await repository.rotate_secret(
        session,
        client_id,
        endpoint_id,
        new_secret_sealed=box.seal(secret),
        previous_valid_until=now + timedelta(seconds=grace_seconds),
        now=now,
    )
    if endpoint is None:
        raise NotFound("No such webhook endpoint")
    await session.commit()
    return endpoint, secret


def _open_secrets(box: SecretBox, row: WebhookEndpoint, now: datetime) -> tuple[str, ...]:
    opened = [box.open(row.secret_sealed)]
    expires = row.previous_secret_expires_at
    if row.previous_secret_sealed and expires is not None and expires > now:
        opened.append(box.open(row.previous_secret_sealed))
    return tuple(opened)


async def subscribed_endpoints(
    session: AsyncSession, client_id: str, event_type: str
) -> list[WebhookEndpoint]:
    """The client's enabled endpoints that receive `event_type`."""
    return await repository.subscribed(session, client_id, event_type)


async def endpoints_by_ids(
    session: AsyncSession, client_id: str, endpoint_ids: Sequence[str]
) -> list[WebhookEndpoint]:
    """The client's endpoints among `endpoint_ids` (another client's ids are absent)."""
    return await repository.by_ids(session, client_id, endpoint_ids)


async def endpoints_for_delivery(
    session: AsyncSession, box: SecretBox, client_id: str, endpoint_ids: Sequence[str]
) -> dict[str, base.WebhookEndpoint]:
    """The client's enabled endpoints among `endpoint_ids`, by id, with opened secrets.

    Secrets are newest first: the current one, plus the previous one while its rotation grace
    is unexpired (an expired one is never used). Disabled, unknown and other clients' ids are
    absent. An endpoint whose secret cannot be opened (SECRET_KEY changed) is absent too and
    logged: signing with a wrong secret would only make receivers reject the event.
    """
    now = utcnow()
    found: dict[str, base.WebhookEndpoint] = {}
    for row in await repository.by_ids(session, client_id, endpoint_ids):
        if row.disabled:
            continue
        try:
            opened = _open_secrets(box, row, now)
        except SecretBoxError as exc:
            log.error("webhook endpoint %s: %s", row.id, exc)
            continue
        found[row.id] = base.WebhookEndpoint(id=row.id, url=row.url, secrets=opened)
    return found


@dataclass(frozen=True, slots=True)
class DisablePolicy:
    """When an unbroken run of failures disables an endpoint: it lasted `after_seconds` and
    counted at least `min_failures` attempts (so one failure after a quiet week does not)."""

    after_seconds: float = 432_000
    min_failures: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> DisablePolicy:
        """WEBHOOK_DISABLE_AFTER_SECONDS and WEBHOOK_DISABLE_MIN_FAILURES."""
        return cls(settings.WEBHOOK_DISABLE_AFTER_SECONDS, settings.WEBHOOK_DISABLE_MIN_FAILURES)


async def record_successes(session: AsyncSession, client_id: str, endpoint_ids: list[str]) -> None:
    """What `record_outcome` does for a delivered attempt, for several endpoints at once
    (each listed endpoint's failure run ends). Does not commit."""
    await repository.record_successes(session, client_id, endpoint_ids)


async def record_outcome(
    session: AsyncSession,
    bus: EventBus,
    client_id: str,
    endpoint_id: str,
    outcome: base.Outcome,
    now: datetime,
    *,
    policy: DisablePolicy | None = None,
) -> bool:
    """Track one attempt's outcome on its endpoint; True when this call disabled it.

    Success ends the failure run. A failure starts or continues it; a run of at least
    `policy.min_failures` failures lasting `policy.after_seconds`, or a 410 answer
    (`outcome.disable_endpoint`), disables the endpoint. Only the one call that flips it
    returns True, however many workers race, so the caller emits `endpoint.disabled` once —
    after committing: this function does not commit. `bus` is unused here (the caller
    publishes); it stays in the signature for the callers. `policy` defaults to the process
    settings (pass `DisablePolicy.from_settings(runtime.settings)`).
    """
    del bus
    if outcome.delivered:
        await repository.record_success(session, client_id, endpoint_id)
        return False
    if outcome.kind is base.OutcomeKind.DEFER:
        return False  # nothing reached the endpoint (a DEFER is our own limit's refusal)
    if outcome.disable_endpoint:
        return await repository.disable(
            session,
            client_id,
            endpoint_id,
            reason="the endpoint answered 410 Gone",
            now=now,
        )
    row = await repository.record_failure(session, client_id, endpoint_id, now=now)
    if row is None or row.disabled or row.failing_since is None:
        return False
    rule = policy or DisablePolicy.from_settings(get_settings())
    if (
        row.failure_count >= rule.min_failures
        and (now - row.failing_since).total_seconds() >= rule.after_seconds
    ):
        return await repository.disable(
            session,
            client_id,
            endpoint_id,
            reason=f"failed every attempt since {row.failing_since.isoformat()}",
            now=now,
        )
    return False
