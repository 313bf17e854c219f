"""email_configs become smtp providers (#22): `/email-config` is a view of them

Each client's `email_configs` row becomes its `smtp` provider named `smtp` (and, with a
fallback, `smtp-fallback`), sealed passwords carried over as they are (the same SECRET_KEY
opens them), and its `email` route names them in that order. The table is dropped: two
stores of one configuration would drift, and every reader now reads the providers.
Downgrading moves the two providers back into a recreated `email_configs` (other providers
and routes stay).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 07:00:00
"""

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from alembic import op

import app.core.types
from app.core.ids import new_id

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_md = sa.MetaData()
EMAIL_CONFIGS = sa.Table(
    "email_configs",
    _md,
    sa.Column("client_id", sa.String(26)),
    sa.Column("host", sa.String(255)),
    sa.Column("port", sa.Integer),
    sa.Column("username", sa.String(320)),
    sa.Column("password_sealed", sa.String(1024)),
    sa.Column("security", sa.String(16)),
    sa.Column("from_email", sa.String(320)),
    sa.Column("from_name", sa.String(200)),
    sa.Column("fallback", sa.JSON),
    sa.Column("updated_at", app.core.types.UTCDateTime()),
)
PROVIDERS = sa.Table(
    "providers",
    _md,
    sa.Column("id", sa.String(26)),
    sa.Column("client_id", sa.String(26)),
    sa.Column("name", sa.String(64)),
    sa.Column("type", sa.String(32)),
    sa.Column("channel", sa.String(32)),
    sa.Column("settings", sa.JSON),
    sa.Column("secrets_sealed", sa.JSON),
    sa.Column("enabled", sa.Boolean),
    sa.Column("created_at", app.core.types.UTCDateTime()),
    sa.Column("updated_at", app.core.types.UTCDateTime()),
)
ROUTES = sa.Table(
    "provider_routes",
    _md,
    sa.Column("client_id", sa.String(26)),
    sa.Column("channel", sa.String(32)),
    sa.Column("providers", sa.JSON),
    sa.Column("bulk_min_recipients", sa.Integer),
    sa.Column("bulk_providers", sa.JSON),
    sa.Column("updated_at", app.core.types.UTCDateTime()),
)
FIELDS = ("host", "port", "username", "security", "from_email", "from_name")


def _provider(client_id: str, name: str, fields: dict[str, Any], at: datetime) -> dict[str, Any]:
    sealed = fields.get("password_sealed")
    return {
        "id": new_id(),
        "client_id": client_id,
        "name": name,
        "type": "smtp",
        "channel": "email",
        "settings": {k: fields.get(k) for k in FIELDS},
        "secrets_sealed": {"password": sealed} if sealed else {},
        "enabled": True,
        "created_at": at,
        "updated_at": at,
    }


def upgrade() -> None:
    bind = op.get_bind()
    providers: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for row in bind.execute(sa.select(EMAIL_CONFIGS)).mappings():
        at = row["updated_at"] or datetime.now(timezone.utc)
        providers.append(_provider(row["client_id"], "smtp", dict(row), at))
        chain = ["smtp"]
        if row["fallback"]:
            providers.append(_provider(row["client_id"], "smtp-fallback", row["fallback"], at))
            chain.append("smtp-fallback")
        routes.append(
            {
                "client_id": row["client_id"],
                "channel": "email",
                "providers": chain,
                "bulk_min_recipients": None,
                "bulk_providers": None,
                "updated_at": at,
            }
        )
    if providers:
        bind.execute(PROVIDERS.insert(), providers)
        bind.execute(ROUTES.insert(), routes)
    op.drop_table("email_configs")


def downgrade() -> None:
    op.create_table(
        "email_configs",
        sa.Column(
            "client_id",
            sa.String(length=26),
            sa.ForeignKey(
                "clients.id", ondelete="CASCADE", name="fk_email_configs_client_id_clients"
            ),
            primary_key=True,
        ),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=True),
        sa.Column("password_sealed", sa.String(length=1024), nullable=True),
        sa.Column("security", sa.String(length=16), nullable=False),
        sa.Column("from_email", sa.String(length=320), nullable=False),
        sa.Column("from_name", sa.String(length=200), nullable=True),
        sa.Column("fallback", sa.JSON(), nullable=True),
        sa.Column("updated_at", app.core.types.UTCDateTime(), nullable=False),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(PROVIDERS).where(
            PROVIDERS.c.type == "smtp", PROVIDERS.c.name.in_(["smtp", "smtp-fallback"])
        )
    ).mappings()
    by_client: dict[str, dict[str, Any]] = {}
    for row in rows:
        fields = {**row["settings"], "password_sealed": row["secrets_sealed"].get("password")}
        by_client.setdefault(row["client_id"], {})[row["name"]] = (fields, row["updated_at"])
    configs = []
    for client_id, named in by_client.items():
        if "smtp" not in named:
            continue
        primary, at = named["smtp"]
        fallback = named.get("smtp-fallback")
        configs.append(
            {
                "client_id": client_id,
                **{k: primary.get(k) for k in (*FIELDS, "password_sealed")},
                "fallback": fallback[0] if fallback else None,
                "updated_at": at,
            }
        )
    if configs:
        bind.execute(EMAIL_CONFIGS.insert(), configs)
    bind.execute(
        PROVIDERS.delete().where(
            PROVIDERS.c.type == "smtp", PROVIDERS.c.name.in_(["smtp", "smtp-fallback"])
        )
    )
    bind.execute(ROUTES.delete().where(ROUTES.c.channel == "email"))
