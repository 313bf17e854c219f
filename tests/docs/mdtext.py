"""Reading the project's Markdown the way the tests need: fenced blocks, links, anchors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markdown.extensions.toc import slugify

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
# [text](target) and ![alt](target); the target ends at whitespace or the closing paren.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language (may be empty) and its text."""

    lang: str
    text: str


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    return [Block(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def prose(text: str) -> str:
    """The text without fenced blocks and code spans (where links are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    """Every link and image target of a Markdown text (outside code)."""
    return LINK.findall(prose(text))


def anchors(text: str) -> set[str]:
    """The ids MkDocs (Python-Markdown's toc) gives the headings of a Markdown text."""
    return {slugify(CODE_SPAN.sub(lambda m: m.group(0)[1:-1], h), "-") for h in _headings(text)}


def _headings(text: str) -> list[str]:
    return HEADING.findall(FENCE.sub("", text))


def broken_links(path: Path, root: Path) -> list[str]:
    """Relative links of `path` whose file (inside `root`) or heading anchor is missing."""
    problems = []
    for target in links(path.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: …
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path.resolve()
        if not dest.is_relative_to(root.resolve()):
            problems.append(f"{path.name}: {target}: outside the repository")
        elif not dest.exists():
            problems.append(f"{path.name}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{path.name}: {target}: no heading with that anchor")
    return problems


def project_markdown(root: Path) -> list[Path]:
    """The project's own Markdown files (README, docs/, examples', bench's), not vendored."""
    skip = {".venv", ".git", "node_modules", "site", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    return sorted(p for p in root.rglob("*.md") if not skip & set(p.relative_to(root).parts))
