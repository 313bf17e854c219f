"""When the due-sweep rings a row (`should_ring`): judged against the previous sweep of the
process, so a late sweep still rings what fell due meanwhile, and a row left waiting is
rung again once per lease, not on every sweep."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.notifications.sweep import should_ring

T = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
LEASE = 10.0


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def rings(due: float, *, fresh: bool = False, since: float, now: float) -> bool:
    return should_ring(at(due), fresh, since=at(since), now=at(now), lease=LEASE)


def test_a_retry_that_fell_due_since_the_previous_sweep_is_rung_however_late_the_sweep() -> None:
    assert rings(0, since=-0.1, now=0.2)
    # Sweeps every 0.2 s that stalled for 5 s: a fixed "due in the last 0.4 s" window
    # would pass this row by and leave it for a whole lease.
    assert rings(0, since=-0.1, now=5.0)


def test_a_row_rung_by_an_earlier_sweep_waits_a_lease_before_the_next_ring() -> None:
    sweeps = [0.2 * i for i in range(1, 120)]  # 24 s of sweeps, 0.2 s apart
    rung_at = [
        now
        for since, now in zip([-0.1, *sweeps], sweeps, strict=False)
        if rings(0, since=since, now=now)
    ]
    assert rung_at[0] == 0.2  # new since the sweep before
    assert len(rung_at) == 3  # then once at each whole lease of waiting: 10 s and 20 s
    assert 10.0 <= rung_at[1] < 10.3 and 20.0 <= rung_at[2] < 20.3


def test_a_fresh_send_was_rung_by_the_api_and_gets_only_the_lease_rule() -> None:
    assert not rings(0, fresh=True, since=-0.1, now=0.2)
    assert not rings(0, fresh=True, since=0.2, now=9.9)
    assert rings(0, fresh=True, since=9.9, now=10.1)
    assert not rings(0, fresh=True, since=10.1, now=10.3)


def test_a_sweep_that_skipped_a_whole_lease_rings_a_waiting_row_once() -> None:
    assert rings(0, since=5, now=25)
    assert not rings(0, since=25, now=26)


def test_a_row_not_yet_due_at_the_sweep_is_left_for_the_next() -> None:
    # due_for_sweep reads only rows due by `now`; a later due time is new next time.
    assert rings(1.0, since=0.9, now=1.1)
    assert not rings(1.0, since=1.1, now=1.3)
