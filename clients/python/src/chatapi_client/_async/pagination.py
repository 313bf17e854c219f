"""`async for` over cursor pages: each page is fetched when the previous one is used up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from chatapi_client._async.transport import AsyncTransport
from chatapi_client.models import Message, Page

M = TypeVar("M", bound=BaseModel)


class AsyncPager(Generic[M]):
    """Every item of a cursor-paged list (`?limit=&cursor=` → `data`/`has_more`/`next_cursor`)."""

    def __init__(
        self, transport: AsyncTransport, path: str, model: type[M], params: dict[str, Any]
    ) -> None:
        self._transport = transport
        self._path = path
        self._model = model
        self._params = params

    async def page(self, cursor: str | None = None) -> Page[M]:
        """One page (the first, or the one after `cursor`)."""
        params = {**self._params, "cursor": cursor}
        body = await self._transport.json("GET", self._path, params=params)
        return Page[M](
            data=[self._model.model_validate(item) for item in body["data"]],
            has_more=bool(body.get("has_more")),
            next_cursor=body.get("next_cursor"),
        )

    async def __aiter__(self) -> AsyncIterator[M]:
        cursor: str | None = None
        while True:
            page = await self.page(cursor)
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            cursor = page.next_cursor

    async def to_list(self) -> list[M]:
        """Every item at once (mind the size of the list)."""
        return [item async for item in self]


class AsyncMessagePager:
    """Every message of a room, paged by `seq`: newest first, or oldest first after `after_seq`."""

    def __init__(self, transport: AsyncTransport, room_id: str, params: dict[str, Any]) -> None:
        self._transport = transport
        self._path = f"/rooms/{room_id}/messages"
        self._params = params

    async def __aiter__(self) -> AsyncIterator[Message]:
        params = dict(self._params)
        forward = params.get("after_seq") is not None
        while True:
            body = await self._transport.json("GET", self._path, params=params)
            messages = [Message.model_validate(item) for item in body["data"]]
            for message in messages:
                yield message
            if not body.get("has_more") or not messages:
                return
            if forward:
                params["after_seq"] = messages[-1].seq
            else:
                params["before_seq"] = messages[-1].seq

    async def to_list(self) -> list[Message]:
        """Every message at once."""
        return [item async for item in self]
