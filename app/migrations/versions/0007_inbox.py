"""inbox: inbox items (read/seen/archived, partial count indexes) and notification preferences

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 17:47:29.105057
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox_items",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("notification_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", app.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", app.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("seen_at", app.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("archived_at", app.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_inbox_items_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_inbox_items_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_items")),
    )
    with op.batch_alter_table("inbox_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_items_active",
            ["client_id", "user_id", "created_at"],
            unique=False,
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )
        batch_op.create_index("ix_inbox_items_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_inbox_items_unread",
            ["client_id", "user_id", "created_at"],
            unique=False,
            postgresql_where=sa.text("read_at IS NULL AND archived_at IS NULL"),
            sqlite_where=sa.text("read_at IS NULL AND archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_inbox_items_unseen",
            ["client_id", "user_id", "created_at"],
            unique=False,
            postgresql_where=sa.text("seen_at IS NULL AND archived_at IS NULL"),
            sqlite_where=sa.text("seen_at IS NULL AND archived_at IS NULL"),
        )
        batch_op.create_index("ix_inbox_items_user", ["client_id", "user_id", "id"], unique=False)

    op.create_table(
        "notification_preferences",
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("preferences", sa.JSON(), nullable=False),
        sa.Column("updated_at", app.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_notification_preferences_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notification_preferences_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "user_id", name=op.f("pk_notification_preferences")),
    )


def downgrade() -> None:
    op.drop_table("notification_preferences")
    with op.batch_alter_table("inbox_items", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_items_user")
        batch_op.drop_index(
            "ix_inbox_items_unseen",
            postgresql_where=sa.text("seen_at IS NULL AND archived_at IS NULL"),
            sqlite_where=sa.text("seen_at IS NULL AND archived_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_inbox_items_unread",
            postgresql_where=sa.text("read_at IS NULL AND archived_at IS NULL"),
            sqlite_where=sa.text("read_at IS NULL AND archived_at IS NULL"),
        )
        batch_op.drop_index("ix_inbox_items_created_at")
        batch_op.drop_index(
            "ix_inbox_items_active",
            postgresql_where=sa.text("archived_at IS NULL"),
            sqlite_where=sa.text("archived_at IS NULL"),
        )

    op.drop_table("inbox_items")
