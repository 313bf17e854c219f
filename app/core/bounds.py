"""Bounds for numbers and JSON values coming in, so nothing valid can fail further down.

Every integer the API accepts must fit the databases (signed 64-bit on PostgreSQL and SQLite)
and every JSON document it stores must serialise with orjson (integers within 64 bits, no
NaN or infinity, at most 255 levels deep) or publishing it would fail after the commit.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
#: Sequence numbers are INTEGER columns (32-bit on PostgreSQL): 2 billion messages a room.
SEQ_MAX = 2**31 - 1
#: Nesting allowed inside a metadata document (orjson itself stops at 255).
MAX_JSON_DEPTH = 32
MAX_METADATA_KEYS = 50

#: A sequence number or read marker: non-negative and within the INTEGER column.
Seq = Annotated[int, Field(strict=True, ge=0, le=SEQ_MAX)]


def check_json_value(value: Any, depth: int = 0) -> Any:
    """Refuse what JSON columns and orjson cannot carry; return `value` unchanged."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value)
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("integers must fit in 64 bits (signed)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinite numbers are not JSON")
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("object keys must be strings")
            _check_text(key)
            check_json_value(item, depth + 1)
        return value
    if isinstance(value, list):
        for item in value:
            check_json_value(item, depth + 1)
        return value
    raise ValueError(f"{type(value).__name__} is not a JSON value")


def _check_text(text: str) -> None:
    # JSON can spell a lone surrogate (\\ud800); no database or orjson can store it.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("strings must be valid Unicode (no lone surrogates)") from None


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    check_json_value(value)
    return value


_METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_METADATA_KEYS,
    "description": (
        "Free-form JSON object (at most 50 keys, 32 levels deep; integers within signed "
        "64 bits; no NaN or Infinity)."
    ),
    "additionalProperties": True,
}

#: A metadata object as stored on users, rooms and messages.
Metadata = Annotated[
    dict[str, Any],
    Field(max_length=MAX_METADATA_KEYS),
    AfterValidator(_check_metadata),
    WithJsonSchema(_METADATA_SCHEMA),
]
