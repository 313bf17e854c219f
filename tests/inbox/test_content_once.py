"""A send's content is stored once, however many inboxes show it (issue 20, point 5), on both
databases: one large send to many users grows the database by about one copy of the content,
and every user's inbox still answers it in full."""

from __future__ import annotations

import secrets

from sqlalchemy import text

from app.runtime import Runtime
from tests.support.api import Api, bearer

CONTENT_CHARS = 500_000
RECIPIENTS = 100


async def _used_bytes(api: Api) -> int:
    """Bytes the database's tables and indexes occupy (every table: where a copy would go
    does not matter). PostgreSQL: the database's files; SQLite: pages in use."""
    assert api.app is not None
    runtime: Runtime = api.app.state.runtime
    async with runtime.db.session() as session:
        if session.get_bind().dialect.name == "postgresql":
            found = await session.execute(text("SELECT pg_database_size(current_database())"))
            return int(found.scalar_one())
        page = int((await session.execute(text("PRAGMA page_size"))).scalar_one())
        pages = int((await session.execute(text("PRAGMA page_count"))).scalar_one())
        free = int((await session.execute(text("PRAGMA freelist_count"))).scalar_one())
        return (pages - free) * page


async def test_one_large_send_to_many_users_stores_its_content_once(api: Api) -> None:
    tenant = await api.tenant()
    users = [await api.user(tenant) for _ in range(RECIPIENTS)]
    # Random hex: PostgreSQL's TOAST cannot compress 100 copies into one.
    data = {"order": "A-1", "blob": secrets.token_hex(CONTENT_CHARS // 2)}
    body = {
        "channels": ["websocket"],
        "recipients": [{"user_id": u["id"]} for u in users],
        "websocket": {"event": "report.ready", "data": data},
    }
    before = await _used_bytes(api)
    r = await api.http.post("/api/v1/notifications/send", json=body, headers=tenant.auth)
    assert r.status_code == 202, r.text
    grown = await _used_bytes(api) - before
    # One copy plus 100 small delivery and item rows; a copy per recipient would be 100 times that.
    assert grown < 3 * CONTENT_CHARS, f"the database grew by {grown} bytes"

    notification_id = r.json()["id"]
    for user in users:
        r = await api.http.get(f"/api/v1/users/{user['id']}/notifications", headers=tenant.auth)
        assert r.status_code == 200, r.text
        [item] = r.json()["data"]
        assert item["notification_id"] == notification_id
        assert (item["event"], item["data"]) == ("report.ready", data)
    # And through the user's own key, the same answer.
    key = await api.login(tenant, users[0]["id"])
    r = await api.http.get("/api/v1/me/notifications", headers=bearer(key))
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["data"] == data
