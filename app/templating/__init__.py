"""Tenant templates: the Jinja sandbox, and rendering in limited worker processes."""
