"""Answers built by hot routes themselves."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def model_response(model: BaseModel, status_code: int) -> Response:
    """`model` as JSON: the bytes FastAPI would answer for it as the route's response_model,
    without validating the model again first (the route keeps `response_model` for OpenAPI).
    """
    return Response(
        model.model_dump_json(by_alias=True),
        status_code=status_code,
        media_type="application/json",
    )
