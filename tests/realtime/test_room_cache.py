"""The per-process cache of users' rooms: what an invalidation drops, and a read that
raced one is not stored."""

from __future__ import annotations

from app.core.broadcast import MemoryBroadcast
from app.realtime.room_cache import RoomsOfUserCache, rooms_changed


async def _cache() -> tuple[MemoryBroadcast, RoomsOfUserCache]:
    broadcast = MemoryBroadcast()
    await broadcast.start()
    cache = RoomsOfUserCache(broadcast)
    await cache.start()
    return broadcast, cache


async def test_a_change_drops_its_users_and_every_entry_holding_its_rooms() -> None:
    broadcast, cache = await _cache()
    g = cache.generation
    cache.put("c", "u1", [("r1", True)], g)
    cache.put("c", "u2", [("r1", True), ("r2", False)], g)
    cache.put("c", "u3", [("r2", False)], g)
    cache.put("other", "u1", [("r1", True)], g)
    # u4 joins r1: r1 grew, so whether it hears presence may change for u1 and u2.
    await rooms_changed(broadcast, "c", user_ids=["u4"], room_ids=["r1"])
    assert cache.get("c", "u1") is None and cache.get("c", "u2") is None
    assert cache.get("c", "u3") == [("r2", False)]
    assert cache.get("other", "u1") == [("r1", True)]  # another tenant's r1
    await rooms_changed(broadcast, "c", everyone=True)
    assert cache.get("c", "u3") is None and len(cache) == 1


async def test_a_read_that_raced_an_invalidation_is_not_stored() -> None:
    broadcast, cache = await _cache()
    before = cache.generation  # the read starts …
    await rooms_changed(broadcast, "c", user_ids=["u1"], room_ids=["r9"])  # … a join lands …
    cache.put("c", "u1", [], before)  # … and the read, older than the join, ends
    assert cache.get("c", "u1") is None
    cache.put("c", "u1", [("r9", True)], cache.generation)
    assert cache.get("c", "u1") == [("r9", True)]


async def test_a_cache_that_hears_no_invalidation_keeps_nothing() -> None:
    _, cache = await _cache()
    cache.put("c", "u1", [("r1", True)], cache.generation)
    await cache.stop()
    assert cache.get("c", "u1") is None
    cache.put("c", "u1", [("r1", True)], cache.generation)
    assert cache.get("c", "u1") is None
