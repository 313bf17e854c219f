"""Pushing in-app notifications to live connections (API.md §6, DESIGN.md §4).

An in-app delivery is `delivered` when its inbox item is stored (the send's transaction);
this module only owes its `notification` event to the user's live connections, and records
that in `Delivery.pushed_at`. Everything is set-based: per chunk, ONE presence round trip
for all its users, ONE publish pipeline, ONE update.

Three ways a push goes out, at least once (a duplicate carries the same `inbox_id`):
- the fast path, right after the send's commit, in the API process, in the background;
- on connect, the user's owed pushes, oldest first (the user was offline);
- the sweep: owed pushes a few seconds old whose users are online (the API process died
  between its commit and its push, or a scheduled send fell due in a worker).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.core.clock import utcnow
from app.core.db import Database
from app.core.native_sql import autocommit
from app.notifications import push_repository as owed
from app.notifications.push_repository import OwedPush
from app.realtime.bus import Event, EventBus
from app.realtime.events import NOTIFICATION, user_target
from app.realtime.presence import Presence

log = logging.getLogger("chatapi.notifications")

# Deliveries per presence round trip / publish pipeline / update.
PUSH_CHUNK = 1000
# Fast-path push tasks running at once per process (each holds a DB connection for its
# update); each takes every push pending when it looks.
FAST_PATH_CONCURRENCY = 4
# Owed pushes read per round on connect.
CONNECT_BATCH = 500
# The sweep leaves the fast path this long before it steps in, and looks back this far
# (older owed pushes wait for their user's connect). Short: an offline user's rows are
# looked at by every sweep within it (one presence round trip per 1,000).
SWEEP_GRACE_SECONDS = 5.0
SWEEP_WINDOW_SECONDS = 60.0
# Owed pushes one sweep handles at most; the next sweep continues.
SWEEP_MAX = 20_000


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one push sweep did."""

    pushed: int
    given_up: int


def notification_event(push: OwedPush, content: dict[str, Any]) -> Event:
    """The `notification` event of one in-app delivery; `inbox_id` (= the delivery id)
    lets a client drop a duplicate."""
    data = {**content, "notification_id": push.notification_id, "inbox_id": push.delivery_id}
    return Event(push.client_id, user_target(push.user_id), NOTIFICATION, data)


