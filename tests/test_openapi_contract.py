"""The OpenAPI document describes the API as it answers: every error status an operation
can give, as problem+json with the shared Problem schemas, and the rules the code enforces."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.main import create_app
from tests.conftest import app_client, make_settings

PROBLEM = "application/problem+json"
METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture
async def spec(sqlite_url: str) -> AsyncIterator[dict[str, Any]]:
    app = create_app(make_settings(sqlite_url), run_embedded_worker=False)
    async for http in app_client(app):
        response = await http.get("/api/v1/openapi.json")
        assert response.status_code == 200
        yield dict(response.json())


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def _statuses(op: dict[str, Any]) -> set[int]:
    return {int(code) for code in op["responses"]}


async def test_no_operation_documents_fastapis_http_validation_error(
    spec: dict[str, Any],
) -> None:
    assert "HTTPValidationError" not in json.dumps(spec)
    schemas = spec["components"]["schemas"]
    assert {"type", "title", "status", "detail", "instance"} <= set(schemas["Problem"]["required"])
    assert "errors" in schemas["ValidationProblem"]["required"]


async def test_every_error_response_is_problem_json_with_the_problem_schema(
    spec: dict[str, Any],
) -> None:
    for method, path, op in _operations(spec):
        for code, response in op["responses"].items():
            if int(code) < 400:
                continue
            where = f"{method} {path} {code}"
            assert set(response["content"]) == {PROBLEM}, where
            expected = "ValidationProblem" if code == "422" else "Problem"
            ref = response["content"][PROBLEM]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{expected}", where


async def test_every_authenticated_operation_lists_401_403_and_429(spec: dict[str, Any]) -> None:
    authenticated = [(m, p, op) for m, p, op in _operations(spec) if op.get("security")]
    assert len(authenticated) >= 20
    for method, path, op in authenticated:
        assert {401, 403, 429} <= _statuses(op), f"{method} {path}"


async def test_bodies_and_path_parameters_list_their_refusals(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        if "requestBody" in op:
            assert {408, 413, 422} <= _statuses(op), f"{method} {path}"
        if "{" in path:
            assert {404, 422} <= _statuses(op), f"{method} {path}"


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("POST", "/api/v1/users", {200, 201, 401, 403, 422}),
        ("POST", "/api/v1/rooms", {200, 201, 401, 403, 422}),
        ("POST", "/api/v1/rooms/{room_id}/messages", {200, 201, 404, 413, 422}),
        ("PATCH", "/api/v1/rooms/{room_id}/messages/{message_id}", {200, 403, 404, 409}),
        ("POST", "/api/v1/rooms/{room_id}/members", {200, 404, 409, 422}),
        ("DELETE", "/api/v1/rooms/{room_id}/members/{user_id}", {204, 404, 409}),
        ("POST", "/api/v1/clients", {201, 401, 403, 409, 422}),
        ("POST", "/api/v1/auth/login", {200, 401, 403, 404, 422}),
        ("DELETE", "/api/v1/keys/{key_id}", {204, 404, 409}),
    ],
)
async def test_operations_list_their_real_statuses(
    spec: dict[str, Any], method: str, path: str, statuses: set[int]
) -> None:
    assert statuses <= _statuses(spec["paths"][path][method.lower()])


async def test_login_schema_states_exactly_one_of_user_id_or_external_id(
    spec: dict[str, Any],
) -> None:
    schema = spec["components"]["schemas"]["LoginRequest"]
    branches = schema["oneOf"]
    assert [b["required"] for b in branches] == [["user_id"], ["external_id"]]


async def test_metadata_and_seq_bounds_are_in_the_schema(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert schemas["MessageCreate"]["properties"]["metadata"]["maxProperties"] == 50
    params = {
        p["name"]: p["schema"]
        for p in spec["paths"]["/api/v1/rooms/{room_id}/messages"]["get"]["parameters"]
    }
    assert params["after_seq"]["anyOf"][0]["maximum"] == 2**31 - 1
