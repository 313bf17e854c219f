"""docs/walkthrough.md runs as written: its `bash` blocks, in order, in one shell, against a
real `chatapi serve` on SQLite in an empty folder (the page starts the server itself)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.mdtext import blocks
from tests.support.processes import free_port

# The page's ports, replaced by free ones so parallel runs cannot collide.
PAGE_PORTS = ("8000", "1025", "9000")
# Started, checked, stopped: the whole tour is bounded well under a minute on a quiet machine.
TIMEOUT_SECONDS = 150


def walkthrough_script(page: str, ports: dict[str, str]) -> str:
    """The page's bash blocks as one script, its ports replaced, failing on any error."""
    body = "\n".join(b.text for b in blocks(page) if b.lang == "bash")
    for old, new in ports.items():
        body = re.sub(rf"\b{old}\b", new, body)
    # Whatever the page left running is stopped if a step fails before its last block.
    return "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + body


def test_the_walkthrough_script_is_every_bash_block_with_free_ports() -> None:
    page = "x\n```bash\ncurl localhost:8000/a\n```\n```json\n{}\n```\n```bash\necho 18000\n```\n"
    script = walkthrough_script(page, {"8000": "4321"})
    assert "curl localhost:4321/a\n\necho 18000" in script
    assert "{}" not in script


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(repo_root: Path, tmp_path: Path) -> None:
    page = (repo_root / "docs" / "walkthrough.md").read_text()
    script = walkthrough_script(page, {p: str(free_port()) for p in PAGE_PORTS})
    (tmp_path / "walkthrough.sh").write_text(script)
    venv_bin = str(Path(sys.executable).parent)
    # A user's shell: the installed `chatapi` and `python3` first, none of the suite's
    # database or Redis settings (the page runs the embedded default in its own folder).
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR")}
    env["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
    proc = subprocess.Popen(
        ["bash", "walkthrough.sh"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = tmp_path / "chatapi.log"
    server_log = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
    assert proc.returncode == 0, f"walkthrough failed:\n{output}\n--- chatapi.log ---\n{server_log}"
    # What the tour shows a reader, checked here too (the shell only checked the exit codes).
    assert '"slug":"acme-shop"' in output.replace(" ", "")
    assert '"duplicate":false' in output.replace(" ", ""), "the inbound event was accepted"
    events = (tmp_path / "events.txt").read_text()
    assert events.startswith("connected ")
    assert "notification " in events and "message.created " in events
    assert "verified " in (tmp_path / "hooks.txt").read_text()
    assert "FORGED" not in (tmp_path / "hooks.txt").read_text()
