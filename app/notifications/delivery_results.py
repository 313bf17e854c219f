"""Recording delivery results (the worker side of the relay, after the attempt): the
attempt row, the fenced status change, the endpoint's health, and what is announced after
the commit (exhausted deliveries, disabled endpoints).

`ResultWriter` writes results as they arrive, in as few transactions as the arrivals
allow, taking the notifications' row locks first, in id order (see `delivery`). A DEFER
(one of our limits refused it before its request) is no attempt: its claim is given back
unspent (`deferral_repository`), with no attempt row and nothing on the endpoint's health.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.base import Outcome, OutcomeKind
from app.core.clock import utcnow
from app.core.doorbell import Doorbell
from app.core.ids import new_id
from app.leasing import retry
from app.notifications import deferral_repository as deferrals
from app.notifications import delivery_repository as deliveries
from app.notifications import finish_repository as finishing
from app.notifications.models import FAILED, Delivery, Notification
from app.notifications.operational import (
    DeliveryExhaustedData,
    EndpointDisabledData,
    emit_operational,
    is_operational,
)
from app.realtime.events import DELIVERY_EXHAUSTED
from app.runtime import Runtime
from app.webhooks import service as webhooks

log = logging.getLogger("chatapi.notifications")


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One delivery's attempt and how it ended."""

    delivery: Delivery
    notification: Notification
    outcome: Outcome


def retry_delay(schedule: Sequence[int], attempts: int, retry_after: float | None) -> float:
    """Seconds until the next attempt after attempt number `attempts`: the leased-work
    engine's schedule, shared with inbound events (app/leasing/retry.py)."""
    return retry.retry_delay(schedule, attempts, retry_after)


class ResultWriter:
    """Writes the results of `total` attempts as they arrive (`run` until all are in).

    `on_deferred` hears, after each commit, the DEFER results whose claims were given back.
    """

    def __init__(
        self,
        rt: Runtime,
        client_id: str,
        total: int,
        on_deferred: Callable[[list[AttemptResult]], None] | None = None,
    ) -> None:
        self._rt = rt
        self._client_id = client_id
        self._left = total
        self._pending: list[AttemptResult] = []
        self._wake = asyncio.Event()
        self._on_deferred = on_deferred
        self.kinds: set[OutcomeKind] = set()

    def put(self, result: AttemptResult) -> None:
        """Hand over one attempt's result, to be written with whatever else has arrived."""
        self._pending.append(result)
        self._wake.set()

    def put_many(self, results: Sequence[AttemptResult]) -> None:
        """Hand over several results at once (written together unless a write is under
        way)."""
        self._pending.extend(results)
        self._wake.set()

    def skip(self) -> None:
        """Count an attempt that left nothing to write (its claim was lost)."""
        self._left -= 1
        self._wake.set()

    async def run(self) -> None:
        """Write batches of results until every attempt is accounted for."""
        while self._left > 0:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                self._left -= len(batch)
                await self._write(batch)

    async def _write(self, batch: list[AttemptResult]) -> None:
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
        deferred = [r for r in batch if r.outcome.kind is OutcomeKind.DEFER]
        batch = [r for r in batch if r.outcome.kind is not OutcomeKind.DEFER]
        exhausted: list[tuple[AttemptResult, str | None]] = []
        disabled: list[str] = []
        delivered = [r for r in batch if r.outcome.kind is OutcomeKind.DELIVERED]
        async with rt.db.session() as session:
            # Locks first, in id order: see the module docstring.
            locked = await finishing.lock_many(session, client_id, final)
            given_back = await _give_back(session, client_id, deferred, now)
            await finishing.insert_attempts(
                session, client_id, [_attempt_row(r, now) for r in batch]
            )
            if batch:
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
            await finishing.refresh_statuses(session, client_id, locked.values(), now=now)
            await session.commit()
        if deferred:
            self.kinds.add(OutcomeKind.DEFER)
        if given_back and self._on_deferred is not None:
            self._on_deferred(given_back)
        await _ring_due_now(rt.doorbell, client_id, given_back, now)
        for result, error in exhausted:
            _log_failed(result, error)
            await _emit_exhausted(rt, result, error)
        for endpoint_id in disabled:
            # A state change of the tenant's configuration: one INFO line.
            log.info(
                "webhook endpoint disabled",
                extra={"client_id": client_id, "endpoint_id": endpoint_id},
            )
            # Told once: only the call that flipped the endpoint reports it (record_outcome).
            await emit_operational(
                rt,
                client_id,
                "endpoint.disabled",
                EndpointDisabledData(endpoint_id=endpoint_id).model_dump(mode="json"),
                exclude_endpoint_ids=[endpoint_id],
            )


