"""The delivery metrics of one attempt (kept out of the delivery loop's module)."""

from __future__ import annotations

from app.channels.base import Outcome, OutcomeKind
from app.core.clock import utcnow
from app.notifications.models import Delivery, Notification
from app.observability.metrics import observe_delivery


def observe(delivery: Delivery, notification: Notification, outcome: Outcome, limit: int) -> None:
    """Count the attempt's outcome; a failure or the last retry is a dead letter."""
    kind = outcome.kind
    final = kind is OutcomeKind.FAILED or (kind is OutcomeKind.RETRY and delivery.attempts >= limit)
    observe_delivery(
        delivery.channel,
        kind.value,
        accepted_at=notification.created_at,
        now=utcnow(),
        final=final,
    )
