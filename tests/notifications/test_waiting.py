"""The in-process wait for a channel's in-flight cap (app/channels/waiting.py): whom a
released slot wakes, in what order, and what a stopping worker hands over."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from app.channels.base import DeliveryTarget
from app.channels.capacity import InFlightCap
from app.channels.waiting import CapacityWaiters, Waiting


class _Capped:
    name = "hook"

    def __init__(self, limit: int) -> None:
        self.capacity = InFlightCap(limit)

    def capacity_key(self, target: DeliveryTarget) -> str | None:
        return "e1"


class _Wakes:
    """A wake that records whom it was asked for and answers as told."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.gone: set[str] = set()
        self.broken: set[str] = set()

    async def __call__(self, entry: Waiting) -> asyncio.Task[Any] | None:
        self.asked.append(entry.delivery_id)
        if entry.delivery_id in self.broken:
            raise RuntimeError("database away")
        if entry.delivery_id in self.gone:
            return None
        return asyncio.get_running_loop().create_task(asyncio.sleep(0))


def _entries(*ids: str) -> list[Waiting]:
    return [Waiting("c1", i, 0) for i in ids]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_each_released_slot_wakes_the_oldest_waiting_delivery() -> None:
    channel, wakes = _Capped(2), _Wakes()
    waiters = CapacityWaiters({"hook": channel}, wakes, threading.Event())
    assert channel.capacity.try_acquire("e1") and channel.capacity.try_acquire("e1")
    waiters.add("hook", "e1", _entries("a", "b", "c"))
    await _settle()
    assert wakes.asked == []  # no free slot: nobody is woken
    channel.capacity.release("e1")
    await _settle()
    assert wakes.asked == ["a"]
    channel.capacity.release("e1", notify=False)  # given back unused (a quota): no wake
    await _settle()
    assert wakes.asked == ["a"] and waiters.waiting() == 2


async def test_a_slot_freed_before_the_refusal_was_written_is_not_lost() -> None:
    channel, wakes = _Capped(1), _Wakes()
    waiters = CapacityWaiters({"hook": channel}, wakes, threading.Event())
    waiters.add("hook", "e1", _entries("a"))  # the cap is free again by the time it is added
    await _settle()
    assert wakes.asked == ["a"]


async def test_a_delivery_gone_meanwhile_passes_its_slot_to_the_next() -> None:
    channel, wakes = _Capped(1), _Wakes()
    wakes.gone = {"a", "b"}
    waiters = CapacityWaiters({"hook": channel}, wakes, threading.Event())
    waiters.add("hook", "e1", _entries("a", "b", "c"))
    await _settle()
    assert wakes.asked == ["a", "b", "c"] and waiters.waiting() == 0


async def test_a_failing_wake_keeps_its_place_and_does_not_drain_the_queue() -> None:
    channel, wakes = _Capped(1), _Wakes()
    wakes.broken = {"a"}
    waiters = CapacityWaiters({"hook": channel}, wakes, threading.Event())
    waiters.add("hook", "e1", _entries("a", "b"))
    await _settle()
    assert wakes.asked == ["a"] and waiters.waiting() == 2
    wakes.broken.clear()
    assert channel.capacity.try_acquire("e1")
    channel.capacity.release("e1")  # the next release tries it again, first
    await _settle()
    assert wakes.asked == ["a", "a"]


async def test_a_stopping_worker_wakes_nobody_and_hands_everything_over() -> None:
    channel, wakes = _Capped(1), _Wakes()
    stopping = threading.Event()
    waiters = CapacityWaiters({"hook": channel}, wakes, stopping)
    assert channel.capacity.try_acquire("e1")
    waiters.add("hook", "e1", _entries("a", "b"))
    stopping.set()
    waiters.released_while_stopping(_entries("x"))
    channel.capacity.release("e1")
    await _settle()
    assert wakes.asked == []
    left, released = await waiters.close()
    assert [e.delivery_id for e in left] == ["a", "b"]
    assert [e.delivery_id for e in released] == ["x"]
    assert channel.capacity.try_acquire("e1")
    channel.capacity.release("e1")  # unsubscribed: a closed registry hears nothing
    await _settle()
    assert wakes.asked == []
