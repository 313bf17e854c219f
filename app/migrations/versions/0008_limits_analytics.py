"""limits + analytics: covering indexes for GET /analytics/summary

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DELIVERED = sa.text("status = 'delivered'")


def upgrade() -> None:
    op.create_index("ix_messages_client_created", "messages", ["client_id", "created_at"])
    op.create_index("ix_rooms_client_type_active", "rooms", ["client_id", "type", "is_active"])
    op.create_index(
        "ix_notifications_analytics", "notifications", ["client_id", "created_at", "status"]
    )
    op.create_index(
        "ix_deliveries_analytics", "deliveries", ["client_id", "created_at", "channel", "status"]
    )
    op.create_index(
        "ix_deliveries_latency",
        "deliveries",
        ["client_id", "created_at", "delivered_at"],
        postgresql_where=_DELIVERED,
        sqlite_where=_DELIVERED,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_latency", table_name="deliveries")
    op.drop_index("ix_deliveries_analytics", table_name="deliveries")
    op.drop_index("ix_notifications_analytics", table_name="notifications")
    op.drop_index("ix_rooms_client_type_active", table_name="rooms")
    op.drop_index("ix_messages_client_created", table_name="messages")
