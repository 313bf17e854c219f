"""The e-mail channel's `security` modes against real aiosmtpd servers with TLS."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.channels.base import EmailConfig, Outcome, OutcomeKind, SmtpServer
from app.channels.email import EmailChannel, EmailTarget
from app.channels.smtp_target import SmtpTargetPolicy
from app.core.ids import new_id
from tests.channels.conftest import context
from tests.channels.test_email import CONTENT, PRIVATE_TARGETS_OK, Recorder
from tests.support.processes import free_port

# The certificate's host name: connections to it are pinned to 127.0.0.1 by a test resolver.
TLS_NAME = "smtp.example.test"


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and smtp.example.test, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName(TLS_NAME),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(cert_files: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert_files)
    return ctx


@pytest.fixture
async def channel(cert_files: tuple[Path, Path]) -> AsyncIterator[EmailChannel]:
    # The client trusts the test certificate (and checks the host name against it).
    trust = ssl.create_default_context(cafile=str(cert_files[0]))
    ch = EmailChannel(timeout=5.0, tls_context=trust, targets=PRIVATE_TARGETS_OK)
    yield ch
    await ch.aclose()


@pytest.fixture
def controllers() -> Iterator[list[Controller]]:
    started: list[Controller] = []
    yield started
    for c in started:
        c.stop()


def server(port: int, security: str, host: str = "127.0.0.1") -> SmtpServer:
    return SmtpServer(host, port, "relay@shop.example", security=security)  # type: ignore[arg-type]


async def send(channel: EmailChannel, smtp: SmtpServer) -> Outcome:
    target = EmailTarget(new_id(), new_id(), email="ann@example.org", config=EmailConfig(smtp))
    return await channel.send(target, CONTENT, context())


async def test_starttls_upgrades_before_sending(
    channel: EmailChannel, cert_files: tuple[Path, Path], controllers: list[Controller]
) -> None:
    recorder, port = Recorder(), free_port()
    c = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context(cert_files),
        require_starttls=True,
    )
    c.start()
    controllers.append(c)

    plain = await send(channel, server(port, "none"))
    upgraded = await send(channel, server(port, "starttls"))

    # The server insists on STARTTLS: without it the server answers 530 (permanent).
    assert plain.kind is OutcomeKind.FAILED
    assert plain.response_code == 530
    assert upgraded.kind is OutcomeKind.DELIVERED, upgraded
    assert len(recorder.messages) == 1


async def test_implicit_tls_connects_over_tls(
    channel: EmailChannel, cert_files: tuple[Path, Path], controllers: list[Controller]
) -> None:
    recorder, port = Recorder(), free_port()
    c = Controller(
        recorder, hostname="127.0.0.1", port=port, ssl_context=server_context(cert_files)
    )
    c.start()
    controllers.append(c)

    outcome = await send(channel, server(port, "tls"))
    assert outcome.kind is OutcomeKind.DELIVERED, outcome
    assert len(recorder.messages) == 1


async def test_untrusted_certificate_fails_at_once_saying_so(
    cert_files: tuple[Path, Path], controllers: list[Controller]
) -> None:
    recorder, port = Recorder(), free_port()
    c = Controller(
        recorder, hostname="127.0.0.1", port=port, ssl_context=server_context(cert_files)
    )
    c.start()
    controllers.append(c)
    channel = EmailChannel(
        timeout=5.0, targets=PRIVATE_TARGETS_OK
    )  # the system trust store does not know the test CA
    try:
        outcome = await send(channel, server(port, "tls"))
    finally:
        await channel.aclose()
    # A certificate that does not verify is configuration, not weather (issue 20, point 8).
    assert outcome.kind is OutcomeKind.FAILED, outcome
    assert outcome.error is not None and "certificate" in outcome.error
    assert recorder.messages == []


async def test_untrusted_certificate_after_starttls_fails_at_once_saying_so(
    cert_files: tuple[Path, Path], controllers: list[Controller]
) -> None:
    recorder, port = Recorder(), free_port()
    c = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context(cert_files),
        require_starttls=True,
    )
    c.start()
    controllers.append(c)
    channel = EmailChannel(timeout=5.0, targets=PRIVATE_TARGETS_OK)
    try:
        outcome = await send(channel, server(port, "starttls"))
    finally:
        await channel.aclose()
    assert outcome.kind is OutcomeKind.FAILED, outcome
    assert outcome.error is not None and "certificate" in outcome.error
    assert recorder.messages == []


async def test_implicit_tls_against_a_plain_server_fails_at_once_with_the_reason(
    channel: EmailChannel, controllers: list[Controller]
) -> None:
    # `security: tls` on a port that speaks plain SMTP (Mailpit's :1025, submission's :587).
    recorder, port = Recorder(), free_port()
    c = Controller(recorder, hostname="127.0.0.1", port=port)
    c.start()
    controllers.append(c)
    outcome = await send(channel, server(port, "tls"))
    assert outcome.kind is OutcomeKind.FAILED, outcome
    assert outcome.error is not None and "TLS" in outcome.error and "security" in outcome.error
    assert recorder.messages == []


async def _pinned_to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_a_pinned_connection_verifies_the_certificate_for_the_host_name(
    security: str, cert_files: tuple[Path, Path], controllers: list[Controller]
) -> None:
    # The socket goes to the checked address (127.0.0.1); TLS still names and verifies the
    # configured host: its certificate matches smtp.example.test and not other.example.test.
    recorder, port = Recorder(), free_port()
    tls = server_context(cert_files)
    if security == "tls":
        c = Controller(recorder, hostname="127.0.0.1", port=port, ssl_context=tls)
    else:
        c = Controller(
            recorder, hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=True
        )
    c.start()
    controllers.append(c)
    trust = ssl.create_default_context(cafile=str(cert_files[0]))
    targets = SmtpTargetPolicy(allow_private=True, resolver=_pinned_to_loopback)
    channel = EmailChannel(timeout=5.0, tls_context=trust, targets=targets)
    try:
        named = await send(channel, server(port, security, host=TLS_NAME))
        other = await send(channel, server(port, security, host="other.example.test"))
    finally:
        await channel.aclose()
    assert named.kind is OutcomeKind.DELIVERED, named
    assert other.kind is OutcomeKind.FAILED, other
    assert other.error is not None and "certificate" in other.error
    assert len(recorder.messages) == 1
