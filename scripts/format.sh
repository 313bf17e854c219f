#!/usr/bin/env bash
# Format and auto-fix the code base: scripts/format.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN="${VENV:-.venv}/bin"
tool() { if [[ -x "$BIN/$1" ]]; then echo "$BIN/$1"; else echo "$1"; fi; }
RUFF="$(tool ruff)"

targets=()
for dir in app tests scripts bench; do
    [[ -e "$dir" ]] && targets+=("$dir")
done

"$RUFF" format "${targets[@]}"
status=0
"$RUFF" check --fix "${targets[@]}" || status=$?
# Fixes can leave lines the formatter would write differently.
"$RUFF" format --quiet "${targets[@]}"
exit "$status"
