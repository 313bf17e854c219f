"""Untrusted work (tenant templates) in child processes with hard limits.

Kept light on purpose: a worker process imports this package and `worker`, nothing else of
the service (no database, no web framework), so it starts fast and small.
"""
