"""Settle on claim: deliveries whose channel needs nothing but the row (`settles_on_claim`:
in-app, whose inbox item was stored with the send) are delivered by their claim.

One transaction per batch: the notifications' rows locked first, in id order (as every
finisher takes them), one UPDATE from due to `delivered` with the attempt counted, the
attempt rows, the notifications' statuses. No lease, no second transaction: there is no
attempt that could fail or hang between claim and finish. Then, after the commit, the
set-based push to the users' live connections (owed until pushed, as at a send).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from app.core.clock import utcnow
from app.core.ids import new_ids
from app.notifications import finish_repository as finishing
from app.notifications import settle_repository as settling
from app.notifications.in_app_batch import push_owed
from app.notifications.models import DELIVERED, Notification
from app.notifications.push import InAppPush
from app.notifications.push_repository import OwedPush
from app.notifications.settle_repository import Settled
from app.observability.metrics import DELIVERIES, DELIVERY_LATENCY
from app.runtime import Runtime

log = logging.getLogger("chatapi.notifications")


def settling_channels(rt: Runtime) -> list[str]:
    """The loaded channels whose deliveries settle on claim (`BaseChannel.settles_on_claim`;
    a channel written against the protocol alone does not)."""
    return sorted(n for n, c in rt.channels.items() if getattr(c, "settles_on_claim", False))


async def settle_batch(
    rt: Runtime, client_id: str, delivery_ids: Sequence[str], channels: Sequence[str]
) -> list[Settled]:
    """Deliver the due ones of `delivery_ids` through `channels` (with a recipient user) by
    claiming them; push them after the commit. What was settled; the rest is the general
    path's (not due, held elsewhere, another channel, no user, out of attempts)."""
    now = utcnow()
    if rt.db.dialect_name == "sqlite":
        # A write session takes SQLite's one write lock at its first statement: a ring for
        # another channel (e-mail, webhooks) is told so by a read, which takes none.
        async with rt.db.read_session() as session:
            if not await settling.any_settleable(session, client_id, delivery_ids, channels):
                return []
    async with rt.db.session() as session:
        locked = await settling.lock_notifications(session, client_id, delivery_ids, channels)
        if not locked:
            return []
        settled = await settling.settle(
            session,
            client_id,
            delivery_ids,
            channels,
            now=now,
            attempt_limit=rt.settings.delivery_attempt_limit,
        )
        if not settled:
            await session.rollback()
            return []
        rows = [
            _attempt_row(attempt_id, s, client_id, now)
            for attempt_id, s in zip(new_ids(len(settled)), settled, strict=True)
        ]
        await finishing.insert_attempts(session, client_id, rows)
        await finishing.refresh_statuses(session, client_id, locked.values(), now=now)
        await session.commit()
    _observe(settled, locked, now)
    await _push(rt, client_id, settled, locked)
    return settled


def _attempt_row(attempt_id: str, s: Settled, client_id: str, now: datetime) -> dict[str, object]:
    return {
        "id": attempt_id,
        "client_id": client_id,
        "delivery_id": s.id,
        "notification_id": s.notification_id,
        "attempted_at": now,
        "outcome": DELIVERED,
        "response_code": None,
        "reply": None,
        "duration_ms": 0,
        "error": None,
        "served_by": None,
    }


def _observe(
    settled: Sequence[Settled], notifications: dict[str, Notification], now: datetime
) -> None:
    for channel, n in Counter(s.channel for s in settled).items():
        DELIVERIES.labels(channel, DELIVERED).inc(n)
    # One latency per (channel, notification): its deliveries were accepted together.
    for (channel, notification_id), n in Counter(
        (s.channel, s.notification_id) for s in settled
    ).items():
        notification = notifications.get(notification_id)
        if notification is None:
            continue
        histogram = DELIVERY_LATENCY.labels(channel)
        seconds = max(0.0, (now - notification.created_at).total_seconds())
        for _ in range(n):
            histogram.observe(seconds)


async def _push(
    rt: Runtime, client_id: str, settled: Sequence[Settled], notifications: dict[str, Notification]
) -> None:
    """Push the settled inbox items to their users' live connections. Never raises: a
    failure leaves the pushes owed, for the sweep and the user's next connect."""
    pushed = [s for s in settled if getattr(rt.channels.get(s.channel), "stores_inbox_item", False)]
    owed = [OwedPush(s.id, client_id, s.user_id, s.notification_id) for s in pushed]
    contents = {
        s.notification_id: notifications[s.notification_id].content.get(s.channel, {})
        for s in pushed
        if s.notification_id in notifications
    }
    await push_owed(rt.part(InAppPush), owed, contents)
