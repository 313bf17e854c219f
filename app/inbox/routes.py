"""`/me/notifications`, `/me/preferences` (user key) and their master-key twins under
`/users/{user_id}` (API.md §6b)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.api.deps import BusDep, MasterDep, ReadSessionDep, SessionDep, get_principal
from app.auth import scopes
from app.auth.principal import Principal
from app.core.errors import Forbidden
from app.core.openapi import problems
from app.core.pagination import PageParams, make_page, page_params
from app.inbox import service
from app.inbox.repository import InboxEntry
from app.inbox.schemas import (
    InboxBulkResult,
    InboxCount,
    InboxItemOut,
    InboxPage,
    Preferences,
)
from app.runtime import Runtime

router = APIRouter(tags=["inbox"])


async def _inbox_user(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    # The inbox is a user's own: a user key holding notifications:read (the scope the
    # `notification` socket events need too).
    scopes.require(principal, scopes.NOTIFICATIONS_READ)
    if not principal.is_user:
        raise Forbidden("This call needs a user key")
    return principal


async def _any_user(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_user:
        raise Forbidden("This call needs a user key")
    return principal


InboxUserDep = Annotated[Principal, Depends(_inbox_user)]
UserKeyDep = Annotated[Principal, Depends(_any_user)]


class InboxFilters:
    """`?read=&seen=&archived=&event=` (each optional; booleans are true/false)."""

    def __init__(
        self,
        read: Annotated[
            bool | None, Query(description="Only read (true) or unread (false)")
        ] = None,
        seen: Annotated[bool | None, Query(description="Only seen or unseen")] = None,
        archived: Annotated[
            bool | None, Query(description="Only archived or unarchived; default: both")
        ] = None,
        event: Annotated[
            str | None, Query(min_length=1, max_length=200, description="Only this event")
        ] = None,
    ) -> None:
        self.read, self.seen, self.archived, self.event = read, seen, archived, event


FiltersDep = Annotated[InboxFilters, Depends()]
PageDep = Annotated[PageParams, Depends(page_params)]


def _page(rows: list[InboxEntry], limit: int) -> InboxPage:
    items, has_more, cursor = make_page(rows, limit, "id")
    return InboxPage(
        data=[InboxItemOut.of(i) for i in items], has_more=has_more, next_cursor=cursor
    )


def _user_id(principal: Principal) -> str:
    assert principal.user_id is not None  # a user key (the dependency checked)
    return principal.user_id


def _channel_names(request: Request) -> list[str]:
    # The channels a user's preferences may name: those that reach users.
    runtime: Runtime = request.app.state.runtime
    return [name for name, channel in runtime.channels.items() if channel.reaches_users]


@router.get("/me/notifications", response_model=InboxPage)
async def my_notifications(
    principal: InboxUserDep, session: ReadSessionDep, page: PageDep, filters: FiltersDep
) -> InboxPage:
    """The caller's inbox, newest first, by cursor."""
    rows = await service.list_items(
        session,
        principal.client_id,
        _user_id(principal),
        limit=page.limit,
        after=page.cursor,
        read=filters.read,
        seen=filters.seen,
        archived=filters.archived,
        event=filters.event,
    )
    return _page(rows, page.limit)


@router.get("/me/notifications/count", response_model=InboxCount)
async def my_notification_count(principal: InboxUserDep, session: ReadSessionDep) -> InboxCount:
    """Unread, unseen and all unarchived items (indexed counts)."""
    found = await service.counts(session, principal.client_id, _user_id(principal))
    return InboxCount(**found.as_dict())


@router.post("/me/notifications/read-all", response_model=InboxBulkResult)
async def read_all(principal: InboxUserDep, session: SessionDep, bus: BusDep) -> InboxBulkResult:
    """Mark every item read (and seen); the user's sockets get `notification.count`."""
    changed, found = await service.read_all(session, bus, principal.client_id, _user_id(principal))
    return InboxBulkResult(updated=changed, **found.as_dict())


@router.post("/me/notifications/archive-read", response_model=InboxBulkResult)
async def archive_read(
    principal: InboxUserDep, session: SessionDep, bus: BusDep
) -> InboxBulkResult:
    """Archive every read item; the user's sockets get `notification.count`."""
    changed, found = await service.archive_read(
        session, bus, principal.client_id, _user_id(principal)
    )
    return InboxBulkResult(updated=changed, **found.as_dict())


def _action_route(action: str, summary: str) -> None:
    async def endpoint(
        item_id: str, principal: InboxUserDep, session: SessionDep, bus: BusDep
    ) -> InboxItemOut:
        item = await service.act(
            session, bus, principal.client_id, _user_id(principal), item_id, action
        )
        return InboxItemOut.of(item)

    endpoint.__name__ = f"{action}_notification"
    endpoint.__doc__ = summary
    router.add_api_route(
        f"/me/notifications/{{item_id}}/{action}",
        endpoint,
        methods=["POST"],
        response_model=InboxItemOut,
        responses=problems(404),
    )


_action_route("read", "Mark the item read (and seen). Already read: unchanged, no event.")
_action_route("unread", "Mark the item unread again.")
_action_route("seen", "Mark the item seen (shown in a list) without reading it.")
_action_route("archive", "Archive the item: it leaves the counts, stays listable.")
_action_route("unarchive", "Bring an archived item back.")


@router.get("/users/{user_id}/notifications", response_model=InboxPage, responses=problems(404))
async def user_notifications(
    user_id: str,
    principal: MasterDep,
    session: ReadSessionDep,
    page: PageDep,
    filters: FiltersDep,
) -> InboxPage:
    """A user's inbox as the user sees it, for support tooling (master key)."""
    rows = await service.user_items(
        session,
        principal.client_id,
        user_id,
        limit=page.limit,
        after=page.cursor,
        read=filters.read,
        seen=filters.seen,
        archived=filters.archived,
        event=filters.event,
    )
    return _page(rows, page.limit)


@router.get("/me/preferences", response_model=Preferences)
async def my_preferences(principal: UserKeyDep, session: ReadSessionDep) -> Preferences:
    """The caller's channel preferences (nothing stored: every channel on)."""
    return await service.get_preferences(session, principal.client_id, _user_id(principal))


@router.put("/me/preferences", response_model=Preferences)
async def put_my_preferences(
    body: Preferences, principal: UserKeyDep, session: SessionDep, request: Request
) -> Preferences:
    """Replace the caller's channel preferences; an unknown channel (or `webhook`) is 422."""
    return await service.put_preferences(
        session, principal.client_id, _user_id(principal), body, channels=_channel_names(request)
    )


@router.get("/users/{user_id}/preferences", response_model=Preferences, responses=problems(404))
async def user_preferences(
    user_id: str, principal: MasterDep, session: ReadSessionDep
) -> Preferences:
    """A user's channel preferences (master key)."""
    return await service.get_preferences(session, principal.client_id, user_id)


@router.put("/users/{user_id}/preferences", response_model=Preferences, responses=problems(404))
async def put_user_preferences(
    user_id: str, body: Preferences, principal: MasterDep, session: SessionDep, request: Request
) -> Preferences:
    """Replace a user's channel preferences (master key)."""
    return await service.put_preferences(
        session, principal.client_id, user_id, body, channels=_channel_names(request)
    )
