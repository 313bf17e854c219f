"""A route whose common request skips FastAPI's per-request dependency solving.

FastAPI resolves a route's dependency tree on every request (for a send: the two key
schemes, the key check, the header and the body, ~16 parameter resolutions), which
profiled at a fifth of a send's CPU. `DirectRoute` keeps the route as declared — the same
OpenAPI document, the same dependencies — and answers a well-formed request (a JSON body
that validates, headers within their bounds) by calling its `direct` handler with the body
already parsed. Anything else (no body, another content type, invalid JSON, a body or a
header that fails validation) goes to FastAPI's own handler, which produces the errors it
always has, in its order; nothing with a side effect (the key check counts the request
for rate limits) has run by then.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

#: The route's fast handler: (request, the validated body, the checked headers) → answer.
DirectHandler = Callable[[Request, Any, dict[str, str | None]], Awaitable[Response]]


class DirectRoute(APIRoute):
    """An APIRoute answering well-formed requests through `direct` (set per route by
    `direct_route`); the rest through FastAPI's handler."""

    direct: DirectHandler
    body_model: type[BaseModel]
    # Header name (lower case) → (min length, max length) of the optional string headers
    # the handler reads; a header out of bounds goes to FastAPI's handler (its 422).
    header_bounds: dict[str, tuple[int, int]]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, in front of it the direct one."""
        standard = super().get_route_handler()
        direct, model, bounds = self.direct, self.body_model, self.header_bounds

        async def handler(request: Request) -> Response:
            parsed = await _well_formed(request, model, bounds)
            if parsed is None:
                return await standard(request)
            return await direct(request, *parsed)

        return handler


def direct_route(
    handler: DirectHandler, body_model: type[BaseModel], header_bounds: dict[str, tuple[int, int]]
) -> type[DirectRoute]:
    """A DirectRoute class for one route (pass it as `route_class_override`)."""
    return type(
        "DirectRoute",
        (DirectRoute,),
        {
            "direct": staticmethod(handler),
            "body_model": body_model,
            "header_bounds": header_bounds,
        },
    )


async def _well_formed(
    request: Request, model: type[BaseModel], bounds: dict[str, tuple[int, int]]
) -> tuple[Any, dict[str, str | None]] | None:
    if not is_json(request.headers.get("content-type", "")):
        return None
    raw = await request.body()  # cached on the request: FastAPI's handler reads it again
    return parse_well_formed(raw, request.headers.get, model, bounds)


def parse_well_formed(
    raw: bytes,
    header: Callable[[str], str | None],
    model: type[BaseModel],
    bounds: dict[str, tuple[int, int]],
) -> tuple[Any, dict[str, str | None]] | None:
    """(the validated body, the bounded headers) of a well-formed request, else None.

    `header` reads one request header by its lower-case name; the content type is the
    caller's to check."""
    headers: dict[str, str | None] = {}
    for name, (low, high) in bounds.items():
        value = header(name)
        if value is not None and not low <= len(value) <= high:
            return None
        headers[name] = value
    if not raw:
        return None
    try:
        # As FastAPI decodes it (`Request.json`), then validates the model from Python.
        body = model.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None
    return body, headers


def is_json(content_type: str) -> bool:
    """Whether a Content-Type header names JSON (what FastAPI parses as a JSON body)."""
    return content_type.split(";", 1)[0].strip().lower() == "application/json"
