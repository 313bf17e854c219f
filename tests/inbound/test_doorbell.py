"""The coalesced doorbell: what is stored while a publish is in flight goes out together,
bounded per message, and every event is published exactly once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from app.inbound.doorbell import BATCH, Bell, Pair


class HeldBroker:
    """A publish that blocks (in its worker thread) until released, recording each message."""

    def __init__(self) -> None:
        self.messages: list[list[Pair]] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def send(self, pairs: Sequence[Pair]) -> None:
        self.entered.set()
        assert self.release.wait(30), "the test never released the publish"
        self.messages.append(list(pairs))


async def test_doorbells_rung_during_a_publish_go_out_together_in_bounded_messages() -> None:
    broker = HeldBroker()
    bell = Bell(broker.send)
    bell.ring("c", "e0")
    await asyncio.to_thread(broker.entered.wait, 30)  # the first publish is in flight
    later = [("c", f"e{n}") for n in range(1, BATCH + 11)]
    for client_id, event_id in later:
        bell.ring(client_id, event_id)
    broker.release.set()
    await bell.drain()
    assert broker.messages == [[("c", "e0")], later[:BATCH], later[BATCH:]]


async def test_a_failed_publish_does_not_stop_the_next_ones() -> None:
    sent: list[list[Pair]] = []

    def flaky(pairs: Sequence[Pair]) -> None:
        if not sent and pairs[0][1] == "lost":
            sent.append([])
            raise ConnectionError("broker down")
        sent.append(list(pairs))

    bell = Bell(flaky)
    bell.ring("c", "lost")
    await bell.drain()
    bell.ring("c", "next")
    await bell.drain()
    assert sent == [[], [("c", "next")]]
