"""Where an SMTP connection may go (issue 20, point 3): the webhook address policy with its own
switch, an optional host allow-list, a connection to the checked address only, and a peer
that is not an SMTP server named as such without its bytes. Real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from app.channels.base import OutcomeKind, SmtpServer
from app.channels.email import EmailChannel
from app.channels.smtp_target import SmtpTargetPolicy
from app.channels.ssrf import TargetRefused, TargetUnresolvable
from tests.channels.banner import BANNERS, MARKER, BannerServer, banner_server
from tests.channels.test_email import PRIVATE_TARGETS_OK, SmtpHost, send, start


@pytest.fixture
def smtp_hosts() -> Iterator[list[SmtpHost]]:
    hosts: list[SmtpHost] = []
    yield hosts
    for host in hosts:
        host.stop()


@pytest.fixture
def nats() -> Iterator[BannerServer]:
    with banner_server(BANNERS["nats"]) as server:
        yield server


async def _channel_send(
    targets: SmtpTargetPolicy, server: SmtpServer, fallback: SmtpServer | None = None
) -> tuple[OutcomeKind, str | None, str]:
    channel = EmailChannel(timeout=5.0, targets=targets)
    try:
        outcome = await send(channel, server, fallback)
    finally:
        await channel.aclose()
    return outcome.kind, outcome.error, repr(outcome)


def smtp(host: str, port: int) -> SmtpServer:
    return SmtpServer(host, port, "relay@shop.example", security="none")


@pytest.mark.parametrize("banner", sorted(BANNERS))
async def test_a_peer_that_is_not_smtp_is_named_so_without_its_bytes(banner: str) -> None:
    with banner_server(BANNERS[banner]) as peer:
        kind, error, shown = await _channel_send(PRIVATE_TARGETS_OK, smtp("127.0.0.1", peer.port))
    assert peer.connections == 1
    assert kind is OutcomeKind.FAILED
    assert error is not None and "not an SMTP server" in error
    assert MARKER not in shown and "MariaDB" not in shown and "INFO" not in shown


async def test_a_private_target_is_refused_without_connecting(nats: BannerServer) -> None:
    kind, error, _ = await _channel_send(SmtpTargetPolicy(), smtp("127.0.0.1", nats.port))
    assert kind is OutcomeKind.FAILED
    assert error is not None and "loopback" in error and "SMTP_ALLOW_PRIVATE_TARGETS" in error
    # Sentinel: the same target with private targets allowed is connected to.
    await _channel_send(PRIVATE_TARGETS_OK, smtp("127.0.0.1", nats.port))
    assert nats.connections == 1


async def test_a_name_resolving_to_a_private_address_is_refused_without_connecting(
    nats: BannerServer,
) -> None:
    async def to_loopback(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "127.0.0.1"]  # one bad answer among good ones is enough

    targets = SmtpTargetPolicy(resolver=to_loopback)
    kind, error, _ = await _channel_send(targets, smtp("smtp.evil.example", nats.port))
    assert kind is OutcomeKind.FAILED
    assert error is not None and "smtp.evil.example" in error and "loopback" in error
    # Only the category: naming the address would tell a tenant what internal names
    # resolve to.
    assert "127.0.0.1" not in error, error
    assert nats.connections == 0


@pytest.mark.parametrize("host", ["169.254.169.254", "fe80::a9fe:a9fe", "fd20:ce::254"])
async def test_link_local_and_metadata_are_refused_even_with_private_targets_allowed(
    host: str,
) -> None:
    kind, error, _ = await _channel_send(PRIVATE_TARGETS_OK, smtp(host, 25))
    assert kind is OutcomeKind.FAILED
    assert error is not None and ("metadata" in error or "link-local" in error)


async def test_the_connection_goes_to_the_checked_address_not_a_second_answer(
    smtp_hosts: list[SmtpHost],
) -> None:
    # A rebinding name: the first answer is the server, any later one points where nothing
    # listens. A policy that checked one answer and let the client resolve again would fail.
    host = start(smtp_hosts)
    answers: list[str] = []

    async def rebinding(name: str, port: int) -> list[str]:
        answers.append("127.0.0.1" if not answers else "127.0.0.2")
        return [answers[-1]]

    targets = SmtpTargetPolicy(allow_private=True, resolver=rebinding)
    kind, error, _ = await _channel_send(targets, smtp("smtp.rebind.example", host.port))
    assert (kind, error) == (OutcomeKind.DELIVERED, None)
    assert answers == ["127.0.0.1"]
    assert len(host.recorder.messages) == 1


async def test_an_unresolvable_host_is_retried_through_the_fallback(
    smtp_hosts: list[SmtpHost],
) -> None:
    fallback = start(smtp_hosts)

    async def resolver(name: str, port: int) -> list[str]:
        if name == "smtp.gone.example":
            raise TargetUnresolvable(f"cannot resolve {name!r}")
        return ["127.0.0.1"]

    targets = SmtpTargetPolicy(allow_private=True, resolver=resolver)
    primary_only = await _channel_send(targets, smtp("smtp.gone.example", 25))
    both = await _channel_send(
        targets, smtp("smtp.gone.example", 25), smtp("smtp.backup.example", fallback.port)
    )
    assert primary_only[0] is OutcomeKind.RETRY
    assert primary_only[1] is not None and "resolve" in primary_only[1]
    assert both[0] is OutcomeKind.DELIVERED
    assert len(fallback.recorder.messages) == 1


async def test_a_host_outside_the_allow_list_is_refused_without_connecting(
    nats: BannerServer,
) -> None:
    targets = SmtpTargetPolicy(allow_private=True, allowed_hosts=("smtp.example.com",))
    kind, error, _ = await _channel_send(targets, smtp("127.0.0.1", nats.port))
    assert kind is OutcomeKind.FAILED
    assert error is not None and "SMTP_ALLOWED_HOSTS" in error
    assert nats.connections == 0


async def _public(name: str, port: int) -> list[str]:
    return ["93.184.215.14"]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("smtp.example.com", True),
        ("SMTP.Example.COM.", True),  # names compare case-insensitively, root dot or not
        ("mx1.relay.example.net", True),  # *.relay.example.net
        ("a.b.relay.example.net", True),
        ("relay.example.net", False),  # the wildcard is for names below it
        ("smtp.example.com.evil.test", False),
        ("evilsmtp.example.com", False),
        ("93.184.215.14", True),  # an IP literal entry
        ("93.184.215.15", False),
        ("198.18.0.1", False),
        ("203.0.113.9", True),  # inside the 203.0.113.0/28 entry (private allowed below)
        ("203.0.113.99", False),
    ],
)
async def test_allow_list_matches_names_wildcards_addresses_and_networks(
    host: str, allowed: bool
) -> None:
    targets = SmtpTargetPolicy(
        allow_private=True,
        allowed_hosts=(
            "smtp.example.com",
            "*.relay.example.net",
            "93.184.215.14",
            "203.0.113.0/28",
        ),
        resolver=_public,
    )
    if allowed:
        assert await targets.check(host, 25)
    else:
        with pytest.raises(TargetRefused, match="SMTP_ALLOWED_HOSTS"):
            await targets.check(host, 25)


async def test_an_allow_listed_name_is_still_subject_to_the_address_policy() -> None:
    async def to_private(name: str, port: int) -> list[str]:
        return ["10.0.0.9"]

    listed = SmtpTargetPolicy(allowed_hosts=("mail.internal.example",), resolver=to_private)
    with pytest.raises(TargetRefused, match="private"):
        await listed.check("mail.internal.example", 25)
    both = SmtpTargetPolicy(
        allow_private=True, allowed_hosts=("mail.internal.example",), resolver=to_private
    )
    assert await both.check("mail.internal.example", 25) == ["10.0.0.9"]


@pytest.fixture
async def default_channel() -> AsyncIterator[EmailChannel]:
    ch = EmailChannel(timeout=5.0)
    yield ch
    await ch.aclose()


async def test_the_default_channel_refuses_private_targets(
    default_channel: EmailChannel, nats: BannerServer
) -> None:
    outcome = await send(default_channel, smtp("127.0.0.1", nats.port))
    assert outcome.kind is OutcomeKind.FAILED
    assert nats.connections == 0
