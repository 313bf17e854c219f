# Generated from chatapi_client/_async by scripts/unasync.py: do not edit.
"""The synchronous client; `_sync` is generated from this package (scripts/unasync.py)."""
