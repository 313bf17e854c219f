"""inbound webhooks: hooks, their received events, and room keys

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 17:22:45.694119
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_webhooks",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("scheme", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("secret_sealed", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column(
            "previous_secret_sealed", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True
        ),
        sa.Column(
            "previous_secret_expires_at", app.core.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_inbound_webhooks_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_webhooks")),
        sa.UniqueConstraint("client_id", "name", name=op.f("uq_inbound_webhooks_client_id_name")),
    )
    op.create_table(
        "inbound_events",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("hook_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", app.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_until", app.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("received_at", app.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", app.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", app.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_inbound_events_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hook_id"],
            ["inbound_webhooks.id"],
            name=op.f("fk_inbound_events_hook_id_inbound_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_events")),
        sa.UniqueConstraint(
            "hook_id", "dedupe_key", name=op.f("uq_inbound_events_hook_id_dedupe_key")
        ),
    )
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_events_client_hook_id", ["client_id", "hook_id", "id"], unique=False
        )
        batch_op.create_index("ix_inbound_events_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_inbound_events_lease", ["status", "lease_until"], unique=False)

    op.create_table(
        "inbound_room_keys",
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("hook_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("room_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("created_at", app.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_inbound_room_keys_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hook_id"],
            ["inbound_webhooks.id"],
            name=op.f("fk_inbound_room_keys_hook_id_inbound_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "hook_id", "key", name=op.f("pk_inbound_room_keys")),
    )


def downgrade() -> None:
    op.drop_table("inbound_room_keys")
    with op.batch_alter_table("inbound_events", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_events_lease")
        batch_op.drop_index("ix_inbound_events_due")
        batch_op.drop_index("ix_inbound_events_client_hook_id")

    op.drop_table("inbound_events")
    op.drop_table("inbound_webhooks")
