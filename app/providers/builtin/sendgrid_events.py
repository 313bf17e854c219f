"""SendGrid's signed Event Webhook: verifying a request and reading its events.

SendGrid signs each Event Webhook POST with the account's ECDSA P-256 key: the
`X-Twilio-Email-Event-Webhook-Signature` header is the base64 of the DER signature
(SHA-256) over the `X-Twilio-Email-Event-Webhook-Timestamp` header's text followed by the
raw body. The verification key SendGrid shows (Settings → Mail Settings → Event Webhook →
Signature Verification) is the base64 of the public key's DER SubjectPublicKeyInfo, i.e. a
PEM body without its armour. Verification is `cryptography`'s, not code of ours.

The body is a JSON array of events. `delivered` → delivered, `bounce` → bounced (`type`
`bounce` is a hard bounce, `blocked` is not), `dropped` → failed, `spamreport` →
complained; the rest (`processed`, `deferred`, `open`, `click`, unsubscribes) say nothing
about the delivery's status and are skipped. Our `delivery_id` custom argument comes back at
the top level of each event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from app.providers.base import EventKind, ProviderEvent, SignatureRefused, SignedRequest

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
# A signed request older (or newer) than this is a replay, or a clock too far off to trust.
MAX_SKEW = timedelta(minutes=5)
# What a verification key may be at most (a P-256 SubjectPublicKeyInfo is 91 bytes).
MAX_KEY_CHARS = 1024

_KINDS: dict[str, EventKind] = {
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "failed",
    "spamreport": "complained",
}


def normalize_public_key(text: str) -> str:
    """The verification key as SendGrid shows it (one base64 line), from that or from a PEM
    block; ValueError when it is not an ECDSA P-256 public key."""
    body = "".join(
        line.strip() for line in text.strip().splitlines() if not line.startswith("-----")
    )
    load_public_key(body)
    return body


@lru_cache(maxsize=256)
def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a base64 DER SubjectPublicKeyInfo (cached: parsed once per
    key, not per request)."""
    try:
        der = base64.b64decode(text, validate=True)
        key = load_der_public_key(der)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError(
            "webhook_public_key must be the Event Webhook's verification key "
            "(base64 of a DER public key)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("webhook_public_key must be an ECDSA P-256 public key")
    return key


def verify_events(public_key: str | None, request: SignedRequest) -> list[ProviderEvent]:
    """The events of a signed Event Webhook request; SignatureRefused when it is unsigned,
    wrongly signed, stale (more than MAX_SKEW from `request.now`, either way) or, signed,
    not a JSON array (nothing of it can be stored)."""
    if not public_key:
        raise SignatureRefused("the provider has no webhook_public_key to verify events with")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    if not signature or not timestamp:
        raise SignatureRefused("the Event Webhook signature or timestamp header is missing")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise SignatureRefused("the Event Webhook timestamp is not a Unix time")
    signed_at = datetime.fromtimestamp(int(timestamp), tz=timezone.utc)
    if abs(request.now - signed_at) > MAX_SKEW:
        raise SignatureRefused("the Event Webhook timestamp is stale")
    try:
        der = base64.b64decode(signature, validate=True)
        key = load_public_key(public_key)
        key.verify(der, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureRefused("the Event Webhook signature does not verify") from None
    return parse_events(request.body)


def parse_events(body: bytes) -> list[ProviderEvent]:
    """The delivery events of a (verified) body; events of other kinds are skipped."""
    try:
        events = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SignatureRefused("the Event Webhook body is not JSON") from None
    if not isinstance(events, list):
        raise SignatureRefused("the Event Webhook body is not a JSON array of events")
    out: list[ProviderEvent] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = _KINDS.get(str(event.get("event")))
        if kind is None:
            continue
        out.append(_event(kind, event))
    return out


def _event(kind: EventKind, event: dict[str, Any]) -> ProviderEvent:
    delivery_id = event.get("delivery_id")
    address = event.get("email")
    bounce_type = event.get("type")
    return ProviderEvent(
        event_id=_event_id(event),
        kind=kind,
        delivery_id=delivery_id if isinstance(delivery_id, str) and delivery_id else None,
        address=address if isinstance(address, str) else None,
        # `blocked` is the receiver's temporary refusal (a block list, a reputation); a
        # bounce event without a type is SendGrid's older shape of a hard bounce.
        permanent=kind == "bounced" and bounce_type in ("bounce", None),
        occurred_at=_occurred_at(event.get("timestamp")),
        detail=_detail(event),
        payload=event,
    )


def _event_id(event: dict[str, Any]) -> str:
    sg_event_id = event.get("sg_event_id")
    if isinstance(sg_event_id, str) and sg_event_id:
        return sg_event_id
    # Without SendGrid's id, the same event sent twice must still dedupe: its digest.
    return "sha256:" + hashlib.sha256(orjson.dumps(event, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _occurred_at(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _detail(event: dict[str, Any]) -> str | None:
    parts = [
        str(event[k])
        for k in ("type", "status", "reason", "response")
        if isinstance(event.get(k), str | int) and event.get(k) != ""
    ]
    return " ".join(parts)[:1000] or None
