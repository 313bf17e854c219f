"""Verify the server's outbound webhooks (Standard Webhooks signatures)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chatapi_client.errors import WebhookVerificationError as InvalidWebhook


def verify_webhook(
    secret_or_secrets: str | Sequence[str],
    body: bytes | str,
    headers: Mapping[str, str],
) -> Any:
    """The decoded payload of a delivery signed with any of the secrets; raises
    WebhookVerificationError otherwise.

    Pass the raw body exactly as received (not re-serialised JSON). During a secret rotation
    pass both secrets (`[new, old]`): the server signs with both while the grace lasts.
    The timestamp must be within five minutes (replay protection, Standard Webhooks).
    """
    secrets = [secret_or_secrets] if isinstance(secret_or_secrets, str) else list(secret_or_secrets)
    if not secrets:
        raise InvalidWebhook("no secret given")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [
        h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if h not in lowered
    ]
    if missing:
        raise InvalidWebhook(f"missing header(s): {', '.join(missing)}")
    reasons: list[str] = []
    for secret in secrets:
        try:
            webhook = Webhook(secret)
        except Exception as exc:  # empty, or not whsec_ + base64: say so rather than "no match"
            reasons.append(f"unusable secret ({type(exc).__name__}: {exc})")
            continue
        try:
            webhook.verify(raw, lowered)
        except WebhookVerificationError as exc:
            reasons.append(str(exc))
            continue
        return json.loads(raw)
    raise InvalidWebhook(
        f"webhook {lowered['webhook-id']} not verified with {len(secrets)} secret(s): "
        + "; ".join(sorted(set(reasons)))
    )
