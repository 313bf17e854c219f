"""When a send goes out: the bounds of `send_at` (README: *The notification relay*).

A `send_at` in the past within `SEND_AT_PAST_TOLERANCE` is "now": the client's clock may run
a little behind ours, or it computed "now" before a retry. Further back is refused — 1970 or
year 1 is a caller's bug (a zero or unset time), not a wish to send at once. More than
`SEND_AT_MAX_AHEAD` ahead is refused too: a send that far out is almost always a unit
mistake (milliseconds as seconds), and it would sit in the queue for years.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.core.errors import Unprocessable

#: How far in the past a send_at still means "now": clock skew between the client and us.
#: The same five minutes inbound signatures allow (INBOUND_SIGNATURE_TOLERANCE_SECONDS).
SEND_AT_PAST_TOLERANCE = timedelta(minutes=5)
#: How far ahead a send may be scheduled.
SEND_AT_MAX_AHEAD = timedelta(days=365)
_LOC = ("body", "send_at")


def resolve_send_at(
    requested: datetime | None, now: datetime, *, past_is_now: bool = False
) -> datetime:
    """The time to send at: `requested`, or `now` for none or a time just past (within
    SEND_AT_PAST_TOLERANCE; any past time with `past_is_now`, for work done after the
    request, e.g. an inbound event processed or replayed later). Unprocessable otherwise.
    `requested` carries an offset (the schema refuses one without)."""
    if requested is None:
        return now
    # Differences, not conversions: a time at the end of year 9999 in a negative offset is
    # past datetime's range once made UTC, but its distance from now is still exact.
    if requested - now > SEND_AT_MAX_AHEAD:
        raise Unprocessable(
            f"send_at is more than {SEND_AT_MAX_AHEAD.days} days ahead; schedule closer to "
            "the time",
            loc=_LOC,
        )
    if requested > now:
        return requested
    late = now - requested
    if late > SEND_AT_PAST_TOLERANCE and not past_is_now:
        raise Unprocessable(
            f"send_at is {_span(late)} in the past; a time up to "
            f"{_span(SEND_AT_PAST_TOLERANCE)} ago (clock skew) is sent at once, an older one "
            "is refused: omit send_at to send now",
            loc=_LOC,
        )
    return now


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
