"""A refused or revoked key ends the realtime connection with RealtimeError (no endless
reconnecting); the per-room ordering holds, drops and releases messages by `seq`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import Server

from chatapi_client import AsyncChatAPI, RealtimeError
from chatapi_client.realtime.ordering import RoomOrder


@pytest.mark.parametrize("transport", ["websocket", "socketio"])
async def test_a_refused_key_fails_the_connect(server: Server, transport: str) -> None:
    async with AsyncChatAPI(server.base, "ck_nope_nope") as chat:
        with pytest.raises(RealtimeError, match="could not connect"):
            await asyncio.wait_for(chat.connect(transport, after_seq={}), 30)


@pytest.mark.parametrize("transport", ["websocket", "socketio"])
async def test_a_revoked_key_ends_the_iteration(
    server: Server, master_key: str, transport: str
) -> None:
    async with AsyncChatAPI(server.base, master_key) as chat:
        user = await chat.users.upsert("revoked")
        key = (await chat.auth.login(user_id=user.id)).api_key
        async with AsyncChatAPI(server.base, key) as as_user:
            conn = await as_user.connect(transport)
            await chat.auth.login(user_id=user.id)  # rotates: the first key dies

            async def drain() -> None:
                async for _ in conn:
                    pass

            with pytest.raises(RealtimeError):
                await asyncio.wait_for(drain(), 30)
            await conn.close()


def _msg(seq: int, room: str = "r") -> dict[str, Any]:
    return {"room_id": room, "seq": seq}


def test_room_order_drops_duplicates_and_holds_gaps_until_synced() -> None:
    out: list[int] = []
    order = RoomOrder(lambda m: out.append(m["seq"]), {"r": 3})
    assert order.live(_msg(3)) is False  # a duplicate
    assert order.live(_msg(4)) is False
    assert order.live(_msg(7)) is True  # a gap: sync
    order.syncing.add("r")
    assert order.live(_msg(8)) is False  # held while syncing
    order.synced("r", [_msg(5), _msg(6), _msg(7)])
    assert order.flush("r") is False
    assert out == [4, 5, 6, 7, 8]
    # A room without a position starts at its first message.
    assert order.live(_msg(10, "new")) is False and out[-1] == 10


def test_room_order_asks_again_when_a_gap_remains_after_sync() -> None:
    out: list[int] = []
    order = RoomOrder(lambda m: out.append(m["seq"]), {"r": 1})
    order.syncing.add("r")
    order.live(_msg(5))
    order.synced("r", [_msg(2)])
    assert order.flush("r") is True  # 3 and 4 are still missing; 5 stays held
    order.synced("r", [_msg(3), _msg(4)])
    assert order.flush("r") is False
    assert out == [2, 3, 4, 5]


async def test_a_connect_token_is_single_use_and_connect_mints_one_per_reconnect(
    server: Server, master_key: str
) -> None:
    from urllib.parse import urlsplit

    from proxy import CuttingProxy

    from chatapi_client import RealtimeConnection

    async with AsyncChatAPI(server.base, master_key) as chat:
        user = await chat.users.upsert("token-holder")
        room = await chat.rooms.create(name="tokens", member_ids=[user.id])
        token = (await chat.auth.connect_token(user.id)).token

        async def same_token() -> dict[str, str]:
            return {"token": token}

        first = await RealtimeConnection(server.base, same_token).start()
        await first.close()
        with pytest.raises(RealtimeError):
            await RealtimeConnection(server.base, same_token).start()

        proxy = CuttingProxy(int(urlsplit(server.base).port or 80))
        try:
            async with AsyncChatAPI(proxy.base, master_key) as via_proxy:
                conn = await via_proxy.connect(
                    "socketio", connect_token=True, user_id=user.id, after_seq={room.id: 0}
                )
                proxy.cut(refuse_for=0.2)
                await chat.messages.send(room.id, "after the cut")
                async for event in conn:
                    if event.name == "message.created":
                        assert event.data["seq"] == 1
                        break
                assert conn.reconnects >= 1
                await conn.close()
        finally:
            proxy.close()


@pytest.mark.parametrize("transport", ["websocket", "socketio"])
async def test_client_events_are_acknowledged_and_refusals_raise(
    server: Server, master_key: str, transport: str
) -> None:
    from chatapi_client.realtime.links import LinkRequestError

    async with AsyncChatAPI(server.base, master_key) as chat:
        user = await chat.users.upsert("speaker")
        room = await chat.rooms.create(name="talk", member_ids=[user.id])
        key = (await chat.auth.login(user_id=user.id)).api_key
    async with AsyncChatAPI(server.base, key) as as_user:
        conn = await as_user.connect(transport)
        try:
            ack = await conn.request("message.send", {"room_id": room.id, "content": "hey"})
            assert ack["seq"] == 1 and ack["content"] == "hey"
            with pytest.raises(LinkRequestError) as refused:
                await conn.request("sync", {"room_id": "01NOPE", "after_seq": 0})
            assert refused.value.problem["status"] == 404
            async for event in conn:
                if event.name == "message.created":
                    assert event.message is not None and event.message.seq == 1
                    break
        finally:
            await conn.close()
