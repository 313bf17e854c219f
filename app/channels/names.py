"""The in-app channel's name, for the parts built on it: its parked deliveries' index and
queries (app/notifications/parked_repository.py) and the inbox, whose items show its content
(app/inbox/repository.py). Everything else asks a channel's driver (app/channels/driver.py)."""

IN_APP = "websocket"
