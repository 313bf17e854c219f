"""The e-mail channel: one message per delivery through the client's SMTP server (aiosmtplib).

SMTP 2xx delivers, 4xx and a refused/timed-out connection retry, 5xx fails for good. When the
primary refuses the connection, times out or answers 4xx and a fallback server is configured,
the same attempt goes through the fallback; `Outcome.served_by` says which one answered.
Connections are pooled per server configuration within the worker's event loop, so a burst of
e-mails does not pay a TCP + TLS + AUTH handshake each.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import aiosmtplib

from app.channels.base import (
    ChannelContext,
    ChannelFactoryContext,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
    SmtpServer,
    truncate_reply,
)
from app.core.clock import monotonic, utcnow


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
        max_idle: int = 2,
        max_idle_seconds: float = 60.0,
        tls_context: ssl.SSLContext | None = None,
    ):
        self._timeout = timeout
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
        smtp = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.security == "tls",
            start_tls=server.security == "starttls",
            timeout=self._timeout,
            tls_context=self._tls_context,
        )
        await smtp.connect()
        return smtp, False

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


def _classify(exc: Exception) -> tuple[Outcome, bool]:
    """The outcome of a failed send and whether the fallback server should be tried."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code, reply = exc.code, truncate_reply(exc.message)
        transient = 400 <= code < 500
        kind = OutcomeKind.RETRY if transient else OutcomeKind.FAILED
        return Outcome(kind, response_code=code, reply=reply, error=f"SMTP {code}"), transient
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # E.g. security=starttls against a server without STARTTLS: configuration, not weather.
        return Outcome(OutcomeKind.FAILED, error=f"SMTP: {exc}"), False
    # Refused, timed out, dropped: the server may be back soon, and the fallback may be up now.
    return Outcome(OutcomeKind.RETRY, error=f"{type(exc).__name__}: {exc}"), True


class EmailChannel:
    """Sends through the configuration in `ctx.email`, primary first."""

    name = "email"

    def __init__(self, *, timeout: float = 30.0, tls_context: ssl.SSLContext | None = None) -> None:
        self._pool = SmtpPool(timeout=timeout, tls_context=tls_context)

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        """One attempt: primary, then the fallback when the primary is unavailable."""
        started = monotonic()
        if ctx.email is None:
            return Outcome(OutcomeKind.FAILED, error="the client has no e-mail configuration")
        if not target.email:
            return Outcome(OutcomeKind.FAILED, error="e-mail delivery needs an address")
        if content.get("text") is None and content.get("html") is None:
            return Outcome(OutcomeKind.FAILED, error="e-mail content needs text or html")
        outcome, try_fallback = await self._send_via(ctx.email.primary, target, content)
        outcome = replace(outcome, served_by="primary")
        if try_fallback and ctx.email.fallback is not None:
            first = outcome
            outcome, _ = await self._send_via(ctx.email.fallback, target, content)
            error = outcome.error
            if not outcome.delivered:
                error = f"{error}; primary: {first.error}"
            outcome = replace(outcome, served_by="fallback", error=error)
        return replace(outcome, duration_ms=(monotonic() - started) * 1000)

    async def _send_via(
        self, server: SmtpServer, target: DeliveryTarget, content: dict[str, Any]
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
        except (aiosmtplib.SMTPException, OSError) as exc:
            return _classify(exc)
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
        except (aiosmtplib.SMTPException, OSError) as exc:
            await _quietly_close(smtp)
            return _classify(exc)
        await self._pool.release(server, smtp)
        # aiosmtplib returns the DATA reply's text; its code is 250 or it would have raised.
        return Outcome(OutcomeKind.DELIVERED, response_code=250, reply=truncate_reply(reply)), False

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._pool.aclose()


def create(ctx: ChannelFactoryContext) -> EmailChannel:
    """Entry point `email`."""
    return EmailChannel(timeout=ctx.smtp_timeout_seconds)
