"""devices, connect tokens, event catalog (#24)

`api_keys.device_id`: login rotates one device's keys; existing user keys were the one
device a user had, so they become `default` (the device a login without `device_id` uses).
`connect_tokens`: single-use socket tokens, stored as SHA-256 of the random token; consumed by
one conditional UPDATE, which holds across processes. `event_types`: the tenant's catalog.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("device_id", sa.String(length=64), nullable=True))
    op.execute("UPDATE api_keys SET device_id = 'default' WHERE kind = 'user'")
    op.create_table(
        "connect_tokens",
        sa.Column("token_hash", sa.String(length=64), primary_key=True),
        sa.Column(
            "client_id",
            sa.String(length=26),
            sa.ForeignKey("clients.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", app.core.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", app.core.types.UTCDateTime(), nullable=False),
        sa.Column("used_at", app.core.types.UTCDateTime(), nullable=True),
    )
    op.create_index(
        "ix_connect_tokens_client_expires", "connect_tokens", ["client_id", "expires_at"]
    )
    op.create_table(
        "event_types",
        sa.Column("id", sa.String(length=26), primary_key=True),
        sa.Column(
            "client_id",
            sa.String(length=26),
            sa.ForeignKey("clients.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("payload_schema", sa.JSON(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.core.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", app.core.types.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("client_id", "name", name="uq_event_types_client_name"),
    )


def downgrade() -> None:
    op.drop_table("event_types")
    op.drop_index("ix_connect_tokens_client_expires", table_name="connect_tokens")
    op.drop_table("connect_tokens")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("device_id")
