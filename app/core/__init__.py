"""Cross-cutting infrastructure. Importing it fixes constraint naming before any model exists."""

from app.core import metadata as _metadata  # noqa: F401
