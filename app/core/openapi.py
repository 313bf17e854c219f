"""The OpenAPI document as the API really answers, and a route table read from it.

FastAPI documents every operation with its success status and a 422 `HTTPValidationError`
as application/json. The API really answers errors as RFC 9457 problem+json (app/core/errors)
and can refuse any authenticated call with 401/403/429, any body with 408/413/422, any path
parameter with 404. `install_openapi` rewrites the generated document once so that each
operation lists those statuses with the shared `Problem` / `ValidationProblem` schemas;
routes declare only what is particular to them (`responses=problems(409)`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import compile_path

from app.core.errors import PROBLEM_CONTENT_TYPE

REF = "#/components/schemas/"
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class Problem(BaseModel):
    """An RFC 9457 problem: every error the API answers."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://chatapi.dev/problems/not-found",
                    "title": "Not found",
                    "status": 404,
                    "detail": "No such room",
                    "instance": "/api/v1/rooms/01JD6Z3Q8W9X0Y1Z2A3B4C5D6E",
                }
            ]
        },
    )

    type: str = Field(description="A URI naming the kind of problem.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request.")
    instance: str = Field(description="The path of the request.")


class ValidationErrorItem(BaseModel):
    """One reason a request was invalid."""

    loc: list[str | int] = Field(description="Where: `body`, `query`, `path` then the field.")
    msg: str
    type: str


class ValidationProblem(Problem):
    """A 422 problem listing every invalid part of the request."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://chatapi.dev/problems/validation-error",
                    "title": "Validation failed",
                    "status": 422,
                    "detail": "body.seq: Input should be greater than or equal to 0",
                    "instance": "/api/v1/rooms/01JD6Z3Q8W9X0Y1Z2A3B4C5D6E/read",
                    "errors": [
                        {
                            "loc": ["body", "seq"],
                            "msg": "Input should be greater than or equal to 0",
                            "type": "greater_than_equal",
                        }
                    ],
                }
            ]
        },
    )

    errors: list[ValidationErrorItem]


_DESCRIPTIONS = {
    400: "The request could not be read",
    401: "No API key, or an unknown, revoked or expired one",
    403: "The key may not make this call",
    404: "No such resource for this client",
    408: "The request body did not arrive in time",
    409: "The request conflicts with the resource's state",
    413: "The request body or the message content is too large",
    422: "The request is invalid (every reason is listed in `errors`)",
    429: "Too many requests; retry after `Retry-After` seconds",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route's own error statuses, rendered as problem+json."""
    return {s: {"model": Problem, "description": _DESCRIPTIONS.get(s, "Error")} for s in statuses}


def _problem_response(status: int) -> dict[str, Any]:
    schema = "ValidationProblem" if status == 422 else "Problem"
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": REF + schema}}},
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}
        }
    return response


def _implied_statuses(operation: dict[str, Any]) -> set[int]:
    statuses: set[int] = set()
    params = operation.get("parameters", [])
    if operation.get("security"):
        statuses |= {401, 403, 429}
    if params or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        # A body can be refused for its size, its JSON, or its pace (app/core/middleware.py).
        statuses |= {400, 408, 413}
    if any(p.get("in") == "path" for p in params):
        statuses.add(404)
    return statuses


