"""Helpers for relay tests: the embedded relay served over TCP, endpoints and SMTP
configuration stored for a tenant through the repositories, sends and waits on the API."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from app.core.clock import utcnow
from app.core.ids import new_id
from app.email import repository as email_repo
from app.main import create_app
from app.runtime import Runtime
from app.webhooks import repository as webhook_repo
from app.webhooks.models import WebhookEndpoint
from tests.conftest import make_settings
from tests.support.api import Api, Tenant
from tests.support.inprocess import RELAY_CLIENT_TIMEOUT, serve_in_process

FINAL = {"delivered", "failed", "canceled", "skipped"}

RELAY_SETTINGS = {
    "DELIVERY_RETRY_SCHEDULE": [1, 1],
    "DELIVERY_SWEEP_INTERVAL_SECONDS": 0.2,
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": True,
    "SMTP_ALLOW_PRIVATE_TARGETS": True,  # the tests' aiosmtpd servers are on 127.0.0.1
    "WEBHOOK_TIMEOUT_SECONDS": 2,
    "SMTP_TIMEOUT_SECONDS": 5,
    "DELIVERY_LEASE_SECONDS": 10,
    "HEARTBEAT_INTERVAL_SECONDS": 3600,
}


@dataclass
class Relay:
    api: Api
    base: str
    app: FastAPI


async def running_relay(database_url: str) -> AsyncIterator[Relay]:
    """The embedded relay (API + in-process worker) served over TCP, with short timings."""
    app = create_app(make_settings(database_url, **RELAY_SETTINGS))
    async with (
        serve_in_process(app) as base,
        httpx.AsyncClient(base_url=base, timeout=RELAY_CLIENT_TIMEOUT) as http,
    ):
        yield Relay(Api(http, app=app), base, app)


def new_secret() -> str:
    """A Standard Webhooks signing secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def add_endpoint(
    app: FastAPI, tenant: Tenant, url: str, event_types: list[str] | None = None
) -> tuple[str, str]:
    """A webhook endpoint of `tenant`; (its id, its secret)."""
    runtime: Runtime = app.state.runtime
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=new_id(),
        client_id=tenant.id,
        url=url,
        event_types=event_types or [],
        secret_sealed=runtime.secret_box.seal(secret),
    )
    async with runtime.db.session() as session:
        await webhook_repo.add(session, tenant.id, endpoint)
        await session.commit()
    return endpoint.id, secret


async def set_email_config(app: FastAPI, tenant: Tenant, port: int) -> None:
    """`tenant` sends e-mail through an SMTP server on 127.0.0.1:`port` (no TLS)."""
    runtime: Runtime = app.state.runtime
    async with runtime.db.session() as session:
        await email_repo.upsert(
            session,
            tenant.id,
            host="127.0.0.1",
            port=port,
            username=None,
            password_sealed=None,
            security="none",
            from_email="relay@shop.example",
            from_name="Shop",
            fallback=None,
            now=utcnow(),
        )
        await session.commit()


async def send(api: Api, tenant: Tenant, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    """POST /notifications/send, expecting 202."""
    r = await api.http.post(
        "/api/v1/notifications/send", json=body, headers={**tenant.auth, **headers}
    )
    assert r.status_code == 202, r.text
    return dict(r.json())


async def notification(api: Api, tenant: Tenant, notification_id: str) -> dict[str, Any]:
    """GET /notifications/{id}."""
    r = await api.http.get(f"/api/v1/notifications/{notification_id}", headers=tenant.auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def wait_for_status(
    api: Api, tenant: Tenant, notification_id: str, statuses: set[str], timeout: float = 20
) -> dict[str, Any]:
    """Poll the notification until its status is one of `statuses`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = await notification(api, tenant, notification_id)
        if body["status"] in statuses:
            return body
        assert asyncio.get_running_loop().time() < deadline, f"stuck at {body['status']}: {body}"
        await asyncio.sleep(0.05)


async def attempts(api: Api, tenant: Tenant, notification_id: str) -> list[dict[str, Any]]:
    """Every attempt of the notification."""
    r = await api.http.get(
        f"/api/v1/notifications/{notification_id}/attempts?limit=200", headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    return list(r.json()["data"])
