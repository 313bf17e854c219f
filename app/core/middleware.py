"""Pure ASGI middleware: request id + access log, the request body's size and pace, and
refusing keyless calls to authenticated routes before their body is read."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import Unauthorized, problem_response
from app.core.ids import new_id
from app.core.openapi import route_table

log = logging.getLogger("chatapi.request")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestLogMiddleware:
    """Give every HTTP request an id (echoed as X-Request-ID) and log one line when it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = assign_request_id(scope)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log_request(scope, status, started, request_id)


def assign_request_id(scope: Scope) -> str:
    """The request's id (a safe incoming X-Request-ID, else a new one), kept in its state."""
    incoming = header(scope, b"x-request-id")
    request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else new_id()
    scope.setdefault("state", {})["request_id"] = request_id
    return request_id


def log_request(scope: Scope, status: int, started: float, request_id: str) -> None:
    """The access log's one line for a finished request (`started`: perf_counter)."""
    log.info(
        "request",
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "request_id": request_id,
        },
    )


#: How long a client may take to send a whole request body (slow-body attacks).
BODY_TIMEOUT_SECONDS = 30.0


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413 problem+json, by header or while streaming,
    and bodies that take longer than `timeout` seconds to arrive with 408 problem+json.

    Without the timeout a request declaring more bytes than it sends would hold its
    connection (and a database-free worker slot) forever: uvicorn bounds headers, not bodies.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float = BODY_TIMEOUT_SECONDS) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send, 413)
            return
        received = 0
        body_done = False
        response_started = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                # After the body only a disconnect can come: no deadline on waiting for it.
                return await receive()
            try:
                message = await receive_by(receive, deadline)
            except asyncio.TimeoutError:
                raise _BodyTimeout(self.timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._reject(scope, receive, send, 413)
        except _BodyTimeout:
            if not response_started:
                await self._reject(scope, receive, send, 408)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, status: int) -> None:
        response = body_problem(scope, status, timeout=self.timeout, max_bytes=self.max_bytes)
        await response(scope, receive, send)


def body_problem(scope: Scope, status: int, *, timeout: float, max_bytes: int) -> Response:
    """The 408 (body too slow) or 413 (body too large) problem for the request."""
    if status == 408:
        return problem_response(
            408,
            instance=scope["path"],
            code="request-timeout",
            detail=f"The request body did not arrive within {timeout:g} seconds",
            headers={"Connection": "close"},
        )
    return problem_response(
        413,
        instance=scope["path"],
        code="payload-too-large",
        detail=f"The request body is larger than {max_bytes} bytes",
    )


async def receive_by(receive: Receive, deadline: float) -> Message:
    """`receive()`, or TimeoutError at loop time `deadline`."""
    if sys.version_info >= (3, 11):
        # A timer on the running task: wait_for (before 3.12) wraps the call in a task of
        # its own, a loop iteration and a task switch per request body.
        async with asyncio.timeout_at(deadline):
            return await receive()
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))


class _TooLarge(HTTPException):
    # An HTTPException so FastAPI's body parsing re-raises it and the problem handler renders it.
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body is larger than {max_bytes} bytes")


class _BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"The request body did not arrive within {seconds:g} seconds",
            headers={"Connection": "close"},
        )


class RequireKeyMiddleware:
    """Answer 401 to a keyless call of an authenticated operation before anything else.

    FastAPI reads and parses the body before it resolves dependencies, so without this a
    keyless request with malformed JSON would learn about its JSON (422) instead of being
    told to authenticate (401), and an anonymous caller could make the server parse bodies.
    Which operations need a key comes from the OpenAPI document (their `security`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if presents_key(scope):
            await self.app(scope, receive, send)
            return
        table = route_table(scope["app"])
        if not table.needs_key(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        error = Unauthorized("Send an API key as `Authorization: Bearer <key>` or `X-API-Key`")
        response = problem_response(
            error.status,
            instance=scope["path"],
            detail=error.detail,
            title=error.title,
            code=error.code,
            headers=error.headers,
        )
        await response(scope, receive, send)


class SingleQueryValueMiddleware:
    """Refuse a query parameter given more than once with a 422 problem.

    No parameter of this API is a list, and FastAPI would silently keep the last value
    (`?limit=5&limit=500`): an ambiguous request is refused rather than guessed at.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the REST API: the Socket.IO mount has its own query protocol.
        is_api = scope["type"] == "http" and scope["path"].startswith("/api/")
        raw = scope.get("query_string", b"") if is_api else b""
        if raw:
            seen: set[str] = set()
            repeated = []
            for name, _ in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
                if name in seen and name not in repeated:
                    repeated.append(name)
                seen.add(name)
            if repeated:
                errors = [
                    {"loc": ["query", name], "msg": "given more than once", "type": "duplicate"}
                    for name in repeated
                ]
                response = problem_response(
                    422,
                    instance=scope["path"],
                    title="Validation failed",
                    code="validation-error",
                    detail=f"query.{repeated[0]}: given more than once",
                    extra={"errors": errors},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def presents_key(scope: Scope) -> bool:
    """Whether the request carries an API key (Bearer or X-API-Key), checked or not."""
    authorization = header(scope, b"authorization") or ""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return True
    return bool(header(scope, b"x-api-key"))


def header(scope: Scope, name: bytes) -> str | None:
    """The request header `name` (lower-case bytes) of an ASGI scope, or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None
