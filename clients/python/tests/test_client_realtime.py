"""The realtime client delivers every message exactly once and in order while its
connection is cut (through a TCP proxy) as 200 messages are sent, on both transports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from conftest import Server
from proxy import CuttingProxy

from chatapi_client import AsyncChatAPI, ChatAPI


@pytest.fixture
def proxy(server: Server) -> Iterator[CuttingProxy]:
    running = CuttingProxy(int(urlsplit(server.base).port or 80))
    yield running
    running.close()


async def _user_room(server: Server, master_key: str) -> tuple[str, str]:
    async with AsyncChatAPI(server.base, master_key) as chat:
        user = await chat.users.upsert("listener")
        room = await chat.rooms.create(name="busy", member_ids=[user.id])
        await chat.messages.send(room.id, "before connecting")
        key = (await chat.auth.login(user_id=user.id)).api_key
    return key, room.id


async def _send_200_cutting(
    server: Server,
    master_key: str,
    room_id: str,
    proxy: CuttingProxy,
    connected: Callable[[], bool],
) -> None:
    async with AsyncChatAPI(server.base, master_key) as sender:
        for i in range(200):
            if i in (40, 90, 150):
                # Cut a live connection each time (not one still reconnecting from the last).
                deadline = asyncio.get_running_loop().time() + 20
                while not connected():
                    assert asyncio.get_running_loop().time() < deadline, "never reconnected"
                    await asyncio.sleep(0.02)
                proxy.cut(refuse_for=0.4)
            await sender.messages.send(room_id, f"n{i}")


@pytest.mark.parametrize("transport", ["websocket", "socketio"])
async def test_200_messages_arrive_once_and_in_order_across_cuts(
    server: Server, master_key: str, proxy: CuttingProxy, transport: str
) -> None:
    key, room_id = await _user_room(server, master_key)
    async with AsyncChatAPI(proxy.base, key) as chat:
        conn = await chat.connect(transport)
        seqs: list[int] = []

        async def collect() -> None:
            async for event in conn:
                if event.name == "message.created" and event.data["room_id"] == room_id:
                    seqs.append(event.data["seq"])
                    if len(seqs) >= 200:
                        return

        collector = asyncio.create_task(collect())
        await _send_200_cutting(server, master_key, room_id, proxy, lambda: conn.is_connected)
        await asyncio.wait_for(collector, 60)
        await conn.close()
    # Seq 1 was sent before connecting: the connection starts after it.
    assert seqs == list(range(2, 202))
    assert proxy.cuts == 3 and conn.reconnects >= 3


async def test_the_sync_client_recovers_too(
    server: Server, master_key: str, proxy: CuttingProxy
) -> None:
    key, room_id = await _user_room(server, master_key)
    with ChatAPI(proxy.base, key) as chat, chat.connect("websocket") as conn:
        await _send_200_cutting(server, master_key, room_id, proxy, lambda: conn.is_connected)
        seqs: list[int] = []
        while len(seqs) < 200:
            event = await asyncio.to_thread(conn.get, 30)
            assert event is not None, f"ended after {len(seqs)} messages"
            if event.name == "message.created":
                seqs.append(event.data["seq"])
        assert conn.reconnects >= 3
    assert seqs == list(range(2, 202))
