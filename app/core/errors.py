"""RFC 9457 problem+json for every error the API returns."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("chatapi.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://chatapi.dev/problems/"


class AppError(Exception):
    """An error with an HTTP status that services raise and the API renders as a problem."""

    status = 400
    code = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Missing or invalid API key"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload-too-large", "Payload too large"


class Unprocessable(AppError):
    status, code, title = 422, "unprocessable", "Unprocessable content"

    def __init__(self, detail: str | None = None, *, loc: Sequence[str | int] = ("body",)):
        super().__init__(detail)
        # Where in the request the problem is, as in a validation error's `errors[].loc`.
        self.loc = list(loc)


class RateLimited(AppError):
    status, code, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


def problem_response(
    status: int,
    *,
    instance: str,
    detail: str | None = None,
    title: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """Build one problem+json response."""
    phrase = _phrase(status)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (code or phrase.lower().replace(" ", "-")),
        "title": title or phrase,
        "status": status,
        "detail": detail or title or phrase,
        "instance": instance,
    }
    if extra:
        body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _instance(request: Request) -> str:
    return request.url.path


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    # Every 422 has the same shape (ValidationProblem): a service's own refusal lists itself.
    extra = (
        {"errors": [{"loc": getattr(exc, "loc", ["body"]), "msg": exc.detail, "type": exc.code}]}
        if exc.status == 422
        else None
    )
    return problem_response(
        exc.status,
        instance=_instance(request),
        detail=exc.detail,
        title=exc.title,
        code=exc.code,
        headers=exc.headers,
        extra=extra,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    from app.core.openapi import route_table  # the table reads the app's OpenAPI document

    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers) if exc.headers else {}
    path = request.url.path
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No resource at {path}"
        # Paths are exact: a trailing slash is not redirected (a bodyless 307 is no problem
        # document, and clients that do not follow it lose their POST).
        if path.endswith("/") and route_table(request.app).allowed_methods(path.rstrip("/")):
            detail += f"; did you mean {path.rstrip('/')}? (no trailing slash)"
    if exc.status_code == 405:
        if detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {path}"
        # Starlette names only the first route matching the path; list every method.
        allowed = route_table(request.app).allowed_methods(path)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    return problem_response(
        exc.status_code,
        instance=_instance(request),
        detail=detail,
        headers=headers or None,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    first = errors[0] if errors else None
    detail = (
        f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        if first
        else "The request is invalid"
    )
    return problem_response(
        422,
        instance=_instance(request),
        title="Validation failed",
        code="validation-error",
        detail=detail,
        extra={"errors": errors},
    )


async def _unhandled(request: Request, exc: Exception) -> Response:
    if database_unavailable(exc):
        # The driver's own errors (statements on a kept asyncpg connection, app/core/db.py
        # hot_driver) are not SQLAlchemy's: an outage is still a 503.
        return _unavailable(request, exc)
    # Starlette re-raises after this response, so Sentry and the server log still see it.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500,
        instance=_instance(request),
        detail="An unexpected error occurred; it has been logged.",
        code="internal-error",
    )


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (down, restarting, out of
    connections, pool exhausted) rather than that a statement is wrong."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, (sa_exc.TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        # No statement: it failed while connecting. Invalidated: the connection broke.
        return exc.statement is None or exc.connection_invalidated
    # SQLAlchemy's adapted driver errors raised outside a statement (a pool connect for a
    # raw driver connection, app/core/db.py hot_driver) are not DBAPIError: what the driver
    # said is their cause ("the database system is starting up" after a restart).
    seen = 0
    while exc is not None and seen < 8:
        if _driver_unavailable(exc):
            return True
        exc = exc.__cause__  # type: ignore[assignment]
        seen += 1
    return False


def _driver_unavailable(exc: BaseException) -> bool:
    """asyncpg's own errors that mean the server is gone or refusing connections."""
    try:
        from asyncpg import exceptions as pg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    if isinstance(
        exc,
        (
            pg.ConnectionDoesNotExistError,  # closed in the middle of an operation
            pg.PostgresConnectionError,  # SQLSTATE class 08
            pg.CannotConnectNowError,  # 57P03: starting up or shutting down
            pg.AdminShutdownError,  # 57P01
            pg.CrashShutdownError,  # 57P02
        ),
    ):
        return True
    # A statement on a connection the server already closed.
    return isinstance(exc, pg.InterfaceError) and "connection is closed" in str(exc)


async def _database_error(request: Request, exc: Exception) -> Response:
    if not database_unavailable(exc):
        return await _unhandled(request, exc)
    return _unavailable(request, exc)


def _unavailable(request: Request, exc: Exception) -> Response:
    # An outage is the operator's to fix and the client's to retry: 503, not a 500 bug.
    log.warning(
        "database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    return problem_response(
        503,
        instance=_instance(request),
        detail="The database is unavailable; retry shortly.",
        code="database-unavailable",
        headers={"Retry-After": "2"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure through problem+json."""
    from sqlalchemy import exc as sa_exc

    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(ConnectionError, _database_error)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