def _add_schemas(spec: dict[str, Any]) -> None:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, ValidationErrorItem, ValidationProblem):
        schema = model.model_json_schema(ref_template=REF + "{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
    # FastAPI's own 422 shape is never answered: the problem+json one replaces it.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


def rewrite_responses(spec: dict[str, Any]) -> dict[str, Any]:
    """Give every operation its real error statuses as problem+json (in place)."""
    _add_schemas(spec)
    for path_item in spec.get("paths", {}).values():
        for method in _HTTP_METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            declared = {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for status in sorted(declared | _implied_statuses(operation)):
                responses[str(status)] = _problem_response(status)
    return spec


def _models_with_examples() -> dict[str, list[Any]]:
    """Component name -> the examples its model declares, for names only one model has."""
    found: dict[str, list[list[Any]]] = {}
    seen: set[type[BaseModel]] = set()
    pending = list(BaseModel.__subclasses__())
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        pending.extend(model.__subclasses__())
        extra = model.model_config.get("json_schema_extra")
        examples = extra.get("examples") if isinstance(extra, dict) else None
        if isinstance(examples, list) and examples:
            long_name = f"{model.__module__}.{model.__qualname__}".replace(".", "__")
            for name in (model.__name__, long_name):
                found.setdefault(name, []).append(examples)
    return {name: lists[0] for name, lists in found.items() if len(lists) == 1}


def restore_examples(spec: dict[str, Any]) -> dict[str, Any]:
    """Put the models' own examples back into their schemas (in place).

    FastAPI encodes the whole document with `exclude_none`, which strips every `null` from
    examples too, so an example of a required nullable field (`deleted_at: null`) would no
    longer match its own schema.
    """
    schemas = spec.get("components", {}).get("schemas", {})
    for name, examples in _models_with_examples().items():
        if "examples" in schemas.get(name, {}):
            schemas[name]["examples"] = examples
    return spec


def install_openapi(app: FastAPI, path_order: Callable[[], Sequence[str]] | None = None) -> None:
    """Serve the rewritten document at the app's openapi_url (built once, then cached);
    `path_order` gives the order of the paths it names (routers may be included in another
    order, the one requests are matched in)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = restore_examples(rewrite_responses(generate()))
            if path_order is not None:
                spec["paths"] = _in_order(spec.get("paths", {}), path_order())
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _in_order(paths: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    # The named paths fill the slots named paths had, in `order`; the others stay put.
    rank = {path: i for i, path in enumerate(dict.fromkeys(order))}
    named = iter(sorted((p for p in paths if p in rank), key=rank.__getitem__))
    keys = [next(named) if p in rank else p for p in paths]
    return {key: paths[key] for key in keys}


@dataclass
class _PathEntry:
    regex: re.Pattern[str]
    template: str
    # Method (upper case) -> whether the operation needs an API key.
    methods: dict[str, bool] = field(default_factory=dict)


class RouteTable:
    """Which documented operation a request is for, read from the app's OpenAPI document
    (so it follows FastAPI's own view of the routes, included routers and all)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._entries: list[_PathEntry] = []
        for path, item in spec.get("paths", {}).items():
            regex, _, _ = compile_path(path)
            entry = _PathEntry(regex, path)
            for method in _HTTP_METHODS:
                if method in item:
                    entry.methods[method.upper()] = bool(item[method].get("security"))
            if "GET" in entry.methods:
                entry.methods.setdefault("HEAD", entry.methods["GET"])
            self._entries.append(entry)

    def needs_key(self, method: str, path: str) -> bool:
        """True when the first operation matching (method, path) is authenticated."""
        for entry in self._entries:
            if method in entry.methods and entry.regex.match(path):
                return entry.methods[method]
        return False

    def template(self, method: str, path: str) -> str | None:
        """The documented path template (`/api/v1/rooms/{room_id}`) answering (method, path)."""
        for entry in self._entries:
            if method in entry.methods and entry.regex.match(path):
                return entry.template
        return None

    def allowed_methods(self, path: str) -> list[str]:
        """Every method some documented operation answers on `path`."""
        methods: set[str] = set()
        for entry in self._entries:
            if entry.regex.match(path):
                methods |= entry.methods.keys()
        return sorted(methods)


def route_table(app: FastAPI) -> RouteTable:
    """The app's route table, built from its OpenAPI document on first use."""
    table: RouteTable | None = getattr(app.state, "route_table", None)
    if table is None:
        table = RouteTable(app.openapi())
        app.state.route_table = table
    return table
