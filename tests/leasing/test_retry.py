"""The shared retry schedule: ±10% jitter within bounds, Retry-After as a floor, the
attempt limit as the dead letter."""

from __future__ import annotations

import random

import pytest

from app.leasing.retry import attempt_limit, next_delay, retry_delay

SCHEDULE = [5, 30, 120]


@pytest.mark.parametrize("attempts", [1, 2, 3, 4])
def test_jitter_keeps_the_step_on_average_within_ten_percent(attempts: int) -> None:
    base = SCHEDULE[min(attempts, len(SCHEDULE)) - 1]  # past the end the last step repeats
    assert retry_delay(SCHEDULE, attempts, rand=lambda: 0.0) == pytest.approx(0.9 * base)
    assert retry_delay(SCHEDULE, attempts, rand=lambda: 0.5) == pytest.approx(base)
    assert base < retry_delay(SCHEDULE, attempts, rand=lambda: 0.999999) < 1.1 * base
    seeded = random.Random(7)
    delays = [retry_delay(SCHEDULE, attempts, rand=seeded.random) for _ in range(1000)]
    assert all(0.9 * base <= d <= 1.1 * base for d in delays)
    # Spread over the whole window, not bunched at one instant.
    assert max(delays) - min(delays) > 0.18 * base


def test_retry_after_is_a_floor_with_a_small_spread() -> None:
    assert retry_delay(SCHEDULE, 1, 42.0, rand=lambda: 0.0) == 42.0
    assert 42.0 < retry_delay(SCHEDULE, 1, 42.0, rand=lambda: 0.999) < 42.0 * 1.1
    # A Retry-After longer than the step wins over the schedule.
    assert retry_delay(SCHEDULE, 1, 3600.0, rand=lambda: 0.0) == 3600.0


def test_the_attempt_limit_is_the_dead_letter() -> None:
    assert attempt_limit(SCHEDULE) == 4
    assert next_delay(SCHEDULE, 3, rand=lambda: 0.5) == pytest.approx(120.0)
    assert next_delay(SCHEDULE, 4) is None
    assert next_delay(SCHEDULE, 4, 1.0) is None  # a Retry-After does not buy an attempt
