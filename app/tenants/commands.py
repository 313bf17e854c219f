"""Client management for the CLI (no HTTP, no admin key: the operator has the database)."""

from __future__ import annotations

from app.core.config import Settings
from app.core.db import Database
from app.tenants import service


async def create_client(settings: Settings, name: str, slug: str | None) -> dict[str, str]:
    """Create a client; return the JSON the CLI prints, master key included."""
    db = Database(settings.DATABASE_URL)
    try:
        async with db.session() as session:
            client, master_key = await service.create_client(
                session, name, slug, settings.BCRYPT_ROUNDS
            )
        return {"id": client.id, "name": client.name, "slug": client.slug, "master_key": master_key}
    finally:
        await db.dispose()
