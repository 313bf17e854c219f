"""The outbound-webhook SSRF guard: a target must resolve only to public addresses, and the
connection goes to an address that was checked (pinned), so DNS rebinding cannot redirect it.

`check_url` runs when an endpoint is created and before every new connection. The HTTP side is
`guarded_connector`: an aiohttp connector whose resolver resolves the host once per new
connection, checks every answer and hands aiohttp only checked addresses, and whose socket
factory checks the peer address once more right before connecting (this also covers an
IP-literal URL, for which aiohttp skips the resolver). The URL's host stays what TLS and HTTP
see (aiohttp sends SNI and verifies the certificate for the URL's host, and `Host` comes from
the URL), so only the socket's peer is pinned.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
import certifi
from aiohttp.connector import AddrInfoType, SocketFactoryType

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses the name resolves to; tests inject their own.
Resolver = Callable[[str, int], Awaitable[list[str]]]


# Instance-metadata services hand out cloud credentials, and the other well-known platform
# services beside them (DNS, time, the host agent) answer only the machine itself: refused
# even when private targets are allowed, since no intranet service legitimately lives there.
# Every link-local address (169.254/16, fe80::/10) is refused as well, listed or not.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Hetzner, Oracle …
        "169.254.169.253",  # AWS VPC DNS resolver
        "169.254.169.123",  # AWS time sync
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",  # AWS DNS over IPv6
        "fd00:ec2::123",  # AWS time sync over IPv6
        "fd20:ce::254",  # GCP metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure host agent (WireServer): a public address, same risk
    )
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# The deprecated IPv4-compatible form ::a.b.c.d (:: and ::1 themselves are not IPv4).
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class TargetRefused(Exception):
    """The target URL or one of its addresses is not allowed (a permanent condition).

    `private` is True when allowing private targets would accept it (loopback, RFC 1918 …),
    False when nothing would (link-local, metadata, a malformed URL), so a message can say
    whether the operator's switch is the way out. `category` is the kind of address refused
    (`refusal_category`), None when the URL itself was refused.
    """

    def __init__(self, message: str, *, private: bool = False, category: str | None = None):
        super().__init__(message)
        self.private = private
        self.category = category


# What a webhook refusal adds, so the tenant (and the operator reading the 422 or the
# attempt's error) knows whether the switch is the way out; SMTP has its own (smtp_target).
WEBHOOK_PRIVATE_HINT = "private targets, loopback included, need WEBHOOK_ALLOW_PRIVATE_TARGETS=true"
WEBHOOK_ALWAYS_HINT = "never allowed, whatever WEBHOOK_ALLOW_PRIVATE_TARGETS says"


def webhook_refusal(exc: TargetRefused) -> str:
    """The refusal of a webhook target as the tenant sees it: why, and which setting decides
    (no setting for a malformed URL)."""
    if exc.category is None:
        return str(exc)
    return f"{exc} ({WEBHOOK_PRIVATE_HINT if exc.private else WEBHOOK_ALWAYS_HINT})"


class TargetUnresolvable(Exception):
    """The target's host name did not resolve (possibly transient)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every A/AAAA answer for `host`, via the loop's getaddrinfo (a thread, never blocking)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetUnresolvable(f"cannot resolve {host!r}: {exc}") from None
    except UnicodeError:
        # The name cannot even be encoded for DNS (a label over 63 characters, …).
        raise TargetUnresolvable(f"cannot resolve {host!r}: not a valid DNS name") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # IPv6 forms that carry an IPv4 address the packets may end up at.
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip))
    return None


def _plain(ip: IPAddress | str) -> IPAddress:
    return ipaddress.ip_address(str(ip).split("%", 1)[0])  # fe80::1%eth0 is still fe80::1


def refusal_reason(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why `ip` may not be an outbound target (webhook or SMTP), or None when it may.

    Names the IPv4 address an IPv6 form wraps: only for an address the tenant typed; for the
    answers of a name, `refusal_category`."""
    ip = _plain(ip)
    category = refusal_category(ip, allow_private=allow_private)
    inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if category is None or inner is None or ip in METADATA_ADDRESSES:
        return category
    return f"an IPv6 form of {inner} ({category})"


def refusal_category(ip: IPAddress, *, allow_private: bool) -> str | None:
    """The kind of address `ip` is when refused (loopback, private, link-local, a cloud
    metadata address, …), naming no address, or None when it may be a target."""
    ip = _plain(ip)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return refusal_category(inner, allow_private=allow_private)
    if ip.is_link_local:
        # Checked before the private switch: link-local is the machine's own segment, where
        # the platform's services answer, never a self-hosted intranet server.
        return "link-local"
    if allow_private:
        return None
    for reason, hit in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
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
        category = refusal_category(ip, allow_private=allow_private)
        if category is None:
            continue
        private = refusal_category(ip, allow_private=True) is None
        # A literal is echoed (the tenant typed it); a name's answers never are, or refusals
        # would tell a tenant what internal names resolve to: only the kind of address.
        reason = (
            refusal_reason(ip, allow_private=allow_private) if literal is not None else category
        )
        raise TargetRefused(f"target {host} is {reason}", private=private, category=category)
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


class PinnedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver for webhook connections: resolves once per new connection, checks
    every answer (`check_host`) and hands aiohttp only checked addresses to connect to."""

    def __init__(self, *, allow_private: bool, resolver: Resolver | None = None) -> None:
        self._allow_private = allow_private
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        """The checked addresses of `host`; raises TargetRefused / TargetUnresolvable."""
        addresses = await check_host(
            host, port, allow_private=self._allow_private, resolver=self._resolver
        )
        return [_resolved(host, address, port) for address in addresses]

    async def close(self) -> None:
        """Nothing to release."""


def _resolved(host: str, address: str, port: int) -> aiohttp.abc.ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {
        "hostname": host,  # what TLS verifies and SNI names
        "host": address,  # where the socket connects
        "port": port,
        "family": family,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    }


def guarded_socket_factory(allow_private: bool) -> SocketFactoryType:
    """A socket factory that refuses to make a socket for a refused peer address.

    aiohttp skips the resolver for an IP-literal URL; this check sits at the last step
    before every connect, so a literal is checked too (a resolved name was checked already).
    """

    def make(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        ip = _plain(str(sockaddr[0]))
        category = refusal_category(ip, allow_private=allow_private)
        if category is not None:
            # Not the address: this factory cannot tell a typed literal from a name's answer.
            private = refusal_category(ip, allow_private=True) is None
            raise TargetRefused(
                f"the target's address is {category}", private=private, category=category
            )
        return socket.socket(family=family, type=type_, proto=proto)

    return make


def guarded_connector(
    *,
    allow_private: bool,
    limit: int,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> aiohttp.TCPConnector:
    """An aiohttp connector whose every new connection goes to a checked address.

    No DNS cache (each new connection resolves and checks again; kept-alive connections are
    reused), at most `limit` connections, all kept alive while idle, TLS verified against
    certifi's roots for the URL's host name. Build it on the loop that will use it.
    """
    return aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=0,
        use_dns_cache=False,
        resolver=PinnedResolver(allow_private=allow_private, resolver=resolver),
        socket_factory=guarded_socket_factory(allow_private),
        ssl=ssl_context or ssl.create_default_context(cafile=certifi.where()),
    )
