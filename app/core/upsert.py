"""`INSERT … ON CONFLICT` for whichever database the session talks to.

SQLite and PostgreSQL spell upserts the same way (`on_conflict_do_nothing`,
`on_conflict_do_update`), but SQLAlchemy builds them from each dialect's own `insert`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An `insert(table)` of the session's dialect, offering the `on_conflict_*` clauses."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
