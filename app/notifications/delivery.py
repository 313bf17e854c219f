"""Delivering (the worker side of the relay, DESIGN.md §4): claim, send, record, finish.

A task message carries up to a hundred delivery ids of one client. They are claimed in one
statement, sent concurrently (bounded), and each result is written as soon as it is known:
a finisher collects whatever results have arrived and writes them in one transaction (the
attempt row, the fenced status change, the endpoint's bookkeeping), so a slow endpoint
holds up only its own deliveries while a burst of fast ones costs few transactions.
Notification statuses are refreshed once per write for the notifications that reached a
final state, under the notification's row lock (sorted, before any delivery row is touched,
the same order cancel and retry use).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.base import (
    ChannelContext,
    DeliveryTarget,
    EmailConfig,
    Outcome,
    OutcomeKind,
    WebhookEndpoint,
)
from app.core.clock import utcnow
from app.core.crypto import SecretBoxError
from app.core.ids import new_id
from app.email import service as email_service
from app.notifications import delivery_repository as deliveries
from app.notifications import finish_repository as finishing
from app.notifications import parked_repository as parking
from app.notifications.doorbell import ring_flush
from app.notifications.models import FAILED, Delivery, Notification
from app.notifications.operational import emit_operational, is_operational
from app.notifications.quota import defer_if_over_quota
from app.observability.delivery_metrics import observe
from app.realtime.events import DELIVERY_EXHAUSTED
from app.runtime import Runtime
from app.webhooks import service as webhooks

log = logging.getLogger("chatapi.notifications")

# Deliveries of one task message in flight at once (each mostly waits on the network).
DELIVERY_CONCURRENCY = 50
# Parked deliveries claimed per round of a connect flush.
FLUSH_BATCH = 500
# Share of the lease one attempt may take; the rest is for recording the result.
ATTEMPT_SHARE_OF_LEASE = 0.9
JITTER = 0.1


@dataclass(slots=True)
class _Loaded:
    notifications: dict[str, Notification]
    endpoints: dict[str, WebhookEndpoint]
    email: EmailConfig | None
    problems: dict[str, str]  # channel → why its targets could not be loaded


@dataclass(frozen=True, slots=True)
class _Result:
    delivery: Delivery
    notification: Notification
    outcome: Outcome


async def deliver_batch(rt: Runtime, client_id: str, delivery_ids: Sequence[str]) -> int:
    """Claim what is due among `delivery_ids` and deliver it; how many were claimed."""
    async with rt.db.session() as session:
        claimed = await deliveries.claim_many(
            session,
            client_id,
            delivery_ids,
            now=utcnow(),
            lease_seconds=rt.settings.DELIVERY_LEASE_SECONDS,
        )
        await session.commit()
    await _run(rt, client_id, claimed, DELIVERY_CONCURRENCY)
    return len(claimed)


async def flush_parked(rt: Runtime, client_id: str, user_id: str) -> int:
    """Deliver the user's parked websocket notifications (the user connected), oldest
    first, one at a time so they arrive in order; how many were claimed."""
    total = 0
    while True:
        async with rt.db.session() as session:
            claimed = await parking.claim_parked(
                session,
                client_id,
                user_id,
                now=utcnow(),
                lease_seconds=rt.settings.DELIVERY_LEASE_SECONDS,
                limit=FLUSH_BATCH,
            )
            await session.commit()
        total += len(claimed)
        kinds = await _run(rt, client_id, claimed, 1)
        # Parked again (the user left meanwhile) or nothing more: stop, or this would spin.
        if len(claimed) < FLUSH_BATCH or OutcomeKind.PARKED in kinds:
            return total


async def _run(
    rt: Runtime, client_id: str, claimed: list[Delivery], concurrency: int
) -> set[OutcomeKind]:
    if not claimed:
        return set()
    loaded = await _load(rt, client_id, claimed)
    finisher = _Finisher(rt, client_id, len(claimed))
    limit = asyncio.Semaphore(concurrency)

    async def one(delivery: Delivery) -> None:
        notification = loaded.notifications.get(delivery.notification_id)
        if notification is None:  # deleted with its client meanwhile: nothing to record
            finisher.skip()
            return
        async with limit:
            if await defer_if_over_quota(rt, delivery):  # a deferral, not an attempt
                finisher.skip()
                return
            outcome = await _attempt(rt, delivery, notification, loaded)
        observe(delivery, notification, outcome, rt.settings.delivery_attempt_limit)
        finisher.put(_Result(delivery, notification, outcome))

    results = await asyncio.gather(
        finisher.run(), *(one(d) for d in claimed), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            # Unrecorded rows keep their lease; the sweep re-claims them when it expires.
            log.error("delivering failed", exc_info=result, extra={"client_id": client_id})
    return finisher.kinds


async def _load(rt: Runtime, client_id: str, claimed: list[Delivery]) -> _Loaded:
    loaded = _Loaded({}, {}, None, {})
    async with rt.db.read_session() as session:
        loaded.notifications = await finishing.get_many(
            session, client_id, (d.notification_id for d in claimed)
        )
        endpoint_ids = sorted({d.endpoint_id for d in claimed if d.endpoint_id})
        try:
            if endpoint_ids:
                loaded.endpoints = await webhooks.endpoints_for_delivery(
                    session, rt.secret_box, client_id, endpoint_ids
                )
            if any(d.channel == "email" for d in claimed):
                loaded.email = await email_service.config_for_delivery(
                    session, rt.secret_box, client_id
                )
        except SecretBoxError as exc:
            # Sealed under another SECRET_KEY: retrying cannot help until it is fixed.
            loaded.problems["webhook" if endpoint_ids else "email"] = str(exc)
    return loaded


def _target(delivery: Delivery, loaded: _Loaded) -> DeliveryTarget:
    endpoint = loaded.endpoints.get(delivery.endpoint_id) if delivery.endpoint_id else None
    return DeliveryTarget(
        delivery_id=delivery.id,
        client_id=delivery.client_id,
        user_id=delivery.recipient_user_id,
        email=delivery.recipient.get("email"),
        endpoint=endpoint,
    )


async def _attempt(
    rt: Runtime, delivery: Delivery, notification: Notification, loaded: _Loaded
) -> Outcome:
    """One attempt through the delivery's channel; never raises."""
    limit = rt.settings.delivery_attempt_limit
    if delivery.attempts > limit:
        # Only a worker dying mid-attempt, again and again, gets here (a poison delivery).
        return Outcome(OutcomeKind.FAILED, error=f"no result after {limit} attempts")
    channel = rt.channels.get(delivery.channel)
    if channel is None:
        return Outcome(OutcomeKind.RETRY, error=f"channel {delivery.channel!r} is not loaded here")
    if delivery.channel in loaded.problems:
        return Outcome(OutcomeKind.FAILED, error=loaded.problems[delivery.channel])
    if delivery.endpoint_id and delivery.endpoint_id not in loaded.endpoints:
        return Outcome(OutcomeKind.FAILED, error="the endpoint was deleted or disabled")
    ctx = ChannelContext(
        notification_id=notification.id,
        created_at=notification.created_at,
        attempt=delivery.attempts,
        email=loaded.email if delivery.channel == "email" else None,
        metadata=notification.metadata_,
    )
    content: dict[str, Any] = notification.content.get(delivery.channel, {})
    timeout = rt.settings.DELIVERY_LEASE_SECONDS * ATTEMPT_SHARE_OF_LEASE
    try:
        return await asyncio.wait_for(
            channel.send(_target(delivery, loaded), content, ctx), timeout
        )
    except asyncio.TimeoutError:
        return Outcome(OutcomeKind.RETRY, error=f"timeout: the attempt took over {timeout:.0f}s")
    except Exception as exc:
        log.exception("channel %r raised", delivery.channel)
        return Outcome(OutcomeKind.RETRY, error=f"{type(exc).__name__}: {exc}")


