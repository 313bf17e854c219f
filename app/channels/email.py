"""The e-mail channel: one message per delivery through the client's SMTP server (aiosmtplib).

SMTP 2xx delivers, 4xx and a refused/timed-out connection retry, 5xx and a configuration that
cannot work fail for good (app/channels/smtp_errors.py). When the primary refuses the
connection, times out or answers 4xx and a fallback server is configured, the same attempt
goes through the fallback; `Outcome.served_by` says which one answered. Every new connection
goes to an address the SMTP target policy checked (app/channels/smtp_target.py). Connections
are pooled per server configuration within the worker's event loop, so a burst of e-mails
does not pay a TCP + TLS + AUTH handshake each.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING, Any, Protocol, cast

import aiosmtplib
from pydantic import BaseModel

from app.channels.base import (
    ChannelContext,
    ChannelFactoryContext,
    DeliveryTarget,
    EmailConfig,
    Outcome,
    OutcomeKind,
    PlannedDelivery,
    Quota,
    Resolved,
    SmtpServer,
    TenantLimits,
    truncate_reply,
)
from app.channels.content import EmailContent
from app.channels.driver import BaseChannel
from app.channels.smtp_errors import SMTP_FAILURES, SmtpConfigError, classify
from app.channels.smtp_target import SmtpTargetPolicy, open_socket
from app.core.clock import monotonic, utcnow
from app.core.crypto import SecretBoxError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

NO_STARTTLS = (
    'the server does not offer STARTTLS: use security "none" for a server without TLS '
    '(a local catcher such as Mailpit on port 1025) or "tls" for TLS from the first byte '
    "(port 465)"
)
NO_AUTH = (
    "the server does not offer AUTH: remove username and password, or connect with "
    'security "starttls" or "tls" if it offers AUTH only over TLS'
)


class EmailConfigs(Protocol):
    """Where the channel reads a tenant's SMTP configuration (registered by the runtime)."""

    async def config_for_delivery(
        self, session: AsyncSession, client_id: str
    ) -> EmailConfig | None:
        """The client's configuration with opened passwords, or None; SecretBoxError when
        it cannot be opened (sealed under another SECRET_KEY)."""
        ...


@dataclass(frozen=True, slots=True)
class EmailTarget(DeliveryTarget):
    """An e-mail delivery's address and its tenant's SMTP configuration."""

    email: str | None = None
    config: EmailConfig | None = None


@dataclass(slots=True)
class _Idle:
    smtp: aiosmtplib.SMTP
    since: float


class SmtpPool:
    """Idle SMTP connections per server configuration; stale ones are dropped, not trusted."""

    def __init__(
        self,
        *,
        timeout: float,
        targets: SmtpTargetPolicy,
        max_idle: int = 2,
        max_idle_seconds: float = 60.0,
        tls_context: ssl.SSLContext | None = None,
    ):
        self._timeout = timeout
        self._targets = targets
        # None: the system's trust store with hostname checks (aiosmtplib's default).
        self._tls_context = tls_context
        self._max_idle = max_idle
        self._max_idle_seconds = max_idle_seconds
        self._idle: dict[SmtpServer, list[_Idle]] = {}

    async def acquire(self, server: SmtpServer) -> tuple[aiosmtplib.SMTP, bool]:
        """A connected client for `server` and whether it was reused from the pool."""
        idle = self._idle.get(server, [])
        while idle:
            entry = idle.pop()
            # Servers close idle sessions after a while; an old one is more likely dead than not.
            if entry.smtp.is_connected and monotonic() - entry.since < self._max_idle_seconds:
                return entry.smtp, True
            await _quietly_close(entry.smtp)
        return await self._open(server), False

    async def _open(self, server: SmtpServer) -> aiosmtplib.SMTP:
        # Resolve and check, connect the socket to a checked address, and let aiosmtplib speak
        # SMTP over it: `hostname` is then only what TLS names (SNI) and verifies.
        addresses = await self._targets.check(server.host, server.port, timeout=self._timeout)
        sock = await open_socket(server.host, addresses, server.port, self._timeout)
        smtp = aiosmtplib.SMTP(
            hostname=server.host,
            sock=sock,
            use_tls=server.security == "tls",
            start_tls=False,  # upgraded below, after checking that the server offers it
            timeout=self._timeout,
            tls_context=self._tls_context,
        )
        try:
            await smtp.connect()
            await _hello(smtp)
            if server.security == "starttls":
                if not smtp.supports_extension("starttls"):
                    raise SmtpConfigError(NO_STARTTLS)
                await smtp.starttls()
                await _hello(smtp)  # what the server said before TLS no longer counts
            if server.username:
                await _login(smtp, server.username, server.password or "")
        except BaseException:
            smtp.close()
            sock.close()  # handed to aiosmtplib, but not closed by it if connect() never got far
            raise
        return smtp

    async def release(self, server: SmtpServer, smtp: aiosmtplib.SMTP) -> None:
        """Return a healthy connection for reuse (or close it when the pool is full)."""
        idle = self._idle.setdefault(server, [])
        if smtp.is_connected and len(idle) < self._max_idle:
            idle.append(_Idle(smtp, monotonic()))
        else:
            await _quietly_close(smtp)

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, {}
        for entries in idle.values():
            for entry in entries:
                await _quietly_close(entry.smtp)


