"""The status a delivery is stored with at send time (API.md §6: in-app is delivered when
its inbox item is stored; pushing it to live connections is app/notifications/push.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.notifications.models import DELIVERED, PENDING, SKIPPED


class _New(Protocol):
    # repository.NewDelivery (a Protocol here: the repository imports this module).
    @property
    def channel(self) -> str: ...
    @property
    def recipient_user_id(self) -> str | None: ...
    @property
    def skip_reason(self) -> str | None: ...
    @property
    def inbox_item(self) -> bool: ...


def delivered_on_store(d: _New, *, in_app: bool, scheduled: bool) -> bool:
    """Whether `d` is stored `delivered`: an inbox item's (in-app) delivery to a user, when
    the send stores inbox items (`in_app`: its item is stored with it) and is not
    scheduled. Its push to live connections is owed until `Delivery.pushed_at` is set."""
    return (
        in_app
        and not scheduled
        and d.inbox_item
        and d.skip_reason is None
        and d.recipient_user_id is not None
    )


def initial_status(d: _New, *, in_app: bool, scheduled: bool) -> str:
    """The status `repository.create_notification` stores for `d`."""
    if d.skip_reason:
        return SKIPPED
    return DELIVERED if delivered_on_store(d, in_app=in_app, scheduled=scheduled) else PENDING


def initial_statuses(deliveries: Sequence[_New], in_app: bool, scheduled: bool) -> list[str]:
    """`initial_status` of each, in order."""
    return [initial_status(d, in_app=in_app, scheduled=scheduled) for d in deliveries]
