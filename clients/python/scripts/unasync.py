"""Generate the synchronous client (src/chatapi_client/_sync) from the asyncio one (_async).

Run from clients/python: `python scripts/unasync.py` (tests/test_client_unasync.py fails when
the committed _sync package differs from what this prints). The same approach as httpcore's
unasync: one hand-written implementation, two faces, no drift between them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "chatapi_client"
RULES = [
    (r"\basync def\b", "def"),
    (r"\basync for\b", "for"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"\bimport asyncio\b", "import time"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bhttpx\.AsyncClient\b", "httpx.Client"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\bchatapi_client\._async\b", "chatapi_client._sync"),
    (r"\bAsync(?=[A-Z])", ""),
    (r"asyncio client", "synchronous client"),
]
HEADER = "# Generated from chatapi_client/_async by scripts/unasync.py: do not edit.\n"


def convert(source: str) -> str:
    """The synchronous twin of one asyncio module."""
    for pattern, replacement in RULES:
        source = re.sub(pattern, replacement, source)
    return HEADER + source


def generated() -> dict[Path, str]:
    """Every file of _sync and its content."""
    return {
        ROOT / "_sync" / path.name: convert(path.read_text())
        for path in sorted((ROOT / "_async").glob("*.py"))
    }


def main() -> int:
    """Write _sync; with --check, exit 1 when it is out of date instead."""
    stale = [
        path for path, text in generated().items() if not path.exists() or path.read_text() != text
    ]
    if "--check" in sys.argv:
        for path in stale:
            print(f"out of date: {path}")
        return 1 if stale else 0
    for path, text in generated().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
