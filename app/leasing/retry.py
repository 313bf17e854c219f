"""The retry schedule of every leased queue: when a failed attempt's row is due again, and
when it has no attempt left (the dead letter).

`schedule[n - 1]` is the base wait after attempt n; past its end the last entry repeats
until the attempt limit, `len(schedule) + 1` attempts in all (Settings.
delivery_attempt_limit) — the same for deliveries and inbound events, both on
DELIVERY_RETRY_SCHEDULE.

Jitter is proportional, ±10%: the wait is `base * uniform(0.9, 1.1)`, so a schedule means
what it says on average (operators size it against outages: the fault tests and the
5-day endpoint disabling count on it) while a synchronized burst (an endpoint that failed
10,000 deliveries at once) comes back spread over a fifth of its step. Full or equal
jitter (`uniform(0, base)`, `base/2 + uniform(0, base/2)`) spread wider but shorten every
step — a one-hour backoff could come back after minutes into a receiver still down.

A receiver's Retry-After is honoured as a floor: never earlier than it asked, plus up to
10% more so that a burst told the same Retry-After does not come back in one instant.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

Random = Callable[[], float]  # uniform in [0, 1), like random.random

RETRY_AFTER_SPREAD = 0.1
# Each step of the schedule waits base * (1 ± JITTER).
JITTER = 0.1


def attempt_limit(schedule: Sequence[float]) -> int:
    """How many attempts a row gets in all."""
    return len(schedule) + 1


def retry_delay(
    schedule: Sequence[float],
    attempts: int,
    retry_after: float | None = None,
    *,
    rand: Random = random.random,
) -> float:
    """Seconds until the next attempt after attempt number `attempts` (1-based)."""
    if retry_after is not None:
        return retry_after * (1 + RETRY_AFTER_SPREAD * rand())
    base = float(schedule[min(max(attempts, 1), len(schedule)) - 1])
    return base * (1 - JITTER + 2 * JITTER * rand())


def next_delay(
    schedule: Sequence[float],
    attempts: int,
    retry_after: float | None = None,
    *,
    rand: Random = random.random,
) -> float | None:
    """`retry_delay`, or None when attempt `attempts` was the last one (dead letter)."""
    if attempts >= attempt_limit(schedule):
        return None
    return retry_delay(schedule, attempts, retry_after, rand=rand)
