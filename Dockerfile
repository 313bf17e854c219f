# syntax=docker/dockerfile:1
# ChatAPI image: `docker build -t chatapi .`, then
# `docker run -p 8000:8000 -v chatapi-data:/var/lib/chatapi chatapi` (SQLite + embedded mode,
# the database in a named volume) or use docker-compose.yml (PostgreSQL + Redis + Celery).
FROM python:3.11-slim

# The installed package carries everything it reads at run time (migrations, the demo's
# files, the API docs' assets), so the image runs the copy pip put in site-packages.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/chatapi

RUN groupadd --system --gid 10001 chatapi \
    && useradd --system --uid 10001 --gid chatapi --home-dir /srv/chatapi \
        --shell /usr/sbin/nologin chatapi

# Built into a wheel and installed; the sources are removed afterwards.
COPY pyproject.toml README.md LICENSE /tmp/chatapi-src/
COPY app/ /tmp/chatapi-src/app/
COPY scripts/ ./scripts/

# Code stays root-owned. The process runs in /var/lib/chatapi, the only writable place: the
# default SQLite file (./chatapi.db) and the key generated beside it live there, a volume.
# (The base image's pip is recent enough: no unpinned `pip install --upgrade pip`.)
RUN pip install /tmp/chatapi-src \
    && rm -rf /tmp/chatapi-src \
    && install -d -o chatapi -g chatapi -m 0750 /var/lib/chatapi

USER 10001:10001
WORKDIR /var/lib/chatapi
VOLUME ["/var/lib/chatapi"]

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4).status == 200 else 1)"]

CMD ["chatapi", "serve", "--host", "0.0.0.0", "--port", "8000"]
