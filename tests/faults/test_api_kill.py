"""An API process killed (`kill -9`) under its socket clients: they reconnect to the other
process and `sync` recovers every message they missed.

Two `chatapi serve` processes, A and B, on one PostgreSQL and one Redis (scaled mode). A
Socket.IO client and a plain WebSocket client, both members of one room, are connected to
A. A is killed; while the clients are away, messages are posted to the room through B.
The clients then do what a client given a list of endpoints does: on losing its
connection it connects to the next endpoint (B), and asks `sync {room_id, after_seq}` for
what came after the last seq it saw (API.md §5). More messages are posted through B while
they reconnect, so some arrive live and some only by sync. What each client saw live and
by sync together must be every posted seq, without a gap.

The clients wait for the test's word before reconnecting (a client's back-off, held open)
so that the messages posted "while away" are certainly missed live.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.stack import Stack, api_client, sigkill, until
from tests.support.api import Api, Tenant
from tests.support.realtime import SioClient, WsClient, wait_for

BEFORE = 5  # messages posted through A, received live there
WHILE_AWAY = 20  # posted through B while the clients are disconnected
DURING_RECONNECT = 20  # posted through B while they reconnect and sync
SYNC_PAGE = 50  # below WHILE_AWAY + DURING_RECONNECT: sync pages through has_more
REPLY_WITHIN_SECONDS = 15.0  # generous: the machine may be busy


class FailoverClient:
    """A socket client with a list of endpoints. On losing its connection it waits for
    `may_reconnect` (its back-off, held by the test), connects to the next endpoint and
    sends `sync` with the last seq it saw in the room; it pages until `has_more` is false.

    `live` holds the seqs that came as `message.created` events, `synced` those that came in
    sync replies.
    """

    def __init__(self, transport: str, endpoints: list[str], key: str, room_id: str) -> None:
        self.transport = transport
        self.endpoints = endpoints
        self.key = key
        self.room_id = room_id
        self.sessions: list[WsClient | SioClient] = []
        self.synced: set[int] = set()
        self.disconnected = asyncio.Event()
        self.may_reconnect = asyncio.Event()
        self.resynced = asyncio.Event()
        self.slowest_connect = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def live(self) -> set[int]:
        return {
            int(data["seq"])
            for session in self.sessions
            for event, data in session.events
            if event == "message.created" and data["room_id"] == self.room_id
        }

    @property
    def last_seq(self) -> int:
        return max(self.live | self.synced, default=0)

    async def start(self) -> None:
        """Connect to the first endpoint, then keep the connection up in the background."""
        await self._connect(self.endpoints[0])
        self._task = asyncio.create_task(self._keep_connected())

    async def _connect(self, base: str) -> None:
        # Subscribed once connect returns (API.md §5): no need to wait for `connected`.
        started = time.monotonic()
        if self.transport == "websocket":
            self.sessions.append(await WsClient.open(base, self.key, ready=False))
        else:
            self.sessions.append(await SioClient.open(base, self.key, ready=False))
        self.slowest_connect = max(self.slowest_connect, time.monotonic() - started)

    async def _gone(self, session: WsClient | SioClient) -> None:
        if isinstance(session, WsClient):
            await session.conn.wait_closed()
            return
        lost = asyncio.Event()
        session.sio.on("disconnect", lambda *_: lost.set())
        if session.sio.connected:
            await lost.wait()

    async def _keep_connected(self) -> None:
        for base in self.endpoints[1:]:
            await self._gone(self.sessions[-1])
            self.disconnected.set()
            await self.may_reconnect.wait()
            # Taken before connecting: the new connection's live events may come first.
            after = self.last_seq
            await self._connect(base)
            await self._sync(after)
            self.resynced.set()

    async def _sync(self, after: int) -> None:
        session = self.sessions[-1]
        while True:
            data = {"room_id": self.room_id, "after_seq": after, "limit": SYNC_PAGE}
            if isinstance(session, WsClient):
                frame = await session.request("sync", data, timeout=REPLY_WITHIN_SECONDS)
                assert frame["event"] == "ack", frame
                reply: dict[str, Any] = frame["data"]
            else:
                reply = await session.sio.call("sync", data, timeout=REPLY_WITHIN_SECONDS)
                assert "error" not in reply, reply
            seqs = [int(m["seq"]) for m in reply["messages"]]
            assert seqs == sorted(seqs), "sync answers in order"
            self.synced.update(seqs)
            if not reply["has_more"]:
                return
            after = seqs[-1]

    async def close(self) -> None:
        """Stop reconnecting, close the current connection, then raise what went wrong in
        the background, if anything did."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.sessions[-1].close()
        if task is not None and not task.cancelled():
            task.result()


async def post(api: Api, tenant: Tenant, room_id: str, content: str) -> int:
    """POST a message to the room through `api`'s process; its seq."""
    r = await api.send(tenant, room_id, content)
    assert r.status_code == 201, r.text
    return int(r.json()["seq"])


@pytest.mark.slow
async def test_clients_of_a_killed_api_process_reconnect_to_the_other_and_sync_every_message(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    a, b = stack.serve_many("api-a", "api-b")
    async with api_client(a.base) as via_a, api_client(b.base) as via_b:
        tenant = await via_a.tenant()
        users = [await via_a.user(tenant) for _ in range(2)]
        room_id = (await via_a.room(tenant, member_ids=[u["id"] for u in users]))["id"]
        clients = [
            FailoverClient(transport, [a.base, b.base], await via_a.login(tenant, u["id"]), room_id)
            for transport, u in zip(("socketio", "websocket"), users, strict=True)
        ]
        posted: list[int] = []
        try:
            for client in clients:
                await client.start()
            for i in range(BEFORE):
                posted.append(await post(via_a, tenant, room_id, f"before {i}"))
            await until(
                lambda: all(posted[-1] in c.live for c in clients), 10, "live messages on A"
            )

            sigkill(a)
            for client in clients:
                await asyncio.wait_for(client.disconnected.wait(), 10)
            away = [await post(via_b, tenant, room_id, f"away {i}") for i in range(WHILE_AWAY)]
            posted += away

            for client in clients:
                client.may_reconnect.set()
            for i in range(DURING_RECONNECT):
                posted.append(await post(via_b, tenant, room_id, f"reconnecting {i}"))
            for client in clients:
                await asyncio.wait_for(client.resynced.wait(), 30)
            # A last message, live on B, says every earlier one had its chance to arrive.
            posted.append(last := await post(via_b, tenant, room_id, "last"))
            for client in clients:
                await wait_for(
                    client.sessions[-1].events,
                    lambda e: e[0] == "message.created" and e[1]["seq"] == last,
                    timeout=10,
                )
        except Exception as exc:  # what the servers said is the best clue
            raise AssertionError(f"{exc!r}\n{stack.logs()}") from exc
        finally:
            for client in clients:
                await client.close()

    assert posted == list(range(posted[0], posted[-1] + 1))  # the room's seqs, one by one
    for client in clients:
        seen = client.live | client.synced
        missing = sorted(set(posted) - seen)
        assert not missing, f"{client.transport} client missed seqs {missing}"
        assert seen == set(posted), f"{client.transport} client saw seqs never posted"
        assert set(away) <= client.synced, "what was posted while away came by sync"
        assert len(client.sessions) == 2  # one connection to A, then one to B
    print(
        f"\nAPI process killed: {len(posted)} messages; "
        + "; ".join(
            f"{c.transport} client: {len(c.live)} live, {len(c.synced)} by sync "
            f"({len(c.live & c.synced)} both), slowest connect {c.slowest_connect:.2f}s"
            for c in clients
        )
    )
