"""in-app delivered when stored: `deliveries.pushed_at` and the owed-push indexes

An in-app (websocket) delivery is now `delivered` when its inbox item is stored; whether
live connections have had the `notification` event is `pushed_at` (NULL on a delivered
in-app row: a push is owed, sent on the user's next connect or by the push sweep).

Existing rows: delivered in-app rows were pushed when delivered (`pushed_at` =
`delivered_at`); parked ones (`pending`, no due time: their user was offline) become
`delivered` with a push owed; in-app rows failed as "expired" while parked become
`delivered` likewise (their inbox item was stored all along). Notification statuses are
left to the next refresh, except those whose every delivery is now final and delivered.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PUSH_OWED = "channel = 'websocket' AND status = 'delivered' AND pushed_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pushed_at", app.core.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute(
        "UPDATE deliveries SET pushed_at = delivered_at "
        "WHERE channel = 'websocket' AND status = 'delivered'"
    )
    # Parked (offline user) and expired-while-parked rows: the inbox item exists.
    op.execute(
        "UPDATE deliveries SET status = 'delivered', delivered_at = created_at, "
        "last_error = NULL, lease_until = NULL, next_attempt_at = NULL "
        "WHERE channel = 'websocket' AND ("
        "(status = 'pending' AND next_attempt_at IS NULL) "
        "OR (status = 'failed' AND last_error = 'expired'))"
    )
    # A notification with nothing owed any more and nothing failed is delivered.
    op.execute(
        "UPDATE notifications SET status = 'delivered' "
        "WHERE status IN ('pending', 'failed', 'partial') AND NOT EXISTS ("
        "SELECT 1 FROM deliveries d WHERE d.notification_id = notifications.id "
        "AND d.status IN ('pending', 'sending', 'retrying', 'failed', 'canceled'))"
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_parked")
        batch_op.create_index(
            "ix_deliveries_push_owed",
            ["client_id", "recipient_user_id", "id"],
            unique=False,
            postgresql_where=sa.text(PUSH_OWED),
            sqlite_where=sa.text(PUSH_OWED),
        )
        batch_op.create_index(
            "ix_deliveries_push_sweep",
            ["delivered_at"],
            unique=False,
            postgresql_where=sa.text(PUSH_OWED),
            sqlite_where=sa.text(PUSH_OWED),
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_push_sweep")
        batch_op.drop_index("ix_deliveries_push_owed")
    # Owed pushes go back to parked (pending, no due time): the old connect flush sends them.
    op.execute(
        "UPDATE deliveries SET status = 'pending', delivered_at = NULL "
        "WHERE channel = 'websocket' AND status = 'delivered' AND pushed_at IS NULL"
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("pushed_at")
        batch_op.create_index(
            "ix_deliveries_parked",
            ["client_id", "recipient_user_id", "channel", "status"],
            unique=False,
        )
