"""Where a tenant's SMTP connection may go, and a socket connected only there.

A tenant chooses its SMTP host, so without a policy `PUT /email-config` + `POST
/email-config/test` would connect anywhere the relay can reach (loopback services, the
intranet, cloud metadata) and report what answered. The webhook address policy
(app/channels/ssrf.py) applies with its own operator switch, SMTP_ALLOW_PRIVATE_TARGETS (a
self-hosted relay on a private address is legitimate), plus an optional SMTP_ALLOWED_HOSTS
allow-list. Every address a name resolves to is checked (one bad answer refuses the host),
when the configuration is saved and again before every new connection, and the socket is
connected to a checked address: the client never resolves the name again (DNS rebinding).
The configured name stays what TLS sends as SNI and verifies the certificate against.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.channels.ssrf import Resolver, TargetRefused, TargetUnresolvable, check_host
from app.core.host_list import listed

if TYPE_CHECKING:
    from app.core.config import Settings

PRIVATE_HINT = "private SMTP servers, loopback included, need SMTP_ALLOW_PRIVATE_TARGETS=true"
ALWAYS_HINT = "never allowed, whatever SMTP_ALLOW_PRIVATE_TARGETS says"
RESOLVE_HINT = (
    "an SMTP host must resolve, so that every address can be checked against "
    "SMTP_ALLOW_PRIVATE_TARGETS"
)


class SmtpUnreachable(Exception):
    """No checked address of the host accepted a connection in time (transient)."""


@dataclass(frozen=True, slots=True)
class SmtpTargetPolicy:
    """The operator's rule for SMTP hosts: private addresses or not, and which hosts at all
    (empty `allowed_hosts`: any host the address policy accepts)."""

    allow_private: bool = False
    allowed_hosts: tuple[str, ...] = ()
    resolver: Resolver | None = None  # tests inject theirs; None: the system's

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpTargetPolicy:
        """The policy of a process running with `settings`."""
        return cls(
            allow_private=settings.SMTP_ALLOW_PRIVATE_TARGETS,
            allowed_hosts=tuple(settings.SMTP_ALLOWED_HOSTS),
        )

    async def check(self, host: str, port: int, *, timeout: float = 5.0) -> list[str]:
        """The addresses of `host` to connect to, every one checked.

        Raises TargetRefused (permanent; the message says why and which setting decides) or
        TargetUnresolvable (possibly transient), also when resolving takes over `timeout`.
        """
        if self.allowed_hosts and not listed(host, self.allowed_hosts):
            raise TargetRefused(f"SMTP host {host} is not in SMTP_ALLOWED_HOSTS")
        try:
            return await asyncio.wait_for(
                check_host(host, port, allow_private=self.allow_private, resolver=self.resolver),
                timeout,
            )
        except TargetRefused as exc:
            hint = PRIVATE_HINT if exc.private else ALWAYS_HINT
            raise TargetRefused(
                f"SMTP {exc} ({hint})", private=exc.private, category=exc.category
            ) from None
        except TargetUnresolvable as exc:
            raise TargetUnresolvable(f"{exc} ({RESOLVE_HINT})") from None
        except asyncio.TimeoutError:
            raise TargetUnresolvable(
                f"resolving {host!r} took over {timeout:g}s ({RESOLVE_HINT})"
            ) from None


async def open_socket(host: str, addresses: list[str], port: int, timeout: float) -> socket.socket:
    """A socket connected to the first of the checked `addresses` that accepts within
    `timeout` (all of them together); SmtpUnreachable when none does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    problem = "connection refused"
    for address in addresses:
        left = deadline - loop.time()
        if left <= 0:
            break
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (address, port)), left)
        except asyncio.TimeoutError:
            sock.close()
            problem = f"no answer within {timeout:g}s"
        except OSError as exc:
            sock.close()
            problem = exc.strerror or type(exc).__name__
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    raise SmtpUnreachable(f"cannot connect to {host}:{port}: {problem.lower()}")
