"""Delivery channels of the notification relay (DESIGN.md §4); see docs/channels.md."""