async def _give_back(
    session: AsyncSession, client_id: str, deferred: list[AttemptResult], now: datetime
) -> list[AttemptResult]:
    """Give the deferred claims back unspent; those that were still ours to give."""
    if not deferred:
        return []
    claims = [
        (
            r.delivery.id,
            r.delivery.attempts,
            None
            if r.outcome.retry_after is None
            else now + timedelta(seconds=r.outcome.retry_after),
        )
        for r in deferred
    ]
    done = await deferrals.give_back_many(session, client_id, claims, now=now)
    return [r for r in deferred if r.delivery.id in done]


async def _ring_due_now(
    doorbell: Doorbell, client_id: str, given_back: list[AttemptResult], now: datetime
) -> None:
    """Ring for given-back rows that were already due when their give-back committed (a
    quota window that reset meanwhile): the sweep only rings rows that fall due after its
    previous look, which may have come between `now` and the commit. Rows due later are the
    sweep's; a cap's wait in `waiting`; a row that is due but has no time of ours (a channel
    missing here) waits for the sweep's backstop, or this worker would ring itself in a
    loop."""
    ids = [
        r.delivery.id
        for r in given_back
        if r.outcome.capacity_key is None
        and r.outcome.retry_after is not None
        and now + timedelta(seconds=r.outcome.retry_after) <= utcnow()
    ]
    if ids:
        await doorbell.ring_deliveries(client_id, ids)


async def _record_endpoint_outcomes(
    session: AsyncSession,
    rt: Runtime,
    batch: list[AttemptResult],
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
    in_order: list[AttemptResult] = []
    for result in batch:
        endpoint_id = result.delivery.endpoint_id
        channel = rt.channels.get(result.delivery.channel)
        # The channel classifies: only what the endpoint did counts for its health.
        if not endpoint_id or channel is None or not channel.reached_target(result.outcome):
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
    result: AttemptResult,
    now: datetime,
    limit: int,
) -> str | None:
    """Move an undelivered delivery on after its attempt (delivered ones are finished in
    one statement, `finishing.mark_delivered_many`); the status it reached (None: the row
    was no longer ours — its lease expired and another worker re-claimed it)."""
    d, outcome, client_id = result.delivery, result.outcome, result.delivery.client_id
    attempts = d.attempts  # the fence: only the claim this attempt made may finish it
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


def _attempt_row(result: AttemptResult, now: datetime) -> dict[str, Any]:
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


def _log_failed(result: AttemptResult, error: str | None) -> None:
    # Delivered ones and retries are routine (their attempts are rows); a delivery that
    # ends badly is what a person reading the log wants to see, once, with its ids.
    d = result.delivery
    log.info(
        "delivery failed",
        extra={
            "client_id": d.client_id,
            "notification_id": d.notification_id,
            "delivery_id": d.id,
            "channel": d.channel,
            "attempts": d.attempts,
            "error": error,
        },
    )


async def _emit_exhausted(rt: Runtime, result: AttemptResult, error: str | None) -> None:
    d = result.delivery
    # The documented payload (the OpenAPI `webhooks` section and the AsyncAPI document).
    data = DeliveryExhaustedData(
        delivery_id=d.id,
        notification_id=d.notification_id,
        channel=d.channel,
        recipient=d.recipient,
        attempts=d.attempts,
        last_error=error,
    ).model_dump(mode="json")
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
