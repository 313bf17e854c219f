"""Host allow-lists (SMTP_ALLOWED_HOSTS): entries, their validation and matching.

An entry is a host name (exact), `*.domain` (any name below the domain, not the domain
itself), an IP address or a network in CIDR form (for hosts configured as an IP literal).
Names compare case-insensitively without a root dot. A name is matched as configured, never
by what it resolves to: the address policy checks those separately.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def normalise_host(host: str) -> str:
    """Lower case, no IPv6 brackets, no root dot: the form allow-list entries compare to."""
    return host.strip().strip("[]").lower().rstrip(".")


def allow_list_entry(entry: str) -> str:
    """`entry` normalised, or ValueError: a host name, `*.domain`, an IP address or a network."""
    value = normalise_host(entry)
    try:
        ipaddress.ip_network(value, strict=False)
        return value
    except ValueError:
        pass
    name = value.removeprefix("*.")
    labels = name.split(".")
    if not name or any(not label or len(label) > 63 or not _ldh(label) for label in labels):
        raise ValueError(f"{entry!r} is not a host name, *.domain, IP address or network (CIDR)")
    return value


def _ldh(label: str) -> bool:
    # Letters, digits and hyphens (RFC 1123); an internationalised name is given as punycode.
    return label.isascii() and label.replace("-", "").isalnum()


def listed(host: str, entries: Iterable[str]) -> bool:
    """Whether `host` (as configured, not resolved) matches one of the allow-list `entries`."""
    host = normalise_host(host)
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    for entry in map(normalise_host, entries):
        if entry.startswith("*."):
            if literal is None and host.endswith(entry[1:]):
                return True
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if host == entry:
                return True
            continue
        if literal is not None and literal in network:
            return True
    return False
