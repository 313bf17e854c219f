"""inbox content once: inbox items show their notification's websocket data, not a copy

Every inbox item kept its own copy of the notification's websocket `data`: one 883 KB send
to 100 users wrote 90 MB. The notification row already holds the content once; items now
join it on read and the `data` column goes.

Existing rows: the copies were made from the notification's content in the same statement,
so they agree with it. Where one does not (a notification without a websocket part, or edited
by hand) the item's copy is written into the notification, and an item whose notification
row is missing gets a minimal one holding its content, so that no item loses what it shows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import app.core.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Items read per round trip while checking the copies (each can hold ~1 MB of data).
BATCH = 200

_md = sa.MetaData()
_ITEMS = sa.Table(
    "inbox_items",
    _md,
    sa.Column("id", sa.String),
    sa.Column("client_id", sa.String),
    sa.Column("notification_id", sa.String),
    sa.Column("event", sa.String),
    sa.Column("data", sa.JSON),
    sa.Column("created_at", app.core.types.UTCDateTime(timezone=True)),
)
_NOTIFICATIONS = sa.Table(
    "notifications",
    _md,
    sa.Column("id", sa.String),
    sa.Column("client_id", sa.String),
    sa.Column("status", sa.String),
    sa.Column("channels", sa.JSON),
    sa.Column("content", sa.JSON),
    sa.Column("metadata", sa.JSON),
    sa.Column("critical", sa.Boolean),
    sa.Column("send_at", app.core.types.UTCDateTime(timezone=True)),
    sa.Column("created_at", app.core.types.UTCDateTime(timezone=True)),
)


def _websocket_part(content: Any) -> dict[str, Any]:
    part = content.get("websocket") if isinstance(content, dict) else None
    return part if isinstance(part, dict) else {}


def _move_copies_into_notifications(bind: sa.Connection) -> None:
    """Make every notification hold what its items show (items in id order, by batches)."""
    after = ""
    checked: set[str] = set()
    while True:
        rows = bind.execute(
            sa.select(
                _ITEMS.c.id,
                _ITEMS.c.client_id,
                _ITEMS.c.notification_id,
                _ITEMS.c.event,
                _ITEMS.c.data,
                _ITEMS.c.created_at,
            )
            .where(_ITEMS.c.id > after)
            .order_by(_ITEMS.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        after = rows[-1].id
        wanted = {r.notification_id for r in rows} - checked
        stored = dict(
            bind.execute(
                sa.select(_NOTIFICATIONS.c.id, _NOTIFICATIONS.c.content).where(
                    _NOTIFICATIONS.c.id.in_(wanted)
                )
            ).all()
        )
        for row in rows:
            if row.notification_id in checked:
                continue
            # A notification's items were written together, from one value: the first one
            # read speaks for all of them.
            checked.add(row.notification_id)
            shown = {"event": row.event, "data": row.data if row.data is not None else {}}
            if row.notification_id not in stored:
                _insert_holder(bind, row, shown)
                continue
            content = stored[row.notification_id]
            part = _websocket_part(content)
            if part.get("event") != shown["event"] or part.get("data", {}) != shown["data"]:
                fixed = {**(content if isinstance(content, dict) else {})}
                fixed["websocket"] = {**part, **shown}
                bind.execute(
                    sa.update(_NOTIFICATIONS)
                    .where(_NOTIFICATIONS.c.id == row.notification_id)
                    .values(content=fixed)
                )
        # Items of one notification are consecutive ids (made in one loop): forget the rest.
        checked = {rows[-1].notification_id}


def _insert_holder(bind: sa.Connection, row: Any, shown: dict[str, Any]) -> None:
    bind.execute(
        sa.insert(_NOTIFICATIONS).values(
            id=row.notification_id,
            client_id=row.client_id,
            status="delivered",
            channels=["websocket"],
            content={"websocket": shown},
            metadata={},
            critical=False,
            send_at=row.created_at,
            created_at=row.created_at,
        )
    )


def upgrade() -> None:
    _move_copies_into_notifications(op.get_bind())
    # Natively on SQLite too (3.35+, which RETURNING needs already): a batch copy of the table
    # would recreate its indexes in another order, and SQLite's planner then picks the wrong
    # one of the partial count indexes (app/inbox/models.py).
    op.execute("ALTER TABLE inbox_items DROP COLUMN data")


def downgrade() -> None:
    # NOT NULL with a default: both databases add that without copying the table.
    op.execute("ALTER TABLE inbox_items ADD COLUMN data JSON NOT NULL DEFAULT '{}'")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE inbox_items AS i SET data = n.content -> 'websocket' -> 'data' "
            "FROM notifications AS n WHERE n.id = i.notification_id "
            "AND n.content -> 'websocket' -> 'data' IS NOT NULL"
        )
        op.execute("ALTER TABLE inbox_items ALTER COLUMN data DROP DEFAULT")
    else:
        # SQLite cannot drop a column default in place; '{}' is harmless there.
        op.execute(
            "UPDATE inbox_items SET data = COALESCE((SELECT json_extract(n.content, "
            "'$.websocket.data') FROM notifications AS n "
            "WHERE n.id = inbox_items.notification_id), '{}')"
        )
