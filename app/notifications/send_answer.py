"""The answer to a send: the notification with every delivery (API.md §6).

A campaign's answer carries 10,000 deliveries: built as plain dicts and serialized by
orjson it costs a few milliseconds, where 10,000 validated `DeliveryOut` models and their
serialization cost ten times that. The bytes are those of `NotificationOut`; the model is
built only when a caller asks for it (the inbound `notify` action).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from app.notifications.models import DELIVERED, PENDING, Notification
from app.notifications.repository import NewDelivery, NewNotification
from app.notifications.schemas import NotificationOut


class SendResult:
    """The stored notification, and whether this call created it (False: idempotent replay)."""

    __slots__ = ("_answer", "_model", "created")

    def __init__(
        self,
        notification: NotificationOut | None = None,
        *,
        created: bool,
        answer: dict[str, Any] | None = None,
    ) -> None:
        if notification is None and answer is None:
            raise ValueError("a send result needs the notification or its answer")
        self._model = notification
        self._answer = answer
        self.created = created

    @property
    def notification(self) -> NotificationOut:
        """The answer as the model (validated from the plain answer on first use)."""
        if self._model is None:
            self._model = NotificationOut.model_validate(self._answer)
        return self._model

    def json(self) -> bytes:
        """The answer's JSON: the bytes `NotificationOut` serializes to."""
        if self._answer is not None:
            try:
                return orjson.dumps(self._answer, option=orjson.OPT_UTC_Z)
            except TypeError:
                pass  # e.g. an integer over 64 bits in the metadata: pydantic writes it
        return self.notification.model_dump_json(by_alias=True).encode()


def sent_answer(
    notification: Notification | NewNotification,
    ids: Sequence[str],
    new: Sequence[NewDelivery],
    statuses: Sequence[str],
) -> dict[str, Any]:
    """The answer for a notification just stored (its deliveries as `create_notification`
    wrote them), as `NotificationOut`'s fields."""
    created_at = notification.created_at
    send_at = notification.send_at
    return {
        "id": notification.id,
        "status": notification.status,
        "channels": notification.channels,
        "created_at": created_at,
        "send_at": send_at,
        "idempotency_key": notification.idempotency_key,
        "metadata": notification.metadata_,
        "deliveries": [
            {
                "id": delivery_id,
                "channel": d.channel,
                "recipient": d.recipient,
                "status": status,
                "attempts": 0,
                "last_error": None,
                "skip_reason": d.skip_reason,
                "delivered_at": created_at if status == DELIVERED else None,
                "next_attempt_at": send_at if status == PENDING else None,
            }
            for delivery_id, d, status in zip(ids, new, statuses, strict=True)
        ],
    }
