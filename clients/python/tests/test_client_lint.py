"""The package stays `mypy --strict` clean and ruff-formatted (CI's lint step covers app/ only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=300
    )


def test_mypy_strict_is_clean() -> None:
    result = _run("mypy")  # strict, files from clients/python/pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    for args in (
        ("ruff", "check", "src", "tests", "scripts"),
        ("ruff", "format", "--check", "src", "tests", "scripts", "README.md"),
    ):
        result = _run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
