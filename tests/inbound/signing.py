"""How each kind of real sender signs a request (the tests' senders)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

import orjson
from standardwebhooks import Webhook


def standard_webhooks(
    secret: str, body: bytes, at: datetime, msg_id: str | None = None
) -> dict[str, str]:
    """Headers of a Standard Webhooks sender, signed with the `standardwebhooks` library."""
    msg_id = msg_id or f"msg_{secrets.token_hex(8)}"
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def github(
    secret: str, body: bytes, delivery: str | None = None, event: str = "issues"
) -> dict[str, str]:
    """Headers of a GitHub delivery: `sha256=` + hex HMAC of the body, as GitHub documents."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Delivery": delivery or secrets.token_hex(16),
        "X-GitHub-Event": event,
        "content-type": "application/json",
    }


def stripe(secret: str, body: bytes, at: datetime, *extra_secrets: str) -> dict[str, str]:
    """`Stripe-Signature: t=…,v1=…`: hex HMAC-SHA256 of f"{t}.{body}", as Stripe documents."""
    t = int(at.timestamp())
    parts = [f"t={t}"]
    for s in (secret, *extra_secrets):
        parts.append(
            "v1=" + hmac.new(s.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        )
    return {"Stripe-Signature": ",".join(parts), "content-type": "application/json"}


def plain_hmac(secret: str, body: bytes, *, encoding: str = "hex", prefix: str = "") -> str:
    """A plain HMAC-SHA256 of the body, hex or base64."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    return prefix + text


def dumps(value: Any) -> bytes:
    """JSON bytes of `value`."""
    return orjson.dumps(value)


# A trimmed GitHub `issues` event (https://docs.github.com/webhooks/webhook-events-and-payloads#issues).
def github_issue(issue_id: int, title: str, action: str = "opened") -> dict[str, Any]:
    """A GitHub `issues` webhook payload."""
    return {
        "action": action,
        "issue": {
            "id": issue_id,
            "number": issue_id % 1000,
            "title": title,
            "html_url": f"https://github.com/acme/app/issues/{issue_id % 1000}",
            "user": {"login": "octocat", "id": 1},
            "labels": [{"name": "bug"}],
            "body": "It crashes.",
        },
        "repository": {"full_name": "acme/app"},
        "sender": {"login": "octocat"},
    }
