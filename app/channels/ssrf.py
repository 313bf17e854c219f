"""The outbound-webhook SSRF guard: a target must resolve only to public addresses, and the
connection goes to an address that was checked (pinned), so DNS rebinding cannot redirect it.

`check_url` runs when an endpoint is created and before every new connection. The HTTP side is
`GuardedTransport`: an httpx transport whose network backend resolves the host once, checks
every answer, and connects to a checked address. The URL's host stays what TLS and HTTP see
(httpcore sends SNI and verifies the certificate for the origin's host, and `Host` comes from the
URL), so only the socket's peer is pinned.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import certifi
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses the name resolves to; tests inject their own.
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Instance-metadata services hand out cloud credentials: refused even when private targets are
# allowed, since no intranet webhook legitimately lives there.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean …
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(Exception):
    """The target URL or one of its addresses is not allowed (a permanent condition)."""


class TargetUnresolvable(Exception):
    """The target's host name did not resolve (possibly transient)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every A/AAAA answer for `host`, via the loop's getaddrinfo (a thread, never blocking)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetUnresolvable(f"cannot resolve {host!r}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # IPv6 forms that carry an IPv4 address the packets may end up at.
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal_reason(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why `ip` may not be a webhook target, or None when it may."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = refusal_reason(inner, allow_private=allow_private)
            return f"an IPv6 form of {inner} ({reason})" if reason else None
    if allow_private:
        return None
    for reason, hit in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if hit:
            return reason
    # Whatever else is not globally routable (CGNAT 100.64/10, documentation ranges, …).
    return None if ip.is_global else "not globally routable"


async def check_host(
    host: str, port: int, *, allow_private: bool, resolver: Resolver | None = None
) -> list[str]:
    """The addresses of `host` to connect to, all checked; raises TargetRefused when any
    answer is refused (one bad answer is enough: a rebinding name mixes good and bad)."""
    host = host.strip("[]")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    addresses = [host] if literal is not None else await (resolver or system_resolver)(host, port)
    if not addresses:
        raise TargetUnresolvable(f"{host!r} has no addresses")
    for address in addresses:
        ip = ipaddress.ip_address(address)
        reason = refusal_reason(ip, allow_private=allow_private)
        if reason is not None:
            shown = host if literal is not None else f"{host} ({address})"
            raise TargetRefused(f"target {shown} is {reason}")
    return addresses


async def check_url(
    url: str, allow_private: bool, *, resolver: Resolver | None = None
) -> list[str]:
    """Check a webhook URL (scheme, host, every address); return the pinned addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("a webhook URL must be http:// or https://")
    if not parts.hostname:
        raise TargetRefused("a webhook URL needs a host")
    if parts.username or parts.password:
        raise TargetRefused("a webhook URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("a webhook URL has an invalid port") from None
    return await check_host(parts.hostname, port, allow_private=allow_private, resolver=resolver)


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks once per new connection, then connects to a checked address."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first checked address of `host` that accepts."""
        try:
            addresses = await asyncio.wait_for(
                check_host(host, port, allow_private=self._allow_private, resolver=self._resolver),
                timeout,
            )
        except asyncio.TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: a webhook cannot target a local socket."""
        raise TargetRefused("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        """Delegate (used by httpcore's connect retries)."""
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every new connection goes through PinnedNetworkBackend.

    No proxies (an environment proxy would connect on our behalf, unchecked) and HTTP/1.1.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver | None = None,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        context = ssl_context or ssl.create_default_context(cafile=certifi.where())
        super().__init__(verify=context, trust_env=False, limits=limits)
        # httpx builds its pool without a network-backend hook; this one is the same pool
        # (same options as above) with the pinned backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedNetworkBackend(allow_private=allow_private, resolver=resolver),
        )
