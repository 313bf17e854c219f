"""The HTTP client of the HTTP provider types (`webpush`, `fcm`, `twilio`): one aiohttp
session per provider type instance, every connection through the webhook address policy's guarded
connector (app/channels/ssrf.py), TLS verified against certifi's roots plus
PROVIDER_CA_FILE's."""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
import certifi

from app.channels.base import MAX_REPLY_BYTES, Outcome, OutcomeKind, truncate_reply
from app.channels.ssrf import (
    TargetRefused,
    TargetUnresolvable,
    guarded_connector,
    webhook_refusal,
)
from app.providers.base import ProviderFactoryContext, ProviderOutcome

USER_AGENT = "ChatAPI-Push/1.0"
# Connections one provider type keeps open, and its requests in flight at once.
MAX_CONNECTIONS = 100


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """certifi's roots, plus the CA certificates in `ca_file` when given."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class GuardedHttp:
    """A lazily built aiohttp session (it belongs to the loop it is made on, and provider
    types are built before the worker's loop runs)."""

    def __init__(self, *, allow_private: bool, timeout: float, ca_file: str | None) -> None:
        self.timeout = timeout
        self._allow_private = allow_private
        self._ca_file = ca_file
        self._session: aiohttp.ClientSession | None = None
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)

    @classmethod
    def from_context(cls, ctx: ProviderFactoryContext) -> GuardedHttp:
        """The client for a process running with `ctx`."""
        ca_file = ctx.settings.PROVIDER_CA_FILE if ctx.settings is not None else None
        return cls(
            allow_private=ctx.allow_private_targets,
            timeout=ctx.http_timeout_seconds,
            ca_file=ca_file,
        )

    def session(self) -> aiohttp.ClientSession:
        """The session (built on first use)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=guarded_connector(
                    allow_private=self._allow_private,
                    limit=MAX_CONNECTIONS,
                    ssl_context=tls_context(self._ca_file),
                ),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"user-agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # an environment proxy would connect for us, unchecked
            )
        return self._session

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def reply_of(text: str | None) -> str | None:
    """A response body as an outcome keeps it (at most MAX_REPLY_BYTES)."""
    return truncate_reply(text[: MAX_REPLY_BYTES * 2] if text else text)


def network_outcome(exc: BaseException, timeout: float) -> ProviderOutcome:
    """A request that got no HTTP answer, as an outcome: an address the policy refuses fails
    (and fails over: another provider's host may be allowed); an unresolvable host, a
    timeout or a connection error retries and fails over. Anything else is a bug: raised."""
    if isinstance(exc, TargetRefused):
        return ProviderOutcome(
            Outcome(OutcomeKind.FAILED, error=webhook_refusal(exc)), fail_over=True
        )
    if isinstance(exc, TargetUnresolvable):
        return ProviderOutcome(Outcome(OutcomeKind.RETRY, error=str(exc)), fail_over=True)
    if isinstance(exc, asyncio.TimeoutError):
        error = f"timeout: no answer within {timeout}s"
        return ProviderOutcome(Outcome(OutcomeKind.RETRY, error=error), fail_over=True)
    if isinstance(exc, aiohttp.ClientError):
        error = f"{type(exc).__name__}: {exc}"
        return ProviderOutcome(Outcome(OutcomeKind.RETRY, error=error), fail_over=True)
    raise exc
