"""The PostgreSQL statement that stores a send in one round trip (notification, deliveries,
inbox items and, keyed, the idempotency reservation), and its argument list."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from app.notifications.models import DELIVERED, PENDING, Notification

if TYPE_CHECKING:
    from app.inbox.repository import InboxContent
    from app.notifications.repository import NewDelivery, NewNotification


# Data-modifying CTEs: the three INSERTs run as one statement (the foreign keys from
# deliveries to the notification are checked at its end); rows travel as arrays.
CREATE_PG = """
WITH notification AS (
    INSERT INTO notifications (id, client_id, status, channels, content, metadata, critical,
        send_at, created_at, idempotency_key, request_hash)
    VALUES ($1, $2, $3, $4::json, $5::json, $6::json, $7, $8, $9, $10::varchar, $11::varchar)
), deliveries AS (
    INSERT INTO deliveries (id, client_id, notification_id, channel, recipient,
        recipient_user_id, endpoint_id, status, attempts, next_attempt_at, lease_until,
        last_error, delivered_at, skip_reason, created_at, updated_at)
    SELECT d.id, $2, $1, d.channel, d.recipient::json, d.recipient_user_id, d.endpoint_id,
        d.status, 0, d.next_attempt_at, NULL, NULL, d.delivered_at, d.skip_reason, $9, $9
    FROM unnest($12::varchar[], $13::varchar[], $14::text[], $15::varchar[], $16::varchar[],
        $17::varchar[], $18::timestamptz[], $19::varchar[], $24::timestamptz[])
        AS d(id, channel, recipient, recipient_user_id, endpoint_id, status, next_attempt_at,
            skip_reason, delivered_at)
), items AS (
    INSERT INTO inbox_items (id, client_id, user_id, notification_id, event, created_at,
        read_at, seen_at, archived_at)
    SELECT i.id, $2, i.user_id, $1, $20::varchar, $21::timestamptz, NULL, NULL, NULL
    FROM unnest($22::varchar[], $23::varchar[]) AS i(id, user_id)
)
SELECT 1
""".strip()


# `CREATE_PG` behind the key's reservation: the upsert takes the key (or replaces an
# expired record) and every insert reads its RETURNING, so they happen only if it did.
CREATE_KEYED_PG = (
    """
WITH idem AS (
    INSERT INTO idempotency_records (client_id, key, request_hash, notification_id,
        created_at, expires_at)
    VALUES ($2, $10::varchar, $11::varchar, $1, $9, $25)
    ON CONFLICT (client_id, key) DO UPDATE SET request_hash = excluded.request_hash,
        notification_id = excluded.notification_id, created_at = excluded.created_at,
        expires_at = excluded.expires_at
    WHERE idempotency_records.expires_at <= $9
    RETURNING 1
), """
    + CREATE_PG.removeprefix("WITH ")
    .removesuffix("SELECT 1")
    .replace("VALUES ($1, $2, $3, $4::json, $5::json, $6::json, $7, $8, $9, $10::varchar, "
             "$11::varchar)",
             "SELECT $1, $2, $3, $4::json, $5::json, $6::json, $7, $8, $9, $10::varchar, "
             "$11::varchar WHERE EXISTS (TABLE idem)")
    .replace("AS d(id, channel, recipient, recipient_user_id, endpoint_id, status, next_attempt_at,\n"
             "            skip_reason, delivered_at)",
             "AS d(id, channel, recipient, recipient_user_id, endpoint_id, status, next_attempt_at,\n"
             "            skip_reason, delivered_at)\n    WHERE EXISTS (TABLE idem)")
    .replace("FROM unnest($22::varchar[], $23::varchar[]) AS i(id, user_id)",
             "FROM unnest($22::varchar[], $23::varchar[]) AS i(id, user_id)\n"
             "    WHERE EXISTS (TABLE idem)")
    + "SELECT count(*) FROM idem"
)  # fmt: skip


def create_pg_args(
    n: Notification | NewNotification,
    ids: list[str],
    deliveries: Sequence[NewDelivery],
    statuses: Sequence[str],
    inbox: InboxContent | None,
    items: list[tuple[str, str]],
    now: datetime,
) -> list[Any]:
    # JSON as text, as SQLAlchemy's JSON type gives it to the driver; the recipients' by
    # orjson (compact: the same JSON, a tenth of json.dumps's cost at 10,000 recipients).
    return [
        n.id,
        n.client_id,
        n.status,
        json.dumps(n.channels),
        json.dumps(n.content),
        json.dumps(n.metadata_),
        n.critical,
        n.send_at,
        n.created_at,
        n.idempotency_key,
        n.request_hash,
        ids,
        [d.channel for d in deliveries],
        [orjson.dumps(d.recipient).decode() for d in deliveries],
        [d.recipient_user_id for d in deliveries],
        [d.endpoint_id for d in deliveries],
        statuses,
        [n.send_at if s == PENDING else None for s in statuses],
        [d.skip_reason for d in deliveries],
        inbox.event if inbox else None,
        inbox.visible_at if inbox else now,
        [item_id for item_id, _ in items],
        [user_id for _, user_id in items],
        [now if s == DELIVERED else None for s in statuses],
    ]
