"""Inbound webhook fixtures: hooks made through the API and counting what was stored."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlmodel import col

from app.core.db import Database
from app.inbound.models import InboundEvent
from tests.support.api import Api, Tenant
from tests.support.db import client_id, db, other_client_id

__all__ = ["client_id", "count_events", "db", "events", "make_hook", "other_client_id", "post"]


async def make_hook(api: Api, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    """A new inbound hook of `tenant` (default: a `room` hook on standard-webhooks)."""
    payload = {"name": f"hook-{len(fields)}", "action": "room", **fields}
    r = await api.http.post("/api/v1/inbound-webhooks", json=payload, headers=tenant.auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def post(api: Api, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """The sender's POST: no API key, just its own headers."""
    return await api.http.post(url, content=body, headers=headers)


async def count_events(api: Api, hook_id: str | None = None) -> int:
    """Rows in inbound_events (of one hook)."""
    assert api.app is not None
    db: Database = api.app.state.db
    query = select(func.count()).select_from(InboundEvent)
    if hook_id is not None:
        query = query.where(col(InboundEvent.hook_id) == hook_id)
    async with db.read_session() as session:
        return int((await session.execute(query)).scalar_one())


async def events(api: Api, tenant: Tenant, hook_id: str) -> list[dict[str, Any]]:
    """The hook's events as the API lists them."""
    r = await api.http.get(f"/api/v1/inbound-webhooks/{hook_id}/events", headers=tenant.auth)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])
