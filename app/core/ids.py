"""Opaque, sortable identifiers."""

from ulid import ULID


def new_id() -> str:
    """A new ULID as a 26-character string: unique, and sortable by creation time."""
    return str(ULID())
