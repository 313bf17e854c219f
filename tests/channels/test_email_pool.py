"""The e-mail channel's SMTP pool against real aiosmtpd servers: bounded, reused across
messages and batches, and a session the server closed costs no attempt."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from app.channels.base import EmailConfig, OutcomeKind
from app.channels.email import EmailChannel, EmailTarget
from app.channels.smtp_pool import MAX_CONNECTIONS_PER_SERVER
from app.core.ids import new_id
from tests.channels import test_email
from tests.channels.conftest import context
from tests.channels.test_email import (
    CONTENT,
    PRIVATE_TARGETS_OK,
    Recorder,
    SmtpHost,
    send,
    start,
)

smtp_hosts = test_email.smtp_hosts  # the same fixture: servers stopped after each test


class Sessions(Recorder):
    """Records, per transaction, the connection (peer) it came on; `close_on` decides, at
    MAIL, whether the server drops that session instead ("421" says so first, "drop" just
    closes the socket)."""

    def __init__(self, close_on: Any = None, how: str = "421", **kw: Any) -> None:
        super().__init__(**kw)
        self.mail_peers: list[Any] = []
        self.closed = 0
        self._close_on = close_on
        self._how = how

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        previous = self.mail_peers.count(session.peer)
        self.mail_peers.append(session.peer)
        if self._close_on is not None and self._close_on(previous):
            self.closed += 1
            if self._how == "drop":
                assert server.transport is not None
                server.transport.close()
                return "250 OK"  # never reaches the client
            # What a server says when it ends an idle session; aiosmtpd then closes it.
            await server.push("421 4.4.2 idle too long, closing")
            assert server.transport is not None
            server.transport.close()
            return "421 4.4.2 closing"
        envelope.mail_from = address
        return "250 OK"


@pytest.fixture
async def channel() -> AsyncIterator[EmailChannel]:
    # A generous wait for a free session (half the timeout): a loaded CI box must not DEFER.
    ch = EmailChannel(timeout=20.0, targets=PRIVATE_TARGETS_OK)
    yield ch
    await ch.aclose()


async def test_a_burst_shares_a_bounded_set_of_sessions_across_batches(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    recorder = Sessions()
    host = start(smtp_hosts, recorder)
    first = await asyncio.gather(*(send(channel, host.server()) for _ in range(60)))
    peers_after_first = set(recorder.mail_peers)
    second = await asyncio.gather(*(send(channel, host.server()) for _ in range(60)))

    assert {o.kind for o in first + second} == {OutcomeKind.DELIVERED}
    assert len(host.recorder.messages) == 120
    # Bounded: never more sessions than the pool's size, however many sends at once...
    assert len(set(recorder.mail_peers)) <= MAX_CONNECTIONS_PER_SERVER
    # ...and the second batch reused the first one's sessions instead of opening new ones.
    assert set(recorder.mail_peers) == peers_after_first


@pytest.mark.parametrize("how", ["421", "drop"])
async def test_a_pooled_session_the_server_closed_is_replaced_within_the_attempt(
    channel: EmailChannel, smtp_hosts: list[SmtpHost], how: str
) -> None:
    # The server ends each session at its second transaction, as one that closes idle
    # sessions does when the client comes back (the client has not noticed yet).
    recorder = Sessions(close_on=lambda previous: previous >= 1, how=how)
    host = start(smtp_hosts, recorder)
    assert (await send(channel, host.server())).kind is OutcomeKind.DELIVERED

    outcome = await send(channel, host.server())

    assert outcome.kind is OutcomeKind.DELIVERED, outcome  # one attempt, delivered
    assert recorder.closed == 1
    assert len(host.recorder.messages) == 2
    assert len(set(recorder.mail_peers)) == 2  # the second message on a fresh session


async def test_a_fresh_session_that_fails_is_not_retried(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    # Only a reused session earns the free retry: a new one failing is the server's doing.
    recorder = Sessions(close_on=lambda previous: True)
    host = start(smtp_hosts, recorder)
    outcome = await send(channel, host.server())
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.response_code == 421
    assert recorder.closed == 1


async def test_a_refused_recipient_keeps_the_session_for_the_next_message(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    recorder = Sessions(rcpt_reply="550 5.1.1 No such user")
    host = start(smtp_hosts, recorder)
    refused = await send(channel, host.server())
    recorder.rcpt_reply = None
    accepted = await send(channel, host.server())

    assert (refused.kind, refused.response_code) == (OutcomeKind.FAILED, 550)
    assert accepted.kind is OutcomeKind.DELIVERED
    assert len(host.recorder.messages) == 1
    assert len(set(recorder.mail_peers)) == 1  # RSET, not a new handshake


async def test_every_session_busy_defers_without_sending(smtp_hosts: list[SmtpHost]) -> None:
    entered, release = threading.Event(), threading.Event()

    class Slow(Recorder):
        async def handle_DATA(
            self, server: SMTPServer, session: Session, envelope: Envelope
        ) -> str:
            entered.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
            return await super().handle_DATA(server, session, envelope)

    host = start(smtp_hosts, Slow())
    channel = EmailChannel(
        timeout=5.0, targets=PRIVATE_TARGETS_OK, max_connections=1, pool_wait_seconds=0.2
    )
    try:
        held = asyncio.create_task(send(channel, host.server()))
        assert await asyncio.to_thread(entered.wait, 5)  # the one session is in use
        busy = await send(channel, host.server())
        release.set()
        first = await held
        after = await send(channel, host.server())  # the slot came back
    finally:
        release.set()
        await channel.aclose()

    assert busy.kind is OutcomeKind.DEFER, busy  # ours: given back unspent, no attempt
    assert busy.retry_after is not None and busy.error is not None and "busy" in busy.error
    assert (first.kind, after.kind) == (OutcomeKind.DELIVERED, OutcomeKind.DELIVERED)
    assert len(host.recorder.messages) == 2


async def test_a_cancelled_attempt_gives_its_session_slot_back(
    smtp_hosts: list[SmtpHost],
) -> None:
    entered, release = threading.Event(), threading.Event()

    class Hanging(Recorder):
        async def handle_DATA(
            self, server: SMTPServer, session: Session, envelope: Envelope
        ) -> str:
            entered.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
            return await super().handle_DATA(server, session, envelope)

    host = start(smtp_hosts, Hanging())
    # One session, and a wait for it longer than this test needs: a leaked slot would DEFER.
    channel = EmailChannel(
        timeout=5.0, targets=PRIVATE_TARGETS_OK, max_connections=1, pool_wait_seconds=3.0
    )
    target = EmailTarget(
        new_id(), new_id(), email="ann@example.org", config=EmailConfig(host.server())
    )
    ctx = context()
    try:
        stuck = asyncio.create_task(channel.send(target, CONTENT, ctx))
        assert await asyncio.to_thread(entered.wait, 5)
        stuck.cancel()  # as the engine's per-attempt timeout does
        with pytest.raises(asyncio.CancelledError):
            await stuck
        release.set()
        outcome = await send(channel, host.server())
    finally:
        release.set()
        await channel.aclose()
    assert outcome.kind is OutcomeKind.DELIVERED, outcome


async def test_messages_of_one_content_carry_their_own_recipient_headers(
    channel: EmailChannel, smtp_hosts: list[SmtpHost]
) -> None:
    # The common part is rendered once per content; To, Date and Message-ID are each one's.
    host = start(smtp_hosts)
    ctx = context()
    config = EmailConfig(host.server())
    to = ["ann@example.org", "bob@example.org", '"odd address"@example.org']
    ids = [new_id() for _ in to]
    outcomes = [
        await channel.send(EmailTarget(i, new_id(), email=a, config=config), CONTENT, ctx)
        for i, a in zip(ids, to, strict=True)
    ]
    assert {o.kind for o in outcomes} == {OutcomeKind.DELIVERED}
    got = {m["To"]: m for m in host.recorder.messages}
    assert set(got) == set(to)  # the quoted one took the email package's path
    for address, delivery_id in zip(to, ids, strict=True):
        msg = got[address]
        assert msg["Message-ID"] == f"<{delivery_id}@shop.example>"
        assert msg["Date"].datetime is not None
        assert msg["From"] == "Shop <relay@shop.example>"
        parts = {p.get_content_type(): p.get_content().strip() for p in msg.iter_parts()}
        assert parts == {"text/plain": "Plain body", "text/html": "<p>Html body</p>"}
