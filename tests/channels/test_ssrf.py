"""The SSRF guard: refused address families, allow_private, and connection pinning."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from app.channels.base import OutcomeKind, WebhookEndpoint
from app.channels.ssrf import TargetRefused, check_url
from app.channels.webhook import WebhookChannel, WebhookTarget
from app.core.ids import new_id
from tests.channels.conftest import context
from tests.channels.receiver import Receiver, running_receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("[::1]", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("[fe80::1]", "link-local"),
    ("[fc00::1]", "private"),
    ("[::]", "unspecified"),
    ("0.0.0.0", "unspecified"),
    ("[::ffff:10.0.0.1]", "private"),
    ("[::ffff:127.0.0.1]", "loopback"),
    ("[fd00:ec2::254]", "metadata"),
    ("100.100.100.200", "metadata"),
    ("100.64.0.1", "not globally routable"),
    ("224.0.0.1", "multicast"),
    ("[2002:a00:1::1]", "private"),  # 6to4 wrapping 10.0.0.1
]


@pytest.mark.parametrize(("host", "reason"), REFUSED)
async def test_private_and_special_addresses_are_refused(host: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=reason):
        await check_url(f"http://{host}/hook", allow_private=False)


async def test_hostname_resolving_to_loopback_is_refused() -> None:
    with pytest.raises(TargetRefused, match="target localhost is loopback"):
        await check_url("http://localhost:8080/hook", allow_private=False)


async def test_one_private_answer_among_public_ones_refuses_the_host() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]

    with pytest.raises(TargetRefused, match=re.escape("hooks.example.com is private")):
        await check_url("https://hooks.example.com/x", allow_private=False, resolver=resolver)


# A refusal of a host NAME says which kind of address it resolved to, never the address: the
# tenant must not learn what internal names resolve to (issue 23, security follow-up). The
# IPv6 forms that wrap an IPv4 address must not name the wrapped address either.
NAME_ANSWERS = [
    ("10.1.2.3", "private", False),
    ("127.0.0.5", "loopback", False),
    ("::ffff:10.9.8.7", "private", False),
    ("2002:a00:1::1", "private", False),  # 6to4 wrapping 10.0.0.1
    ("169.254.169.254", "metadata", True),
    ("fd00:ec2::254", "metadata", True),
    ("fe80::1234", "link-local", True),
    ("169.254.7.7", "link-local", True),
]


@pytest.mark.parametrize(("answer", "category", "always"), NAME_ANSWERS)
async def test_a_refused_name_is_named_with_its_category_never_its_address(
    answer: str, category: str, always: bool
) -> None:
    async def internal(host: str, port: int) -> list[str]:
        return ["93.184.216.34", answer]

    with pytest.raises(TargetRefused) as refused:
        await check_url("https://db.corp.example/x", allow_private=False, resolver=internal)
    message = str(refused.value)
    assert "db.corp.example" in message and category in message, message
    for leak in (answer, "10.1.2.3", "10.9.8.7", "10.0.0.1", "127.0.0.5", "169.254", "fe80"):
        assert leak not in message, message
    assert refused.value.private is not always
    assert refused.value.category is not None


async def test_a_refused_literal_is_echoed_as_typed() -> None:
    # The tenant typed the address: naming it tells nothing new.
    with pytest.raises(TargetRefused, match=re.escape("target 10.1.2.3 is private")):
        await check_url("http://10.1.2.3/hook", allow_private=False)
    with pytest.raises(TargetRefused, match=re.escape("an IPv6 form of 10.0.0.1 (private)")):
        await check_url("http://[::ffff:10.0.0.1]/hook", allow_private=False)


async def test_public_address_is_allowed_and_returned_as_the_pin() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("hooks.example.com", 443)
        return ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]

    pins = await check_url("https://hooks.example.com/x", allow_private=False, resolver=resolver)
    assert pins == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.1.2.3", "localhost", "[fc00::1]"])
async def test_private_targets_are_allowed_when_configured(host: str) -> None:
    assert await check_url(f"http://{host}/hook", allow_private=True)


async def test_metadata_address_is_refused_even_when_private_targets_are_allowed() -> None:
    with pytest.raises(TargetRefused, match="metadata"):
        await check_url("http://169.254.169.254/latest/meta-data/", allow_private=True)


# Refused whatever WEBHOOK_ALLOW_PRIVATE_TARGETS says (issue 20, point 9): every link-local
# address (where cloud metadata, DNS and time services live) and every known metadata address,
# in any IPv6 spelling that reaches the same IPv4 address.
ALWAYS_REFUSED = [
    ("169.254.169.254", "metadata"),  # AWS, GCP, Azure, OpenStack …
    ("169.254.169.253", "metadata"),  # AWS's VPC DNS resolver
    ("169.254.169.123", "metadata"),  # AWS's time service
    ("169.254.170.2", "metadata"),  # AWS ECS task metadata
    ("169.254.0.23", "link-local"),  # Tencent Cloud metadata (no special entry: link-local)
    ("169.254.1.1", "link-local"),
    ("[fe80::a9fe:a9fe]", "link-local"),
    ("[fe80::1]", "link-local"),
    ("[fd00:ec2::254]", "metadata"),  # AWS IMDS over IPv6
    ("[fd00:ec2::253]", "metadata"),  # AWS DNS over IPv6
    ("[fd00:ec2::123]", "metadata"),  # AWS time over IPv6
    ("[fd20:ce::254]", "metadata"),  # GCP metadata over IPv6
    ("100.100.100.200", "metadata"),  # Alibaba Cloud
    ("192.0.0.192", "metadata"),  # Oracle Cloud
    ("168.63.129.16", "metadata"),  # Azure's host (WireServer)
    ("[::ffff:169.254.169.254]", "metadata"),
    ("[::ffff:169.254.169.253]", "metadata"),
    ("[::ffff:169.254.1.1]", "link-local"),
    ("[::169.254.169.254]", "metadata"),  # IPv4-compatible (deprecated) form
    ("[64:ff9b::a9fe:a9fe]", "metadata"),  # NAT64
    ("[64:ff9b:1::a9fe:a9fe]", "metadata"),  # local-use NAT64 (RFC 8215)
    ("[2002:a9fe:a9fe::1]", "metadata"),  # 6to4
]


@pytest.mark.parametrize(("host", "reason"), ALWAYS_REFUSED)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_link_local_and_metadata_addresses_are_always_refused(
    host: str, reason: str, allow_private: bool
) -> None:
    with pytest.raises(TargetRefused, match=reason):
        await check_url(f"http://{host}/hook", allow_private=allow_private)


async def test_a_name_resolving_to_a_link_local_address_is_refused_with_private_allowed() -> None:
    async def to_link_local(host: str, port: int) -> list[str]:
        return ["10.0.0.7", "fe80::a9fe:a9fe"]

    with pytest.raises(TargetRefused, match="link-local"):
        await check_url("http://intranet.example/x", allow_private=True, resolver=to_link_local)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "http:///x", "http://u:p@example.com/"]
)
async def test_malformed_or_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused):
        await check_url(url, allow_private=True)


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


async def test_connection_goes_to_the_checked_address_not_a_second_answer(
    receiver: Receiver,
) -> None:
    # A rebinding resolver: the first answer is the receiver, any later one points elsewhere
    # (nothing listens on 127.0.0.2). A guard that checked one answer and let the connection
    # resolve again would fail to connect.
    answers: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        answer = "127.0.0.1" if not answers else "127.0.0.2"
        answers.append(answer)
        return [answer]

    channel = WebhookChannel(allow_private=True, resolver=rebinding)
    endpoint = WebhookEndpoint(
        new_id(), receiver.url("/pinned", host="hooks.example.test"), (SECRET,)
    )
    try:
        outcome = await channel.send(
            WebhookTarget(new_id(), new_id(), endpoint=endpoint),
            {"event_type": "t", "payload": {}},
            context(),
        )
    finally:
        await channel.aclose()

    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    assert answers == ["127.0.0.1"]
    # The peer is pinned, the URL's host is still what HTTP sees.
    assert receiver.requests[-1].headers["host"] == f"hooks.example.test:{receiver.port}"


async def test_webhook_to_a_name_resolving_to_loopback_fails_without_connecting(
    receiver: Receiver,
) -> None:
    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    channel = WebhookChannel(allow_private=False, resolver=to_loopback)
    endpoint = WebhookEndpoint(new_id(), receiver.url("/blocked", host="evil.example"), (SECRET,))
    try:
        outcome = await channel.send(
            WebhookTarget(new_id(), new_id(), endpoint=endpoint),
            {"event_type": "t", "payload": {}},
            context(),
        )
    finally:
        await channel.aclose()

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error is not None and "loopback" in outcome.error
    # The attempt's error (the tenant reads it) names the operator's switch, not the address.
    assert "WEBHOOK_ALLOW_PRIVATE_TARGETS=true" in outcome.error, outcome.error
    assert "127.0.0.1" not in outcome.error
    assert "/blocked" not in receiver.paths()


async def test_ip_literal_target_is_checked_too(receiver: Receiver) -> None:
    # aiohttp skips the resolver for an IP literal; the socket factory checks it instead.
    channel = WebhookChannel(allow_private=False)
    endpoint = WebhookEndpoint(new_id(), receiver.url("/literal"), (SECRET,))
    try:
        outcome = await channel.send(
            WebhookTarget(new_id(), new_id(), endpoint=endpoint),
            {"event_type": "t", "payload": {}},
            context(),
        )
        # A sentinel through an allowed channel: the refused request would have arrived first.
        allowed = WebhookChannel(allow_private=True)
        sentinel = WebhookEndpoint(new_id(), receiver.url("/literal-sentinel"), (SECRET,))
        try:
            await allowed.send(
                WebhookTarget(new_id(), new_id(), endpoint=sentinel),
                {"event_type": "t", "payload": {}},
                context(),
            )
        finally:
            await allowed.aclose()
    finally:
        await channel.aclose()

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error is not None and "loopback" in outcome.error
    assert "WEBHOOK_ALLOW_PRIVATE_TARGETS=true" in outcome.error, outcome.error
    assert "/literal-sentinel" in receiver.paths()
    assert "/literal" not in receiver.paths()


async def test_metadata_literal_is_refused_before_connecting_even_with_private_allowed() -> None:
    channel = WebhookChannel(allow_private=True)
    endpoint = WebhookEndpoint(new_id(), "http://169.254.169.254/latest/meta-data/", (SECRET,))
    try:
        outcome = await channel.send(
            WebhookTarget(new_id(), new_id(), endpoint=endpoint),
            {"event_type": "t", "payload": {}},
            context(),
        )
    finally:
        await channel.aclose()
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error is not None and "metadata" in outcome.error
    assert "whatever WEBHOOK_ALLOW_PRIVATE_TARGETS says" in outcome.error, outcome.error
