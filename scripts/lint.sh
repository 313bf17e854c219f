#!/usr/bin/env bash
# Check without changing anything (what CI runs): scripts/lint.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN="${VENV:-.venv}/bin"
tool() { if [[ -x "$BIN/$1" ]]; then echo "$BIN/$1"; else echo "$1"; fi; }
RUFF="$(tool ruff)"
MYPY="$(tool mypy)"
LINT_IMPORTS="$(tool lint-imports)"

# Run every check, then fail if any failed, so one run shows all problems.
status=0
"$RUFF" check . || status=1
"$RUFF" format --check . || status=1
"$MYPY" app || status=1
# The architecture's import contracts ([tool.importlinter] in pyproject.toml).
"$LINT_IMPORTS" || status=1
exit "$status"
