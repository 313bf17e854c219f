#!/usr/bin/env bash
# Start a Celery worker (needs REDIS_URL): scripts/worker-start.sh [chatapi worker options...]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN="${VENV:-.venv}/bin"
tool() { if [[ -x "$BIN/$1" ]]; then echo "$BIN/$1"; else echo "$1"; fi; }

exec "$(tool chatapi)" worker "$@"