def retry_delay(schedule: Sequence[int], attempts: int, retry_after: float | None) -> float:
    """Seconds until the next attempt after attempt number `attempts`: the receiver's
    Retry-After when it gave one, else the schedule's entry with ±10% jitter."""
    if retry_after is not None:
        return retry_after
    base = schedule[min(attempts, len(schedule)) - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


class _Finisher:
    """Writes results as they arrive, in as few transactions as the arrivals allow."""

    def __init__(self, rt: Runtime, client_id: str, total: int) -> None:
        self._rt = rt
        self._client_id = client_id
        self._left = total
        self._pending: list[_Result] = []
        self._wake = asyncio.Event()
        self.kinds: set[OutcomeKind] = set()

    def put(self, result: _Result) -> None:
        self._pending.append(result)
        self._wake.set()

    def skip(self) -> None:
        self._left -= 1
        self._wake.set()

    async def run(self) -> None:
        while self._left > 0:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                self._left -= len(batch)
                await self._write(batch)

    async def _write(self, batch: list[_Result]) -> None:
        rt, client_id = self._rt, self._client_id
        now = utcnow()
        limit = rt.settings.delivery_attempt_limit
        final = {
            r.notification.id
            for r in batch
            if r.outcome.kind in (OutcomeKind.DELIVERED, OutcomeKind.FAILED)
            or (r.outcome.kind is OutcomeKind.RETRY and r.delivery.attempts >= limit)
            or r.notification.status == "scheduled"
        }
        exhausted: list[tuple[_Result, str | None]] = []
        disabled: list[str] = []
        parked_users: set[str] = set()
        delivered = [r for r in batch if r.outcome.kind is OutcomeKind.DELIVERED]
        async with rt.db.session() as session:
            # Locks first, in id order: see the module docstring.
            locked = await finishing.lock_many(session, client_id, final)
            await finishing.insert_attempts(
                session, client_id, [_attempt_row(r, now) for r in batch]
            )
            await _record_endpoint_outcomes(session, rt, batch, now, disabled)
            # The common case in one statement; the rest row by row (see _finish).
            await finishing.mark_delivered_many(
                session,
                client_id,
                [(r.delivery.id, r.delivery.attempts) for r in delivered],
                now=now,
            )
            for result in batch:
                self.kinds.add(result.outcome.kind)
                if result.outcome.kind is OutcomeKind.DELIVERED:
                    continue
                status = await _finish(session, rt, result, now, limit)
                if status == FAILED:
                    exhausted.append((result, result.outcome.error))
                elif status == "parked" and result.delivery.recipient_user_id:
                    parked_users.add(result.delivery.recipient_user_id)
            await finishing.refresh_statuses(session, client_id, locked.values(), now=now)
            await session.commit()
        for result, error in exhausted:
            await _emit_exhausted(rt, result, error)
        for endpoint_id in disabled:
            # Told once: only the call that flipped the endpoint reports it (record_outcome).
            await emit_operational(
                rt,
                client_id,
                "endpoint.disabled",
                {"endpoint_id": endpoint_id},
                exclude_endpoint_ids=[endpoint_id],
            )
        for user_id in parked_users:
            # The user may have connected between the presence check and the park, after
            # the connect's flush looked: look again now that the park is committed.
            if await rt.presence.is_online(client_id, user_id):
                await ring_flush(client_id, user_id)


async def _record_endpoint_outcomes(
    session: AsyncSession,
    rt: Runtime,
    batch: list[_Result],
    now: datetime,
    disabled: list[str],
) -> None:
    """Each attempt's outcome on its endpoint's health (`webhooks.record_outcome`), in the
    order the attempts ended, with the writes that cannot change anything left out: a
    success right after a success of the same endpoint (its failure run is already over),
    and the successes that come before any failure of their endpoint in this batch go in
    one statement first. An endpoint this batch disabled is added to `disabled`, to be
    announced after the commit."""
    leading_successes: list[str] = []  # endpoints whose first outcome here is a success
    seen: set[str] = set()
    ended_on_success: set[str] = set()
    in_order: list[_Result] = []
    for result in batch:
        endpoint_id = result.delivery.endpoint_id
        if not endpoint_id or not _reached_endpoint(result.outcome):
            continue
        if result.outcome.delivered:
            if endpoint_id in ended_on_success:
                continue
            ended_on_success.add(endpoint_id)
            if endpoint_id not in seen:
                seen.add(endpoint_id)
                leading_successes.append(endpoint_id)
                continue
        else:
            ended_on_success.discard(endpoint_id)
        seen.add(endpoint_id)
        in_order.append(result)
    await webhooks.record_successes(session, batch[0].delivery.client_id, leading_successes)
    policy = webhooks.DisablePolicy.from_settings(rt.settings)
    for result in in_order:
        d = result.delivery
        assert d.endpoint_id is not None
        if await webhooks.record_outcome(
            session, rt.bus, d.client_id, d.endpoint_id, result.outcome, now, policy=policy
        ):
            disabled.append(d.endpoint_id)


async def _finish(
    session: AsyncSession,
    rt: Runtime,
    result: _Result,
    now: datetime,
    limit: int,
) -> str | None:
    """Move an undelivered delivery on after its attempt (delivered ones are finished in
    one statement, `finishing.mark_delivered_many`); the status it reached (None: the row
    was no longer ours — its lease expired and another worker re-claimed it)."""
    d, outcome, client_id = result.delivery, result.outcome, result.delivery.client_id
    attempts = d.attempts  # the fence: only the claim this attempt made may finish it
    if outcome.kind is OutcomeKind.PARKED:
        return (
            "parked"
            if await deliveries.park(session, client_id, d.id, now=now, attempts=attempts)
            else None
        )
    if outcome.kind is OutcomeKind.RETRY and d.attempts < limit:
        delay = retry_delay(rt.settings.DELIVERY_RETRY_SCHEDULE, d.attempts, outcome.retry_after)
        done = await deliveries.mark_retrying(
            session,
            client_id,
            d.id,
            next_attempt_at=now + timedelta(seconds=delay),
            error=outcome.error,
            now=now,
            attempts=attempts,
        )
        return "retrying" if done else None
    error = outcome.error
    if outcome.kind is OutcomeKind.RETRY:
        error = f"gave up after {d.attempts} attempts: {error}"
    done = await deliveries.mark_failed(
        session, client_id, d.id, error=error, now=now, attempts=attempts
    )
    return FAILED if done else None


def _attempt_row(result: _Result, now: datetime) -> dict[str, Any]:
    d, outcome = result.delivery, result.outcome
    return {
        "id": new_id(),
        "client_id": d.client_id,
        "delivery_id": d.id,
        "notification_id": d.notification_id,
        "attempted_at": now,
        "outcome": outcome.kind.value,
        "response_code": outcome.response_code,
        "reply": outcome.reply,
        "duration_ms": int(outcome.duration_ms),
        "error": outcome.error,
        "served_by": outcome.served_by,
    }


def _reached_endpoint(outcome: Outcome) -> bool:
    # The endpoint's health counts what it did, not our own refusals (its in-flight cap,
    # a deleted endpoint): those carry no response code and are not timeouts/connect errors.
    if outcome.response_code is not None:
        return True
    error = outcome.error or ""
    return outcome.kind is OutcomeKind.RETRY and "in flight" not in error and "loaded" not in error


async def _emit_exhausted(rt: Runtime, result: _Result, error: str | None) -> None:
    d = result.delivery
    data = {
        "delivery_id": d.id,
        "notification_id": d.notification_id,
        "channel": d.channel,
        "recipient": d.recipient,
        "attempts": d.attempts,
        "last_error": error,
    }
    try:
        await emit_operational(
            rt,
            d.client_id,
            DELIVERY_EXHAUSTED,
            data,
            # An operational webhook that dies must not beget another one, forever.
            webhooks_too=not is_operational(result.notification),
            exclude_endpoint_ids=[d.endpoint_id] if d.endpoint_id else [],
        )
    except Exception:
        log.exception("emitting delivery.exhausted failed", extra={"delivery_id": d.id})
