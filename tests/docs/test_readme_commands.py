"""Every command the README shows is run by a test: the tour's are lines of
docs/walkthrough.md (run by tests/docs/test_walkthrough.py), the others are named here with
the test that holds them. A new README command without either fails this test."""

from __future__ import annotations

import re
from pathlib import Path

from tests.docs.mdtext import blocks

# README command → (the file that runs or checks it, a string proving that file does).
ELSEWHERE = {
    # The wheel `pip install .` builds, installed outside the checkout and served from an
    # empty folder.
    "pip install . && chatapi serve": (
        "tests/packaging/test_wheel_install.py",
        '[str(installed / "bin" / "chatapi"), "serve"',
    ),
    "scripts/test.sh": (".ci/run", "bash scripts/test.sh"),
    "DEMO_ENABLED=true chatapi serve": ("tests/demo/test_browser_chat.py", "DEMO_ENABLED=True"),
    # No Docker engine here: the Compose CLI validates the file the commands use, and the
    # first-tenant command is the CLI's own `clients create` (run by the walkthrough).
    "docker compose up -d": ("tests/test_deploy_files.py", '"config", "--format", "json"'),
    'docker compose exec api chatapi clients create "Acme Shop"': (
        "tests/test_deploy_files.py",
        'docker compose exec api chatapi clients create "Acme Shop"',
    ),
    "export SECRET_KEY=$(python -c 'import secrets;print(secrets.token_urlsafe(48))')": (
        "tests/test_deploy_files.py",
        '"SECRET_KEY": "s" * 48',
    ),
    "export ADMIN_API_KEY=$(python -c 'import secrets;print(secrets.token_urlsafe(48))')": (
        "tests/test_deploy_files.py",
        '"ADMIN_API_KEY": "a" * 48',
    ),
}


def commands(markdown: str) -> list[str]:
    """The command lines of a page's bash blocks: continuations joined, comments dropped."""
    found = []
    for block in blocks(markdown):
        if block.lang not in ("bash", "sh", "shell"):
            continue
        for line in block.text.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                found.append(" ".join(line.split()))
    return found


def test_every_readme_command_is_run_by_a_test(repo_root: Path) -> None:
    walkthrough = commands((repo_root / "docs" / "walkthrough.md").read_text())
    readme = commands((repo_root / "README.md").read_text())
    unaccounted = [
        c for c in readme if c not in ELSEWHERE and not any(c in line for line in walkthrough)
    ]
    assert unaccounted == []


def test_each_named_test_holds_its_command(repo_root: Path) -> None:
    readme = commands((repo_root / "README.md").read_text())
    for command, (path, proof) in ELSEWHERE.items():
        assert command in readme, f"stale entry: {command!r} is no longer in the README"
        assert proof in (repo_root / path).read_text(), f"{path} does not run {command!r}"


def test_commands_are_read_without_comments_and_with_continuations() -> None:
    text = "```bash\n# a comment\nchatapi serve   # runs\ncurl -X POST \\\n  localhost\n```\n"
    assert commands(text) == ["chatapi serve", "curl -X POST localhost"]
