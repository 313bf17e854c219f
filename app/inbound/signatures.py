"""Signature schemes of inbound webhooks: one verifier per scheme.

Pure functions over the raw body bytes, the request headers (lower-case names), the
hook's valid secrets (current, and the previous one during a rotation's grace) and `now`.
Each returns the event's dedupe key (None when the sender gives none) or raises
SignatureInvalid. Every comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

SECRET_PREFIX = "whsec_"
# Dedupe keys longer than the column are hashed (stable, and still unique in practice).
MAX_DEDUPE_KEY = 255


class SignatureInvalid(Exception):
    """The request is not signed by the hook's secret (or misses what the scheme needs)."""


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _any_equal(expected: Sequence[bytes], given: Sequence[bytes]) -> bool:
    # Compare every pair, without an early exit, so timing says nothing about which matched.
    matched = False
    for e in expected:
        for g in given:
            matched |= hmac.compare_digest(e, g)
    return matched


def _check_timestamp(raw: str, now: datetime, tolerance: float) -> int:
    try:
        timestamp = int(raw)
    except ValueError:
        raise SignatureInvalid("the signature timestamp is not an integer") from None
    if abs(now.timestamp() - timestamp) > tolerance:
        raise SignatureInvalid(f"the signature timestamp is outside the {tolerance:g} s tolerance")
    return timestamp


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name.lower())
    if not value:
        raise SignatureInvalid(f"missing header {name}")
    return value


def dedupe_key(value: str | None) -> str | None:
    """The value bounded to the column: long keys become their SHA-256."""
    if value is None or value == "":
        return None
    if len(value) > MAX_DEDUPE_KEY:
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def _body_field(body: bytes, path: str) -> str | None:
    """The body's JSON field at a dotted `path` as a string, or None."""
    try:
        value: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    return None


def standard_webhooks(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: datetime,
    options: Mapping[str, Any],
) -> str | None:
    """Standard Webhooks: HMAC-SHA256 over `{id}.{timestamp}.{body}` with the base64 key of
    `whsec_…`; `webhook-signature` lists `v1,<base64>` entries (any may match)."""
    msg_id = _header(headers, "webhook-id")
    timestamp = _check_timestamp(
        _header(headers, "webhook-timestamp"), now, float(options["tolerance_seconds"])
    )
    given = []
    for entry in _header(headers, "webhook-signature").split():
        version, _, signature = entry.partition(",")
        if version == "v1":
            try:
                given.append(base64.b64decode(signature, validate=True))
            except binascii.Error:
                continue
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = []
    for secret in secrets:
        try:
            key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error:
            continue
        expected.append(_hmac(key, signed))
    if not given or not _any_equal(expected, given):
        raise SignatureInvalid("no webhook-signature matches")
    return dedupe_key(msg_id)


def github(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: datetime,
    options: Mapping[str, Any],
) -> str | None:
    """GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, the secret's
    bytes as key; dedupe by `X-GitHub-Delivery`."""
    scheme, _, hex_digest = _header(headers, "x-hub-signature-256").partition("=")
    try:
        given = bytes.fromhex(hex_digest)
    except ValueError:
        raise SignatureInvalid("X-Hub-Signature-256 is not sha256=<hex>") from None
    if scheme != "sha256" or not _any_equal([_hmac(s.encode(), body) for s in secrets], [given]):
        raise SignatureInvalid("X-Hub-Signature-256 does not match")
    return dedupe_key(headers.get("x-github-delivery"))


def stripe(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: datetime,
    options: Mapping[str, Any],
) -> str | None:
    """Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`, HMAC-SHA256 of `{t}.{body}`
    with the secret's bytes; dedupe by the body's `id`."""
    timestamp_raw = None
    given = []
    for item in _header(headers, "stripe-signature").split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamp_raw = value
        elif name == "v1":
            try:
                given.append(bytes.fromhex(value))
            except ValueError:
                continue
    if timestamp_raw is None or not given:
        raise SignatureInvalid("Stripe-Signature lacks t= or v1=")
    timestamp = _check_timestamp(timestamp_raw, now, float(options["tolerance_seconds"]))
    signed = f"{timestamp}.".encode() + body
    if not _any_equal([_hmac(s.encode(), signed) for s in secrets], given):
        raise SignatureInvalid("no Stripe-Signature v1 matches")
    return dedupe_key(_body_field(body, "id"))


