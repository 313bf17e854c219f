"""The shared retry schedule: equal jitter within bounds, Retry-After as a floor, the
attempt limit as the dead letter."""

from __future__ import annotations

import random

import pytest

from app.leasing.retry import attempt_limit, next_delay, retry_delay

SCHEDULE = [5, 30, 120]


@pytest.mark.parametrize("attempts", [1, 2, 3, 4])
def test_equal_jitter_keeps_half_the_step_and_spreads_the_other_half(attempts: int) -> None:
    base = SCHEDULE[min(attempts, len(SCHEDULE)) - 1]  # past the end the last step repeats
    assert retry_delay(SCHEDULE, attempts, rand=lambda: 0.0) == base / 2
    assert retry_delay(SCHEDULE, attempts, rand=lambda: 0.5) == 0.75 * base
    assert base / 2 < retry_delay(SCHEDULE, attempts, rand=lambda: 0.999999) < base
    seeded = random.Random(7)
    delays = [retry_delay(SCHEDULE, attempts, rand=seeded.random) for _ in range(1000)]
    assert all(base / 2 <= d < base for d in delays)
    # Spread over the whole half-step, not bunched (the old ±10% was a fifth of it).
    assert max(delays) - min(delays) > 0.45 * base


def test_retry_after_is_a_floor_with_a_small_spread() -> None:
    assert retry_delay(SCHEDULE, 1, 42.0, rand=lambda: 0.0) == 42.0
    assert 42.0 < retry_delay(SCHEDULE, 1, 42.0, rand=lambda: 0.999) < 42.0 * 1.1
    # A Retry-After longer than the step wins over the schedule.
    assert retry_delay(SCHEDULE, 1, 3600.0, rand=lambda: 0.0) == 3600.0


def test_the_attempt_limit_is_the_dead_letter() -> None:
    assert attempt_limit(SCHEDULE) == 4
    assert next_delay(SCHEDULE, 3, rand=lambda: 0.0) == 60.0
    assert next_delay(SCHEDULE, 4) is None
    assert next_delay(SCHEDULE, 4, 1.0) is None  # a Retry-After does not buy an attempt
