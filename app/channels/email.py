"""The e-mail channel: one message per delivery through the client's SMTP server (aiosmtplib).

SMTP 2xx delivers, 4xx and a refused/timed-out connection retry, 5xx and a configuration that
cannot work fail for good (app/channels/smtp_errors.py). When the primary refuses the
connection, times out or answers 4xx and a fallback server is configured, the same attempt
goes through the fallback; `Outcome.served_by` says which one answered. Every new connection
goes to an address the SMTP target policy checked (app/channels/smtp_target.py). Connections
are pooled per server configuration within the worker's event loop (app/channels/smtp_pool.py),
so a burst of e-mails does not pay a TCP + TLS + AUTH handshake each, and a message's
common part is rendered once per content (app/channels/smtp_message.py).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
from app.channels.smtp_errors import SMTP_FAILURES, classify
from app.channels.smtp_message import MessageCache, build_message  # noqa: F401 (re-exported)
from app.channels.smtp_pool import MAX_CONNECTIONS_PER_SERVER, PoolBusy, SmtpPool
from app.channels.smtp_target import SmtpTargetPolicy
from app.core.clock import monotonic
from app.core.crypto import SecretBoxError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# A send that found every pooled session busy is deferred (ours, no attempt) for this long.
POOL_BUSY_RETRY_SECONDS = 5.0


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
        max_connections: int = MAX_CONNECTIONS_PER_SERVER,
        pool_wait_seconds: float | None = None,
        configs: EmailConfigs | None = None,
    ) -> None:
        self._configs = configs
        # No policy given: the default one, which refuses private targets.
        self._pool = SmtpPool(
            timeout=timeout,
            targets=targets or SmtpTargetPolicy(),
            tls_context=tls_context,
            max_connections=max_connections,
            wait_seconds=pool_wait_seconds,
        )
        self._messages = MessageCache()

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
            message = self._messages.prepare(
                server, target.email, content, f"<{target.delivery_id}@{domain}>"
            )
        except (ValueError, TypeError) as exc:
            # E.g. a line break in a header (header injection): the content can never be sent.
            return Outcome(OutcomeKind.FAILED, error=f"invalid e-mail content: {exc}"), False
        try:
            smtp, reused = await self._pool.acquire(server)
        except PoolBusy as exc:
            # Our own limit: given back unspent, not tried on the fallback.
            return Outcome(
                OutcomeKind.DEFER, retry_after=POOL_BUSY_RETRY_SECONDS, error=str(exc)
            ), False
        except SMTP_FAILURES as exc:
            return classify(exc)
        try:
            try:
                reply = await message.send(smtp)
            except SMTP_FAILURES as exc:
                if not (reused and _stale(exc)):
                    raise
                # A pooled session the server had dropped: our pool's fault, so a fresh
                # session, once, within the same attempt.
                smtp = await self._pool.reopen(server, smtp)
                reply = await message.send(smtp)
        except SMTP_FAILURES as exc:
            self._after_refusal(server, smtp, exc)
            return classify(exc)
        except BaseException:
            # Cancelled (the attempt's time ran out) or a bug: the slot must come back.
            self._pool.discard(server, smtp)
            raise
        self._pool.release(server, smtp)
        # aiosmtplib returns the DATA reply's text; its code is 250 or it would have raised.
        return Outcome(OutcomeKind.DELIVERED, response_code=250, reply=truncate_reply(reply)), False

    def _after_refusal(self, server: SmtpServer, smtp: aiosmtplib.SMTP, exc: BaseException) -> None:
        """Keep a session that refused one message (a bad recipient must not cost the next
        message a handshake; aiosmtplib has already sent RSET); anything else is closed."""
        refused = isinstance(exc, aiosmtplib.SMTPRecipientsRefused) or (
            isinstance(exc, aiosmtplib.SMTPResponseException)
            and 400 <= exc.code <= 599
            and exc.code != 421  # "closing the channel"
        )
        if refused and smtp.is_connected:
            self._pool.release(server, smtp)
        else:
            self._pool.discard(server, smtp)

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


def _stale(exc: BaseException) -> bool:
    """Whether a failure on a reused session says only that the session was gone."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == 421  # the server closed it (idle timeout) and said so
    return isinstance(exc, (aiosmtplib.SMTPServerDisconnected, ConnectionError))
