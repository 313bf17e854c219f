"""The client's SMTP configuration: stored with sealed passwords, shown without them, opened
for delivery, and tested by sending a real message."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels import base
from app.channels.email import EmailChannel, EmailTarget
from app.channels.smtp_target import SmtpTargetPolicy
from app.channels.ssrf import TargetRefused, TargetUnresolvable
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.crypto import SecretBox
from app.core.errors import NotFound, Unprocessable
from app.core.ids import new_id
from app.email import repository
from app.email.models import EmailConfig
from app.email.schemas import EmailConfigPut, EmailTestResult, SmtpServerIn

# Resolving a host when the configuration is saved must not hold the request for long.
RESOLVE_TIMEOUT_SECONDS = 5.0
TEST_SUBJECT = "ChatAPI test e-mail"
TEST_TEXT = (
    "This message was sent by POST /email-config/test to check the SMTP configuration.\n"
    "If you can read it, e-mail notifications can be delivered.\n"
)


def _sealed_fallback(box: SecretBox, server: SmtpServerIn | None) -> dict[str, Any] | None:
    if server is None:
        return None
    return {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "password_sealed": box.seal(server.password) if server.password else None,
        "security": server.security,
        "from_email": str(server.from_email),
        "from_name": server.from_name,
    }


async def check_hosts(body: EmailConfigPut, targets: SmtpTargetPolicy) -> None:
    """Refuse (422, saying why) a server the SMTP target policy would refuse to connect to.

    Deliveries check again before every connection (DNS may change); this tells the client
    now rather than in a failed delivery later.
    """
    servers: list[tuple[str, SmtpServerIn]] = [("host", body)]
    if body.fallback is not None:
        servers.append(("fallback.host", body.fallback))
    checks = [
        targets.check(server.host, server.port, timeout=RESOLVE_TIMEOUT_SECONDS)
        for _, server in servers
    ]
    results = await asyncio.gather(*checks, return_exceptions=True)
    for (field, _), result in zip(servers, results, strict=True):
        if isinstance(result, (TargetRefused, TargetUnresolvable)):
            raise Unprocessable(f"{field} refused: {result}")
        if isinstance(result, BaseException):
            raise result


async def put_config(
    session: AsyncSession,
    box: SecretBox,
    settings: Settings,
    client_id: str,
    body: EmailConfigPut,
) -> EmailConfig:
    """Create or replace the configuration (hosts checked first); passwords stored sealed."""
    await check_hosts(body, SmtpTargetPolicy.from_settings(settings))
    row = await repository.upsert(
        session,
        client_id,
        host=body.host,
        port=body.port,
        username=body.username,
        password_sealed=box.seal(body.password) if body.password else None,
        security=body.security,
        from_email=str(body.from_email),
        from_name=body.from_name,
        fallback=_sealed_fallback(box, body.fallback),
        now=utcnow(),
    )
    await session.commit()
    return row


async def get_config(session: AsyncSession, client_id: str) -> EmailConfig:
    """The configuration, or 404."""
    row = await repository.get(session, client_id)
    if row is None:
        raise NotFound("No e-mail configuration: PUT /email-config first")
    return row


async def delete_config(session: AsyncSession, client_id: str) -> None:
    """Remove the configuration, or 404."""
    if not await repository.delete_config(session, client_id):
        raise NotFound("No e-mail configuration")
    await session.commit()


def _server(box: SecretBox, fields: dict[str, Any]) -> base.SmtpServer:
    sealed = fields.get("password_sealed")
    return base.SmtpServer(
        host=fields["host"],
        port=int(fields["port"]),
        from_email=fields["from_email"],
        username=fields.get("username"),
        password=box.open(sealed) if sealed else None,
        security=cast(Any, fields["security"]),
        from_name=fields.get("from_name"),
    )


def opened(box: SecretBox, row: EmailConfig) -> base.EmailConfig:
    """The channel's view of a row: passwords opened (raises SecretBoxError if they cannot)."""
    primary = _server(
        box,
        {
            "host": row.host,
            "port": row.port,
            "from_email": row.from_email,
            "username": row.username,
            "password_sealed": row.password_sealed,
            "security": row.security,
            "from_name": row.from_name,
        },
    )
    fallback = _server(box, row.fallback) if row.fallback else None
    return base.EmailConfig(primary=primary, fallback=fallback)


async def config_for_delivery(
    session: AsyncSession, box: SecretBox, client_id: str
) -> base.EmailConfig | None:
    """The client's SMTP configuration with opened passwords, or None when it has none."""
    row = await repository.get(session, client_id)
    return None if row is None else opened(box, row)


async def send_test(
    session: AsyncSession, box: SecretBox, settings: Settings, client_id: str, to: str
) -> EmailTestResult:
    """Send one real message through the configuration (fallback included) and report it.

    A refused or failed send is a result (`ok: false` with the reason), not an error: the
    request was fine, the server was not.
    """
    config = opened(box, await get_config(session, client_id))
    # The session is not needed while talking to SMTP servers (seconds): give it back.
    await session.close()
    # The same target policy as deliveries: the host is checked again here, since DNS may
    # have changed, or the configuration predates the policy, since it was saved.
    channel = EmailChannel(
        timeout=settings.EMAIL_TEST_TIMEOUT_SECONDS,
        targets=SmtpTargetPolicy.from_settings(settings),
    )
    target = EmailTarget(
        delivery_id=f"test-{new_id()}", client_id=client_id, email=to, config=config
    )
    ctx = base.ChannelContext(notification_id="test", created_at=utcnow())
    try:
        outcome = await channel.send(target, {"subject": TEST_SUBJECT, "text": TEST_TEXT}, ctx)
    finally:
        await channel.aclose()
    return EmailTestResult(
        ok=outcome.delivered,
        code=outcome.response_code,
        reply=outcome.reply,
        served_by=outcome.served_by,
        error=outcome.error,
        duration_ms=round(outcome.duration_ms, 1),
    )
