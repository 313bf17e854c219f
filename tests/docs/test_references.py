"""The project's Markdown stands on its own: no pointers to planning files a user does not
have, no lines the code has outgrown, and every relative link (file and heading) resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.mdtext import anchors, broken_links, links, project_markdown

# The planning documents live outside the repository (../shared): a user has neither.
OUTSIDE = re.compile(r"\.\./shared|\bAPI\.md\b|\bDESIGN\.md\b")
# Lines that were true before the code caught up with them (issue 23, point 2).
STALE = (
    "not available until",
    "as the relay lands",
    "relay will use it",
)


def _user_facing(root: Path) -> list[Path]:
    return [*project_markdown(root), root / "mkdocs.yml", root / ".env.example"]


def test_no_file_points_at_the_planning_documents_outside_the_repository(
    repo_root: Path,
) -> None:
    found = [
        f"{path.relative_to(repo_root)}:{n}: {line.strip()}"
        for path in _user_facing(repo_root)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == []


def test_no_file_keeps_a_line_the_code_has_outgrown(repo_root: Path) -> None:
    found = [
        f"{path.relative_to(repo_root)}: {phrase!r}"
        for path in project_markdown(repo_root)
        for phrase in STALE
        if phrase in " ".join(path.read_text().split())
    ]
    assert found == []


def test_every_relative_link_of_the_readme_and_the_docs_resolves(repo_root: Path) -> None:
    problems = [p for path in project_markdown(repo_root) for p in broken_links(path, repo_root)]
    assert problems == []


def test_the_readme_links_into_the_docs(repo_root: Path) -> None:
    readme = links((repo_root / "README.md").read_text())
    for page in ("walkthrough", "api", "realtime", "notifications", "configuration"):
        assert f"docs/{page}.md" in readme, page
    for page in ("operations", "security"):
        assert f"docs/{page}.md" in readme, page


# --- the link checker itself ---------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## The `b` part (x)\n\ntext\n")
    return tmp_path


def test_the_checker_accepts_files_anchors_and_outside_urls(tree: Path) -> None:
    page = tree / "README.md"
    page.write_text(
        "[a](docs/a.md) [b](docs/a.md#the-b-part-x) [top](#readme) [w](https://x.org/y)\n"
        "`[code](nowhere.md)`\n\n```\n[block](nowhere.md)\n```\n\n# README\n"
    )
    assert broken_links(page, tree) == []


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("docs/missing.md", "no such file"),
        ("docs/a.md#no-such-part", "no heading with that anchor"),
        ("../elsewhere/API.md", "outside the repository"),
    ],
)
def test_the_checker_names_each_broken_link(tree: Path, target: str, why: str) -> None:
    page = tree / "README.md"
    page.write_text(f"see [there]({target})\n")
    assert broken_links(page, tree) == [f"README.md: {target}: {why}"]


def test_anchors_are_the_ids_mkdocs_gives_headings() -> None:
    text = "# ChatAPI\n## Webhook endpoints and e-mail configuration (master key)\n"
    assert anchors(text) == {"chatapi", "webhook-endpoints-and-e-mail-configuration-master-key"}
