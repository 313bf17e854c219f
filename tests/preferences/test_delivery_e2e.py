"""Preferences and e-mail failover end to end in the embedded relay (SQLite, in-process
worker): real aiosmtpd servers, the public API only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from sqlalchemy import text

from tests.channels.test_email import Recorder, SmtpHost
from tests.notifications.relay import attempts, notification, send, wait_for_status
from tests.notifications.test_delivery_e2e import Relay, running_relay
from tests.support.api import bearer
from tests.support.processes import free_port
from tests.support.realtime import until

PRIMARY_PASSWORD = "primary-s3cret-Jq4"
FALLBACK_PASSWORD = "fallback-s3cret-Wz8"


@pytest.fixture
async def relay(own_sqlite_url: str) -> AsyncIterator[Relay]:
    async for r in running_relay(own_sqlite_url):
        yield r


@pytest.fixture
def smtp() -> Iterator[SmtpHost]:
    host = SmtpHost(Recorder())
    yield host
    host.stop()


class AuthSmtpHost:
    """An aiosmtpd server that accepts mail only after AUTH with `password` (no TLS)."""

    def __init__(self, username: str, password: str) -> None:
        self.recorder = Recorder()
        self.port = free_port()
        self.logins: list[str] = []

        def authenticate(
            server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (
                data.login.decode(),
                data.password.decode(),
            ) == (username, password)
            if ok:
                self.logins.append(username)
            return AuthResult(success=ok)

        self.controller = Controller(
            self.recorder,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticate,
            auth_required=True,
            auth_require_tls=False,
        )
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def _mail(**fields: Any) -> dict[str, Any]:
    return {
        "channels": ["email"],
        "email": {"subject": "Shipped", "text": "On its way"},
        **fields,
    }


async def _email_config(relay: Relay, body: dict[str, Any], master: str) -> None:
    r = await relay.api.http.put("/api/v1/email-config", json=body, headers=bearer(master))
    assert r.status_code == 200, r.text


async def test_a_user_who_turned_email_off_receives_no_mail_but_a_critical_one(
    relay: Relay, smtp: SmtpHost
) -> None:
    api = relay.api
    tenant = await api.tenant()
    user = await api.user(tenant, email="ada@example.com")
    key = await api.login(tenant, user["id"])
    await _email_config(
        relay,
        {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "from_email": "relay@shop.example",
        },
        tenant.master_key,
    )
    r = await api.http.put(
        "/api/v1/me/preferences", json={"channels": {"email": False}}, headers=bearer(key)
    )
    assert r.status_code == 200, r.text
    recipients = [{"user_id": user["id"]}]
    off = await send(api, tenant, _mail(recipients=recipients))
    [skipped] = off["deliveries"]
    assert (skipped["status"], skipped["skip_reason"]) == ("skipped", "preference: email off")
    # The sentinel: a critical mail sent after it arrives, and it is the only one.
    critical = await send(
        api,
        tenant,
        _mail(recipients=recipients, critical=True, email={"subject": "Sentinel", "text": "x"}),
    )
    done = await wait_for_status(api, tenant, critical["id"], {"delivered", "failed"})
    assert done["status"] == "delivered"
    await until(lambda: len(smtp.recorder.messages) >= 1, "the critical mail")
    assert [m["Subject"] for m in smtp.recorder.messages] == ["Sentinel"]
    assert await attempts(api, tenant, off["id"]) == []
    assert (await notification(api, tenant, off["id"]))["status"] == "delivered"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_mail_goes_through_the_fallback_when_the_primary_is_stopped(
    relay: Relay,
) -> None:
    api = relay.api
    tenant = await api.tenant()
    primary = SmtpHost(Recorder())
    primary_port = primary.port
    primary.stop()  # a real server that was there and is gone: connection refused
    fallback = AuthSmtpHost("backup", FALLBACK_PASSWORD)
    try:
        await _email_config(
            relay,
            {
                "host": "127.0.0.1",
                "port": primary_port,
                "username": "relay",
                "password": PRIMARY_PASSWORD,
                "security": "none",
                "from_email": "relay@shop.example",
                "fallback": {
                    "host": "127.0.0.1",
                    "port": fallback.port,
                    "username": "backup",
                    "password": FALLBACK_PASSWORD,
                    "security": "none",
                    "from_email": "relay@shop.example",
                },
            },
            tenant.master_key,
        )
        sent = await send(api, tenant, _mail(recipients=[{"email": "ops@example.com"}]))
        done = await wait_for_status(api, tenant, sent["id"], {"delivered", "failed"})
        assert done["status"] == "delivered", done
        [mail] = fallback.recorder.messages
        assert mail["To"] == "ops@example.com" and fallback.logins == ["backup"]
        [attempt] = await attempts(api, tenant, sent["id"])
        # /email-config saves its fallback as the provider `smtp-fallback`.
        assert (attempt["served_by"], attempt["response_code"]) == ("smtp-fallback", 250)

        # Neither password is in any answer, nor in clear in the database.
        answers = [
            await api.http.get("/api/v1/email-config", headers=tenant.auth),
            await api.http.get(f"/api/v1/notifications/{sent['id']}", headers=tenant.auth),
            await api.http.get(f"/api/v1/notifications/{sent['id']}/attempts", headers=tenant.auth),
        ]
        for answer in answers:
            assert answer.status_code == 200
            assert PRIMARY_PASSWORD not in answer.text and FALLBACK_PASSWORD not in answer.text
        shown = answers[0].json()
        assert shown["password_set"] is True and shown["fallback"]["password_set"] is True
        async with relay.app.state.runtime.db.session() as session:
            for table in ("providers", "deliveries", "delivery_attempts", "notifications"):
                rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
                dumped = repr([tuple(r) for r in rows])
                assert PRIMARY_PASSWORD not in dumped and FALLBACK_PASSWORD not in dumped, table
    finally:
        fallback.stop()
