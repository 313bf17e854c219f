"""Twilio's status callbacks: the `X-Twilio-Signature` check and the events they report.

Twilio signs each callback with the account's auth token: base64(HMAC-SHA1(token, the full
URL it called + every POST parameter's name and value, sorted by name)). Like Twilio's own
`RequestValidator`, the URL is tried as called and with its default port added or removed
(a proxy in front of us may add or drop `:443`). The callback carries no timestamp, so a
replay is caught by the event's id instead (the message's sid and status).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import defaultdict
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from app.providers.base import ProviderEvent, SignatureRefused, SignedRequest

# Undelivered/failed with these error codes: the number itself can never receive (so the
# event is a hard bounce, and the number is suppressed). 21610: the recipient replied STOP;
# 21211/21614: not a valid/mobile number; 30005: unknown handset; 30006: a landline or an
# unreachable carrier.
PERMANENT_CODES = frozenset({"21211", "21610", "21614", "30005", "30006"})
# MessageStatus → our event kind; the others (queued, sending, sent, accepted, ...) say
# nothing new: the delivery is `delivered` (accepted by the provider) already.
KINDS = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}
_DEFAULT_PORTS = {"https": 443, "http": 80}


def signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """What Twilio puts in X-Twilio-Signature for a POST of `params` to `url`."""
    values: dict[str, set[str]] = defaultdict(set)
    for name, value in params:
        values[name].add(value)
    signed = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> list[str]:
    """`url` as called, with its scheme's default port, and without any port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if parts.username or parts.password:  # Twilio signs the URL with its credentials in it
        return [url]
    default = _DEFAULT_PORTS.get(parts.scheme)
    with_port = parts._replace(netloc=f"{host}:{parts.port or default}") if default else parts
    without_port = parts._replace(netloc=host)
    return list(dict.fromkeys([url, urlunsplit(with_port), urlunsplit(without_port)]))


def verified_params(auth_token: str, request: SignedRequest) -> list[tuple[str, str]]:
    """The callback's form parameters, when its signature is the account's; else
    SignatureRefused."""
    given = request.headers.get("x-twilio-signature", "")
    if not given:
        raise SignatureRefused("X-Twilio-Signature is missing")
    try:
        params = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise SignatureRefused("the body is not a UTF-8 form") from None
    for url in url_variants(request.url):
        if hmac.compare_digest(signature(auth_token, url, params).encode(), given.encode()):
            return params
    raise SignatureRefused("X-Twilio-Signature does not match this account's auth token")


def events(
    account_sid: str, request: SignedRequest, params: list[tuple[str, str]]
) -> list[ProviderEvent]:
    """The delivery event a verified status callback reports (none for the statuses before
    the handset's answer)."""
    form = dict(params)
    if form.get("AccountSid", account_sid) != account_sid:
        raise SignatureRefused("the callback is about another Twilio account")
    status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    kind = KINDS.get(status)
    if kind is None or not sid:
        return []
    code = form.get("ErrorCode") or None
    delivery = parse_qs(urlsplit(request.url).query).get("delivery_id", [None])[0]
    detail = f"Twilio: {status}" + (f" (error {code})" if code else "")
    return [
        ProviderEvent(
            event_id=f"{sid}:{status}",
            kind="delivered" if kind == "delivered" else "failed",
            delivery_id=delivery,
            address=form.get("To") or None,
            permanent=kind == "failed" and code in PERMANENT_CODES,
            occurred_at=request.now,
            detail=detail,
            payload=form,
        )
    ]
