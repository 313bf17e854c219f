"""A client's SMTP configuration as the relay uses it (first version; the /email-config
routes build on it)."""

from __future__ import annotations

from typing import Any, Literal, cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.base import EmailConfig, SmtpServer
from app.core.crypto import SecretBox
from app.email import repository

Security = Literal["none", "starttls", "tls"]


async def config_for_delivery(
    session: AsyncSession, box: SecretBox, client_id: str
) -> EmailConfig | None:
    """The client's SMTP servers with their passwords opened, or None when unconfigured."""
    row = await repository.get(session, client_id)
    if row is None:
        return None
    primary = SmtpServer(
        host=row.host,
        port=row.port,
        from_email=row.from_email,
        username=row.username,
        password=box.open(row.password_sealed) if row.password_sealed else None,
        security=cast(Security, row.security),
        from_name=row.from_name,
    )
    return EmailConfig(primary=primary, fallback=_fallback(box, row.fallback))


def _fallback(box: SecretBox, raw: dict[str, Any] | None) -> SmtpServer | None:
    if not raw:
        return None
    sealed = raw.get("password_sealed")
    return SmtpServer(
        host=str(raw["host"]),
        port=int(raw["port"]),
        from_email=str(raw["from_email"]),
        username=raw.get("username"),
        password=box.open(sealed) if sealed else None,
        security=cast(Security, raw.get("security", "starttls")),
        from_name=raw.get("from_name"),
    )
