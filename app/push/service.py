"""Users' push subscriptions: registered by the user (idempotent per endpoint), listed,
removed by the user or when the push service says they are gone, and read by the `push`
channel with their auth secrets opened.

The Web Push auth secret is what lets anyone holding it (and the endpoint) encrypt for the
browser, so it is sealed at rest with SECRET_KEY like every other secret and never returned.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.ssrf import WEBHOOK_ALWAYS_HINT, WEBHOOK_PRIVATE_HINT, refusal_category
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.crypto import SecretBox
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.ids import new_id
from app.providers.models import PushSubscription
from app.push import repository
from app.push.schemas import PushSubscriptionIn

# Browsers and devices a user may register at once; more is a client bug (subscribing on
# every page load without reusing the subscription), refused rather than stored.
MAX_SUBSCRIPTIONS_PER_USER = 50
MAX_USER_AGENT = 500


@dataclass(frozen=True, slots=True)
class OpenedSubscription:
    """A subscription as the channel sends to it: the auth secret opened."""

    id: str
    user_id: str
    kind: str
    endpoint: str
    p256dh: str | None
    auth: str | None


def _check_literal(endpoint: str, settings: Settings) -> None:
    # An endpoint is a browser vendor's push service, reached by name; an IP literal the
    # address policy refuses is refused now (a name is checked at every connection, when
    # it is resolved: registering must not depend on the user's DNS).
    host = (urlsplit(endpoint).hostname or "").strip("[]")
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return
    category = refusal_category(ip, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS)
    if category is not None:
        private = refusal_category(ip, allow_private=True) is None
        hint = WEBHOOK_PRIVATE_HINT if private else WEBHOOK_ALWAYS_HINT
        raise Unprocessable(
            f"endpoint refused: {host} is {category} ({hint})", loc=("body", "endpoint")
        )


async def subscribe(
    session: AsyncSession,
    box: SecretBox,
    settings: Settings,
    client_id: str,
    user_id: str,
    body: PushSubscriptionIn,
    user_agent: str | None,
) -> tuple[PushSubscription, bool]:
    """Register the subscription; (the row, whether it is new). The same endpoint (or token)
    again is the existing row, its keys replaced when the browser sent new ones."""
    if body.endpoint is not None:
        _check_literal(body.endpoint, settings)
    address = body.address
    existing = await repository.get_by_endpoint(session, client_id, user_id, address)
    if existing is not None:
        if body.keys is not None and _changed(box, existing, body):
            existing.keys = _sealed_keys(box, body)
            session.add(existing)
            await session.commit()
            await session.refresh(existing)
        return existing, False
    if await repository.count_for_user(session, client_id, user_id) >= MAX_SUBSCRIPTIONS_PER_USER:
        raise Conflict(
            f"a user has at most {MAX_SUBSCRIPTIONS_PER_USER} push subscriptions: "
            "DELETE one that is no longer used"
        )
    row = PushSubscription(
        id=new_id(),
        client_id=client_id,
        user_id=user_id,
        kind=body.kind,
        endpoint=address,
        endpoint_hash=repository.endpoint_hash(address),
        keys=_sealed_keys(box, body) if body.keys is not None else {},
        user_agent=(user_agent or None) and user_agent[:MAX_USER_AGENT],
        created_at=utcnow(),
    )
    created = await repository.add_unless_present(session, row)
    await session.commit()
    if created:
        return row, True
    # A concurrent registration of the same endpoint stored it first.
    stored = await repository.get_by_endpoint(session, client_id, user_id, address)
    assert stored is not None
    return stored, False


def _sealed_keys(box: SecretBox, body: PushSubscriptionIn) -> dict[str, str]:
    assert body.keys is not None
    return {"p256dh": body.keys.p256dh, "auth_sealed": box.seal(body.keys.auth)}


def _changed(box: SecretBox, row: PushSubscription, body: PushSubscriptionIn) -> bool:
    assert body.keys is not None
    keys = row.keys or {}
    if keys.get("p256dh") != body.keys.p256dh:
        return True
    sealed = keys.get("auth_sealed")
    return not isinstance(sealed, str) or box.open(sealed) != body.keys.auth


async def list_subscriptions(
    session: AsyncSession, client_id: str, user_id: str
) -> list[PushSubscription]:
    """The user's subscriptions, oldest first."""
    return await repository.list_for_user(session, client_id, user_id)


async def unsubscribe(
    session: AsyncSession, client_id: str, user_id: str, subscription_id: str
) -> None:
    """Remove one of the user's subscriptions; 404 when it is not the caller's."""
    if not await repository.delete_for_user(session, client_id, user_id, subscription_id):
        raise NotFound("No such push subscription")
    await session.commit()


async def users_with_subscriptions(
    session: AsyncSession, client_id: str, user_ids: Sequence[str]
) -> set[str]:
    """Which of `user_ids` have a subscription (a send's expansion: one query)."""
    return await repository.users_with_subscriptions(session, client_id, user_ids)


async def for_delivery(
    session: AsyncSession, box: SecretBox, client_id: str, user_ids: Sequence[str]
) -> Mapping[str, list[OpenedSubscription]]:
    """Every subscription of `user_ids`, auth secrets opened, by user (SecretBoxError when
    one is sealed under another SECRET_KEY)."""
    out: dict[str, list[OpenedSubscription]] = {}
    for row in await repository.for_users(session, client_id, user_ids):
        keys = row.keys or {}
        sealed = keys.get("auth_sealed")
        out.setdefault(row.user_id, []).append(
            OpenedSubscription(
                id=row.id,
                user_id=row.user_id,
                kind=row.kind,
                endpoint=row.endpoint,
                p256dh=keys.get("p256dh"),
                auth=box.open(sealed) if isinstance(sealed, str) else None,
            )
        )
    return out


async def remove_gone(session: AsyncSession, client_id: str, ids: Sequence[str]) -> int:
    """Remove subscriptions the push service answered 404/410 for; how many."""
    removed = await repository.delete_ids(session, client_id, ids)
    await session.commit()
    return removed
