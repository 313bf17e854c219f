"""The e-mail channel against real aiosmtpd servers on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from app.channels.base import EmailConfig, Outcome, OutcomeKind, SmtpServer
from app.channels.email import EmailChannel, EmailTarget
from app.channels.smtp_target import SmtpTargetPolicy
from app.core.ids import new_id
from tests.channels.conftest import context
from tests.support.processes import free_port

# These servers listen on 127.0.0.1: the channel must be allowed private targets, as a
# deployment with SMTP_ALLOW_PRIVATE_TARGETS=true (test_smtp_target.py covers the refusals).
PRIVATE_TARGETS_OK = SmtpTargetPolicy(allow_private=True)
CONTENT = {"subject": "Your order shipped", "text": "Plain body", "html": "<p>Html body</p>"}


class Recorder:
    """Accepts every message (or answers `reply` to RCPT/DATA) and records what it got."""

    def __init__(self, rcpt_reply: str | None = None, data_reply: str | None = None) -> None:
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.messages: list[EmailMessage] = []
        self.peers: list[Any] = []

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.peers.append(session.peer)
        return "250 2.0.0 queued as abc123"


class SmtpHost:
    """A running aiosmtpd server with its recorder; `server()` is its SmtpServer config."""

    def __init__(self, recorder: Recorder, port: int | None = None) -> None:
        self.recorder = recorder
        self.port = port or free_port()
        self.controller = Controller(recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def server(self) -> SmtpServer:
        return SmtpServer(
            "127.0.0.1", self.port, "relay@shop.example", security="none", from_name="Shop"
        )

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp_hosts() -> Iterator[list[SmtpHost]]:
    hosts: list[SmtpHost] = []
    yield hosts
    for host in hosts:
        host.stop()


def start(hosts: list[SmtpHost], recorder: Recorder | None = None) -> SmtpHost:
    host = SmtpHost(recorder or Recorder())
    hosts.append(host)
    return host


def down_server() -> SmtpServer:
    return SmtpServer("127.0.0.1", free_port(), "relay@down.example", security="none")


@pytest.fixture
async def channel() -> AsyncIterator[EmailChannel]:
    ch = EmailChannel(timeout=5.0, targets=PRIVATE_TARGETS_OK)
    yield ch
    await ch.aclose()


async def send(
    channel: EmailChannel,
    primary: SmtpServer,
    fallback: SmtpServer | None = None,
    delivery_id: str | None = None,
    content: dict[str, Any] | None = None,
) -> Outcome:
    config = EmailConfig(primary, fallback)
    target = EmailTarget(delivery_id or new_id(), new_id(), email="ann@example.org", config=config)
    ctx = context()
    return await channel.send(target, content or CONTENT, ctx)


async def test_message_is_html_and_text_alternative_with_headers(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    host = start(smtp_hosts)
    delivery_id = new_id()
    outcome = await send(channel, host.server(), delivery_id=delivery_id)

    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    assert (outcome.response_code, outcome.served_by) == (250, "primary")
    assert outcome.reply is not None and "queued as abc123" in outcome.reply
    [msg] = host.recorder.messages
    assert msg.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content().strip() for p in msg.iter_parts()}
    assert parts == {"text/plain": "Plain body", "text/html": "<p>Html body</p>"}
    assert msg["From"] == "Shop <relay@shop.example>"
    assert msg["To"] == "ann@example.org"
    assert msg["Subject"] == "Your order shipped"
    assert msg["Message-ID"] == f"<{delivery_id}@shop.example>"
    assert msg["Date"] is not None and msg["Date"].datetime is not None


async def test_text_only_message_is_plain(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    host = start(smtp_hosts)
    outcome = await send(channel, host.server(), content={"subject": "s", "text": "only text"})
    assert outcome.kind is OutcomeKind.DELIVERED
    [msg] = host.recorder.messages
    assert msg.get_content_type() == "text/plain"


async def test_temporary_smtp_error_is_retried_with_code_and_reply(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    host = start(smtp_hosts, Recorder(rcpt_reply="451 4.3.0 Mailbox busy, try later"))
    outcome = await send(channel, host.server())
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.response_code == 451
    assert outcome.reply is not None and "try later" in outcome.reply
    assert outcome.served_by == "primary"


async def test_permanent_smtp_error_fails_with_code_and_reply(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    host = start(smtp_hosts, Recorder(data_reply="550 5.7.1 Message rejected as spam"))
    outcome = await send(channel, host.server())
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.response_code == 550
    assert outcome.reply is not None and "rejected as spam" in outcome.reply


async def test_server_down_is_retried(channel: EmailChannel) -> None:
    outcome = await send(channel, down_server())
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.response_code is None
    assert outcome.error


async def test_fallback_delivers_when_primary_is_down(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    fallback = start(smtp_hosts)
    outcome = await send(channel, down_server(), fallback.server())
    assert outcome.kind is OutcomeKind.DELIVERED
    assert outcome.served_by == "fallback"
    assert len(fallback.recorder.messages) == 1


async def test_fallback_delivers_when_primary_answers_4xx(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    primary = start(smtp_hosts, Recorder(rcpt_reply="451 4.3.0 try later"))
    fallback = start(smtp_hosts)
    outcome = await send(channel, primary.server(), fallback.server())
    assert (outcome.kind, outcome.served_by) == (OutcomeKind.DELIVERED, "fallback")
    assert len(fallback.recorder.messages) == 1


async def test_primary_5xx_is_final_and_fallback_is_not_used(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    primary = start(smtp_hosts, Recorder(rcpt_reply="550 5.1.1 No such user"))
    fallback = start(smtp_hosts)
    outcome = await send(channel, primary.server(), fallback.server())
    # Sentinel: the fallback does receive what is sent to it directly.
    sentinel = await send(channel, fallback.server())
    assert (outcome.kind, outcome.served_by, outcome.response_code) == (
        OutcomeKind.FAILED,
        "primary",
        550,
    )
    assert sentinel.kind is OutcomeKind.DELIVERED
    assert len(fallback.recorder.messages) == 1


async def test_both_servers_unavailable_is_retried_and_names_both(channel: EmailChannel) -> None:
    outcome = await send(channel, down_server(), down_server())
    assert (outcome.kind, outcome.served_by) == (OutcomeKind.RETRY, "fallback")
    assert outcome.error is not None and "primary:" in outcome.error


async def test_connection_is_reused_across_deliveries(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    host = start(smtp_hosts)
    for _ in range(3):
        assert (await send(channel, host.server())).kind is OutcomeKind.DELIVERED
    assert len(host.recorder.messages) == 3
    assert len(set(host.recorder.peers)) == 1  # one SMTP session carried all three


async def test_dropped_pooled_connection_is_replaced(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    host = start(smtp_hosts)
    assert (await send(channel, host.server())).kind is OutcomeKind.DELIVERED
    host.stop()  # the pooled session dies with the server
    smtp_hosts.remove(host)
    restarted = SmtpHost(Recorder(), port=host.port)
    smtp_hosts.append(restarted)

    outcome = await send(channel, restarted.server())
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    assert len(restarted.recorder.messages) == 1


async def test_missing_configuration_or_content_fails_permanently(channel: EmailChannel) -> None:
    target = EmailTarget(new_id(), new_id(), email="ann@example.org")
    no_config = await channel.send(target, CONTENT, context())
    no_body = await send(channel, down_server(), content={"subject": "s"})
    assert no_config.kind is OutcomeKind.FAILED
    assert no_body.kind is OutcomeKind.FAILED


async def test_header_injection_in_content_fails_without_sending(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    host = start(smtp_hosts)
    outcome = await send(
        channel, host.server(), content={"subject": "hi\r\nBcc: victim@example.org", "text": "x"}
    )
    sentinel = await send(channel, host.server())
    assert outcome.kind is OutcomeKind.FAILED
    assert sentinel.kind is OutcomeKind.DELIVERED
    assert len(host.recorder.messages) == 1
