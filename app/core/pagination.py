"""Cursor pagination over sortable ids: no offsets, no scans of skipped rows."""

from __future__ import annotations

from typing import Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

T = TypeVar("T")
MAX_PAGE = 200


class PageParams(BaseModel):
    """`?limit=&cursor=`: the cursor is the last id of the previous page."""

    limit: int = 50
    cursor: str | None = None


def page_params(
    limit: int = Query(50, ge=1, le=MAX_PAGE, description="Items per page."),
    cursor: str | None = Query(None, max_length=64, description="`next_cursor` of the last page."),
) -> PageParams:
    """FastAPI dependency reading the page parameters."""
    return PageParams(limit=limit, cursor=cursor)


class Page(BaseModel, Generic[T]):
    """A page of items and the cursor of the next one."""

    data: list[T]
    has_more: bool
    next_cursor: str | None


def make_page(rows: list[T], limit: int, cursor_of: object) -> tuple[list[T], bool, str | None]:
    """Cut a `limit + 1` query result into a page, whether more exist, and the next cursor."""
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = getattr(rows[-1], str(cursor_of)) if has_more and rows else None
    return rows, has_more, next_cursor
