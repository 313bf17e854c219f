"""The delivery metrics of attempts (kept out of the delivery loop's module)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from app.channels.base import Outcome, OutcomeKind
from app.core.clock import utcnow
from app.notifications.models import Delivery, Notification
from app.observability.metrics import (
    DEAD_LETTERS,
    DEFERRALS,
    DELIVERIES,
    DELIVERY_LATENCY,
    DELIVERY_RETRIES,
    FAILED_OVER,
    PROVIDER_ATTEMPTS,
    observe_delivery,
)

if TYPE_CHECKING:
    from app.notifications.delivery_results import AttemptResult


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
        provider_type=outcome.provider_type,
        failed_over=outcome.failed_over,
    )


def observe_many(results: Sequence[AttemptResult], limit: int) -> None:
    """`observe` for a batch of results (a DEFER counts as a deferral, not an attempt):
    each counter incremented once per label, the latencies against one reading of the
    clock."""
    counts: Counter[tuple[str, OutcomeKind, bool]] = Counter()
    by_provider: Counter[tuple[str, str, str]] = Counter()
    now = utcnow()
    latency: dict[str, list[float]] = {}
    for result in results:
        channel, kind = result.delivery.channel, result.outcome.kind
        final = kind is OutcomeKind.FAILED or (
            kind is OutcomeKind.RETRY and result.delivery.attempts >= limit
        )
        counts[(channel, kind, final)] += 1
        provider_type = result.outcome.provider_type
        if provider_type is not None and kind is not OutcomeKind.DEFER:
            by_provider[(channel, provider_type, kind.value)] += 1
            for failed_type in result.outcome.failed_over:
                by_provider[(channel, failed_type, FAILED_OVER)] += 1
        if kind is OutcomeKind.DELIVERED:
            seconds = (now - result.notification.created_at).total_seconds()
            latency.setdefault(channel, []).append(max(0.0, seconds))
    for (channel, kind, final), n in counts.items():
        if kind is OutcomeKind.DEFER:
            DEFERRALS.labels(channel).inc(n)
            continue
        DELIVERIES.labels(channel, kind.value).inc(n)
        if kind is OutcomeKind.RETRY and not final:
            DELIVERY_RETRIES.labels(channel).inc(n)
        if final:
            DEAD_LETTERS.labels(channel).inc(n)
    for (channel, provider_type, outcome), n in by_provider.items():
        PROVIDER_ATTEMPTS.labels(channel, provider_type, outcome).inc(n)
    for channel, values in latency.items():
        histogram = DELIVERY_LATENCY.labels(channel)
        for value in values:
            histogram.observe(value)
