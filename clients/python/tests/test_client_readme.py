"""The README's quick start runs verbatim against a live server; the _sync package is what
scripts/unasync.py generates from _async."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Server

PACKAGE = Path(__file__).resolve().parents[1]


def test_the_readme_quick_start_runs_verbatim(
    server: Server,
    master_key: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (PACKAGE / "README.md").read_text()
    block = re.search(r"## Quick start.*?```python\n(.*?)```", readme, re.S)
    assert block is not None
    code = block.group(1)
    assert len([line for line in code.splitlines() if line.strip()]) == 5
    monkeypatch.setenv("CHATAPI_URL", server.base)
    monkeypatch.setenv("CHATAPI_API_KEY", master_key)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "1"


def test_the_sync_client_is_generated_from_the_async_one() -> None:
    check = subprocess.run(
        [sys.executable, str(PACKAGE / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
