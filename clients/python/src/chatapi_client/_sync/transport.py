# Generated from chatapi_client/_async by scripts/unasync.py: do not edit.
"""One HTTP call with the key, retries and errors (the layer every resource uses)."""

from __future__ import annotations

import time
import os
from typing import Any

import httpx

from chatapi_client._retry import IDEMPOTENT_METHODS, RetryPolicy, retryable_error, retryable_status
from chatapi_client.errors import APIConnectionError, error_for

API_PREFIX = "/api/v1"
USER_AGENT = "chatapi-client-python/0.1.0"


# The server (uvicorn) closes an idle connection after 5 s, httpx reuses one for 5 s by
# default: a request sent on a connection idle for about 5 s can meet the close and fail.
# Dropping idle connections a second earlier than the server keeps them avoids that race.
_LIMITS = httpx.Limits(keepalive_expiry=4.0)


class Transport:
    """Sends requests under `/api/v1` with the key, retrying what is safe to retry."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        http: httpx.Client | None,
        retry: RetryPolicy,
        timeout: float,
    ) -> None:
        base_url = base_url or os.environ.get("CHATAPI_URL")
        self.api_key = api_key or os.environ.get("CHATAPI_API_KEY")
        if base_url is None and (http is None or not str(http.base_url)):
            raise ValueError("base_url is required (or set CHATAPI_URL)")
        self.base_url = (base_url or str(http.base_url if http else "")).rstrip("/")
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=timeout, limits=_LIMITS)
        self.retry = retry

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as `/rooms`."""
        return f"{self.base_url}{API_PREFIX}{path}"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The key and agent headers, plus `extra`."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if extra:
            headers.update(extra)
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = False,
    ) -> httpx.Response:
        """The 2xx answer; raises ChatAPIError (a subclass per status) otherwise.

        429 is always retried (the server did nothing); 5xx and dropped connections only when
        repeating the request is harmless: GET/PUT/DELETE, or a send with an idempotency key.
        """
        repeatable = idempotent or method in IDEMPOTENT_METHODS
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = self.http.request(
                    method, self.url(path), params=query, json=json, headers=self.headers(headers)
                )
            except httpx.TransportError as exc:
                if attempt >= self.retry.max_retries or not retryable_error(exc, repeatable):
                    raise APIConnectionError(exc) from exc
                time.sleep(self.retry.backoff(attempt))
                attempt += 1
                continue
            if response.is_success:
                return response
            if response.status_code == 429 or (
                repeatable and retryable_status(response.status_code)
            ):
                delay = self.retry.delay(attempt, response)
                if delay is not None:
                    time.sleep(delay)
                    attempt += 1
                    continue
            raise error_for(response)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON body of a 2xx answer (None for 204)."""
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def close(self) -> None:
        """Close the HTTP client if this transport made it."""
        if self._owns_http:
            self.http.close()


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