class InAppPush:
    """The process's pusher: the database, the event bus and presence it pushes with."""

    def __init__(self, db: Database, bus: EventBus, presence: Presence) -> None:
        self._db = db
        self._bus = bus
        self._presence = presence
        self._running: set[asyncio.Task[int]] = set()
        # Fast-path pushes not yet taken by a task, and their notifications' contents.
        self._pending: list[tuple[str, str, Sequence[tuple[str, str]]]] = []
        self._contents: dict[str, dict[str, Any]] = {}
        self._starting = False
        # Off: sends leave their pushes to the sweep (tests simulate a crash after commit).
        self.fast_path = True

    def after_commit(
        self,
        client_id: str,
        notification_id: str,
        content: dict[str, Any],
        items: Sequence[tuple[str, str]],
    ) -> None:
        """Push a just-committed send's in-app deliveries ((delivery id, user id) each) to
        the online ones, in the background: the 202 does not wait for it.

        Sends committed meanwhile share the work: one task pushes everything pending at
        once (per chunk one presence round trip, one publish, one update), so a busy API
        pays per batch of sends, not per send."""
        if not items or not self.fast_path:
            return
        self._pending.append((client_id, notification_id, items))
        self._contents[notification_id] = content
        if len(self._running) < FAST_PATH_CONCURRENCY and not self._starting:
            self._starting = True
            task = asyncio.create_task(self._fast())
            self._running.add(task)  # a reference, or the task may be collected mid-flight
            task.add_done_callback(self._running.discard)

    async def _fast(self) -> int:
        total = 0
        try:
            while self._pending:
                # The first pass starts on the next loop turn: sends answering meanwhile
                # join this batch; later ones may start another task (up to the bound).
                self._starting = False
                batch, contents = self._pending, self._contents
                self._pending, self._contents = [], {}
                # Built here, not in after_commit: a campaign's 10,000 objects (and the
                # collection they may trigger) are no part of the 202's time.
                pushes = [
                    OwedPush(d, client_id, u, notification_id)
                    for client_id, notification_id, items in batch
                    for d, u in items
                ]
                try:
                    total += await self.push_online(pushes, contents)
                except Exception:
                    # Nothing is lost: the rows owe their push, and the sweep pushes them.
                    log.exception("in-app fast path failed", extra={"count": len(pushes)})
        finally:
            self._starting = False
        return total

    async def push_online(
        self, pushes: Sequence[OwedPush], contents: dict[str, dict[str, Any]]
    ) -> int:
        """Push those of `pushes` whose user is online (one client's or many), in chunks;
        how many were pushed."""
        total = 0
        for start in range(0, len(pushes), PUSH_CHUNK):
            chunk = pushes[start : start + PUSH_CHUNK]
            online = await self._online(chunk)
            total += await self._publish_and_mark(
                [p for p in chunk if (p.client_id, p.user_id) in online], contents
            )
        return total

    async def _online(self, chunk: Sequence[OwedPush]) -> set[tuple[str, str]]:
        by_client: dict[str, list[str]] = {}
        for p in chunk:
            by_client.setdefault(p.client_id, []).append(p.user_id)
        out: set[tuple[str, str]] = set()
        for client_id, users in by_client.items():
            found = await self._presence.online_users(client_id, list(dict.fromkeys(users)))
            out.update((client_id, u) for u in found)
        return out

    async def _publish_and_mark(
        self, pushes: Sequence[OwedPush], contents: dict[str, dict[str, Any]]
    ) -> int:
        if not pushes:
            return 0
        await self._bus.publish_many(
            [notification_event(p, contents.get(p.notification_id, {})) for p in pushes]
        )
        # One statement, atomic alone: on PostgreSQL no transaction and no pool checkout.
        async with self._db.hot_driver() as driver, self._db.session() as session:
            await autocommit(session, driver)
            await owed.mark_pushed(session, [p.delivery_id for p in pushes], now=utcnow())
            await session.commit()
        return len(pushes)

    async def on_connect(self, client_id: str, user_id: str) -> int:
        """Push the user's owed pushes (the user just connected), oldest first, in batches;
        how many. Marked pushed, so a second connect does not get them again."""
        # Most connects owe nothing: ask with one statement outside any transaction (on
        # SQLite no BEGIN/ROLLBACK hops, no ORM session), 1.3 ms of CPU per connect less.
        async with self._db.read_connection() as conn:
            if not await owed.owed_for_user(conn, client_id, user_id, limit=1):
                return 0
        total = 0
        after: str | None = None
        while True:
            async with self._db.read_session() as session:
                batch = await owed.owed_for_user(
                    session, client_id, user_id, limit=CONNECT_BATCH, after=after
                )
                contents = await owed.contents(session, {p.notification_id for p in batch})
            total += await self._publish_and_mark(batch, contents)
            if len(batch) < CONNECT_BATCH:
                return total
            after = batch[-1].delivery_id

    async def sweep(self, *, expiry_seconds: float) -> SweepResult:
        """The backstop: push owed pushes between SWEEP_GRACE_SECONDS and
        SWEEP_WINDOW_SECONDS old whose users are online (all clients, bounded); stop owing
        those older than `expiry_seconds` (the user never connected; the inbox has them)."""
        now = utcnow()
        pushed = 0
        after: tuple[datetime, str] | None = None
        for _ in range(SWEEP_MAX // PUSH_CHUNK):
            async with self._db.read_session() as session:
                batch = await owed.owed_between(
                    session,
                    since=now - timedelta(seconds=SWEEP_WINDOW_SECONDS),
                    until=now - timedelta(seconds=SWEEP_GRACE_SECONDS),
                    limit=PUSH_CHUNK,
                    after=after,
                )
                online = await self._online(batch)
                due = [p for p in batch if (p.client_id, p.user_id) in online]
                contents = await owed.contents(session, {p.notification_id for p in due})
            pushed += await self._publish_and_mark(due, contents)
            if len(batch) < PUSH_CHUNK:
                break
            last = batch[-1]
            assert last.delivered_at is not None
            after = (last.delivered_at, last.delivery_id)
        given_up = 0
        before = now - timedelta(seconds=expiry_seconds)
        while True:
            async with self._db.session() as session:
                n = await owed.give_up_before(session, before=before, now=now, limit=PUSH_CHUNK)
                await session.commit()
            given_up += n
            if n < PUSH_CHUNK:
                break
        return SweepResult(pushed=pushed, given_up=given_up)

    async def drain(self, timeout: float = 5.0) -> None:
        """Let fast-path pushes in flight finish (the process stops); the sweep has the rest."""
        running = list(self._running)
        if running:
            await asyncio.wait(running, timeout=timeout)
