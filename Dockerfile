# syntax=docker/dockerfile:1
# ChatAPI image: `docker build -t chatapi .`, then
# `docker run -p 8000:8000 -v chatapi-data:/var/lib/chatapi chatapi` (SQLite + embedded mode,
# the database in a named volume) or use docker-compose.yml (PostgreSQL + Redis + Celery).
FROM python:3.11-slim

# PYTHONPATH: import `app` from the source tree, so app.core.migrations finds alembic/
# and alembic.ini beside it (the copy pip puts in site-packages has no migrations).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/srv/chatapi

WORKDIR /srv/chatapi

RUN groupadd --system --gid 10001 chatapi \
    && useradd --system --uid 10001 --gid chatapi --home-dir /srv/chatapi \
        --shell /usr/sbin/nologin chatapi

# The bracketed globs make README.md and alembic.ini optional (a COPY only fails
# when none of its sources exist; pyproject.toml always does).
COPY pyproject.toml README.m[d] alembic.in[i] ./
COPY app/ ./app/
COPY alembic/ ./alembic/
COPY scripts/ ./scripts/
# The browser demo's files, served at /demo only when DEMO_ENABLED=true.
COPY examples/browser-chat/ ./examples/browser-chat/

# Code stays root-owned. The process runs in /var/lib/chatapi, the only writable place: the
# default SQLite file (./chatapi.db) and the key generated beside it live there, a volume.
# (The base image's pip is recent enough: no unpinned `pip install --upgrade pip`.)
RUN pip install . \
    && rm -rf build ./*.egg-info \
    && install -d -o chatapi -g chatapi -m 0750 /var/lib/chatapi

USER 10001:10001
WORKDIR /var/lib/chatapi
VOLUME ["/var/lib/chatapi"]

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4).status == 200 else 1)"]

CMD ["chatapi", "serve", "--host", "0.0.0.0", "--port", "8000"]
