"""The driver interface's defaults (`BaseChannel`): what a channel does besides `send`, with
the behaviour a plug-in gets when it overrides nothing (docs/channels.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from app.channels.base import (
    ContentError,
    DeliveryTarget,
    Outcome,
    PhoneNumber,
    PlannedDelivery,
    Quota,
    Resolved,
    TenantLimits,
    address_recipient,
)
from app.channels.content import JsonObjectContent

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


class BaseChannel:
    """The driver interface's defaults; a channel subclasses this and overrides what differs.

    Besides `send`, a channel says what its content is (`content_model`, validated on send
    and shown in the OpenAPI schema), how a send's recipients become its deliveries
    (`expand`), what it loads for a batch of deliveries before sending (`load_targets`),
    its quota (`quota`) and which outcomes count for a target's health (`reached_target`).
    """

    name: str
    #: Validates the send's content object of this channel (422 when it does not fit).
    content_model: type[BaseModel] = JsonObjectContent
    #: A send through this channel needs at least one recipient.
    needs_recipients: bool = True
    #: Each sent delivery is also an item in its user's inbox (app/inbox).
    stores_inbox_item: bool = False
    #: Users' preferences may turn this channel off (a tenant's own endpoints: no).
    reaches_users: bool = True
    #: A delivery to a user needs nothing but its row (in-app: the inbox item stored with
    #: the send), so the engine delivers it by claiming it (app/notifications/settle.py):
    #: `send` is not called for those.
    settles_on_claim: bool = False
    #: A user's delivery carries the user's e-mail address in its recipient (`expand`).
    recipient_email: bool = True
    #: Deliveries one task message carries (and one `send_batch` call gets) at most; None:
    #: the engine's default (100). A channel whose service takes big batches says so (e-mail:
    #: 1,000, a Mailgun call's recipients).
    batch_size: int | None = None

    def validate_content(self, raw: Any) -> BaseModel:
        """The content object checked against `content_model` (ContentError when it does
        not fit); a model given already validated passes through."""
        if isinstance(raw, self.content_model):
            return raw
        if not isinstance(raw, dict):
            raise ContentError(f"channel {self.name!r} needs its content object {self.name!r}")
        try:
            return self.content_model.model_validate(raw)
        except ValidationError as exc:
            raise ContentError(f"{self.name}: {_errors(exc)}") from None

    def stored_content(self, content: BaseModel) -> dict[str, Any]:
        """What the notification stores of the content (what `send` gets)."""
        return content.model_dump(mode="json", by_alias=True)

    def content_event(self, content: BaseModel) -> str | None:
        """The event the content names (what `events` preferences match), if any."""
        return None

    async def expand(
        self,
        session: AsyncSession,
        client_id: str,
        content: BaseModel,
        recipients: Sequence[Resolved],
    ) -> list[PlannedDelivery]:
        """One delivery per resolved recipient: a user's, with the user's e-mail address
        for channels that want it; a bare address is skipped (it has no user)."""
        out: list[PlannedDelivery] = []
        for r in recipients:
            if isinstance(r, str):
                out.append(PlannedDelivery(address_recipient(r), skip_reason=address_only(r)))
                continue
            recipient: dict[str, Any] = {"user_id": r.id, "external_id": r.external_id}
            if r.email and self.recipient_email:
                recipient["email"] = r.email
            out.append(PlannedDelivery(recipient, r.id))
        return out

    async def load_targets(
        self, session: AsyncSession, client_id: str, targets: Sequence[DeliveryTarget]
    ) -> Mapping[str, DeliveryTarget | Outcome]:
        """Each delivery's target for a batch, by delivery id, with whatever the channel
        needs loaded (one read per batch); an Outcome instead where the delivery cannot
        be sent (e.g. FAILED: its endpoint was deleted)."""
        return {t.delivery_id: t for t in targets}

    def quota(self, target: DeliveryTarget, limits: TenantLimits) -> Quota | None:
        """The quota this delivery counts against, or None (no quota)."""
        return None

    def reached_target(self, outcome: Outcome) -> bool:
        """Whether the outcome says something about the target's health (an answer or its
        silence), rather than about us; only endpoint-backed channels keep health."""
        return False

    async def aclose(self) -> None:
        """Release pooled connections (at worker shutdown)."""


ADDRESS_ONLY = "an e-mail address receives only the email channel"
PHONE_ONLY = "a phone number receives only the sms channel"


def address_only(address: str) -> str:
    """Why a bare address is skipped by a channel that does not deliver to it."""
    return PHONE_ONLY if isinstance(address, PhoneNumber) else ADDRESS_ONLY


def _errors(exc: ValidationError, shown: int = 5) -> str:
    """The first `shown` problems, each with where it is: `text: Field required; ...`."""
    parts = []
    for error in exc.errors()[:shown]:
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)
