"""An index of attempts by client, time and provider, for /analytics/summary's providers

The summary's per-provider figures (attempts by outcome of each provider a tenant's
e-mail, SMS and push went through) read this index alone.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 16:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_delivery_attempts_provider",
        "delivery_attempts",
        ["client_id", "attempted_at", "served_by", "outcome"],
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_attempts_provider", table_name="delivery_attempts")
