"""Retry policy shared by the sync and async clients: what to retry and how long to wait."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Methods the server treats as idempotent: repeating them cannot create a second object.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long: exponential backoff with full jitter, `Retry-After` first."""

    max_retries: int = 3
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    # A Retry-After longer than this is not waited for: the error goes to the caller.
    max_retry_after: float = 120.0

    def backoff(self, attempt: int) -> float:
        """The pause before retry number `attempt` (0-based) without a Retry-After."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))

    def delay(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retrying, or None when the answer must not be retried."""
        if attempt >= self.max_retries:
            return None
        if response is not None:
            after = retry_after_seconds(response)
            if after is not None:
                return after if after <= self.max_retry_after else None
        return self.backoff(attempt)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), None when absent or bad."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retryable_status(status: int) -> bool:
    """Whether an answer with `status` may be retried (for a request that may be repeated)."""
    return status in RETRY_STATUSES


def retryable_error(exc: Exception, repeatable: bool) -> bool:
    """Whether a transport error may be retried: a request never sent always may; one that may
    have reached the server only when repeating it is harmless (`repeatable`)."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return True
    return repeatable and isinstance(exc, httpx.TransportError)
