"""Mailgun's delivery-event webhooks, verified and read as `ProviderEvent`s.

Mailgun POSTs JSON `{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}`;
`signature` is the hex HMAC-SHA256 of `timestamp + token` keyed with the domain's HTTP
webhook signing key. It covers neither the body nor the URL, so a captured signature could
be reused with another body: timestamps more than `MAX_SKEW` from our clock are refused
and the token is the event's nonce (the events route refuses a token it has seen).

Which events move a delivery: `delivered`; `failed` with severity `permanent` (a hard
bounce, or Mailgun dropping the message: `bounced`, the address suppressed, unless Mailgun
only gave up retrying or the recipient unsubscribed: `failed`); `rejected` (`failed`);
`complained` (the address suppressed). Temporary failures (Mailgun retries them), opens,
clicks and unsubscribes are acknowledged and not stored.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from app.providers.base import EventKind, ProviderEvent, SignatureRefused, SignedRequest

#: How far a signature's timestamp may be from our clock, either way.
MAX_SKEW = timedelta(minutes=5)
# Permanent failures that are not the address bouncing: Mailgun stopped retrying (`old`),
# or the recipient unsubscribed from the domain.
_NOT_BOUNCES = frozenset({"old", "suppress-unsubscribe"})
_MAX_DETAIL = 1000


def sign(key: str, timestamp: str, token: str) -> str:
    """Mailgun's signature of (timestamp, token): hex HMAC-SHA256."""
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify_mailgun_events(key: str | None, request: SignedRequest) -> list[ProviderEvent]:
    """The request's events, or SignatureRefused (no key, no or wrong signature, stale)."""
    if not key:
        raise SignatureRefused("the provider has no webhook_signing_key")
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise SignatureRefused("the body is not Mailgun's JSON") from None
    signature = body.get("signature") if isinstance(body, dict) else None
    if not isinstance(signature, dict):
        raise SignatureRefused("no signature")
    timestamp, token, given = (signature.get(k) for k in ("timestamp", "token", "signature"))
    if not (isinstance(timestamp, str | int) and isinstance(token, str) and isinstance(given, str)):
        raise SignatureRefused("incomplete signature")
    timestamp = str(timestamp)
    if not timestamp.isdigit() or not 0 < len(token) <= 200:
        raise SignatureRefused("malformed signature")
    expected = sign(key, timestamp, token)
    # Constant time: a mismatch says nothing about how much of it matched.
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureRefused("wrong signature")
    signed_at = datetime.fromtimestamp(int(timestamp), tz=timezone.utc)
    if abs(request.now - signed_at) > MAX_SKEW:
        raise SignatureRefused("stale timestamp")
    data = body.get("event-data")
    if not isinstance(data, dict):
        return []
    event = read_event(data, request.body)
    if event is None:
        return []
    return [ProviderEvent(**{**event, "nonce": f"mailgun:{token}"})]


def read_event(data: Mapping[str, Any], raw: bytes) -> dict[str, Any] | None:
    """An `event-data` object as ProviderEvent's fields, or None for events we do not
    track."""
    name = data.get("event")
    kind: EventKind
    permanent = False
    if name == "delivered":
        kind = "delivered"
    elif name == "failed" and data.get("severity") == "permanent":
        if data.get("reason") in _NOT_BOUNCES:
            kind = "failed"
        else:
            kind, permanent = "bounced", True
    elif name == "rejected":
        kind = "failed"
    elif name == "complained":
        kind = "complained"
    else:
        return None
    variables = data.get("user-variables")
    delivery_id = variables.get("delivery_id") if isinstance(variables, dict) else None
    event_id = data.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 200:
        # Mailgun always sends one; without it, the event's own bytes identify it.
        event_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    recipient = data.get("recipient")
    return {
        "event_id": event_id,
        "kind": kind,
        # Bounded like the columns they are stored in; anything else is not one of ours.
        "delivery_id": delivery_id if _text(delivery_id, 26) else None,
        "address": recipient.lower()
        if isinstance(recipient, str) and _text(recipient, 320)
        else None,
        "permanent": permanent,
        "occurred_at": _when(data.get("timestamp")),
        "detail": _detail(data),
        "payload": dict(data),
    }


def _text(value: Any, longest: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= longest


def _when(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _detail(data: Mapping[str, Any]) -> str | None:
    status = data.get("delivery-status")
    parts: list[str] = []
    if isinstance(status, dict):
        if status.get("code") is not None:
            parts.append(str(status["code"]))
        text = status.get("description") or status.get("message")
        if isinstance(text, str) and text:
            parts.append(text)
    if not parts and isinstance(data.get("reason"), str):
        parts.append(data["reason"])
    return " ".join(parts)[:_MAX_DETAIL] or None
