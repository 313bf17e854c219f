"""Pure ASGI middleware: the RateLimit-* headers of the request's verdict on its answer."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.ratelimit.policies import STATE_KEY
from app.ratelimit.windows import WindowStats


class RateLimitHeadersMiddleware:
    """Add RateLimit-Limit / -Remaining / -Reset (seconds) to any answer whose request was
    counted (every authenticated one; the count happens in the authentication dependency,
    so 429s and other errors of counted requests carry them too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = limit_headers(state)
                if extra:
                    message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def limit_headers(state: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """The RateLimit-* headers of the request's verdict (none if it was not counted)."""
    stats = state.get(STATE_KEY)
    if not isinstance(stats, WindowStats):
        return []
    return [
        (b"ratelimit-limit", str(stats.limit).encode()),
        (b"ratelimit-remaining", str(stats.remaining).encode()),
        (b"ratelimit-reset", str(stats.reset_in()).encode()),
    ]
