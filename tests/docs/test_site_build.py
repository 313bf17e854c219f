"""The documentation site: `mkdocs build --strict` passes (a broken link or anchor fails
it), every page of docs/ is in the navigation, and the built site loads nothing from
another host (it is read on air-gapped machines too)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# Assets a page loads (scripts, stylesheets, fonts, images) — not links a reader may follow.
EXTERNAL_ASSET = re.compile(
    r"<(?:script|img|iframe)[^>]*\ssrc=\"(?:https?:)?//"
    r"|<link[^>]*\shref=\"(?:https?:)?//"
    r"|url\((?:['\"])?(?:https?:)?//"
    r"|@import\s+['\"](?:https?:)?//",
    re.IGNORECASE,
)


def mkdocs_build(repo_root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of the repository into `site`."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=repo_root,
        # Material's banner about MkDocs 2 is noise in a failure's output.
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    repo_root = Path(__file__).resolve().parents[2]
    out = tmp_path_factory.mktemp("site")
    built = mkdocs_build(repo_root, out)
    assert built.returncode == 0, built.stdout + built.stderr
    yield out


def _nav_files(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_files(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_files(value)


def test_the_site_builds_strictly(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "walkthrough" / "index.html").is_file()


def test_every_page_is_in_the_navigation(repo_root: Path) -> None:
    config = yaml.safe_load((repo_root / "mkdocs.yml").read_text())
    pages = {
        p.relative_to(repo_root / "docs").as_posix() for p in (repo_root / "docs").rglob("*.md")
    }
    assert sorted(pages - set(_nav_files(config["nav"]))) == []


def test_the_site_loads_nothing_from_another_host(site: Path) -> None:
    found = [
        f"{page.relative_to(site)}: {m.group(0)}"
        for page in site.rglob("*")
        if page.suffix in (".html", ".css", ".js") and page.is_file()
        for m in EXTERNAL_ASSET.finditer(page.read_text(errors="replace"))
    ]
    assert found == []


def test_a_broken_link_fails_the_build(repo_root: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n")
    config = yaml.safe_load((repo_root / "mkdocs.yml").read_text())
    config.update(docs_dir=str(docs), nav=["index.md"])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    built = mkdocs_build(tmp_path, tmp_path / "site")
    assert built.returncode != 0
    assert "missing.md" in built.stderr
