"""A send's recipients: its user keys looked up (an unknown one is refused), the distinct
recipients in the order given, and the recipient users' stored preferences, read with them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.base import PhoneNumber, RecipientUser, Resolved
from app.core.errors import Unprocessable
from app.notifications import recipient_repository
from app.notifications.schemas import SendRequest
from app.users.repository import UserContact


@dataclass(frozen=True, slots=True)
class SendRecipients:
    """Who a send reaches, and the preference documents of its users that stored one."""

    resolved: list[Resolved]
    preferences: dict[str, dict[str, Any]]


async def resolve(session: AsyncSession, client_id: str, body: SendRequest) -> SendRecipients:
    """The send's recipients (422 naming up to 20 unknown user keys)."""
    user_ids = [r.user_id for r in body.recipients if r.user_id is not None]
    external_ids = [r.external_id for r in body.recipients if r.external_id is not None]
    found = await recipient_repository.users_with_preferences(
        session, client_id, user_ids=user_ids, external_ids=external_ids
    )
    by_id = {u.id: u for u in found.users}
    by_external = {u.external_id: u for u in found.users}
    missing = [f"user_id {u}" for u in dict.fromkeys(user_ids) if u not in by_id]
    missing += [f"external_id {e}" for e in dict.fromkeys(external_ids) if e not in by_external]
    if missing:
        shown = ", ".join(missing[:20]) + (
            f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        )
        raise Unprocessable(f"unknown recipient(s): {shown}")
    return SendRecipients(_distinct(body, by_id, by_external), found.preferences)


def _distinct(
    body: SendRequest, by_id: dict[str, UserContact], by_external: dict[str, UserContact]
) -> list[Resolved]:
    """The send's distinct recipients (a user named by id and by external id is one)."""
    resolved: list[Resolved] = []
    seen: set[str] = set()
    for r in body.recipients:
        if r.email is not None:
            key = "address:" + r.email.lower()
            if key not in seen:
                seen.add(key)
                resolved.append(r.email)
            continue
        if r.phone is not None:
            if "phone:" + r.phone not in seen:
                seen.add("phone:" + r.phone)
                resolved.append(PhoneNumber(r.phone))
            continue
        user = by_id[r.user_id] if r.user_id is not None else by_external[str(r.external_id)]
        if "user:" + user.id not in seen:
            seen.add("user:" + user.id)
            resolved.append(RecipientUser(user.id, user.external_id, user.email, user.phone))
    return resolved
