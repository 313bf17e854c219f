"""`GET /analytics/summary` is documented (issue 23, point 7) and the documentation keeps up
with the answer: every field the summary answers is named where the endpoint is described
(README.md, or a page of docs/ should the section move there)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from app.analytics.schemas import AnalyticsSummary, DeliveriesSummary, Latency

ROOT = Path(__file__).resolve().parents[2]


def _section() -> str:
    """The Markdown section (heading to next heading) that documents the endpoint: of those
    naming it (an overview table may too), the one that says the most about it."""
    sections = [
        section
        for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
        for section in re.split(r"\n(?=#{2,4} )", page.read_text())
        if "GET /analytics/summary" in section
    ]
    assert sections, "no README.md or docs/ section documents GET /analytics/summary"
    return max(sections, key=lambda s: len(set(re.findall(r"`([a-z_0-9.]+)`", s))))


def _fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_the_summary_endpoint_and_every_field_it_answers_are_documented() -> None:
    section = _section()
    named = set(re.findall(r"`([a-z_0-9.]+)`", section))
    fields = _fields(AnalyticsSummary) | _fields(DeliveriesSummary) | _fields(Latency)
    missing = sorted(f for f in fields if not any(f in n.split(".") for n in named))
    assert missing == [], f"fields not named in the section: {missing}"
    for word in ("master", "p50", "p95", "until"):
        assert word in section, word


def test_the_overview_table_lists_analytics() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## What works today", 1)[1].split("\n\n", 2)[1]
    assert "/analytics/summary" in table
