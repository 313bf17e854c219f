"""Inbound hooks: CRUD, secret rotation, ingestion of signed requests, events, replay.

Ingestion follows DESIGN.md §1 rule 1: a verified request is a committed row before the
202, and the Celery message after it is only a doorbell (the beat sweep re-rings a lost
one). Deduplication is the (hook_id, dedupe_key) unique constraint, and for the optional
content window the (hook_id, digest) key of a content mark, so it holds across processes
and for simultaneous requests.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.config import Settings
from app.core.crypto import SecretBox, SecretBoxError
from app.core.db import Database
from app.core.doorbell import Doorbell
from app.core.errors import AppError, Conflict, Forbidden, NotFound, Unprocessable
from app.core.ids import new_id
from app.inbound import content_marks, repository, signatures
from app.inbound.models import InboundEvent, InboundWebhook
from app.inbound.schemas import (
    Accepted,
    HookCreate,
    HookOut,
    HookPatch,
    content_dedupe_problem,
)
from app.inbound.secrets import new_secret
from app.tenants import service as tenants

log = logging.getLogger("chatapi.inbound")


class SignatureRejected(AppError):
    """401 for a request the hook's secret did not sign (no API-key challenge)."""

    status, code, title = 401, "invalid-signature", "Invalid webhook signature"


# One answer for an unknown client and an unknown hook: the URL says nothing about which.
UNKNOWN_HOOK = "No inbound webhook at this URL"


async def _slug(session: AsyncSession, client_id: str) -> str:
    return (await tenants.get_client(session, client_id)).slug


async def create_hook(
    session: AsyncSession, box: SecretBox, client_id: str, body: HookCreate, base_url: str
) -> HookOut:
    """A new hook; its secret is in the answer, once (`base_url`: the API's public base)."""
    secret = new_secret()
    slug = await _slug(session, client_id)
    hook = InboundWebhook(
        id=new_id(),
        client_id=client_id,
        name=body.name,
        action=body.action.value,
        scheme=body.scheme.value,
        config=body.config.model_dump(exclude_none=True),
        signature=body.signature.model_dump(exclude_none=True),
        secret_sealed=box.seal(secret),
        disabled=body.disabled,
    )
    try:
        await repository.add_hook(session, client_id, hook)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"An inbound webhook named {body.name!r} exists already") from None
    return HookOut.of(hook, slug, base_url, secret)


async def get_hook(session: AsyncSession, client_id: str, hook_id: str) -> InboundWebhook:
    """One hook of the client, or 404."""
    hook = await repository.get_hook(session, client_id, hook_id)
    if hook is None:
        raise NotFound("No such inbound webhook")
    return hook


async def hook_out(
    session: AsyncSession, client_id: str, hook: InboundWebhook, base_url: str
) -> HookOut:
    """The hook as the API shows it."""
    return HookOut.of(hook, await _slug(session, client_id), base_url)


async def list_hooks(
    session: AsyncSession, client_id: str, limit: int, cursor: str | None, base_url: str
) -> tuple[list[HookOut], bool, str | None]:
    """A page of the client's hooks."""
    rows = await repository.list_hooks(session, client_id, limit=limit, after=cursor)
    slug = await _slug(session, client_id)
    page = rows[:limit]
    more = len(rows) > limit
    return (
        [HookOut.of(h, slug, base_url) for h in page],
        more,
        page[-1].id if more and page else None,
    )


async def update_hook(
    session: AsyncSession, client_id: str, hook_id: str, patch: HookPatch, base_url: str
) -> HookOut:
    """Change a hook's action, config, scheme, signature options or disabled flag."""
    changes = patch.model_dump(exclude_unset=True)
    values = {}
    for field in ("action", "scheme", "disabled"):
        if changes.get(field) is not None:
            values[field] = getattr(patch, field)
            if field != "disabled":
                values[field] = values[field].value
    if patch.config is not None:
        values["config"] = patch.config.model_dump(exclude_none=True)
    if patch.signature is not None:
        values["signature"] = patch.signature.model_dump(exclude_none=True)
    hook = await get_hook(session, client_id, hook_id)
    action = values.get("action", hook.action)
    config = values.get("config", hook.config)
    if action == "forward" and not config.get("event_type"):
        raise Unprocessable("the forward action needs config.event_type")
    problem = content_dedupe_problem(
        values.get("scheme", hook.scheme), values.get("signature", hook.signature)
    )
    if problem:
        raise Unprocessable(problem)
    slug = await _slug(session, client_id)
    updated = await repository.update_hook(session, client_id, hook_id, now=utcnow(), **values)
    if updated is None:
        raise NotFound("No such inbound webhook")
    await session.commit()
    return HookOut.of(updated, slug, base_url)


async def delete_hook(session: AsyncSession, client_id: str, hook_id: str) -> None:
    """Delete a hook with its events and room keys (the rooms stay)."""
    if not await repository.delete_hook(session, client_id, hook_id):
        raise NotFound("No such inbound webhook")
    await session.commit()


async def rotate_secret(
    session: AsyncSession,
    box: SecretBox,
    client_id: str,
    hook_id: str,
    grace_seconds: int,
    base_url: str,
) -> HookOut:
    """A new secret (in the answer, once); the old one verifies for `grace_seconds` more."""
    secret = new_secret()
    now = utcnow()
    slug = await _slug(session, client_id)
    hook = await repository.rotate_secret(
        session,
        client_id,
        hook_id,
        new_secret_sealed=box.seal(secret),
        previous_valid_until=now + timedelta(seconds=grace_seconds),
        now=now,
    )
    if hook is None:
        raise NotFound("No such inbound webhook")
    await session.commit()
    return HookOut.of(hook, slug, base_url, secret)