async def _hello(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError as exc:
        if not 500 <= exc.code <= 599:
            raise
        await smtp.helo()  # a server that knows only HELO (it has no extensions)


async def _login(smtp: aiosmtplib.SMTP, username: str, password: str) -> None:
    if not smtp.supports_extension("auth"):
        raise SmtpConfigError(NO_AUTH)
    if not smtp.supported_auth_methods:
        spoken = ", ".join(method.upper() for method in smtp.AUTH_METHODS)
        raise SmtpConfigError(f"the server offers none of the AUTH mechanisms {spoken}")
    await smtp.login(username, password)


async def _quietly_close(smtp: aiosmtplib.SMTP) -> None:
    if not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


def build_message(
    server: SmtpServer, to: str, content: dict[str, Any], message_id: str
) -> EmailMessage:
    """The MIME message: multipart/alternative (text, then html) when both are given."""
    msg = EmailMessage()
    sender = content.get("from") or formataddr((server.from_name or "", server.from_email))
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = content.get("subject", "")
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = message_id
    text, html = content.get("text"), content.get("html")
    # Clients show the last alternative they can render, so the richer html goes last.
    msg.set_content(text if text is not None else "")
    if html is not None:
        if text is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    return msg


class EmailChannel(BaseChannel):
    """Sends through the tenant's configuration (`EmailTarget.config`), primary first."""

    name = "email"
    content_model = EmailContent

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        targets: SmtpTargetPolicy | None = None,
        configs: EmailConfigs | None = None,
    ) -> None:
        self._configs = configs
        # No policy given: the default one, which refuses private targets.
        self._pool = SmtpPool(
            timeout=timeout, targets=targets or SmtpTargetPolicy(), tls_context=tls_context
        )

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        """One attempt: primary, then the fallback when the primary is unavailable."""
        started = monotonic()
        config = target.config if isinstance(target, EmailTarget) else None
        if config is None:
            return Outcome(OutcomeKind.FAILED, error="the client has no e-mail configuration")
        assert isinstance(target, EmailTarget)
        if not target.email:
            return Outcome(OutcomeKind.FAILED, error="e-mail delivery needs an address")
        if content.get("text") is None and content.get("html") is None:
            return Outcome(OutcomeKind.FAILED, error="e-mail content needs text or html")
        outcome, try_fallback = await self._send_via(config.primary, target, content)
        outcome = replace(outcome, served_by="primary")
        if try_fallback and config.fallback is not None:
            first = outcome
            outcome, _ = await self._send_via(config.fallback, target, content)
            error = outcome.error
            if not outcome.delivered:
                error = f"{error}; primary: {first.error}"
            outcome = replace(outcome, served_by="fallback", error=error)
        return replace(outcome, duration_ms=(monotonic() - started) * 1000)

    async def _send_via(
        self, server: SmtpServer, target: EmailTarget, content: dict[str, Any]
    ) -> tuple[Outcome, bool]:
        assert target.email is not None
        domain = server.from_email.rpartition("@")[2] or "chatapi.invalid"
        # Stable across retries, so a receiving system can recognise a re-sent message.
        try:
            msg = build_message(server, target.email, content, f"<{target.delivery_id}@{domain}>")
        except (ValueError, TypeError) as exc:
            # E.g. a line break in a header (header injection): the content can never be sent.
            return Outcome(OutcomeKind.FAILED, error=f"invalid e-mail content: {exc}"), False
        try:
            smtp, reused = await self._pool.acquire(server)
        except SMTP_FAILURES as exc:
            return classify(exc)
        try:
            try:
                _, reply = await smtp.send_message(msg)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # A pooled session the server had dropped: reconnect once, same attempt.
                await _quietly_close(smtp)
                smtp, _ = await self._pool.acquire(server)
                _, reply = await smtp.send_message(msg)
        except SMTP_FAILURES as exc:
            await _quietly_close(smtp)
            return classify(exc)
        await self._pool.release(server, smtp)
        # aiosmtplib returns the DATA reply's text; its code is 250 or it would have raised.
        return Outcome(OutcomeKind.DELIVERED, response_code=250, reply=truncate_reply(reply)), False

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._pool.aclose()

    # ---- driver methods (app/channels/driver.py)

    def stored_content(self, content: BaseModel) -> dict[str, Any]:
        """The e-mail as stored: `from` under its JSON name, unset parts left out."""
        return content.model_dump(mode="json", by_alias=True, exclude_none=True)

    async def expand(
        self,
        session: AsyncSession,
        client_id: str,
        content: BaseModel,
        recipients: Sequence[Resolved],
    ) -> list[PlannedDelivery]:
        """A bare address is its own delivery; a user's goes to the user's address, skipped
        when the user has none."""
        out: list[PlannedDelivery] = []
        for r in recipients:
            if isinstance(r, str):
                out.append(PlannedDelivery({"email": r}))
                continue
            recipient: dict[str, Any] = {"user_id": r.id, "external_id": r.external_id}
            skip = None
            if r.email:
                recipient["email"] = r.email
            else:
                skip = "the user has no e-mail address"
            out.append(PlannedDelivery(recipient, r.id, skip_reason=skip))
        return out

    async def load_targets(
        self, session: AsyncSession, client_id: str, targets: Sequence[DeliveryTarget]
    ) -> Mapping[str, DeliveryTarget | Outcome]:
        """The tenant's SMTP configuration, read once for the batch, on every target."""
        config: EmailConfig | None = None
        if self._configs is not None:
            try:
                config = await self._configs.config_for_delivery(session, client_id)
            except SecretBoxError as exc:
                # Sealed under another SECRET_KEY: retrying cannot help until it is fixed.
                failed = Outcome(OutcomeKind.FAILED, error=str(exc))
                return {t.delivery_id: failed for t in targets}
        return {
            t.delivery_id: EmailTarget(
                t.delivery_id,
                t.client_id,
                t.user_id,
                t.recipient,
                t.endpoint_id,
                email=t.recipient.get("email"),
                config=config,
            )
            for t in targets
        }

    def quota(self, target: DeliveryTarget, limits: TenantLimits) -> Quota | None:
        """E-mails per hour per client."""
        return Quota(limits.emails_per_hour, "hour", (target.client_id,), "qe")


def create(ctx: ChannelFactoryContext) -> EmailChannel:
    """Entry point `email`."""
    targets = SmtpTargetPolicy(
        allow_private=ctx.smtp_allow_private_targets, allowed_hosts=ctx.smtp_allowed_hosts
    )
    return EmailChannel(
        timeout=ctx.smtp_timeout_seconds,
        targets=targets,
        configs=cast("EmailConfigs | None", ctx.services.get(EmailConfigs)),
    )
