"""A write session does nothing after its commit, and pure reads use read sessions.

On SQLite every statement of a write session runs in a `BEGIN IMMEDIATE` transaction, so a
query after the commit takes the database's single write lock again just to read.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from app.core.db import READ_ONLY, Database
from app.rooms.sweep import sweep_inactive_rooms
from tests.support.api import Api, bearer


def _read_only(session: Session) -> bool:
    return bool(session.get_bind().get_execution_options().get(READ_ONLY, False))


@dataclass
class StatementLog:
    """Statements of ORM sessions: which ran on write sessions after their commit, and
    every statement with whether its session was read-only."""

    committed: weakref.WeakSet[Session] = field(default_factory=weakref.WeakSet)
    commits: int = 0
    after_commit: list[str] = field(default_factory=list)
    all: list[tuple[bool, str]] = field(default_factory=list)

    def on_commit(self, session: Session) -> None:
        if not _read_only(session):
            self.commits += 1
            self.committed.add(session)

    def on_execute(self, state: ORMExecuteState) -> None:
        sql = str(state.statement).replace("\n", " ")
        self.all.append((_read_only(state.session), sql))
        if state.session in self.committed:
            self.after_commit.append(sql[:160])


@pytest.fixture
def statements() -> Iterator[StatementLog]:
    """Record the statements of every session while the test runs."""
    log = StatementLog()
    event.listen(Session, "after_commit", log.on_commit)
    event.listen(Session, "do_orm_execute", log.on_execute)
    try:
        yield log
    finally:
        event.remove(Session, "do_orm_execute", log.on_execute)
        event.remove(Session, "after_commit", log.on_commit)


async def test_write_requests_run_no_query_after_their_commit(
    api: Api, statements: StatementLog
) -> None:
    tenant = await api.tenant()
    a = await api.user(tenant, external_id="a")
    b = await api.user(tenant)
    c = await api.user(tenant)
    http, auth = api.http, tenant.auth
    ok = {200, 201, 204}

    async def check(method: str, path: str, headers: dict[str, str] = auth, **kw: object) -> dict:
        r = await http.request(method, f"/api/v1{path}", headers=headers, **kw)  # type: ignore[arg-type]
        assert r.status_code in ok, (method, path, r.text)
        return r.json() if r.content else {}

    await check("POST", "/users", json={"external_id": "a", "display_name": "again"})
    await check("PATCH", f"/users/{a['id']}", json={"display_name": "Ada"})
    key_a = (await check("POST", "/auth/login", json={"user_id": a["id"]}))["api_key"]
    room = await check("POST", "/rooms", json={"member_ids": [a["id"], b["id"]]})
    rid = room["id"]
    await check("POST", "/rooms", json={"type": "direct", "member_ids": [a["id"], b["id"]]})
    await check("POST", "/rooms", json={"type": "direct", "member_ids": [a["id"], b["id"]]})
    await check("PATCH", f"/rooms/{rid}", json={"name": "renamed"})
    await check("POST", f"/rooms/{rid}/members", json={"user_ids": [c["id"]]})
    await check("DELETE", f"/rooms/{rid}/members/{c['id']}")
    message = await check("POST", f"/rooms/{rid}/messages", json={"content": "hi"})
    await check("POST", f"/rooms/{rid}/messages", headers=bearer(key_a), json={"content": "yo"})
    await check("PATCH", f"/rooms/{rid}/messages/{message['id']}", json={"content": "hey"})
    await check("DELETE", f"/rooms/{rid}/messages/{message['id']}")
    await check("POST", f"/rooms/{rid}/read", headers=bearer(key_a), json={"seq": 1})
    # Not moving the marker (already past 1) answers where it stands.
    assert (await check("POST", f"/rooms/{rid}/read", headers=bearer(key_a), json={"seq": 1}))[
        "seq"
    ] == 2
    await check("PATCH", "/clients/me", json={"name": "renamed"})
    await check("POST", "/clients/me/rotate-key", json={"grace_seconds": 60})
    await check("POST", "/auth/logout", headers=bearer(key_a))
    await check("DELETE", f"/rooms/{rid}")
    await check("DELETE", f"/users/{c['id']}")
    assert statements.commits > 10  # the listener saw the write sessions
    assert statements.after_commit == []


async def test_sweep_reads_client_settings_through_a_read_session(
    api: Api, statements: StatementLog
) -> None:
    tenant = await api.tenant()
    await api.http.patch(
        "/api/v1/clients/me", json={"room_inactivity_seconds": {"support": 60}}, headers=tenant.auth
    )
    assert api.app is not None
    db: Database = api.app.state.db
    statements.all.clear()
    await sweep_inactive_rooms(db, api.app.state.bus, batch_size=100)
    reads_of_clients = [ro for ro, sql in statements.all if "FROM clients" in sql]
    assert reads_of_clients and all(reads_of_clients)
