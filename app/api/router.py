"""Every domain router, mounted under /api/v1."""

from fastapi import APIRouter

from app.analytics.routes import router as analytics_router
from app.auth.routes import router as auth_router
from app.email.routes import router as email_config_router
from app.inbound.routes import public_router as inbound_public_router
from app.inbound.routes import router as inbound_router
from app.inbox.routes import router as inbox_router
from app.messages.routes import router as messages_router
from app.notifications.routes import router as notifications_router
from app.observability.health import live
from app.realtime.gateway_websocket import router as websocket_router
from app.rooms.routes import router as rooms_router
from app.tenants.routes import router as clients_router
from app.users.routes import router as users_router
from app.webhooks.routes import router as webhook_endpoints_router

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
api_router.add_api_route("/utils/health-check", live, methods=["GET"], tags=["health"])
api_router.include_router(clients_router)
api_router.include_router(auth_router)
api_router.include_router(users_router)
api_router.include_router(rooms_router)
api_router.include_router(messages_router)
api_router.include_router(websocket_router)
api_router.include_router(webhook_endpoints_router)
api_router.include_router(email_config_router)
api_router.include_router(notifications_router)
api_router.include_router(inbound_router)
api_router.include_router(inbound_public_router)
api_router.include_router(inbox_router)
api_router.include_router(analytics_router)
