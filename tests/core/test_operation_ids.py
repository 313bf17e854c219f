"""Every documented operation has a clean, stable operationId from one reviewed table
(app/core/operation_ids.py) and one declared tag: what code generators name methods after."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.core.operation_ids import OPERATION_IDS
from app.main import create_app
from tests.conftest import app_client, make_settings

METHODS = {"get", "put", "post", "delete", "patch"}
RULE = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")


@pytest.fixture
async def spec(sqlite_url: str) -> AsyncIterator[dict[str, Any]]:
    # The demo's routes too (DEMO_ENABLED): they stay out of the document.
    app = create_app(make_settings(sqlite_url, DEMO_ENABLED=True), run_embedded_worker=False)
    async for http in app_client(app):
        response = await http.get("/api/v1/openapi.json")
        assert response.status_code == 200
        yield dict(response.json())


def _operations(section: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, item in section.items()
        for method, op in item.items()
        if method in METHODS
    }


async def test_every_operation_id_follows_the_naming_rule(spec: dict[str, Any]) -> None:
    ops = _operations(spec["paths"]) | _operations(spec.get("webhooks", {}))
    bad = {f"{m} {p}": op.get("operationId") for (m, p), op in ops.items()}
    bad = {where: op_id for where, op_id in bad.items() if not RULE.match(op_id or "")}
    assert bad == {}


async def test_every_route_has_its_entry_in_the_table(spec: dict[str, Any]) -> None:
    ops = _operations(spec["paths"])
    # A new route without an entry would get FastAPI's generated id: name it in the table.
    missing = sorted(f"{m} {p}" for m, p in ops if (m, p) not in OPERATION_IDS)
    assert missing == []
    assert {key: op["operationId"] for key, op in ops.items()} == {
        key: OPERATION_IDS[key] for key in ops
    }
    stale = sorted(f"{m} {p}" for m, p in OPERATION_IDS if (m, p) not in ops)
    assert stale == []


async def test_operation_ids_are_unique(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for op in _operations(spec["paths"]).values()]
    ids += [op["operationId"] for op in _operations(spec.get("webhooks", {})).values()]
    assert [op_id for op_id, n in Counter(ids).items() if n > 1] == []
    assert len(set(OPERATION_IDS.values())) == len(OPERATION_IDS)


async def test_every_operation_has_one_declared_and_described_tag(spec: dict[str, Any]) -> None:
    declared = {tag["name"]: tag.get("description", "") for tag in spec.get("tags", [])}
    assert all(declared.values()), declared
    ops = _operations(spec["paths"]) | _operations(spec.get("webhooks", {}))
    for (method, path), op in ops.items():
        tags = op.get("tags", [])
        assert len(tags) == 1 and tags[0] in declared, f"{method} {path}: {tags}"
    used = {op["tags"][0] for op in ops.values()}
    assert set(declared) == used
