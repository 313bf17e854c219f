"""One send to 10,000 recipients: the 202 comes in bounded time and every one of the 10,000
e-mails reaches a real SMTP server (aiosmtpd) — on PostgreSQL with a real `chatapi worker`
process, and in the embedded default (SQLite, in-process worker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from app.core.migrations import upgrade
from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.faults.stack import (
    FAULT_SETTINGS,
    Stack,
    api_client,
    bulk_users,
    set_smtp,
    wait_all_delivered,
)
from tests.support.api import Api
from tests.support.processes import free_port

RECIPIENTS = 10_000
ACCEPT_WITHIN_SECONDS = 10
DELIVER_WITHIN_SECONDS = 120


class Counting:
    """Accepts every message and keeps only its recipients (cheap at 10,000 messages)."""

    def __init__(self) -> None:
        self.rcpt: list[str] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.rcpt.extend(envelope.rcpt_tos)
        return "250 2.0.0 queued"


def _body() -> dict[str, object]:
    return {
        "channels": ["email"],
        "recipients": [{"external_id": f"bulk-{i}"} for i in range(RECIPIENTS)],
        "email": {"subject": "Sale", "text": "20% off today"},
    }


@pytest.mark.slow
async def test_ten_thousand_email_recipients_are_accepted_quickly_and_all_delivered(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    stack.serve()
    stack.beat()
    stack.worker()
    handler = Counting()
    port = free_port()
    smtp = Controller(handler, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        async with api_client(stack.base) as api:
            tenant = await api.tenant()
            await set_smtp(api, tenant, port)
            await bulk_users(stack.db, tenant.id, RECIPIENTS)
            body = _body()
            started = time.monotonic()
            r = await api.http.post(
                "/api/v1/notifications/send",
                json=body,
                headers=tenant.auth,
                timeout=httpx.Timeout(60),
            )
            accepted = time.monotonic() - started
            assert r.status_code == 202, r.text[:500]
            assert len(r.json()["deliveries"]) == RECIPIENTS
            finished = await stack.wait_all_delivered(
                tenant.id,
                RECIPIENTS,
                timeout=DELIVER_WITHIN_SECONDS,
                progress=lambda: f"SMTP got {len(handler.rcpt)}",
            )
    finally:
        smtp.stop()
    print(
        f"\n10k e-mail fan-out (PostgreSQL, worker process): 202 after {accepted:.2f}s, "
        f"last delivery {finished - started:.1f}s after the send"
    )
    assert accepted < ACCEPT_WITHIN_SECONDS
    assert sorted(handler.rcpt) == sorted(f"user{i}@fanout.example" for i in range(RECIPIENTS))


@pytest.mark.slow
async def test_ten_thousand_email_recipients_are_all_delivered_in_the_embedded_default(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fanout.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = {k: v for k, v in FAULT_SETTINGS.items() if k != "LOG_LEVEL"}
    app = create_app(make_settings(url, **settings))
    handler = Counting()
    port = free_port()
    smtp = Controller(handler, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        async for http in app_client(app):
            api = Api(http, app=app)
            db = app.state.runtime.db
            tenant = await api.tenant()
            await set_smtp(api, tenant, port)
            await bulk_users(db, tenant.id, RECIPIENTS)
            started = time.monotonic()
            r = await http.post(
                "/api/v1/notifications/send",
                json=_body(),
                headers=tenant.auth,
                timeout=httpx.Timeout(60),
            )
            accepted = time.monotonic() - started
            assert r.status_code == 202, r.text[:500]
            finished = await wait_all_delivered(
                db,
                tenant.id,
                RECIPIENTS,
                timeout=DELIVER_WITHIN_SECONDS,
                progress=lambda: f"SMTP got {len(handler.rcpt)}",
            )
    finally:
        smtp.stop()
    print(
        f"\n10k e-mail fan-out (SQLite, embedded): 202 after {accepted:.2f}s, "
        f"last delivery {finished - started:.1f}s after the send"
    )
    assert accepted < ACCEPT_WITHIN_SECONDS
    assert sorted(handler.rcpt) == sorted(f"user{i}@fanout.example" for i in range(RECIPIENTS))
