"""A thin test client: tenants, users and keys made through the public API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from app.realtime.bus import Event


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for `key`."""
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Tenant:
    """A client made for one test, with its master key."""

    id: str
    slug: str
    master_key: str

    @property
    def auth(self) -> dict[str, str]:
        """Headers authenticating as this tenant's master key."""
        return bearer(self.master_key)


class Api:
    """Wraps an httpx client pointed at the app (in-process or a real server)."""

    def __init__(
        self, http: httpx.AsyncClient, admin_key: str | None = None, app: FastAPI | None = None
    ) -> None:
        from tests.conftest import ADMIN_KEY

        self.http = http
        self.admin_key = admin_key or ADMIN_KEY
        self.app = app

    async def capture(self, tenant: Tenant, target: str) -> list[Event]:
        """Every bus event on `target` of `tenant` from now on (in-process app only)."""
        assert self.app is not None
        seen: list[Event] = []

        async def record(event: Event) -> None:
            seen.append(event)

        await self.app.state.bus.listen(tenant.id, target, record)
        return seen

    async def room(self, tenant: Tenant, key: str | None = None, **fields: Any) -> dict[str, Any]:
        """A new room made with `key` (default: the master key)."""
        headers = bearer(key) if key else tenant.auth
        r = await self.http.post("/api/v1/rooms", json=fields, headers=headers)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    async def send(
        self, tenant: Tenant, room_id: str, content: str, key: str | None = None, **fields: Any
    ) -> httpx.Response:
        """POST a message."""
        headers = bearer(key) if key else tenant.auth
        return await self.http.post(
            f"/api/v1/rooms/{room_id}/messages",
            json={"content": content, **fields},
            headers=headers,
        )

    async def tenant(self, name: str | None = None) -> Tenant:
        """A new client."""
        name = name or f"tenant {secrets.token_hex(4)}"
        r = await self.http.post(
            "/api/v1/clients", json={"name": name}, headers=bearer(self.admin_key)
        )
        assert r.status_code == 201, r.text
        body = r.json()
        return Tenant(body["id"], body["slug"], body["master_key"])

    async def user(
        self, tenant: Tenant, external_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A new user of `tenant`."""
        payload = {"external_id": external_id or f"ext-{secrets.token_hex(4)}", **fields}
        r = await self.http.post("/api/v1/users", json=payload, headers=tenant.auth)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    async def login(self, tenant: Tenant, user_id: str, **fields: Any) -> str:
        """A fresh user key (revoking the user's earlier ones)."""
        r = await self.http.post(
            "/api/v1/auth/login", json={"user_id": user_id, **fields}, headers=tenant.auth
        )
        assert r.status_code == 200, r.text
        return str(r.json()["api_key"])

    async def status_with(self, key: str, path: str = "/api/v1/clients/me") -> int:
        """The status of a GET on `path` with `key`."""
        return (await self.http.get(path, headers=bearer(key))).status_code
