"""Request and response shapes of `/inbound-webhooks` and the ingestion endpoint."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.core.bounds import Metadata, check_json_value
from app.inbound import signatures
from app.inbound.models import InboundEvent, InboundWebhook
from app.templating import templates
from app.tenants.schemas import RoomType

HOOK_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: The longest content-dedupe window a hook may ask for (7 days).
MAX_CONTENT_DEDUPE_SECONDS = 7 * 86_400


class Action(str, Enum):
    """What a verified event does."""

    notify = "notify"
    message = "message"
    room = "room"
    forward = "forward"


class Scheme(str, Enum):
    """How the sender signs."""

    standard_webhooks = "standard-webhooks"
    github = "github"
    stripe = "stripe"
    hmac_sha256 = "hmac-sha256"


class SignatureOptions(BaseModel):
    """Options of the signature scheme; each applies where its scheme reads it."""

    model_config = ConfigDict(extra="forbid")

    tolerance_seconds: int | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="standard-webhooks, stripe: how far the signed timestamp may be from now "
        "(default INBOUND_SIGNATURE_TOLERANCE_SECONDS).",
    )
    header: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9-]+$",
        description="hmac-sha256: the header carrying the HMAC (default `X-Signature`).",
    )
    encoding: str = Field(default="hex", pattern="^(hex|base64)$", description="hmac-sha256")
    prefix: str | None = Field(
        default=None, max_length=20, description="hmac-sha256: e.g. `sha256=` before the digest."
    )
    dedupe_header: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9-]+$",
        description="hmac-sha256: the header whose value is the delivery's unique id.",
    )
    dedupe_field: str | None = Field(
        default=None,
        max_length=200,
        description="hmac-sha256: the body's JSON field (dotted path) that is the event's id.",
    )
    content_dedupe_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_CONTENT_DEDUPE_SECONDS,
        description="github, hmac-sha256: their delivery id is not signed, so a captured "
        "request replays under a new one; for this many seconds after an event, a request "
        "with the same signed content (SHA-256 of the body) is answered as its duplicate and "
        "not stored. 0 or absent: off.",
    )
    keep_headers: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="More request headers to store with each event (and show to templates).",
    )


class ActionConfig(BaseModel):
    """The action's configuration; extra keys are kept for the action to read."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "template": {
                        "content": "New issue: {{ body.issue.title }}",
                        "room": {
                            "key": "issue-{{ body.issue.id }}",
                            "name": "{{ body.issue.title }}",
                            "type": "support",
                        },
                    }
                }
            ]
        },
    )

    template: Any = Field(
        default=None,
        description="JSON whose string leaves are Jinja2 templates over `body` and `headers`; "
        "its result is the action's input.",
    )
    room_id: str | None = Field(default=None, max_length=26, description="message: the room.")
    event_type: str | None = Field(
        default=None, max_length=200, description="forward: the event type relayed."
    )
    defaults: dict[str, Any] | None = Field(
        default=None, description="notify: merged under the input."
    )

    @model_validator(mode="after")
    def _json_and_template(self) -> ActionConfig:
        check_json_value(self.model_dump())
        if self.template is not None:
            try:
                templates.check(self.template)
            except templates.TemplateFailed as exc:
                raise ValueError(str(exc)) from None
        return self