def hmac_sha256(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: datetime,
    options: Mapping[str, Any],
) -> str | None:
    """A plain HMAC-SHA256 of the body in a configurable header (hex or base64, optional
    prefix such as `sha256=`); dedupe by a configurable header or body field."""
    header = str(options.get("header") or "X-Signature")
    raw = _header(headers, header).strip()
    prefix = str(options.get("prefix") or "")
    if prefix:
        if not raw.startswith(prefix):
            raise SignatureInvalid(f"{header} does not start with {prefix!r}")
        raw = raw[len(prefix) :]
    try:
        if options.get("encoding", "hex") == "base64":
            given = base64.b64decode(raw, validate=True)
        else:
            given = bytes.fromhex(raw)
    except (ValueError, binascii.Error):
        raise SignatureInvalid(
            f"{header} is not a {options.get('encoding', 'hex')} digest"
        ) from None
    if not _any_equal([_hmac(s.encode(), body) for s in secrets], [given]):
        raise SignatureInvalid(f"{header} does not match")
    if options.get("dedupe_header"):
        return dedupe_key(headers.get(str(options["dedupe_header"]).lower()))
    if options.get("dedupe_field"):
        return dedupe_key(_body_field(body, str(options["dedupe_field"])))
    return None


Verifier = Callable[
    [bytes, Mapping[str, str], Sequence[str], datetime, Mapping[str, Any]], "str | None"
]

VERIFIERS: dict[str, Verifier] = {
    "standard-webhooks": standard_webhooks,
    "github": github,
    "stripe": stripe,
    "hmac-sha256": hmac_sha256,
}

# The headers kept with an event, per scheme (besides content-type and user-agent): what a
# template or an operator may want, never the whole request.
KEPT_HEADERS: dict[str, tuple[str, ...]] = {
    "standard-webhooks": ("webhook-id", "webhook-timestamp"),
    "github": ("x-github-event", "x-github-delivery", "x-github-hook-id"),
    "stripe": (),
    "hmac-sha256": (),
}


def verify(
    scheme: str,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: datetime,
    options: Mapping[str, Any],
) -> str | None:
    """Verify with the hook's scheme; the dedupe key, or SignatureInvalid."""
    if not secrets:
        raise SignatureInvalid("the hook has no usable secret")
    return VERIFIERS[scheme](body, headers, secrets, now, options)


# Schemes whose delivery id is a header the signature does not cover, and that sign no
# timestamp: a captured request replays under a new id, so only its content can tell it.
# (standard-webhooks signs its id and timestamp; stripe signs its timestamp and the body's
# id: a replay is a duplicate, or outside the tolerance a 401.)
UNSIGNED_ID_SCHEMES = frozenset({"github", "hmac-sha256"})


def content_digest(scheme: str, body: bytes) -> str | None:
    """The SHA-256 (hex) of what `scheme` signs, for the schemes whose id is not signed
    (their signature covers the body alone); None for the others."""
    if scheme not in UNSIGNED_ID_SCHEMES:
        return None
    return hashlib.sha256(body).hexdigest()


def kept_headers(
    scheme: str, headers: Mapping[str, str], options: Mapping[str, Any]
) -> dict[str, str]:
    """The headers stored with the event (lower-case names)."""
    names = {"content-type", "user-agent", *KEPT_HEADERS[scheme]}
    for option in ("dedupe_header",):
        if options.get(option):
            names.add(str(options[option]).lower())
    names.update(h.lower() for h in options.get("keep_headers", []) or [])
    return {n: headers[n] for n in sorted(names) if n in headers}
