"""The built-in channels' content models: the send body's `websocket`, `email` and `webhook`
objects. Each channel declares its model (`content_model`); the send request's schema is
built from them (app/notifications/schemas.py), so the OpenAPI document shows them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.core.bounds import check_json_value

MAX_ENDPOINT_IDS = 100


def _check_json(value: dict[str, Any]) -> dict[str, Any]:
    check_json_value(value)
    return value


#: A JSON object carried to a receiver (websocket data, webhook payload, plugin content).
JsonObject = Annotated[dict[str, Any], AfterValidator(_check_json)]


class WebsocketContent(BaseModel):
    """The `notification` event's content: `event` names it for the app, `data` carries it."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(min_length=1, max_length=200)
    data: JsonObject = Field(default_factory=dict)


class EmailContent(BaseModel):
    """An e-mail: subject and html and/or text; `from` overrides the configured sender."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    subject: str = Field(min_length=1, max_length=998)
    html: str | None = None
    text: str | None = None
    from_: str | None = Field(default=None, alias="from", min_length=3, max_length=320)

    @model_validator(mode="after")
    def _has_body(self) -> EmailContent:
        if self.html is None and self.text is None:
            raise ValueError("an e-mail needs html or text")
        return self


class WebhookContent(BaseModel):
    """A webhook event; without `endpoint_ids`, every enabled endpoint subscribed to it."""

    model_config = ConfigDict(extra="forbid")

    event_type: str = Field(min_length=1, max_length=200)
    endpoint_ids: list[Annotated[str, Field(min_length=1, max_length=26)]] | None = Field(
        default=None, min_length=1, max_length=MAX_ENDPOINT_IDS
    )
    payload: JsonObject = Field(default_factory=dict)


class JsonObjectContent(BaseModel):
    """A plug-in channel's content when it declares no model: any JSON object."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        check_json_value(value)
        return value
