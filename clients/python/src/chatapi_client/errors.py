"""Exceptions: every refusal of the server carries its RFC 9457 problem document."""

from __future__ import annotations

from typing import Any

import httpx


class ChatAPIError(Exception):
    """An answer outside 2xx: `.status` and the problem+json `.problem` (RFC 9457)."""

    def __init__(
        self, status: int, problem: dict[str, Any], response: httpx.Response | None = None
    ):
        self.status = status
        self.problem = problem
        self.response = response
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or "")
        super().__init__(f"{status} {self.title}: {self.detail}".strip(": "))

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Validation errors (`errors` of a 422 problem), else empty."""
        found = self.problem.get("errors")
        return list(found) if isinstance(found, list) else []


class BadRequestError(ChatAPIError):
    """400."""


class AuthenticationError(ChatAPIError):
    """401: missing, invalid, revoked or expired key."""


class PermissionDeniedError(ChatAPIError):
    """403: wrong scope or key kind."""


class NotFoundError(ChatAPIError):
    """404: missing, or another client's (existence is never leaked)."""


class ConflictError(ChatAPIError):
    """409."""


class PayloadTooLargeError(ChatAPIError):
    """413."""


class ValidationError(ChatAPIError):
    """422: the body or query is invalid; see `.errors`."""


class RateLimitError(ChatAPIError):
    """429 after the retries were spent; `.retry_after` in seconds when the server said."""

    @property
    def retry_after(self) -> float | None:
        """The `Retry-After` of the last answer, in seconds."""
        if self.response is None:
            return None
        from chatapi_client._retry import retry_after_seconds

        return retry_after_seconds(self.response)


class ServerError(ChatAPIError):
    """5xx after the retries were spent."""


class WebhookVerificationError(Exception):
    """A webhook delivery whose signature, timestamp or headers do not verify."""


_BY_STATUS: dict[int, type[ChatAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
}


def error_for(response: httpx.Response) -> ChatAPIError:
    """The exception for a non-2xx answer, with its problem document (or a stand-in)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = (
        body
        if isinstance(body, dict)
        else {
            "title": response.reason_phrase,
            "status": response.status_code,
            "detail": response.text[:500],
        }
    )
    status = response.status_code
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ChatAPIError)
    return cls(status, problem, response)


class APIConnectionError(ChatAPIError):
    """No answer: the connection failed or dropped (after the retries that were safe)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(0, {"title": "Connection failed", "status": 0, "detail": repr(cause)})
