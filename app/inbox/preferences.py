"""Applying users' channel preferences to a send: the deliveries a preference turns off are
stored `skipped` with the reason and never sent. `critical` sends ignore preferences, and
channels that never reach a user (`Channel.reaches_users` false: webhooks, the tenant's own
endpoints) are never subject to them."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Unprocessable
from app.inbox import repository
from app.inbox.schemas import Preferences


class Planned(Protocol):
    """A delivery about to be stored (the relay's `NewDelivery`, a dataclass): what a
    preference decides on. A protocol, so the inbox does not import the relay back."""

    @property
    def channel(self) -> str: ...
    @property
    def recipient_user_id(self) -> str | None: ...
    @property
    def skip_reason(self) -> str | None: ...


D = TypeVar("D", bound=Planned)


def event_type(metadata: Mapping[str, Any], websocket_event: str | None) -> str | None:
    """What `events` preferences match: `metadata.category` when the send gives one (it
    names the event whatever the channels), else the websocket content's `event`."""
    category = metadata.get("category")
    if isinstance(category, str) and category:
        return category
    return websocket_event


def wants(doc: Mapping[str, Any], channel: str, event: str | None) -> bool:
    """Whether the preference document lets `channel` through for `event` (event-level
    entries override channel-level ones; unnamed means on)."""
    events = doc.get("events") or {}
    if event is not None and isinstance(events.get(event), dict) and channel in events[event]:
        return bool(events[event][channel])
    channels = doc.get("channels") or {}
    return bool(channels.get(channel, True))


def skip_reason(channel: str, event: str | None, doc: Mapping[str, Any]) -> str:
    """The reason stored on a delivery the preference turned off."""
    events = doc.get("events") or {}
    if event is not None and isinstance(events.get(event), dict) and channel in events[event]:
        return f"preference: {channel} off for {event}"[:200]
    return f"preference: {channel} off"


async def apply(
    session: AsyncSession,
    client_id: str,
    deliveries: Sequence[D],
    *,
    event: str | None,
    critical: bool,
    exempt: Collection[str] = frozenset(),
    known: Mapping[str, dict[str, Any]] | None = None,
) -> list[D]:
    """`deliveries` with those the recipients' preferences turn off marked skipped (one
    bulk read of every recipient user's preferences, unless they are `known`: the
    documents of every recipient user that has one); `exempt` channels never reach a
    user, so no preference applies to them."""
    if critical:
        return list(deliveries)
    user_ids = [
        d.recipient_user_id
        for d in deliveries
        if d.recipient_user_id is not None and d.skip_reason is None and d.channel not in exempt
    ]
    if not user_ids:
        return list(deliveries)
    docs = (
        known
        if known is not None
        else await repository.preferences_of(session, client_id, user_ids)
    )
    if not docs:
        return list(deliveries)
    out: list[D] = []
    for d in deliveries:
        doc = docs.get(d.recipient_user_id or "")
        if (
            doc is not None
            and d.skip_reason is None
            and d.channel not in exempt
            and not wants(doc, d.channel, event)
        ):
            reason = skip_reason(d.channel, event, doc)
            d = cast(D, dataclasses.replace(cast(Any, d), skip_reason=reason))
        out.append(d)
    return out


def check(doc: Preferences, user_channels: Collection[str]) -> None:
    """Refuse (422) a document naming a channel that is not one of `user_channels` (the
    channels here that reach users: a tenant's endpoints are never subject to preferences)."""
    allowed = set(user_channels)
    unknown = sorted(doc.named_channels() - allowed)
    if unknown:
        raise Unprocessable(
            f"unknown channel(s) {', '.join(unknown)}; preferences apply to: "
            f"{', '.join(sorted(allowed))} (the channels that reach users: a channel to the "
            "tenant's own endpoints is never subject to user preferences)"
        )
