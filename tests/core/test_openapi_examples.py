"""The OpenAPI document's examples: the key operations' request and response schemas carry
one, and every example in the document is valid against its own schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.support.schemas import errors, ref

# (method, path) of the key operations: their body and success answer carry examples.
KEY_OPERATIONS = [
    ("post", "/api/v1/clients"),
    ("post", "/api/v1/users"),
    ("post", "/api/v1/rooms"),
    ("post", "/api/v1/rooms/{room_id}/messages"),
    ("post", "/api/v1/notifications/send"),
    ("post", "/api/v1/webhook-endpoints"),
    ("post", "/api/v1/inbound-webhooks"),
]


@pytest.fixture(scope="module")
async def spec(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('examples') / 'e.db'}"
    app = create_app(make_settings(url), run_embedded_worker=False)
    async for http in app_client(app):
        yield dict((await http.get("/api/v1/openapi.json")).json())


def _schema_name(content: dict[str, Any]) -> str:
    return str(content["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]


@pytest.mark.parametrize(("method", "path"), KEY_OPERATIONS)
async def test_key_operations_show_a_request_and_a_response_example(
    spec: dict[str, Any], method: str, path: str
) -> None:
    op = spec["paths"][path][method]
    schemas = spec["components"]["schemas"]
    request = _schema_name(op["requestBody"]["content"])
    assert schemas[request].get("examples"), request
    success = min(code for code in op["responses"] if code.startswith("2"))
    response = _schema_name(op["responses"][success]["content"])
    assert schemas[response].get("examples"), response


async def test_every_example_is_valid_against_its_schema(spec: dict[str, Any]) -> None:
    checked = 0
    for name, schema in spec["components"]["schemas"].items():
        for example in schema.get("examples", []):
            assert errors(spec, ref(name), example) == [], (name, example)
            checked += 1
    assert checked >= 15
