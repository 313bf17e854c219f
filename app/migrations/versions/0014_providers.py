"""providers, routing, suppressions, provider events, push subscriptions, users.phone (#22)

`providers`: a tenant's accounts of delivery services (secret settings sealed);
`provider_routes`: per channel, the failover chain and the bulk chain; `suppressions`:
addresses that hard-bounced or complained; `provider_events`: verified delivery events,
unique per provider event id; `push_subscriptions`: users' Web Push subscriptions and FCM
tokens; `users.phone` (E.164) for the `sms` channel.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _client() -> sa.Column:
    return sa.Column(
        "client_id",
        sa.String(length=26),
        sa.ForeignKey("clients.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("phone", sa.String(length=20), nullable=True))
    op.create_table(
        "providers",
        sa.Column("id", sa.String(length=26), primary_key=True),
        _client(),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secrets_sealed", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.core.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", app.core.types.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("client_id", "name", name="uq_providers_client_name"),
    )
    op.create_table(
        "provider_routes",
        sa.Column(
            "client_id",
            sa.String(length=26),
            sa.ForeignKey("clients.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("channel", sa.String(length=32), primary_key=True),
        sa.Column("providers", sa.JSON(), nullable=False),
        sa.Column("bulk_min_recipients", sa.Integer(), nullable=True),
        sa.Column("bulk_providers", sa.JSON(), nullable=True),
        sa.Column("updated_at", app.core.types.UTCDateTime(), nullable=False),
    )
    op.create_table(
        "suppressions",
        sa.Column(
            "client_id",
            sa.String(length=26),
            sa.ForeignKey("clients.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("address", sa.String(length=320), primary_key=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("delivery_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", app.core.types.UTCDateTime(), nullable=False),
    )
    op.create_table(
        "provider_events",
        sa.Column("id", sa.String(length=26), primary_key=True),
        _client(),
        sa.Column(
            "provider_id",
            sa.String(length=26),
            sa.ForeignKey("providers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("delivery_id", sa.String(length=26), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("permanent", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("occurred_at", app.core.types.UTCDateTime(), nullable=True),
        sa.Column("received_at", app.core.types.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("provider_id", "event_id", name="uq_provider_events_event"),
    )
    op.create_index(
        "ix_provider_events_client_received", "provider_events", ["client_id", "received_at"]
    )
    op.create_index("ix_provider_events_delivery", "provider_events", ["delivery_id"])
    op.create_table(
        "push_subscriptions",
        sa.Column("id", sa.String(length=26), primary_key=True),
        _client(),
        sa.Column(
            "user_id",
            sa.String(length=26),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("endpoint_hash", sa.String(length=64), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column("user_agent", sa.String(length=500), nullable=True),
        sa.Column("created_at", app.core.types.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", app.core.types.UTCDateTime(), nullable=True),
        sa.UniqueConstraint("user_id", "endpoint_hash", name="uq_push_subscriptions_user_endpoint"),
    )
    op.create_index(
        "ix_push_subscriptions_client_user", "push_subscriptions", ["client_id", "user_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_push_subscriptions_client_user", table_name="push_subscriptions")
    op.drop_table("push_subscriptions")
    op.drop_index("ix_provider_events_delivery", table_name="provider_events")
    op.drop_index("ix_provider_events_client_received", table_name="provider_events")
    op.drop_table("provider_events")
    op.drop_table("suppressions")
    op.drop_table("provider_routes")
    op.drop_table("providers")
    # Not batch mode: on SQLite that rebuilds `users`, and dropping the old table with
    # foreign keys on cascades to every row that references a user (inbox items, keys…).
    # SQLite 3.35+ drops a column in place.
    op.drop_column("users", "phone")
