#!/usr/bin/env bash
# The project's one test command: scripts/test.sh [pytest args...]  (PYTEST_WORKERS=N)
#
# Creates/updates a virtualenv (.venv, or $VENV), finds or starts throwaway
# PostgreSQL and Redis servers (see scripts/throwaway.py), runs pytest against them
# with TEST_DATABASE_URL / TEST_REDIS_URL exported, stops whatever it started, and
# exits with pytest's exit code.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "test.sh: creating virtualenv $VENV" >&2
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"

# Reinstall only when pyproject.toml changed since the last successful install.
STAMP="$VENV/.chatapi-test-installed"
if [[ ! -f "$STAMP" || pyproject.toml -nt "$STAMP" ]]; then
    echo "test.sh: installing chatapi[test] into $VENV" >&2
    "$PY" -m pip install -q -U pip
    "$PY" -m pip install -q -e ".[test]"
    touch "$STAMP"
fi

# The Python client (clients/python, its own package) is tested against a real server too.
CLIENT_STAMP="$VENV/.chatapi-client-installed"
if [[ ! -f "$CLIENT_STAMP" || clients/python/pyproject.toml -nt "$CLIENT_STAMP" ]]; then
    echo "test.sh: installing clients/python into $VENV" >&2
    "$PY" -m pip install -q -e clients/python
    touch "$CLIENT_STAMP"
fi

# hadolint and the Docker Compose CLI check the deploy files (tests/test_deploy_files.py);
# without them those tests skip, except under CI=true where they fail.
bash scripts/deploy_tools.sh "$VENV" ||
    echo "test.sh: warning: could not install hadolint/docker-compose (scripts/deploy_tools.sh)" >&2

# The browser demo's test (tests/demo/test_browser_chat.py) drives Debian's Chromium through
# Playwright (never Playwright's own browser downloads). Root on Debian installs it; without
# it that test skips, except under CI=true where it fails.
if ! command -v chromium >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing chromium with apt-get" >&2
        { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2 ||
            echo "test.sh: warning: could not install chromium" >&2
    else
        echo "test.sh: warning: chromium is missing (apt-get install chromium)" >&2
    fi
fi

STATE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/chatapi-test.XXXXXX")"
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    "$PY" scripts/throwaway.py down "$STATE_DIR" ||
        echo "test.sh: warning: could not clean up $STATE_DIR" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Assign first so that a failing `up` stops the script (set -e ignores `eval "$(...)"`).
exports="$("$PY" scripts/throwaway.py up "$STATE_DIR")"
eval "$exports"
export TEST_DATABASE_URL TEST_REDIS_URL
echo "test.sh: database: $TEST_DATABASE_URL" >&2
echo "test.sh: redis:    $TEST_REDIS_URL" >&2

# Two pytest workers (pytest-xdist), whole files each: much of the suite waits on child
# processes and sockets, so two workers on two cores nearly halve its wall time while
# module-scoped servers still start once. PYTEST_WORKERS=0 runs everything in one process.
workers="${PYTEST_WORKERS:-2}"
xdist=()
if [[ "$workers" != 0 ]]; then
    xdist=(-n "$workers" --dist loadfile)
fi

# No arguments: the main suite, then the client's (its own pytest config in
# clients/python/pyproject.toml); arguments under clients/python: only the client's.
status=0
if [[ $# -eq 0 || "$1" != clients/python* ]]; then
    "$PY" -m pytest "${xdist[@]}" "$@" || status=$?
fi
if [[ $# -eq 0 ]]; then
    "$PY" -m pytest "${xdist[@]}" clients/python/tests || status=$?
elif [[ "$1" == clients/python* ]]; then
    "$PY" -m pytest "${xdist[@]}" "$@" || status=$?
fi
exit "$status"
