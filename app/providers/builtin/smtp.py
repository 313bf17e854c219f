"""The `smtp` provider type: one SMTP server (aiosmtplib) behind the `email` channel.

What the e-mail channel used to do itself, behind `ProviderType.send`: every new connection
goes to an address the SMTP target policy checked (app/channels/smtp_target.py), sessions
are pooled per server within the event loop (app/channels/smtp_pool.py), a message's common
part is rendered once per content (app/channels/smtp_message.py), and a failure is
classified (app/channels/smtp_errors.py): 2xx delivers, 4xx and a refused or timed-out
connection retry, 5xx and a configuration that cannot work fail for good.

Fail-over (the next provider of the chain takes the message in the same attempt) is for
what is the server's fault: it could not be reached, timed out, answered 4xx, or a session
could not be opened at all (TLS, AUTH, not an SMTP server, a refused address). A 5xx about
the message or its recipient does not fail over: another server would refuse it too.
"""

from __future__ import annotations

import asyncio
import builtins
import re
import ssl
from collections.abc import Sequence
from typing import Literal

import aiosmtplib
from pydantic import EmailStr, Field, SecretStr, field_validator

from app.channels.base import Outcome, OutcomeKind, SmtpServer, truncate_reply
from app.channels.smtp_errors import SMTP_FAILURES, classify
from app.channels.smtp_message import MessageCache
from app.channels.smtp_pool import MAX_CONNECTIONS_PER_SERVER, PoolBusy, SmtpPool
from app.channels.smtp_target import SmtpTargetPolicy
from app.core.clock import utcnow
from app.core.ids import new_id
from app.providers.base import (
    BaseProviderType,
    ProviderAccount,
    ProviderCheckFailed,
    ProviderFactoryContext,
    ProviderMessage,
    ProviderOutcome,
    ProviderSettings,
)

# A send that found every pooled session busy is deferred (ours, no attempt) for this long.
POOL_BUSY_RETRY_SECONDS = 5.0
# Messages one `send` call carries; each goes over a pooled session (at most
# MAX_CONNECTIONS_PER_SERVER at once), so this only bounds one call's list.
MAX_BATCH = 100
TEST_SUBJECT = "ChatAPI test e-mail"
TEST_TEXT = (
    "This message was sent to check the SMTP provider's configuration.\n"
    "If you can read it, e-mail notifications can be delivered.\n"
)
# A host name (RFC 1123 labels) or an IPv4/IPv6 literal; nothing that could smuggle a line.
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^[0-9A-Fa-f:.]+$")


def _no_control(value: str | None) -> str | None:
    # CR/LF in a header or an SMTP command is header/command injection.
    if value is not None and any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ValueError("must not contain line breaks or control characters")
    return value


