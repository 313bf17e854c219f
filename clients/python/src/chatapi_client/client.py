"""`ChatAPI` and `AsyncChatAPI`: the REST resources plus `connect()` for realtime events."""

from __future__ import annotations

from collections.abc import Mapping

from chatapi_client._async.client import AsyncChatAPIBase
from chatapi_client._sync.client import ChatAPIBase
from chatapi_client.realtime.connection import Credential, RealtimeConnection
from chatapi_client.realtime.threaded import SyncRealtimeConnection


class AsyncChatAPI(AsyncChatAPIBase):
    """The asyncio client: `await chat.rooms.create(...)`, `async for room in chat.rooms.list()`."""

    async def connect(
        self,
        transport: str = "websocket",
        *,
        after_seq: Mapping[str, int] | None = None,
        connect_token: bool = False,
        user_id: str | None = None,
        backoff_max: float = 5.0,
    ) -> RealtimeConnection:
        """A started realtime connection. Rooms are followed from `after_seq` ({room: seq});
        without it, a user key's rooms from their current `last_seq`. With `connect_token`
        each (re)connect presents a fresh single-use token (for `user_id` with a master key)
        instead of the key itself."""
        positions = dict(after_seq) if after_seq is not None else await self._positions(user_id)
        conn = RealtimeConnection(
            self.base_url,
            self._credential(connect_token, user_id),
            transport=transport,
            after_seq=positions,
            backoff_max=backoff_max,
        )
        return await conn.start()

    def _credential(self, connect_token: bool, user_id: str | None) -> Credential:
        async def credential() -> dict[str, str]:
            if connect_token:
                return {"token": (await self.auth.connect_token(user_id)).token}
            return {"api_key": self.api_key or ""}

        return credential

    async def _positions(self, user_id: str | None) -> dict[str, int]:
        if user_id is not None or (await self.auth.me()).kind != "user":
            return {}
        return {room.id: room.last_seq or 0 async for room in self.rooms.list(limit=200)}


class ChatAPI(ChatAPIBase):
    """The synchronous client: `chat.rooms.create(...)`, `for room in chat.rooms.list()`."""

    def connect(
        self,
        transport: str = "websocket",
        *,
        after_seq: Mapping[str, int] | None = None,
        connect_token: bool = False,
        user_id: str | None = None,
        backoff_max: float = 5.0,
    ) -> SyncRealtimeConnection:
        """A started realtime connection running in a background thread; see
        `AsyncChatAPI.connect`. Iterate it with `for event in conn`."""
        positions = dict(after_seq) if after_seq is not None else self._positions(user_id)
        api_key = self.api_key or ""

        async def credential() -> dict[str, str]:
            if connect_token:
                # Minted on the connection's own thread (a blocking call would stall its loop).
                async with AsyncChatAPI(self.base_url, api_key) as minting:
                    return {"token": (await minting.auth.connect_token(user_id)).token}
            return {"api_key": api_key}

        def factory() -> RealtimeConnection:
            return RealtimeConnection(
                self.base_url,
                credential,
                transport=transport,
                after_seq=positions,
                backoff_max=backoff_max,
            )

        return SyncRealtimeConnection(factory)

    def _positions(self, user_id: str | None) -> dict[str, int]:
        if user_id is not None or self.auth.me().kind != "user":
            return {}
        return {room.id: room.last_seq or 0 for room in self.rooms.list(limit=200)}
