"""Every table model, imported so SQLModel.metadata (and Alembic) sees the whole schema."""

from app.auth.models import ApiKey
from app.messages.models import Message
from app.rooms.models import Room, RoomMember
from app.system.models import Heartbeat
from app.tenants.models import Client
from app.users.models import User

__all__ = ["ApiKey", "Client", "Heartbeat", "Message", "Room", "RoomMember", "User"]
