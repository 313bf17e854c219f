"""A wrong SMTP configuration fails at once with the reason; the weather is still retried.

Issue 20, point 8: `security: starttls` against a server without STARTTLS, AUTH the server
refuses or does not offer, are configuration errors that no retry can fix; a refused
connection, a timeout or a 4xx (temporary AUTH failure included) stays transient. Real
aiosmtpd servers on 127.0.0.1 (TLS handshake failures are in test_email_tls.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from app.channels.base import OutcomeKind, SmtpServer
from app.channels.email import EmailChannel
from tests.channels.test_email import PRIVATE_TARGETS_OK, Recorder, SmtpHost, send, start
from tests.support.processes import free_port


@pytest.fixture
async def channel() -> AsyncIterator[EmailChannel]:
    ch = EmailChannel(timeout=5.0, targets=PRIVATE_TARGETS_OK)
    yield ch
    await ch.aclose()


@pytest.fixture
def smtp_hosts() -> Iterator[list[SmtpHost]]:
    hosts: list[SmtpHost] = []
    yield hosts
    for host in hosts:
        host.stop()


@pytest.fixture
def controllers() -> Iterator[list[Controller]]:
    started: list[Controller] = []
    yield started
    for c in started:
        c.stop()


def auth_server(controllers: list[Controller], answer: AuthResult) -> tuple[Recorder, int]:
    """An aiosmtpd server offering AUTH (without TLS) that answers every login with `answer`."""

    def authenticate(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        return answer

    recorder, port = Recorder(), free_port()
    c = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    c.start()
    controllers.append(c)
    return recorder, port


def config(port: int, **fields: Any) -> SmtpServer:
    values: dict[str, Any] = {"security": "none", "from_name": "Shop", **fields}
    return SmtpServer("127.0.0.1", port, "relay@shop.example", **values)


async def test_starttls_against_a_server_without_starttls_fails_at_once_with_the_reason(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    # A local catcher such as Mailpit on :1025 offers no STARTTLS; `starttls` is the default.
    host = start(smtp_hosts)
    outcome = await send(channel, config(host.port, security="starttls"))

    assert outcome.kind is OutcomeKind.FAILED, outcome
    assert outcome.error is not None
    assert "STARTTLS" in outcome.error and '"none"' in outcome.error
    assert (outcome.served_by, outcome.response_code) == ("primary", None)
    assert host.recorder.messages == []


async def test_a_misconfigured_primary_fails_over_to_the_fallback(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    # A configuration error is the server's fault, not the message's (issue 22: auth/config
    # errors fail over): the fallback delivers in the same attempt, the primary's reason kept.
    host = start(smtp_hosts)
    fallback = start(smtp_hosts)
    outcome = await send(channel, config(host.port, security="starttls"), config(fallback.port))

    assert (outcome.kind, outcome.served_by) == (OutcomeKind.DELIVERED, "fallback"), outcome
    assert outcome.error is not None and outcome.error.startswith("primary:")
    assert "STARTTLS" in outcome.error
    assert host.recorder.messages == [] and len(fallback.recorder.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_rejected_credentials_fail_at_once_saying_so(
    channel: EmailChannel, controllers: list[Controller]
) -> None:
    # handled=False: aiosmtpd answers its own 535 5.7.8 (handled=True would answer nothing).
    recorder, port = auth_server(controllers, AuthResult(success=False, handled=False))
    outcome = await send(channel, config(port, username="relay", password="wrong"))

    assert outcome.kind is OutcomeKind.FAILED, outcome
    assert outcome.response_code == 535
    assert outcome.error is not None and "authentication failed" in outcome.error
    assert "username and password" in outcome.error
    assert recorder.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_a_temporary_auth_failure_is_retried(
    channel: EmailChannel, controllers: list[Controller]
) -> None:
    recorder, port = auth_server(
        controllers,
        AuthResult(
            success=False, handled=False, message="454 4.7.0 Temporary authentication failure"
        ),
    )
    outcome = await send(channel, config(port, username="relay", password="pw"))

    assert outcome.kind is OutcomeKind.RETRY, outcome
    assert outcome.response_code == 454
    assert recorder.messages == []


async def test_credentials_for_a_server_without_auth_fail_at_once_with_the_reason(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    host = start(smtp_hosts)  # aiosmtpd without an authenticator offers no AUTH
    outcome = await send(channel, config(host.port, username="relay", password="pw"))

    assert outcome.kind is OutcomeKind.FAILED, outcome
    assert outcome.error is not None and "AUTH" in outcome.error
    assert host.recorder.messages == []


async def test_a_refused_connection_stays_transient(channel: EmailChannel) -> None:
    outcome = await send(channel, config(free_port(), security="starttls"))
    assert outcome.kind is OutcomeKind.RETRY, outcome
