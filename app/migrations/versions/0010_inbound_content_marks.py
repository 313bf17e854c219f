"""inbound content marks: the optional content-hash dedupe window of github/hmac-sha256 hooks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_content_marks",
        sa.Column("hook_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("expires_at", app.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_inbound_content_marks_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["inbound_events.id"],
            name=op.f("fk_inbound_content_marks_event_id_inbound_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hook_id"],
            ["inbound_webhooks.id"],
            name=op.f("fk_inbound_content_marks_hook_id_inbound_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hook_id", "digest", name=op.f("pk_inbound_content_marks")),
    )
    with op.batch_alter_table("inbound_content_marks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbound_content_marks_event_id"), ["event_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_content_marks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_content_marks_event_id"))
    op.drop_table("inbound_content_marks")
