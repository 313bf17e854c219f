"""Request and response shapes of the browser demo's endpoints (not part of the public API)."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_DISPLAY_NAME = 40


def _clean_name(value: str) -> str:
    # One line of visible text: no control or format characters (NUL, newlines, bidi overrides).
    name = " ".join(value.split())
    if not name:
        raise ValueError("must not be blank")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in name):
        raise ValueError("must not contain control characters")
    return name


DisplayName = Annotated[
    str, Field(min_length=1, max_length=MAX_DISPLAY_NAME), AfterValidator(_clean_name)
]


class DemoLogin(BaseModel):
    """`POST /demo/session`: the name to chat as."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName


class DemoRoom(BaseModel):
    """One of the demo's shared rooms."""

    id: str
    name: str


class DemoSession(BaseModel):
    """A demo user's key (the page keeps it in memory only) and the rooms it joined."""

    api_key: str
    user_id: str
    display_name: str
    scopes: list[str]
    expires_at: datetime | None
    rooms: list[DemoRoom]


class DemoNames(BaseModel):
    """Display names of demo users by id (unknown ids are left out)."""

    names: dict[str, str]
