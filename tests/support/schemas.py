"""Validate JSON against a schema of a published document (OpenAPI or AsyncAPI), its
`#/components/...` references resolved within that document."""

from __future__ import annotations

from typing import Any

import jsonschema_rs


def errors(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    """Why `instance` does not match `schema` (a schema or a `$ref` into `document`)."""
    root = {**schema, "components": document.get("components", {})}
    validator = jsonschema_rs.validator_for(root)
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(instance)]


def ref(name: str) -> dict[str, str]:
    """A reference to `#/components/schemas/<name>`."""
    return {"$ref": f"#/components/schemas/{name}"}
