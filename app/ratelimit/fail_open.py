"""Failing open: what the limits do while their shared storage (Redis) does not answer.

A limiter outage must not become an API outage, so a hit the storage cannot count lets the
request (or delivery) through uncounted — except wrong-secret checks, which fall back to
counts in the process (app/auth/authenticator.py) so bcrypt stays bounded. Each such hit is
counted in `chatapi_rate_limit_fail_open_total`; the state shows in `/health/ready`; the
switch each way is logged once, not once per request.
"""

from __future__ import annotations

import logging

from app.observability.metrics import RATE_LIMIT_FAIL_OPEN

log = logging.getLogger("chatapi.ratelimit")


class FailOpen:
    """Whether the limits' storage failed its last hit in this process; one per process,
    shared by everything that counts in that storage."""

    def __init__(self) -> None:
        self.failing = False

    def failed(self, limit: str, exc: BaseException) -> None:
        """A hit on `limit` could not be counted in the storage."""
        RATE_LIMIT_FAIL_OPEN.labels(limit).inc()
        if not self.failing:
            self.failing = True
            log.warning(
                "rate limit storage unavailable: limits fail open until it answers (%r)", exc
            )

    def succeeded(self) -> None:
        """A hit was counted: the storage answers (again)."""
        if self.failing:
            self.failing = False
            log.warning("rate limit storage answers again: limits are counted")
