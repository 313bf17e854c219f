"""The database migrations (Alembic's env.py and versions/), shipped inside the package so
an installed `chatapi` can migrate without the source tree (app/core/migrations.py)."""
