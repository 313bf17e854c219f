"""`for` / `async for` walk every page of a cursor-paged list."""

from __future__ import annotations

import asyncio

from conftest import Server

from chatapi_client import AsyncChatAPI, ChatAPI


async def test_a_1050_item_list_iterates_with_for_and_async_for(
    server: Server, master_key: str
) -> None:
    async with AsyncChatAPI(server.base, master_key) as chat:
        gate = asyncio.Semaphore(16)

        async def make(i: int) -> str:
            async with gate:
                return (await chat.users.upsert(f"user-{i:04d}", display_name=f"U{i}")).id

        made = set(await asyncio.gather(*(make(i) for i in range(1050))))
        seen_async = [user.id async for user in chat.users.list(limit=100)]
        first_page = await chat.users.list(limit=100).page()

    with ChatAPI(server.base, master_key) as sync_chat:
        seen_sync = [user.id for user in sync_chat.users.list(limit=100)]

    assert len(made) == 1050
    assert first_page.has_more and len(first_page.data) == 100
    # Every user exactly once, over eleven pages, in the server's order.
    assert len(seen_async) == 1050 and set(seen_async) == made
    assert seen_sync == seen_async


async def test_messages_iterate_by_seq_both_ways(server: Server, master_key: str) -> None:
    async with AsyncChatAPI(server.base, master_key) as chat:
        room = await chat.rooms.create(name="paged")
        for i in range(7):
            await chat.messages.send(room.id, f"m{i}")
        newest_first = [m.seq async for m in chat.messages.list(room.id, limit=3)]
        catch_up = [m.seq async for m in chat.messages.list(room.id, after_seq=2, limit=2)]
    assert newest_first == [7, 6, 5, 4, 3, 2, 1]
    assert catch_up == [3, 4, 5, 6, 7]
