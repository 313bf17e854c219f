"""The hub in-process: the connect hook the offline inbox will use."""

from __future__ import annotations

import asyncio
from typing import Any

from app.auth.principal import KeyKind, Principal
from app.realtime.connection import Connection, Frame
from app.realtime.events import room_target
from app.realtime.hub import Hub
from tests.support.api import Api


class RecordingConnection(Connection):
    """A connection whose transport is a list: what a client would have received."""

    transport = "memory"

    def __init__(self, principal: Principal) -> None:
        super().__init__(principal)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.closed_with: tuple[int, str] | None = None

    async def _write(self, frame: Frame) -> None:
        self.received.append((frame.event, frame.data))

    async def _close_transport(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


async def test_connect_hook_runs_for_each_user_connection_after_subscriptions(api: Api) -> None:
    assert api.app is not None
    hub: Hub = api.app.state.hub
    tenant = await api.tenant()
    user = await api.user(tenant)
    room = await api.room(tenant, member_ids=[user["id"]])
    seen: list[tuple[str, set[str]]] = []

    async def inbox(conn: Connection) -> None:
        seen.append((conn.user_id or "", set(conn.targets)))

    hub.on_connect(inbox)
    principal = Principal(kind=KeyKind.user, key_id="k1", client_id=tenant.id, user_id=user["id"])
    conn = RecordingConnection(principal)
    await hub.register(conn)
    try:
        assert seen == [(user["id"], {f"user:{user['id']}", room_target(room["id"])})]
        await api.send(tenant, room["id"], "hello")
        for _ in range(100):
            if any(e == "message.created" for e, _ in conn.received):
                break
            await asyncio.sleep(0.01)
        events = [e for e, _ in conn.received]
        assert events[0] == "connected" and "message.created" in events
    finally:
        await hub.unregister(conn)