class HookCreate(BaseModel):
    """`POST /inbound-webhooks`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "github-issues",
                    "action": "message",
                    "config": {
                        "template": {
                            "content": "New issue: {{ body.issue.title }}",
                            "room": {"key": "issue-{{ body.issue.id }}", "type": "support"},
                        }
                    },
                    "scheme": "github",
                }
            ]
        },
    )

    name: str = Field(pattern=HOOK_NAME, description="Unique per client; part of the URL.")
    action: Action
    config: ActionConfig = Field(default_factory=ActionConfig)
    scheme: Scheme = Scheme.standard_webhooks
    signature: SignatureOptions = Field(default_factory=SignatureOptions)
    disabled: bool = False

    @model_validator(mode="after")
    def _action_needs(self) -> HookCreate:
        if self.action is Action.forward and not self.config.event_type:
            raise ValueError("the forward action needs config.event_type")
        problem = content_dedupe_problem(self.scheme.value, self.signature.model_dump())
        if problem:
            raise ValueError(problem)
        return self


def content_dedupe_problem(scheme: str, signature: dict[str, Any]) -> str | None:
    """Why `signature.content_dedupe_seconds` cannot apply to `scheme` (None if it can, or
    is off): the other schemes sign their id or timestamp, which refuses replays already."""
    if not signature.get("content_dedupe_seconds") or scheme in signatures.UNSIGNED_ID_SCHEMES:
        return None
    return (
        f"signature.content_dedupe_seconds applies to the github and hmac-sha256 schemes only "
        f"({scheme} signs its id or timestamp, which refuses replays already); set it to 0"
    )


class HookPatch(BaseModel):
    """`PATCH /inbound-webhooks/{id}`: the name (the URL) stays."""

    model_config = ConfigDict(extra="forbid")

    action: Action | None = None
    config: ActionConfig | None = None
    scheme: Scheme | None = None
    signature: SignatureOptions | None = None
    disabled: bool | None = None


class RotateSecret(BaseModel):
    """`POST /inbound-webhooks/{id}/rotate-secret`."""

    model_config = ConfigDict(extra="forbid")

    grace_seconds: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86_400,
        description="How long the old secret still verifies (default "
        "INBOUND_SECRET_GRACE_SECONDS).",
    )


class HookOut(BaseModel):
    """A hook as the API shows it; `secret` only when it was just made or rotated."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01JD6Z9G7H8J9K0M1N2P3Q4R5S",
                    "name": "github-issues",
                    "url": "https://chat.example.com/api/v1/webhooks/acme-shop/github-issues",
                    "path": "/api/v1/webhooks/acme-shop/github-issues",
                    "action": "message",
                    "scheme": "github",
                    "config": {"template": {"content": "New issue: {{ body.issue.title }}"}},
                    "signature": {},
                    "disabled": False,
                    "previous_secret_expires_at": None,
                    "created_at": "2026-12-01T09:30:00Z",
                    "updated_at": "2026-12-01T09:30:00Z",
                    "secret": "whsec_Zk3vQmF9pLr2TcYw8sHdA1nB",
                }
            ]
        }
    )

    id: str
    name: str
    url: str = Field(
        description="Where the sender posts: absolute, on PUBLIC_BASE_URL (unset: the base "
        "URL this request was made to)."
    )
    path: str = Field(description="`url`'s path: `/api/v1/webhooks/{client_slug}/{name}`.")
    action: Action
    scheme: Scheme
    config: dict[str, Any]
    signature: dict[str, Any]
    disabled: bool
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = None

    @classmethod
    def of(
        cls, hook: InboundWebhook, slug: str, base_url: str, secret: str | None = None
    ) -> HookOut:
        """From the row, its client's slug and the API's public base URL."""
        path = hook_url(slug, hook.name)
        return cls(
            id=hook.id,
            name=hook.name,
            url=base_url + path,
            path=path,
            action=Action(hook.action),
            scheme=Scheme(hook.scheme),
            config=hook.config,
            signature=hook.signature,
            disabled=hook.disabled,
            previous_secret_expires_at=hook.previous_secret_expires_at,
            created_at=hook.created_at,
            updated_at=hook.updated_at,
            secret=secret,
        )


def hook_url(slug: str, name: str) -> str:
    """The public path a sender posts to."""
    return f"/api/v1/webhooks/{slug}/{name}"


class HookPage(BaseModel):
    """A page of hooks."""

    data: list[HookOut]
    has_more: bool
    next_cursor: str | None


class EventOut(BaseModel):
    """A received event and how its processing went."""

    id: str
    hook_id: str
    status: str
    dedupe_key: str | None
    headers: dict[str, str]
    body: str = Field(description="The raw body (undecodable bytes replaced).")
    attempts: int
    error: str | None
    outcome: dict[str, Any] | None
    received_at: datetime
    processed_at: datetime | None
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, event: InboundEvent) -> EventOut:
        """From the row."""
        return cls(
            id=event.id,
            hook_id=event.hook_id,
            status=event.status,
            dedupe_key=event.dedupe_key,
            headers=event.headers,
            body=event.body.decode(errors="replace"),
            attempts=event.attempts,
            error=event.error,
            outcome=event.outcome,
            received_at=event.received_at,
            processed_at=event.processed_at,
            next_attempt_at=event.next_attempt_at,
        )


class EventPage(BaseModel):
    """Events of a hook, newest first."""

    data: list[EventOut]
    has_more: bool
    next_cursor: str | None


class Accepted(BaseModel):
    """The answer to a sender: the event's id, and whether it was a repeat."""

    id: str
    status: str
    duplicate: bool


class RoomInput(BaseModel):
    """The `room` action's input (and `message`'s `room`): find or create by `key`."""

    model_config = ConfigDict(extra="ignore")

    key: str | None = Field(default=None, min_length=1, max_length=255)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    type: RoomType = RoomType.support

    @field_validator("key", mode="before")
    @classmethod
    def _number_key(cls, value: object) -> object:
        # External ids are often numbers (`{{ body.issue.id }}` keeps its JSON type).
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    member_ids: list[str] = Field(default_factory=list, max_length=1000)
    metadata: Metadata = Field(default_factory=dict)


class MessageInput(BaseModel):
    """The `message` action's input."""

    model_config = ConfigDict(extra="ignore")

    content: str = Field(min_length=1)
    content_type: str = Field(default="text/plain", min_length=1, max_length=100)
    metadata: Metadata = Field(default_factory=dict)
    room_id: str | None = Field(default=None, max_length=26)
    room: RoomInput | None = None
