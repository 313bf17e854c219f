"""docs/configuration.md is the one list of environment variables: every Settings field is in
it with its real default, and it names nothing that does not exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.core.config import Settings

# Variables read by the libraries under us rather than by Settings; documented all the same.
NOT_SETTINGS = {
    "FORWARDED_ALLOW_IPS",  # uvicorn: which proxies' X-Forwarded-For to trust
    "PROMETHEUS_MULTIPROC_DIR",  # prometheus-client: metrics of several API processes
}
ROW = re.compile(r"^\|\s*(`[A-Z][A-Z0-9_]*`(?:\s*/\s*`[A-Z][A-Z0-9_]*`)*)\s*\|([^|]*)\|", re.M)


def documented(page: str) -> dict[str, str]:
    """Each variable of the page's tables with its default cell (as written)."""
    rows: dict[str, str] = {}
    for names, default in ROW.findall(page):
        found = re.findall(r"`([A-Z][A-Z0-9_]*)`", names)
        defaults = [d.strip() for d in default.split(" / ")] if len(found) > 1 else [default]
        if len(defaults) != len(found):
            defaults = [default] * len(found)
        for name, value in zip(found, defaults, strict=True):
            rows[name] = value.strip()
    return rows


def literal(cell: str) -> str | None:
    """The default when the cell is exactly one code span, else None (prose: not compared)."""
    match = re.fullmatch(r"`([^`]*)`", cell)
    return match.group(1) if match else None


def as_written(value: Any) -> str:
    """A default as the page writes it: `true`, `300`, `0.5`, `a,b`, or the string."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


@pytest.fixture
def page(repo_root: Path) -> dict[str, str]:
    return documented((repo_root / "docs" / "configuration.md").read_text())


def test_every_setting_is_documented(page: dict[str, str]) -> None:
    assert sorted(set(Settings.model_fields) - set(page)) == []


def test_the_page_documents_no_variable_that_does_not_exist(page: dict[str, str]) -> None:
    assert sorted(set(page) - set(Settings.model_fields) - NOT_SETTINGS) == []


def test_each_literal_default_is_the_real_default(page: dict[str, str]) -> None:
    wrong = []
    for name, cell in page.items():
        field = Settings.model_fields.get(name)
        written = literal(cell)
        if field is None or written is None:
            continue
        if written != as_written(field.default):
            wrong.append(f"{name}: page {written!r}, code {as_written(field.default)!r}")
    assert wrong == []


def test_rows_are_read_with_their_defaults() -> None:
    text = (
        "| variable | default | meaning |\n|---|---|---|\n"
        "| `A_B` | `5` | x |\n| `LOG_LEVEL` / `LOG_FORMAT` | `INFO` / `auto` | y |\n"
        "| `C` | unset | z |\n"
    )
    assert documented(text) == {"A_B": "`5`", "LOG_LEVEL": "`INFO`", "LOG_FORMAT": "`auto`",
                                "C": "unset"}  # fmt: skip
    assert literal("`5`") == "5" and literal("unset") is None
    assert (
        as_written(300.0) == "300"
        and as_written([5, 30]) == "5,30"
        and as_written(False) == "false"
    )
