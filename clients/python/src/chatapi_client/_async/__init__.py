"""The asyncio client; `_sync` is generated from this package (scripts/unasync.py)."""
