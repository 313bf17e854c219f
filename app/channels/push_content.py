"""The `push` channel's content: what a browser's service worker or a device shows.

One schema for both kinds of subscription: Web Push carries it whole (encrypted, as JSON,
for the service worker to show), FCM maps `title`/`body` to its `notification` and `data`
(plus `url`, `icon`) to its string-valued `data`.
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.channels.content import JsonObject

# RFC 8291 leaves 3,993 bytes of plaintext in a push service's 4,096-byte record (FCM's own
# limit is 4,000 bytes); the channel adds the notification's and delivery's ids.
MAX_PUSH_CONTENT_BYTES = 3_600


class PushContent(BaseModel):
    """A push notification: `title` and `body` shown, `data` for the app, `url` to open on
    click and `icon` to show (both passed through for the service worker or the app)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Order shipped",
                    "body": "A-1 is on its way",
                    "url": "https://shop.example/orders/A-1",
                    "data": {"order": "A-1"},
                }
            ]
        },
    )

    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=2000)
    data: JsonObject | None = None
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    icon: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _fits(self) -> PushContent:
        size = len(orjson.dumps(self.model_dump(mode="json", exclude_none=True)))
        if size > MAX_PUSH_CONTENT_BYTES:
            raise ValueError(
                f"push content is {size} bytes as JSON; push services take at most "
                f"{MAX_PUSH_CONTENT_BYTES}"
            )
        return self
