"""The core asks channels' drivers; it never names a built-in channel (issue #21).

No module under app/notifications, app/ratelimit or app/inbox has "websocket", "email" or
"webhook" as a string value; documentation (docstrings, OpenAPI examples) may.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
CORE = ("notifications", "ratelimit", "inbox")
BUILT_IN = frozenset({"websocket", "email", "webhook"})
# Keyword arguments whose values are documentation, not behaviour.
DOC_KEYWORDS = frozenset({"examples", "json_schema_extra", "description"})


def _named(tree: ast.AST) -> list[int]:
    """Lines where a built-in channel's name is a string value (not documentation)."""
    skip: set[int] = set()  # ids of nodes that are documentation
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))  # a docstring (or a bare string statement)
        if isinstance(node, ast.keyword) and node.arg in DOC_KEYWORDS:
            skip.update(id(n) for n in ast.walk(node.value))
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "model_config" for t in node.targets
        ):
            skip.update(id(n) for n in ast.walk(node.value))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in BUILT_IN and id(node) not in skip
    ]


def test_core_modules_name_no_built_in_channel() -> None:
    found = {
        str(path.relative_to(APP)): lines
        for package in CORE
        for path in sorted((APP / package).rglob("*.py"))
        if (lines := _named(ast.parse(path.read_text(), str(path))))
    }
    assert found == {}, f"ask the channel's driver instead (app/channels/driver.py): {found}"


def test_the_check_finds_a_channel_name() -> None:
    # The check itself can fail: a comparison with a channel name is found, a docstring not.
    source = '"""Mentions webhook."""\nif channel == "webhook":\n    pass\n'
    assert _named(ast.parse(source)) == [2]
