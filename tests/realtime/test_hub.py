"""The hub and connections in-process: the connect hook, the connect race, the writer."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.auth.principal import KeyKind, Principal
from app.realtime.connection import SEND_QUEUE_SIZE, Connection, Frame
from app.realtime.events import room_target
from app.realtime.hub import Hub
from tests.support.api import Api
from tests.support.realtime import RecordingConnection, until


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
    conn.start()
    try:
        assert seen == [(user["id"], {f"user:{user['id']}", room_target(room["id"])})]
        await api.send(tenant, room["id"], "hello")
        await until(lambda: any(e == "message.created" for e, _ in conn.received), "the message")
        events = [e for e, _ in conn.received]
        assert events[0] == "connected" and "message.created" in events
    finally:
        await hub.unregister(conn)


async def test_a_room_joined_while_a_connection_registers_is_heard(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert api.app is not None
    hub: Hub = api.app.state.hub
    tenant = await api.tenant()
    user, other = await api.user(tenant), await api.user(tenant)
    room = await api.room(tenant, member_ids=[other["id"]])
    read_rooms = hub._rooms_of

    async def join_right_after_reading(conn: Connection) -> list[tuple[str, bool]]:
        # The join commits (and is published) after the connect read the user's rooms.
        found = await read_rooms(conn)
        r = await api.http.post(
            f"/api/v1/rooms/{room['id']}/members",
            json={"user_ids": [user["id"]]},
            headers=tenant.auth,
        )
        assert r.status_code in (200, 201), r.text
        return found

    monkeypatch.setattr(hub, "_rooms_of", join_right_after_reading)
    principal = Principal(kind=KeyKind.user, key_id="k1", client_id=tenant.id, user_id=user["id"])
    conn = RecordingConnection(principal)
    await hub.register(conn)
    conn.start()
    try:
        assert room_target(room["id"]) in conn.targets
        await api.send(tenant, room["id"], "after the join")
        await until(
            lambda: any(e == "message.created" for e, _ in conn.received), "the room's message"
        )
        assert conn.received[0][0] == "connected"
    finally:
        await hub.unregister(conn)
    assert hub.connection_count == 0 and hub.listener_count == 0


def _principal() -> Principal:
    return Principal(kind=KeyKind.user, key_id="k1", client_id="c1", user_id="u1")


class DeadPeer(RecordingConnection):
    """A transport whose peer vanished: every write fails."""

    async def _write(self, frame: Frame) -> None:
        raise ConnectionResetError("peer gone")


async def test_a_dead_writer_is_logged_and_closes_the_connection_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = DeadPeer(_principal())
    conn.start()
    with caplog.at_level(logging.WARNING, logger="chatapi.realtime"):
        conn.enqueue("first", {})
        conn.enqueue("second", {})
        await until(lambda: bool(conn.closed_with), "the connection to close")
    assert [code for code, _ in conn.closed_with] == [1011]
    assert len([r for r in caplog.records if "writer failed" in r.getMessage()]) == 1
    await conn.close(1000, "again")
    assert len(conn.closed_with) == 1


async def test_a_full_send_queue_schedules_exactly_one_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = RecordingConnection(_principal())  # no writer: nothing drains the queue
    tasks_before = len(asyncio.all_tasks())
    with caplog.at_level(logging.WARNING, logger="chatapi.realtime"):
        for i in range(SEND_QUEUE_SIZE + 20):
            conn.enqueue("flood", {"i": i})
    assert len(asyncio.all_tasks()) == tasks_before + 1, "one close task, not one per event"
    assert len([r for r in caplog.records if "slow consumer" in r.getMessage()]) == 1
    await until(lambda: bool(conn.closed_with), "the slow consumer to be closed")
    assert [code for code, _ in conn.closed_with] == [4408]


class PausedTransport(RecordingConnection):
    """A transport whose buffer is full for frames marked `wait` until `resume()`."""

    def __init__(self, principal: Principal) -> None:
        super().__init__(principal)
        self.gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def _write(self, frame: Frame) -> None:
        if frame.data.get("wait"):
            await self.gate
        await super()._write(frame)


async def _idle(conn: RecordingConnection) -> None:
    """Let a started connection's writer reach its wait for frames."""
    conn.greet("connected", {})
    conn.start()
    await until(lambda: conn.received == [("connected", {})], "the greeting")
    for _ in range(3):
        await asyncio.sleep(0)


async def test_an_idle_writer_gets_the_frame_written_in_the_same_turn_and_order_holds() -> None:
    conn = PausedTransport(_principal())
    await _idle(conn)
    conn.enqueue("e0", {})
    # No await since: written by the caller, not by a task switch to the writer.
    assert conn.received[-1] == ("e0", {})
    conn.enqueue("e1", {"wait": True})  # the transport makes this write wait
    conn.enqueue("e2", {})
    conn.enqueue("e3", {})
    assert [e for e, _ in conn.received] == ["connected", "e0"]
    conn.gate.set_result(None)
    await until(lambda: len(conn.received) == 5, "the rest")
    assert [e for e, _ in conn.received] == ["connected", "e0", "e1", "e2", "e3"]
    conn.enqueue("e4", {})  # idle again: in the same turn once more
    assert conn.received[-1] == ("e4", {})
    await conn.close(1000, "bye")


async def test_a_write_waiting_when_the_connection_closes_is_dropped() -> None:
    conn = PausedTransport(_principal())
    await _idle(conn)
    conn.enqueue("e1", {"wait": True})
    await conn.close(1000, "bye")
    conn.gate.set_result(None)
    await asyncio.sleep(0)
    assert [e for e, _ in conn.received] == ["connected"]
    assert conn.closed_with == [(1000, "bye")]


async def test_a_dead_peer_found_by_an_immediate_write_is_logged_and_closed_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = DeadPeer(_principal())
    conn.start()
    for _ in range(3):
        await asyncio.sleep(0)  # the writer waits for frames
    with caplog.at_level(logging.WARNING, logger="chatapi.realtime"):
        conn.enqueue("first", {})
        conn.enqueue("second", {})
        await until(lambda: bool(conn.closed_with), "the connection to close")
    assert [code for code, _ in conn.closed_with] == [1011]
    assert len([r for r in caplog.records if "writer failed" in r.getMessage()]) == 1
