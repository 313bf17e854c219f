"""docs/api.md and docs/realtime.md are complete references: every HTTP operation of the
OpenAPI document has its row (with its operation id), no row names an operation that does
not exist, and every socket event is described."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.main import create_app
from app.realtime import events
from tests.conftest import make_settings

PREFIX = "/api/v1"
# | `METHOD /path` | `operation.id` | …
ROW = re.compile(r"^\|\s*`(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`\s*\|\s*`([a-z_.]+)`", re.M)


def operations(tmp_path: Path) -> dict[tuple[str, str], str]:
    """(METHOD, path as the page writes it) → operation id, from the app's OpenAPI."""
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path}/x.db"))
    ops = {}
    for path, methods in app.openapi()["paths"].items():
        short = path.removeprefix(PREFIX) if path.startswith(PREFIX + "/") else path
        for method, op in methods.items():
            ops[(method.upper(), short)] = op["operationId"]
    return ops


@pytest.fixture
def rows(repo_root: Path) -> dict[tuple[str, str], str]:
    text = (repo_root / "docs" / "api.md").read_text()
    return {(m, p): op for m, p, op in ROW.findall(text)}


def test_every_operation_has_a_row_with_its_operation_id(
    rows: dict[tuple[str, str], str], tmp_path: Path
) -> None:
    ops = operations(tmp_path)
    missing = [f"{m} {p}" for (m, p) in ops if (m, p) not in rows]
    assert missing == []
    wrong = [f"{m} {p}: {rows[(m, p)]} ≠ {op}" for (m, p), op in ops.items() if rows[(m, p)] != op]
    assert wrong == []


def test_no_row_names_an_operation_that_does_not_exist(
    rows: dict[tuple[str, str], str], tmp_path: Path
) -> None:
    assert sorted(f"{m} {p}" for (m, p) in set(rows) - set(operations(tmp_path))) == []


def test_every_socket_event_is_described(repo_root: Path) -> None:
    text = (repo_root / "docs" / "realtime.md").read_text()
    names = [v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)]
    names += list(events.CLIENT_EVENTS)
    assert sorted(n for n in set(names) if f"`{n}`" not in text) == []