def _secrets(box: SecretBox, hook: InboundWebhook) -> list[str]:
    """The secrets that verify now: the current one, and the previous during its grace."""
    found = []
    sealed = [hook.secret_sealed]
    expires = hook.previous_secret_expires_at
    if hook.previous_secret_sealed and expires is not None and utcnow() < expires:
        sealed.append(hook.previous_secret_sealed)
    for value in sealed:
        try:
            found.append(box.open(value))
        except SecretBoxError:
            # Sealed under another SECRET_KEY: cannot verify with it; say so in the log.
            log.error("inbound hook secret cannot be opened", extra={"hook_id": hook.id})
    return found


@dataclass(frozen=True, slots=True)
class Verified:
    """A request the hook's secret signed: its hook, dedupe key and the scheme's options."""

    hook: InboundWebhook
    dedupe_key: str | None
    options: dict[str, Any]


async def find_hook(db: Database, slug: str, name: str) -> InboundWebhook:
    """The hook at the public URL, or 404 (one answer for an unknown client or hook)."""
    async with db.read_session() as read:
        hook = await repository.hook_by_url(read, slug, name)
    if hook is None:
        raise NotFound(UNKNOWN_HOOK)
    return hook


def verify(
    box: SecretBox,
    settings: Settings,
    hook: InboundWebhook,
    body: bytes,
    headers: Mapping[str, str],
) -> Verified:
    """Check the request's signature with the hook's secrets (HMAC only: cheap, no I/O);
    401 SignatureRejected when they did not sign it."""
    options = {
        "tolerance_seconds": settings.INBOUND_SIGNATURE_TOLERANCE_SECONDS,
        **hook.signature,
    }
    try:
        dedupe_key = signatures.verify(
            hook.scheme, body, headers, _secrets(box, hook), utcnow(), options
        )
    except signatures.SignatureInvalid as exc:
        raise SignatureRejected(str(exc)) from None
    return Verified(hook, dedupe_key, options)


async def store(
    db: Database,
    verified: Verified,
    body: bytes,
    headers: Mapping[str, str],
    *,
    doorbell: Doorbell,
) -> Accepted:
    """Store a verified request; the event, or the first one of its dedupe key or (within
    the hook's `content_dedupe_seconds`) of its signed content, as a duplicate."""
    hook, dedupe_key = verified.hook, verified.dedupe_key
    if hook.disabled:
        # Checked after the signature, so only a holder of the secret learns it: that sender
        # knows the hook exists, and a clear refusal tells its operator why deliveries stop
        # (a 404 would read as a wrong URL).
        raise Forbidden("This inbound webhook is disabled")
    client_id = hook.client_id
    now = utcnow()
    event = InboundEvent(
        id=new_id(),
        client_id=client_id,
        hook_id=hook.id,
        dedupe_key=dedupe_key,
        headers=signatures.kept_headers(hook.scheme, headers, verified.options),
        body=body,
        next_attempt_at=now,
        received_at=now,
        updated_at=now,
    )
    window = int(verified.options.get("content_dedupe_seconds") or 0)
    digest = signatures.content_digest(hook.scheme, body) if window else None
    async with db.session() as session:
        first: InboundEvent | None = None
        duplicate = not await repository.insert_event(session, client_id, event)
        if duplicate:
            assert dedupe_key is not None  # NULL keys never conflict
            first = await repository.event_by_dedupe_key(session, client_id, hook.id, dedupe_key)
        elif digest is not None:
            # The same signed content within the window: a replay under a new unsigned id.
            until = now + timedelta(seconds=window)
            claimed = await content_marks.claim(
                session, client_id, hook.id, digest, event_id=event.id, now=now, until=until
            )
            if not claimed:
                duplicate = True
                first = await content_marks.event_of(session, client_id, hook.id, digest)
        if not duplicate:
            await session.commit()
        else:
            if first is None:  # the first was deleted with its hook meanwhile
                raise NotFound(UNKNOWN_HOOK)
            # Read before the rollback (which also drops this request's row): the rollback
            # expires the loaded row.
            answer = Accepted(id=first.id, status=first.status, duplicate=True)
            await session.rollback()
            return answer
    await enqueue(doorbell, client_id, event.id)
    return Accepted(id=event.id, status=event.status, duplicate=False)


async def enqueue(doorbell: Doorbell, client_id: str, event_id: str) -> None:
    """Ring the doorbell for a committed event (coalesced; never waits for the broker,
    never raises: a lost doorbell only delays the event until the next sweep)."""
    await doorbell.ring_inbound([(client_id, event_id)])


async def list_events(
    session: AsyncSession,
    client_id: str,
    hook_id: str,
    *,
    limit: int,
    cursor: str | None,
    status: str | None,
) -> tuple[list[InboundEvent], bool, str | None]:
    """A page of the hook's events, newest first."""
    await get_hook(session, client_id, hook_id)
    rows = await repository.list_events(
        session, client_id, hook_id, limit=limit, before=cursor, status=status
    )
    page = rows[:limit]
    more = len(rows) > limit
    return page, more, page[-1].id if more and page else None


async def replay(
    session: AsyncSession, client_id: str, hook_id: str, event_id: str, doorbell: Doorbell
) -> InboundEvent:
    """Process a finished event again (a new generation: its action acts anew)."""
    event = await repository.get_event(session, client_id, event_id, hook_id)
    if event is None:
        raise NotFound("No such inbound event")
    requeued = await repository.requeue(session, client_id, hook_id, event_id, now=utcnow())
    if requeued is None:
        raise Conflict("The event is still waiting to be processed")
    await session.commit()
    await enqueue(doorbell, client_id, event_id)
    return requeued
