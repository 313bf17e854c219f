"""Repository fixtures: `db`, `client_id`, `other_client_id` (tests/support/db.py)."""

from tests.support.db import client_id, db, other_client_id

__all__ = ["client_id", "db", "other_client_id"]
