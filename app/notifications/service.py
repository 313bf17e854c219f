"""Notifications: send (validate, resolve, store in one transaction, then ring), read, list,
cancel, retry. Delivering is app/notifications/delivery.py (the worker side)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.base import Channel, ContentError, Resolved
from app.core.clock import utcnow
from app.core.db import Database
from app.core.doorbell import Doorbell
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.ids import new_id
from app.core.native_sql import autocommit, forget_driver
from app.events import service as event_catalog
from app.inbox import preferences
from app.inbox import repository as inbox
from app.inbox import service as inbox_service
from app.inbox.repository import InboxContent
from app.notifications import delivery_repository as deliveries_repo
from app.notifications import idempotency_repository as idempotency
from app.notifications import repository, size_bound
from app.notifications.initial_status import initial_statuses
from app.notifications.models import DELIVERED, PENDING, DeliveryAttempt, Notification
from app.notifications.push import InAppPush
from app.notifications.recipients import resolve as resolve_recipients
from app.notifications.repository import NewDelivery, NewNotification
from app.notifications.scheduling import resolve_send_at
from app.notifications.schemas import NotificationOut, SendRequest
from app.notifications.send_answer import SendResult, sent_answer
from app.realtime.bus import EventBus


class IdempotencyMismatch(Unprocessable):
    """The idempotency key was used for a different request."""


def _problem(detail: str) -> Unprocessable:
    # The problem's `errors` names the body as a whole; `detail` says which part and why.
    return Unprocessable(detail)


@dataclass(frozen=True, slots=True)
class _Content:
    """A send's content, validated by each channel's model: the models (for expansion) and
    what the notification stores, by channel."""

    models: dict[str, BaseModel]
    stored: dict[str, dict[str, Any]]


def _check_content(body: SendRequest, loaded: Mapping[str, Channel]) -> _Content:
    """Each requested channel exists here and its content object fits the channel's
    content model (the channel's driver says what it is)."""
    unknown = [c for c in body.channels if c not in loaded]
    if unknown:
        raise _problem(
            f"unknown channel(s) {', '.join(unknown)}; available: {', '.join(sorted(loaded))}"
        )
    extra = body.plugin_content()
    stray = [k for k in extra if k not in body.channels]
    if stray:
        raise _problem(f"unknown field(s) {', '.join(sorted(stray))}")
    models: dict[str, BaseModel] = {}
    stored: dict[str, dict[str, Any]] = {}
    for name in body.channels:
        channel = loaded[name]
        # A built-in's content is a declared field of the request (typed in the OpenAPI
        # document, validated on parsing); a plug-in's is the top-level object of its name.
        raw = getattr(body, name) if name in SendRequest.model_fields else extra.get(name)
        try:
            model = channel.validate_content(raw)
        except ContentError as exc:
            raise _problem(str(exc)) from None
        models[name] = model
        stored[name] = channel.stored_content(model)
    needs_recipients = [c for c in body.channels if loaded[c].needs_recipients]
    if needs_recipients and not body.recipients:
        raise _problem(f"channel(s) {', '.join(needs_recipients)} need at least one recipient")
    return _Content(models, stored)


async def _expand(
    session: AsyncSession,
    client_id: str,
    body: SendRequest,
    loaded: Mapping[str, Channel],
    content: _Content,
    recipients: list[Resolved],
) -> list[NewDelivery]:
    """Each channel's deliveries of the send, as its driver expands the recipients; what
    cannot be sent is `skipped`."""
    out: list[NewDelivery] = []
    for name in body.channels:
        channel = loaded[name]
        try:
            planned = await channel.expand(session, client_id, content.models[name], recipients)
        except ContentError as exc:
            raise _problem(str(exc)) from None
        inbox_item = channel.stores_inbox_item
        out += [
            NewDelivery(
                name,
                p.recipient,
                p.user_id,
                endpoint_id=p.endpoint_id,
                skip_reason=p.skip_reason,
                inbox_item=inbox_item,
            )
            for p in planned
        ]
    return out


async def _replay(
    session: AsyncSession, client_id: str, key: str, request_hash: str, now: datetime
) -> NotificationOut | None:
    found = await idempotency.held(session, client_id, key, now=now)
    if found is None:
        return None
    held_hash, notification_id = found
    if held_hash != request_hash:
        raise IdempotencyMismatch(
            "This idempotency key was already used for a different request (within 24 h)"
        )
    return await get_notification(session, client_id, notification_id)


async def send(
    session: AsyncSession,
    client_id: str,
    body: SendRequest,
    *,
    channels: Mapping[str, Channel],
    max_total_bytes: int,
    doorbell: Doorbell,
    header_key: str | None = None,
    past_send_at_is_now: bool = False,
    push: InAppPush | None = None,
    db: Database | None = None,
) -> SendResult:
    """Validate, resolve recipients, store notification + deliveries + idempotency record in
    one transaction, commit, then ring the doorbell for what is due now.

    413 (nothing stored) when the content times the expanded recipients exceeds
    `max_total_bytes` (NOTIFICATION_MAX_TOTAL_BYTES).

    A `send_at` too far in the past is refused (app/notifications/scheduling.py), after an
    idempotent replay is answered: a retry of an accepted send is never refused for its
    age. `past_send_at_is_now` sends any past time at once (work done after the request).

    In-app deliveries are stored `delivered` (their inbox items are); after the commit
    `push` sends their `notification` event to the online recipients in the background.

    With `db` (PostgreSQL), the send runs its statements on one of the database's hot
    driver connections rather than one the session checks out."""
    if db is not None:
        async with db.hot_driver() as driver:
            try:
                return await _send(
                    session, client_id, body, channels=channels, max_total_bytes=max_total_bytes,
                    doorbell=doorbell, header_key=header_key,
                    past_send_at_is_now=past_send_at_is_now, push=push, driver=driver,
                )  # fmt: skip
            finally:
                forget_driver(session)
    return await _send(
        session, client_id, body, channels=channels, max_total_bytes=max_total_bytes,
        doorbell=doorbell, header_key=header_key, past_send_at_is_now=past_send_at_is_now,
        push=push, driver=None,
    )  # fmt: skip


async def _send(
    session: AsyncSession,
    client_id: str,
    body: SendRequest,
    *,
    channels: Mapping[str, Channel],
    max_total_bytes: int,
    doorbell: Doorbell,
    header_key: str | None,
    past_send_at_is_now: bool,
    push: InAppPush | None,
    driver: Any,
) -> SendResult:
    if header_key is not None and body.idempotency_key not in (None, header_key):
        raise _problem("the Idempotency-Key header and idempotency_key differ")
    key = header_key or body.idempotency_key
    checked = _check_content(body, channels)
    content = checked.stored
    now = utcnow()
    request_hash = ""
    # The writes are one statement (the repository; with a key, its reservation gates the
    # rest), atomic alone: no transaction on PostgreSQL, so no BEGIN and COMMIT round trips.
    await autocommit(session, driver)
    if key is not None:
        request_hash = body.request_hash()
        replay = await _replay(session, client_id, key, request_hash, now)
        if replay is not None:
            return SendResult(replay, created=False)
    send_at = resolve_send_at(body.send_at, now, past_is_now=past_send_at_is_now)
    if event_catalog.CHECKED_CHANNEL in body.channels and body.webhook is not None:
        # With a catalog, unknown event types and payloads off their schema are 422.
        await event_catalog.check_send(
            session, client_id, body.webhook.event_type, body.webhook.payload
        )
    recipients = await resolve_recipients(session, client_id, body)
    new = await _expand(session, client_id, body, channels, checked, recipients.resolved)
    new = await preferences.apply(
        session,
        client_id,
        new,
        known=recipients.preferences,
        event=preferences.event_type(body.metadata, _content_event(channels, checked)),
        critical=body.critical,
        exempt=frozenset(c for c in body.channels if not channels[c].reaches_users),
    )
    size_bound.check_total(content, new, limit=max_total_bytes)
    notification = NewNotification(
        id=new_id(),
        client_id=client_id,
        status="scheduled" if send_at > now else "pending",
        channels=list(body.channels),
        content=content,
        metadata_=body.metadata,
        critical=body.critical,
        send_at=send_at,
        created_at=now,
        idempotency_key=key,
        request_hash=request_hash if key is not None else None,
    )
    inbox = _inbox_content(checked, channels, send_at)
    statuses = initial_statuses(new, inbox is not None, send_at > now)
    notification.status = repository.derive_status(Counter(statuses), scheduled=send_at > now)
    ids = await repository.create_notification(
        session, client_id, notification, new, now=now, inbox=inbox, statuses=statuses
    )
    if ids is None:
        # A concurrent send holds the key: it committed (we waited on it), or still runs.
        await session.rollback()
        assert key is not None
        replay = await _replay(session, client_id, key, request_hash, now)
        if replay is None:
            raise Conflict(
                "A request with this idempotency key is in progress", headers={"Retry-After": "1"}
            )
        return SendResult(replay, created=False)
    if session.in_transaction():  # autocommit: nothing to commit unless the ORM read
        await session.commit()
    if send_at <= now:
        await _ring(doorbell, client_id, channels, ids, new, statuses)
        if push is not None:
            # Delivered on store (inbox items): pushed to live connections in the background.
            in_app = [
                (i, str(d.recipient_user_id))
                for i, d, st in zip(ids, new, statuses, strict=True)
                if st == DELIVERED
            ]
            pushed = next((n for n in content if channels[n].stores_inbox_item), None)
            if in_app and pushed is not None:
                push.after_commit(client_id, notification.id, content[pushed], in_app)
    return SendResult(answer=sent_answer(notification, ids, new, statuses), created=True)


async def _ring(
    doorbell: Doorbell,
    client_id: str,
    channels: Mapping[str, Channel],
    ids: list[str],
    new: list[NewDelivery],
    statuses: list[str],
) -> None:
    """Ring for the due deliveries, per channel: a channel that sends in batches takes as
    many per task message as its `batch_size` (e-mail: 1,000, one Mailgun call)."""
    by_channel: dict[str, list[str]] = {}
    for i, d, st in zip(ids, new, statuses, strict=True):
        if st == PENDING:
            by_channel.setdefault(d.channel, []).append(i)
    for name, due in by_channel.items():
        batch = getattr(channels.get(name), "batch_size", None)
        await doorbell.ring_deliveries(client_id, due, batch=batch)


def _content_event(loaded: Mapping[str, Channel], content: _Content) -> str | None:
    """The event the content names (the first channel whose content names one)."""
    for name, model in content.models.items():
        event = loaded[name].content_event(model)
        if event is not None:
            return event
    return None


def _inbox_content(
    content: _Content, loaded: Mapping[str, Channel], send_at: datetime
) -> InboxContent | None:
    # The items of a channel that stores them; visible from send_at, so a scheduled one waits.
    for name, model in content.models.items():
        channel = loaded[name]
        event = channel.content_event(model)
        if channel.stores_inbox_item and event is not None:
            return InboxContent(event=event, visible_at=send_at)
    return None


async def get_notification(
    session: AsyncSession, client_id: str, notification_id: str
) -> NotificationOut:
    """A notification with its deliveries, or 404."""
    found = await repository.get_with_deliveries(session, client_id, notification_id)
    if found is None:
        raise NotFound("No such notification")
    return NotificationOut.of(*found)


async def list_notifications(
    session: AsyncSession,
    client_id: str,
    *,
    limit: int,
    after: str | None,
    status: str | None,
    channel: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> tuple[list[Notification], dict[str, dict[str, int]]]:
    """`limit + 1` notifications, newest first, and each one's per-status delivery counts."""
    rows = await repository.list_page(
        session,
        client_id,
        limit=limit,
        after=after,
        status=status,
        channel=channel,
        created_after=created_after,
        created_before=created_before,
    )
    counts = await repository.delivery_status_counts(session, client_id, [n.id for n in rows])
    return rows, counts


async def cancel(
    session: AsyncSession, client_id: str, notification_id: str, *, bus: EventBus | None = None
) -> NotificationOut:
    """Cancel every delivery not yet sent (pending, retrying); a delivery mid-attempt
    finishes. Nothing left to cancel is not an error: the answer shows the state. The
    cancelled websocket deliveries leave their users' inboxes (never sent)."""
    if await repository.lock(session, client_id, notification_id) is None:
        raise NotFound("No such notification")
    now = utcnow()
    canceled = await deliveries_repo.cancel_pending(session, client_id, notification_id, now=now)
    users_affected = await inbox.remove_items(session, client_id, canceled)
    await repository.refresh_status(session, client_id, notification_id, now=now)
    await session.commit()
    if bus is not None and users_affected:
        await inbox_service.publish_counts(session, bus, client_id, users_affected)
    return await get_notification(session, client_id, notification_id)


async def retry(
    session: AsyncSession, client_id: str, notification_id: str, doorbell: Doorbell
) -> NotificationOut:
    """Make the notification's failed deliveries due now with a fresh attempt budget, and
    ring for them. None failed is not an error: the answer shows the state."""
    if await repository.lock(session, client_id, notification_id) is None:
        raise NotFound("No such notification")
    now = utcnow()
    ids = await deliveries_repo.requeue_failed(session, client_id, notification_id, now=now)
    await repository.refresh_status(session, client_id, notification_id, now=now)
    await session.commit()
    await doorbell.ring_deliveries(client_id, ids)
    return await get_notification(session, client_id, notification_id)


async def list_attempts(
    session: AsyncSession, client_id: str, notification_id: str, *, limit: int, after: str | None
) -> list[tuple[DeliveryAttempt, str, dict[str, Any]]]:
    """`limit + 1` attempts of the notification in order, or 404."""
    if await repository.get(session, client_id, notification_id) is None:
        raise NotFound("No such notification")
    return await deliveries_repo.list_attempts(
        session, client_id, notification_id, limit=limit, after=after
    )
