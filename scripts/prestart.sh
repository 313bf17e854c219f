#!/usr/bin/env bash
# Wait for the database and migrate it, then exit: scripts/prestart.sh
# Retries `chatapi migrate` for up to PRESTART_TIMEOUT_SECONDS (default 60) while the
# database starts; exits non-zero with the last attempt's output if it never succeeds.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN="${VENV:-.venv}/bin"
tool() { if [[ -x "$BIN/$1" ]]; then echo "$BIN/$1"; else echo "$1"; fi; }
PYTHON="$(tool python)"
if [[ "$PYTHON" == python ]] && ! command -v python >/dev/null 2>&1; then
    PYTHON=python3
fi

"$PYTHON" - "$(tool chatapi)" "${PRESTART_TIMEOUT_SECONDS:-60}" <<'PY'
import subprocess
import sys
import time

chatapi, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
attempt = 0
while True:
    attempt += 1
    result = subprocess.run([chatapi, "migrate"], capture_output=True, text=True)
    if result.returncode == 0:
        sys.stdout.write(result.stdout)
        sys.exit(0)
    if time.monotonic() >= deadline:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        print(f"prestart: database not ready after {timeout:g} s, giving up", file=sys.stderr)
        sys.exit(result.returncode or 1)
    reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
    print(f"prestart: attempt {attempt}: {reason}; retrying in 2 s", file=sys.stderr)
    time.sleep(2)
PY
