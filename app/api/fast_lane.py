"""The fast lane: the hottest well-formed requests answered in one ASGI layer.

A send (`POST /notifications/send`, `POST /rooms/{room_id}/messages`) used to pass eleven
ASGI layers before its handler: six of ours (request log, metrics, body limit, key
presence, query check, rate-limit headers), Starlette's error and exception middleware,
FastAPI's exit stack and the nested routers' matching. Together they profiled at a third
of a send's CPU (1.6 of which ~0.55 ms). For the routes declared with `direct_route`
(app/api/direct_route.py) the lane does each of those layers' jobs in one place: the
request id and access log line, the HTTP metrics, the body's size and time bounds, the
RateLimit-* headers, and the app's exception handlers (problem+json; 5xx reported to
Sentry as Starlette's integration would).

What the lane does not take goes down the full stack, with the body it read replayed, and
gets the answers it always had: no key (the 401 before the body), a query string (the
repeated-parameter check), no Content-Length or one over the limit, a body arriving in
several chunks, a body that is not well-formed JSON for the route or a header out of
bounds (FastAPI's 422s).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sentry_sdk
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.direct_route import DirectRoute, is_json, parse_well_formed
from app.core.middleware import (
    BODY_TIMEOUT_SECONDS,
    assign_request_id,
    body_problem,
    header,
    log_request,
    presents_key,
    receive_by,
)
from app.observability.metrics import observe_http
from app.ratelimit.middleware import limit_headers


@dataclass(frozen=True, slots=True)
class _Lane:
    method: str
    regex: re.Pattern[str]
    convertors: dict[str, Any]
    template: str
    route: DirectRoute


class FastLane:
    """Answers the direct routes' well-formed requests; hands the rest to `full`."""

    def __init__(
        self,
        app: FastAPI,
        full: ASGIApp,
        routers: Iterable[tuple[str, APIRouter]],
        *,
        max_body_bytes: int,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
    ) -> None:
        self._app = app
        self._full = full
        self._max_body_bytes = max_body_bytes
        self._body_timeout = body_timeout
        self.lanes: list[_Lane] = []
        for prefix, router in routers:
            for route in router.routes:
                if isinstance(route, DirectRoute):
                    template = prefix + route.path
                    regex, _, convertors = compile_path(template)
                    for method in sorted(route.methods or ()):
                        self.lanes.append(_Lane(method, regex, convertors, template, route))

    @property
    def templates(self) -> Sequence[tuple[str, str]]:
        """(method, path template) of every route the lane answers."""
        return [(lane.method, lane.template) for lane in self.lanes]

    def match(self, scope: Scope) -> tuple[_Lane, dict[str, Any]] | None:
        """The lane for this request and its path parameters, or None (the full stack)."""
        if scope["type"] != "http" or scope.get("query_string") or not presents_key(scope):
            return None
        method, path = scope["method"], scope["path"]
        for lane in self.lanes:
            if lane.method == method:
                found = lane.regex.match(path)
                if found is not None:
                    params = {
                        name: lane.convertors[name].convert(value)
                        for name, value in found.groupdict().items()
                    }
                    return lane, params
        return None

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        lane: _Lane,
        params: dict[str, Any],
    ) -> None:
        """Answer one request matched by `match`."""
        declared = header(scope, b"content-length")
        if (
            declared is None
            or not declared.isdigit()
            or int(declared) > self._max_body_bytes
            or not is_json(header(scope, b"content-type") or "")
        ):
            await self._full(scope, receive, send)
            return
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self._body_timeout
        read: list[Message] = []
        size = 0
        while True:
            try:
                message = await receive_by(receive, deadline)
            except asyncio.TimeoutError:
                response = body_problem(
                    scope, 408, timeout=self._body_timeout, max_bytes=self._max_body_bytes
                )
                await self._answer(scope, receive, send, lane, started, response)
                return
            read.append(message)
            if message["type"] != "http.request":
                break  # a disconnect: the full stack sees it as it would have
            size += len(message.get("body", b""))
            if size > self._max_body_bytes or not message.get("more_body", False):
                break
        replay = _replaying(read, receive)
        if read[-1]["type"] != "http.request" or size > self._max_body_bytes:
            # The full stack answers these as it always has (its 413 counts the replay).
            await self._full(scope, replay, send)
            return
        raw = b"".join(m.get("body", b"") for m in read)
        parsed = parse_well_formed(
            raw, lambda name: header(scope, name.encode("latin-1")), lane.route.body_model,
            lane.route.header_bounds,
        )  # fmt: skip
        if parsed is None:
            await self._full(scope, replay, send)
            return
        assign_request_id(scope)  # before the handler: its logs may name the request
        # What Starlette's router would have put in the scope for the route.
        scope["app"] = self._app
        scope["router"] = self._app.router
        scope["route"] = lane.route
        scope["endpoint"] = lane.route.endpoint
        scope["path_params"] = params
        request = Request(scope, replay)
        try:
            response = await lane.route.direct(request, *parsed)
        except Exception as exc:
            handled = await self._problem(request, exc)
            if handled is None:
                raise
            problem, by_catch_all = handled
            await self._answer(scope, replay, send, lane, started, problem)
            if by_catch_all:
                # The catch-all handler is Starlette's ServerErrorMiddleware's: it answers,
                # then re-raises, so the server logs it too. The others only answer.
                raise
            return
        await self._answer(scope, replay, send, lane, started, response)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        lane: _Lane,
        started: float,
        response: Response,
    ) -> None:
        request_id = scope.get("state", {}).get("request_id") or assign_request_id(scope)
        state = scope["state"]
        status = response.status_code

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *limit_headers(state),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await response(scope, receive, send_marked)
        finally:
            log_request(scope, status, started, request_id)
            observe_http(scope["method"], lane.template, status, started)

    async def _problem(self, request: Request, exc: Exception) -> tuple[Response, bool] | None:
        """The app's exception handler's answer for `exc`, and whether that handler is the
        catch-all one (for `Exception`); None when no handler takes it."""
        for cls in type(exc).__mro__:
            handler = self._app.exception_handlers.get(cls)
            if handler is not None:
                break
        else:
            return None
        answer = handler(request, exc)
        if inspect.isawaitable(answer):
            answer = await answer
        if 500 <= answer.status_code < 600:
            sentry_sdk.capture_exception(exc)
        return answer, cls is Exception


def _replaying(read: list[Message], receive: Receive) -> Receive:
    """`receive` with the messages already `read` given back first, in order."""
    pending = list(reversed(read))

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
