#!/usr/bin/env bash
# scripts/check_engineio_bounds.sh [pytest args...]: run the realtime tests on both ends of
# the python-engineio / python-socketio range pinned in pyproject.toml (BOUNDS=lower or
# BOUNDS=upper runs one end only).
#
# app/realtime/engineio_direct.py writes Socket.IO events past Engine.IO's queue using its
# internals; tests/realtime/test_engineio_direct.py checks them on whatever is installed (CI),
# this script on the oldest and the newest release the range allows. Run it before widening
# the range (then update LOWER/UPPER). Each bound gets a throwaway venv holding only the two
# packages, layered over .venv's site-packages (everything else, and the editable app, as is).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The lowest and highest releases inside the pinned range (engineio, socketio).
# (python-socketio 5.18 needs python-engineio >= 4.15.1: one Engine.IO release today.)
LOWER=("python-engineio==4.15.1" "python-socketio==5.18.0")
UPPER=("python-engineio==4.15.1" "python-socketio==5.18.1")
BASE_VENV="${VENV:-.venv}"
ARGS=("$@")
[[ ${#ARGS[@]} -gt 0 ]] || ARGS=(tests/realtime -q)

[[ -x "$BASE_VENV/bin/python" ]] || scripts/test.sh --collect-only -q >/dev/null  # makes .venv
base_site="$("$BASE_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"

run_bound() {
    local label="$1"
    shift
    local venv
    venv="$(mktemp -d "${TMPDIR:-/tmp}/chatapi-eio-$label.XXXXXX")"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --no-deps "$@"
    local site
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    # After the venv's own site-packages, so the two pinned packages shadow .venv's.
    echo "import site; site.addsitedir('$base_site')" >"$site/zz_chatapi_base.pth"
    # test.sh installs nothing into a venv carrying its stamps.
    touch "$venv/.chatapi-test-installed" "$venv/.chatapi-client-installed"
    cp "$BASE_VENV"/.chatapi-deploy-tools-* "$venv/" 2>/dev/null || true
    ln -sf "$(cd "$BASE_VENV/bin" && pwd)"/{hadolint,docker-compose} "$venv/bin/" 2>/dev/null || true
    echo "== $label: $("$venv/bin/python" -c 'from importlib.metadata import version as v; print("python-engineio", v("python-engineio"), "python-socketio", v("python-socketio"))')"
    local status=0
    VENV="$venv" scripts/test.sh "${ARGS[@]}" || status=$?
    rm -rf "$venv"
    echo "== $label: pytest exit $status"
    return "$status"
}

failed=0
bounds="${BOUNDS:-lower upper}"
[[ " $bounds " == *" lower "* ]] && { run_bound lower "${LOWER[@]}" || failed=1; }
[[ " $bounds " == *" upper "* ]] && { run_bound upper "${UPPER[@]}" || failed=1; }
exit "$failed"
