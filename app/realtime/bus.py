"""The event bus: services and workers publish (tenant, target, event, data); every API
process hears it on the targets its connections listen to (API.md §5, DESIGN.md §1)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.core.broadcast import Broadcast
from app.observability.metrics import EVENTS_PUBLISHED

log = logging.getLogger("chatapi.bus")


@dataclass(frozen=True, slots=True)
class Event:
    """One event for the connections listening on `target` within one client."""

    client_id: str
    target: str
    event: str
    data: dict[str, Any]
    exclude_key: str | None = None  # e.g. typing is not echoed to the connection that sent it


EventHandler = Callable[[Event], Awaitable[None]]


def _channel(client_id: str, target: str) -> str:
    # The tenant is part of the channel, so nothing can cross clients by a shared target id.
    return f"rt:{client_id}:{target}"


class EventBus:
    """Publishes events on the process broadcast and lets gateways listen per target."""

    def __init__(self, broadcast: Broadcast) -> None:
        self.broadcast = broadcast
        self._wrapped: dict[tuple[str, EventHandler], Callable[[bytes], Awaitable[None]]] = {}

    async def publish(
        self,
        client_id: str,
        target: str,
        event: str,
        data: dict[str, Any],
        *,
        exclude_key: str | None = None,
    ) -> None:
        """Send `event` to every connection on `target` of `client_id`, in any process."""
        body = {"c": client_id, "t": target, "e": event, "d": data, "x": exclude_key}
        await self.broadcast.publish(_channel(client_id, target), orjson.dumps(body))
        EVENTS_PUBLISHED.inc()

    async def publish_many(self, events: Sequence[Event]) -> None:
        """`publish` a batch, in order, in one broadcast round trip (Redis: one pipeline)."""
        if not events:
            return
        await self.broadcast.publish_many(
            [
                (
                    _channel(e.client_id, e.target),
                    orjson.dumps(
                        {
                            "c": e.client_id,
                            "t": e.target,
                            "e": e.event,
                            "d": e.data,
                            "x": e.exclude_key,
                        }
                    ),
                )
                for e in events
            ]
        )
        EVENTS_PUBLISHED.inc(len(events))

    async def publish_after_commit(
        self,
        client_id: str,
        target: str,
        event: str,
        data: dict[str, Any],
        *,
        exclude_key: str | None = None,
    ) -> None:
        """`publish` for services after their commit: the write happened, so a failure to
        announce it (broker down, unserialisable data) is logged (Sentry sees the error
        record) and never turns the committed result into an error answer."""
        try:
            await self.publish(client_id, target, event, data, exclude_key=exclude_key)
        except Exception:
            log.exception(
                "could not publish %s after commit",
                event,
                extra={"client_id": client_id, "target": target, "event": event},
            )

    async def listen(self, client_id: str, target: str, handler: EventHandler) -> None:
        """Call `handler` for events on (client, target) until `unlisten`."""

        async def on_message(raw: bytes) -> None:
            body = orjson.loads(raw)
            await handler(Event(body["c"], body["t"], body["e"], body["d"], body.get("x")))

        channel = _channel(client_id, target)
        self._wrapped[(channel, handler)] = on_message
        await self.broadcast.subscribe(channel, on_message)

    async def unlisten(self, client_id: str, target: str, handler: EventHandler) -> None:
        """Stop calling `handler` for (client, target)."""
        channel = _channel(client_id, target)
        wrapped = self._wrapped.pop((channel, handler), None)
        if wrapped is not None:
            await self.broadcast.unsubscribe(channel, wrapped)
