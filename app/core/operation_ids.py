"""The OpenAPI operationId of every route, and the tags the document groups them under.

Code generators name their methods after operationIds (`clients.create` becomes
`clients.create()` or `clientsCreate()`), so the ids are part of the contract: one reviewed
table, keyed by (method, full path), rather than FastAPI's `create_client_api_v1_clients_post`
derived from function names that change with refactoring. `operation_id` is the app's
`generate_unique_id_function`; a route missing from the table keeps FastAPI's id and fails
tests/core/test_operation_ids.py, which also holds the naming rule and uniqueness.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id

_V1 = "/api/v1"

# (METHOD, path as documented) -> operationId: `<resource>[.<sub-resource>].<verb>`.
OPERATION_IDS: dict[tuple[str, str], str] = {
    # health
    ("GET", "/health/live"): "health.live",
    ("GET", "/health/ready"): "health.ready",
    ("GET", "/metrics"): "health.metrics",
    ("GET", f"{_V1}/utils/health-check"): "health.check",
    # clients
    ("POST", f"{_V1}/clients"): "clients.create",
    ("GET", f"{_V1}/clients/me"): "clients.me.get",
    ("PATCH", f"{_V1}/clients/me"): "clients.me.update",
    ("POST", f"{_V1}/clients/me/rotate-key"): "clients.me.rotate_key",
    ("GET", f"{_V1}/clients/{{client_id}}"): "clients.get",
    ("PATCH", f"{_V1}/clients/{{client_id}}"): "clients.update",
    # auth and keys
    ("POST", f"{_V1}/auth/login"): "auth.login",
    ("POST", f"{_V1}/auth/logout"): "auth.logout",
    ("POST", f"{_V1}/auth/connect-token"): "auth.connect_token.create",
    ("GET", f"{_V1}/auth/me"): "auth.me.get",
    ("GET", f"{_V1}/keys"): "keys.list",
    ("DELETE", f"{_V1}/keys/{{key_id}}"): "keys.revoke",
    # users
    ("POST", f"{_V1}/users"): "users.upsert",
    ("GET", f"{_V1}/users"): "users.list",
    ("GET", f"{_V1}/users/{{user_id}}"): "users.get",
    ("PATCH", f"{_V1}/users/{{user_id}}"): "users.update",
    ("DELETE", f"{_V1}/users/{{user_id}}"): "users.delete",
    # rooms
    ("POST", f"{_V1}/rooms"): "rooms.create",
    ("GET", f"{_V1}/rooms"): "rooms.list",
    ("GET", f"{_V1}/rooms/all"): "rooms.list_all",
    ("GET", f"{_V1}/rooms/{{room_id}}"): "rooms.get",
    ("PATCH", f"{_V1}/rooms/{{room_id}}"): "rooms.update",
    ("DELETE", f"{_V1}/rooms/{{room_id}}"): "rooms.delete",
    ("GET", f"{_V1}/rooms/{{room_id}}/members"): "rooms.members.list",
    ("POST", f"{_V1}/rooms/{{room_id}}/members"): "rooms.members.add",
    ("DELETE", f"{_V1}/rooms/{{room_id}}/members/{{user_id}}"): "rooms.members.remove",
    ("POST", f"{_V1}/rooms/{{room_id}}/read"): "rooms.mark_read",
    # messages
    ("POST", f"{_V1}/rooms/{{room_id}}/messages"): "rooms.messages.create",
    ("GET", f"{_V1}/rooms/{{room_id}}/messages"): "rooms.messages.list",
    ("PATCH", f"{_V1}/rooms/{{room_id}}/messages/{{message_id}}"): "rooms.messages.update",
    ("DELETE", f"{_V1}/rooms/{{room_id}}/messages/{{message_id}}"): "rooms.messages.delete",
    # outbound webhook endpoints
    ("POST", f"{_V1}/webhook-endpoints"): "webhook_endpoints.create",
    ("GET", f"{_V1}/webhook-endpoints"): "webhook_endpoints.list",
    ("GET", f"{_V1}/webhook-endpoints/{{endpoint_id}}"): "webhook_endpoints.get",
    ("PATCH", f"{_V1}/webhook-endpoints/{{endpoint_id}}"): "webhook_endpoints.update",
    ("DELETE", f"{_V1}/webhook-endpoints/{{endpoint_id}}"): "webhook_endpoints.delete",
    (
        "POST",
        f"{_V1}/webhook-endpoints/{{endpoint_id}}/rotate-secret",
    ): "webhook_endpoints.rotate_secret",
    ("POST", f"{_V1}/webhook-endpoints/{{endpoint_id}}/recover"): "webhook_endpoints.recover",
    # the event catalog
    ("POST", f"{_V1}/event-types"): "event_types.create",
    ("GET", f"{_V1}/event-types"): "event_types.list",
    ("GET", f"{_V1}/event-types/openapi.json"): "event_types.openapi",
    ("GET", f"{_V1}/event-types/{{name}}"): "event_types.get",
    ("PATCH", f"{_V1}/event-types/{{name}}"): "event_types.update",
    ("DELETE", f"{_V1}/event-types/{{name}}"): "event_types.delete",
    # e-mail configuration
    ("GET", f"{_V1}/email-config"): "email_config.get",
    ("PUT", f"{_V1}/email-config"): "email_config.replace",
    ("DELETE", f"{_V1}/email-config"): "email_config.delete",
    ("POST", f"{_V1}/email-config/test"): "email_config.test",
    # providers and routing
    ("POST", f"{_V1}/providers"): "providers.create",
    ("GET", f"{_V1}/providers"): "providers.list",
    ("GET", f"{_V1}/providers/{{provider_id}}"): "providers.get",
    ("PATCH", f"{_V1}/providers/{{provider_id}}"): "providers.update",
    ("DELETE", f"{_V1}/providers/{{provider_id}}"): "providers.delete",
    ("POST", f"{_V1}/providers/{{provider_id}}/test"): "providers.test",
    ("GET", f"{_V1}/routing/{{channel}}"): "routing.get",
    ("PUT", f"{_V1}/routing/{{channel}}"): "routing.replace",
    ("GET", f"{_V1}/suppressions"): "suppressions.list",
    ("DELETE", f"{_V1}/suppressions/{{address}}"): "suppressions.delete",
    ("POST", f"{_V1}/provider-events/{{client_slug}}/{{provider_name}}"): "provider_events.receive",
    # notifications (the relay)
    ("POST", f"{_V1}/notifications/send"): "notifications.send",
    ("GET", f"{_V1}/notifications"): "notifications.list",
    ("GET", f"{_V1}/notifications/{{notification_id}}"): "notifications.get",
    ("GET", f"{_V1}/notifications/{{notification_id}}/attempts"): "notifications.attempts.list",
    ("POST", f"{_V1}/notifications/{{notification_id}}/cancel"): "notifications.cancel",
    ("POST", f"{_V1}/notifications/{{notification_id}}/retry"): "notifications.retry",
    ("POST", f"{_V1}/notifications/retry"): "notifications.retry_failed",
    # inbound webhooks
    ("POST", f"{_V1}/inbound-webhooks"): "inbound_webhooks.create",
    ("GET", f"{_V1}/inbound-webhooks"): "inbound_webhooks.list",
    ("GET", f"{_V1}/inbound-webhooks/{{hook_id}}"): "inbound_webhooks.get",
    ("PATCH", f"{_V1}/inbound-webhooks/{{hook_id}}"): "inbound_webhooks.update",
    ("DELETE", f"{_V1}/inbound-webhooks/{{hook_id}}"): "inbound_webhooks.delete",
    ("POST", f"{_V1}/inbound-webhooks/{{hook_id}}/rotate-secret"): "inbound_webhooks.rotate_secret",
    ("GET", f"{_V1}/inbound-webhooks/{{hook_id}}/events"): "inbound_webhooks.events.list",
    (
        "POST",
        f"{_V1}/inbound-webhooks/{{hook_id}}/events/{{event_id}}/replay",
    ): "inbound_webhooks.events.replay",
    ("POST", f"{_V1}/webhooks/{{client_slug}}/{{name}}"): "inbound_webhooks.receive",
    # the in-app inbox and preferences
    ("GET", f"{_V1}/me/notifications"): "me.notifications.list",
    ("GET", f"{_V1}/me/notifications/count"): "me.notifications.count",
    ("POST", f"{_V1}/me/notifications/read-all"): "me.notifications.read_all",
    ("POST", f"{_V1}/me/notifications/archive-read"): "me.notifications.archive_read",
    ("POST", f"{_V1}/me/notifications/{{item_id}}/read"): "me.notifications.read",
    ("POST", f"{_V1}/me/notifications/{{item_id}}/unread"): "me.notifications.unread",
    ("POST", f"{_V1}/me/notifications/{{item_id}}/seen"): "me.notifications.seen",
    ("POST", f"{_V1}/me/notifications/{{item_id}}/archive"): "me.notifications.archive",
    ("POST", f"{_V1}/me/notifications/{{item_id}}/unarchive"): "me.notifications.unarchive",
    ("GET", f"{_V1}/users/{{user_id}}/notifications"): "users.notifications.list",
    ("GET", f"{_V1}/me/preferences"): "me.preferences.get",
    ("PUT", f"{_V1}/me/preferences"): "me.preferences.replace",
    ("GET", f"{_V1}/users/{{user_id}}/preferences"): "users.preferences.get",
    ("PUT", f"{_V1}/users/{{user_id}}/preferences"): "users.preferences.replace",
    # push subscriptions (the `push` channel's targets)
    ("POST", f"{_V1}/me/push-subscriptions"): "me.push_subscriptions.create",
    ("GET", f"{_V1}/me/push-subscriptions"): "me.push_subscriptions.list",
    ("DELETE", f"{_V1}/me/push-subscriptions/{{subscription_id}}"): "me.push_subscriptions.delete",
    # analytics
    ("GET", f"{_V1}/analytics/summary"): "analytics.summary",
}

# The document's tags, in the order they are shown; each route's tag comes from its router.
OPENAPI_TAGS: list[dict[str, Any]] = [
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics (no key)."},
    {"name": "clients", "description": "Tenants: creation (admin key), settings, master keys."},
    {
        "name": "auth",
        "description": "User keys: login (always rotates), logout, listing, revoking.",
    },
    {"name": "users", "description": "A tenant's users, upserted on `external_id`."},
    {"name": "rooms", "description": "Rooms, their members and read markers."},
    {"name": "messages", "description": "Messages of a room, numbered by `seq` without gaps."},
    {
        "name": "webhooks",
        "description": "Outbound webhook endpoints: where the relay POSTs signed events (the "
        "payloads are described under `webhooks`).",
    },
    {
        "name": "event-types",
        "description": "The tenant's event catalog: webhook event types with payload schemas.",
    },
    {
        "name": "email",
        "description": "The tenant's SMTP server (and its fallback): a view of its `smtp` "
        "providers.",
    },
    {
        "name": "providers",
        "description": "The delivery services behind the email, sms and push channels, and "
        "the order (routing) they are tried in.",
    },
    {
        "name": "notifications",
        "description": "The relay: one call, many channels and recipients, each delivery "
        "tracked and retried.",
    },
    {
        "name": "inbound webhooks",
        "description": "Signed events from external systems, stored, deduplicated and acted on.",
    },
    {"name": "inbox", "description": "A user's in-app notifications and channel preferences."},
    {
        "name": "push",
        "description": "A user's Web Push subscriptions and FCM tokens (the `push` channel).",
    },
    {"name": "analytics", "description": "Counts and latencies of a tenant's traffic."},
]


def operation_id(route: APIRoute) -> str:
    """The route's operationId from the table; FastAPI's generated id when it has none
    (which the tests refuse, so a route is never published without a reviewed name)."""
    for method in sorted(route.methods or ()):
        found = OPERATION_IDS.get((method, route.path_format))
        if found is not None:
            return found
    return generate_unique_id(route)
