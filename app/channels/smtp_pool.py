"""SMTP connections pooled per server configuration, bounded, within one event loop.

A burst of e-mails to one server must not pay a TCP + TLS + AUTH handshake each, nor open one
connection per concurrent delivery (servers limit connections per client, and a pool that
keeps only a few idle ones would close and reopen the rest every batch). So each server gets
at most `max_connections` sessions, open and kept between messages and batches; a send beyond
that waits for a session to come back, for a bounded time (`PoolBusy` after it: our limit,
the caller defers). A session idle too long, or found closed by the server, is dropped, not
trusted; the caller retries a send that failed on a reused session once on a fresh one.

Every new connection goes to an address the SMTP target policy checked (smtp_target.py).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import aiosmtplib

from app.channels.base import SmtpServer
from app.channels.smtp_errors import SmtpConfigError
from app.channels.smtp_target import SmtpTargetPolicy, open_socket
from app.core.clock import monotonic

NO_STARTTLS = (
    'the server does not offer STARTTLS: use security "none" for a server without TLS '
    '(a local catcher such as Mailpit on port 1025) or "tls" for TLS from the first byte '
    "(port 465)"
)
NO_AUTH = (
    "the server does not offer AUTH: remove username and password, or connect with "
    'security "starttls" or "tls" if it offers AUTH only over TLS'
)
# Sessions one worker loop holds per server: enough to overlap round trips (aiosmtplib does
# not pipeline), few enough for a server's per-client connection limit (often 10-50).
MAX_CONNECTIONS_PER_SERVER = 10


class PoolBusy(Exception):
    """Every session to the server stayed in use for the whole wait (ours, not the server's)."""


@dataclass(slots=True)
class _Idle:
    smtp: aiosmtplib.SMTP
    since: float


@dataclass(slots=True)
class _Server:
    slots: asyncio.Semaphore
    idle: list[_Idle] = field(default_factory=list)


class SmtpPool:
    """At most `max_connections` sessions per server configuration; idle ones reused, newest
    first (the oldest are the likeliest to have been closed by the server)."""

    def __init__(
        self,
        *,
        timeout: float,
        targets: SmtpTargetPolicy,
        max_connections: int = MAX_CONNECTIONS_PER_SERVER,
        max_idle_seconds: float = 60.0,
        tls_context: ssl.SSLContext | None = None,
        wait_seconds: float | None = None,
    ):
        self._timeout = timeout
        self._targets = targets
        # None: the system's trust store with hostname checks (aiosmtplib's default).
        self._tls_context = tls_context
        self._max_connections = max_connections
        self._max_idle_seconds = max_idle_seconds
        # The wait for a free session leaves the attempt time to connect and send.
        self._wait_seconds = timeout / 2 if wait_seconds is None else wait_seconds
        self._servers: dict[SmtpServer, _Server] = {}

    def _server(self, server: SmtpServer) -> _Server:
        pool = self._servers.get(server)
        if pool is None:
            pool = self._servers[server] = _Server(asyncio.Semaphore(self._max_connections))
        return pool

    async def acquire(self, server: SmtpServer) -> tuple[aiosmtplib.SMTP, bool]:
        """A connected session for `server` and whether it was reused; hand it back with
        `release` or `discard`. Raises PoolBusy, or what opening a connection raises."""
        pool = self._server(server)
        try:
            await asyncio.wait_for(pool.slots.acquire(), self._wait_seconds)
        except asyncio.TimeoutError:
            raise PoolBusy(
                f"all {self._max_connections} SMTP connections to {server.host} are busy"
            ) from None
        try:
            while pool.idle:
                entry = pool.idle.pop()
                if entry.smtp.is_connected and monotonic() - entry.since < self._max_idle_seconds:
                    return entry.smtp, True
                await _quietly_close(entry.smtp)
            return await self._open(server), False
        except BaseException:
            pool.slots.release()
            raise

    async def reopen(self, server: SmtpServer, smtp: aiosmtplib.SMTP) -> aiosmtplib.SMTP:
        """A fresh session in place of `smtp`, which failed under us (closed here), on the
        same slot; if opening fails, the slot is still held: `discard` the old one."""
        smtp.close()  # it is broken: no QUIT
        return await self._open(server)

    def release(self, server: SmtpServer, smtp: aiosmtplib.SMTP) -> None:
        """Hand a session back for reuse (a closed one is dropped)."""
        pool = self._servers.get(server)
        if pool is None:  # the pool was closed meanwhile
            smtp.close()
            return
        if smtp.is_connected:
            pool.idle.append(_Idle(smtp, monotonic()))
        pool.slots.release()

    def discard(self, server: SmtpServer, smtp: aiosmtplib.SMTP) -> None:
        """Close a session that must not be reused (broken, or its attempt cancelled: no
        QUIT) and free its slot."""
        smtp.close()
        pool = self._servers.get(server)
        if pool is not None:
            pool.slots.release()

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

    async def aclose(self) -> None:
        """Close every idle session."""
        servers, self._servers = self._servers, {}
        for pool in servers.values():
            for entry in pool.idle:
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