class SmtpSettings(ProviderSettings):
    """An SMTP server and the sender used through it (the `/email-config` fields)."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(strict=True, ge=1, le=65535)
    username: str | None = Field(default=None, max_length=320)
    password: SecretStr | None = Field(default=None, max_length=512)
    security: Literal["none", "starttls", "tls"] = "starttls"
    from_email: EmailStr
    from_name: str | None = Field(default=None, max_length=200)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST.match(value):
            raise ValueError("must be a host name or an IP address")
        return value

    @field_validator("username", "from_name")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return _no_control(value)

    @field_validator("password")
    @classmethod
    def _clean_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _no_control(value.get_secret_value())
        return value

    def server(self) -> SmtpServer:
        """The channel-level server description (password opened)."""
        return SmtpServer(
            host=self.host,
            port=self.port,
            from_email=str(self.from_email),
            username=self.username,
            password=self.password.get_secret_value() if self.password else None,
            security=self.security,
            from_name=self.from_name,
        )


class SmtpProviderType(BaseProviderType):
    """Sends each message over a pooled session to the account's server."""

    type = "smtp"
    channel = "email"
    settings_model: builtins.type[ProviderSettings] = SmtpSettings
    max_batch = MAX_BATCH

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        targets: SmtpTargetPolicy | None = None,
        tls_context: ssl.SSLContext | None = None,
        max_connections: int = MAX_CONNECTIONS_PER_SERVER,
        pool_wait_seconds: float | None = None,
        test_timeout: float = 15.0,
    ) -> None:
        # No policy given: the default one, which refuses private targets.
        self._targets = targets or SmtpTargetPolicy()
        self._tls_context = tls_context
        self._test_timeout = test_timeout
        self._pool = SmtpPool(
            timeout=timeout,
            targets=self._targets,
            tls_context=tls_context,
            max_connections=max_connections,
            wait_seconds=pool_wait_seconds,
        )
        self._messages = MessageCache()

    async def send(
        self, account: ProviderAccount, messages: Sequence[ProviderMessage]
    ) -> list[ProviderOutcome]:
        """Each message over the server's pool, concurrently (the pool bounds sessions)."""
        settings = account.settings
        assert isinstance(settings, SmtpSettings)
        server = settings.server()
        return list(
            await asyncio.gather(*(self._send_one(self._pool, server, m) for m in messages))
        )

    async def _send_one(
        self, pool: SmtpPool, server: SmtpServer, message: ProviderMessage
    ) -> ProviderOutcome:
        domain = server.from_email.rpartition("@")[2] or "chatapi.invalid"
        # Stable across retries, so a receiving system can recognise a re-sent message.
        message_id = f"<{message.delivery_id}@{domain}>"
        try:
            prepared = self._messages.prepare(
                server, message.address, dict(message.content), message_id
            )
        except (ValueError, TypeError) as exc:
            # E.g. a line break in a header (header injection): the content can never be sent.
            return ProviderOutcome(
                Outcome(OutcomeKind.FAILED, error=f"invalid e-mail content: {exc}")
            )
        try:
            smtp, reused = await pool.acquire(server)
        except PoolBusy as exc:
            # Our own limit: given back unspent, not tried on the next provider.
            return ProviderOutcome(
                Outcome(OutcomeKind.DEFER, retry_after=POOL_BUSY_RETRY_SECONDS, error=str(exc))
            )
        except SMTP_FAILURES as exc:
            # No session at all: unreachable, or configured so that it cannot work (TLS,
            # AUTH, a refused address): the server's fault, the next provider may deliver.
            outcome, _ = classify(exc)
            return ProviderOutcome(outcome, fail_over=True)
        try:
            try:
                reply = await prepared.send(smtp)
            except SMTP_FAILURES as exc:
                if not (reused and _stale(exc)):
                    raise
                # A pooled session the server had dropped: our pool's fault, so a fresh
                # session, once, within the same attempt.
                smtp = await pool.reopen(server, smtp)
                reply = await prepared.send(smtp)
        except SMTP_FAILURES as exc:
            _after_refusal(pool, server, smtp, exc)
            outcome, transient = classify(exc)
            # A 4xx, a timeout or a dropped session fails over; a 5xx about the message or
            # its recipient does not (another server would refuse it too).
            return ProviderOutcome(outcome, fail_over=transient)
        except BaseException:
            # Cancelled (the attempt's time ran out) or a bug: the slot must come back.
            pool.discard(server, smtp)
            raise
        pool.release(server, smtp)
        # aiosmtplib returns the DATA reply's text; its code is 250 or it would have raised.
        return ProviderOutcome(
            Outcome(OutcomeKind.DELIVERED, response_code=250, reply=truncate_reply(reply)),
            provider_message_id=message_id,
        )

    async def check(self, account: ProviderAccount, to: str | None) -> str:
        """Open a session (TLS and AUTH as configured) on a connection of its own; with `to`,
        send a test message through it."""
        settings = account.settings
        assert isinstance(settings, SmtpSettings)
        server = settings.server()
        # Its own pool: a test must not wait behind deliveries, nor leave a session behind.
        pool = SmtpPool(
            timeout=self._test_timeout, targets=self._targets, tls_context=self._tls_context
        )
        try:
            if to is None:
                try:
                    smtp, _ = await pool.acquire(server)
                except SMTP_FAILURES as exc:
                    raise ProviderCheckFailed(_reason(classify(exc)[0])) from None
                pool.release(server, smtp)
                login = " and logged in" if server.username else ""
                return f"connected to {server.host}:{server.port}{login}"
            message = ProviderMessage(
                delivery_id=f"test-{new_id()}",
                notification_id="test",
                client_id=account.client_id,
                address=to,
                content={"subject": TEST_SUBJECT, "text": TEST_TEXT},
                created_at=utcnow(),
            )
            answer = await self._send_one(pool, server, message)
            if not answer.outcome.delivered:
                raise ProviderCheckFailed(_reason(answer.outcome))
            reply = answer.outcome.reply or ""
            return f"sent a test message to {to}: 250 {reply}".strip()
        finally:
            await pool.aclose()

    async def aclose(self) -> None:
        """Close pooled sessions."""
        await self._pool.aclose()


def _reason(outcome: Outcome) -> str:
    if outcome.response_code is not None and outcome.reply:
        return f"{outcome.error}: {outcome.reply}"
    return outcome.error or outcome.kind.value


def _after_refusal(
    pool: SmtpPool, server: SmtpServer, smtp: aiosmtplib.SMTP, exc: BaseException
) -> None:
    """Keep a session that refused one message (a bad recipient must not cost the next
    message a handshake; aiosmtplib has already sent RSET); anything else is closed."""
    refused = isinstance(exc, aiosmtplib.SMTPRecipientsRefused) or (
        isinstance(exc, aiosmtplib.SMTPResponseException)
        and 400 <= exc.code <= 599
        and exc.code != 421  # "closing the channel"
    )
    if refused and smtp.is_connected:
        pool.release(server, smtp)
    else:
        pool.discard(server, smtp)


def _stale(exc: BaseException) -> bool:
    """Whether a failure on a reused session says only that the session was gone."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == 421  # the server closed it (idle timeout) and said so
    return isinstance(exc, (aiosmtplib.SMTPServerDisconnected, ConnectionError))


def create(ctx: ProviderFactoryContext) -> SmtpProviderType:
    """Entry point `smtp`: the process's SMTP settings (timeout, target policy)."""
    settings = ctx.settings
    if settings is None:
        return SmtpProviderType()
    return SmtpProviderType(
        timeout=settings.SMTP_TIMEOUT_SECONDS,
        targets=SmtpTargetPolicy.from_settings(settings),
        test_timeout=settings.EMAIL_TEST_TIMEOUT_SECONDS,
    )
