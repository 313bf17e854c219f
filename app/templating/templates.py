"""JSON templates of inbound hooks, rendered in Jinja2's immutable sandbox.

A template is JSON whose string leaves are Jinja2 templates, rendered against `body` (the
parsed request body) and `headers`. A leaf that is exactly one `{{ expression }}` keeps the
expression's JSON type (a number, list or object); any other leaf renders to a string.

The body is data, never template source. The template is written by the tenant, so the
sandbox (app/templating/sandbox.py) is the guard against it: no attribute outside the
sandbox, no mutation, and bounds on what a render may build and do; here, the template's
size and nesting and the output's size (streamed). Every violation and every error is a
TemplateFailed whose message is the event's recorded failure. Renders run in a child
process with hard limits (app/templating/renderer.py), never in the service's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from jinja2 import TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined

from app.templating.sandbox import MAX_OUTPUT_BYTES, SandboxEnvironment, check_size, transform

MAX_TEMPLATE_BYTES = 16_384
MAX_DEPTH = 20

_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)


class TemplateFailed(Exception):
    """The template is invalid, broke a sandbox rule, or failed to render."""


def _walk_leaves(template: Any, depth: int = 0) -> Iterator[str]:
    if depth > MAX_DEPTH:
        raise TemplateFailed(f"template: nested deeper than {MAX_DEPTH}")
    if isinstance(template, str):
        yield template
    elif isinstance(template, dict):
        for key, value in template.items():
            if not isinstance(key, str):
                raise TemplateFailed("template: object keys must be strings")
            yield from _walk_leaves(value, depth + 1)
    elif isinstance(template, list):
        for value in template:
            yield from _walk_leaves(value, depth + 1)
    elif template is not None and not isinstance(template, (bool, int, float)):
        raise TemplateFailed("template: only JSON values are allowed")


def check(template: Any) -> None:
    """Validate a template when a hook is saved: JSON, size, every leaf compiles."""
    try:
        size = len(orjson.dumps(template))
    except TypeError as exc:
        raise TemplateFailed(f"template: not JSON ({exc})") from None
    if size > MAX_TEMPLATE_BYTES:
        raise TemplateFailed(f"template: {size} bytes; the limit is {MAX_TEMPLATE_BYTES}")
    env = SandboxEnvironment()
    for leaf in _walk_leaves(template):
        _compile(env, leaf)


def _compile(env: SandboxEnvironment, source: str) -> Any:
    whole = _WHOLE_EXPRESSION.match(source)
    expr = whole.group("expr") if whole and "{{" not in whole.group("expr") else None
    try:
        if expr is not None and "}}" not in expr:
            ast = env.parse("{{" + expr + "}}")
            # A lone expression: evaluate it, keeping its type.
            body = transform(ast).body[0].nodes[0]
            return ("expr", body)
        return ("text", env.from_string(transform(env.parse(source))))
    except SecurityError as exc:
        raise TemplateFailed(f"template: refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailed(f"template: {exc.message or exc}") from None


def render(template: Any, body: Any, headers: Mapping[str, str]) -> Any:
    """The template rendered against `body` and `headers` (JSON values only)."""
    env = SandboxEnvironment()
    context = {"body": body, "headers": dict(headers)}
    budget = [MAX_OUTPUT_BYTES]

    def visit(node: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise TemplateFailed(f"template: nested deeper than {MAX_DEPTH}")
        if isinstance(node, dict):
            return {k: visit(v, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [visit(v, depth + 1) for v in node]
        if not isinstance(node, str):
            return node
        kind, compiled = _compile(env, node)
        if kind == "expr":
            value = _evaluate(env, compiled, context)
        else:
            value = _stream(compiled, context, budget)
        return value

    try:
        result = visit(template, 0)
        size = len(orjson.dumps(result))
    except TemplateFailed:
        raise
    except SecurityError as exc:
        raise TemplateFailed(f"template: refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailed(f"template: {exc.message or exc}") from None
    except RecursionError:
        raise TemplateFailed("template: recursion too deep") from None
    except MemoryError:
        raise  # the renderer's process limit: reported as such, not as a template error
    except TypeError as exc:
        raise TemplateFailed(f"template: result is not JSON ({exc})") from None
    except Exception as exc:
        # Anything the template's own expressions raise (ZeroDivisionError, KeyError, …).
        raise TemplateFailed(f"template: {type(exc).__name__}: {exc}") from None
    if size > MAX_OUTPUT_BYTES:
        raise TemplateFailed(f"template: output of {size} bytes; the limit is {MAX_OUTPUT_BYTES}")
    return result


def _evaluate(env: SandboxEnvironment, expr: nodes.Expr, context: dict[str, Any]) -> Any:
    template = env.from_string(nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr)]))
    module = template.make_module(context)
    value = getattr(module, "result", None)
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises, naming what is missing
    # Before walking it: references to one big list are cheap to hold, costly to copy.
    check_size(value, "the result")
    return _json_value(value)


def _stream(template: Any, context: dict[str, Any], budget: list[int]) -> str:
    parts = []
    for chunk in template.generate(context):
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise TemplateFailed(f"template: output exceeds {MAX_OUTPUT_BYTES} bytes")
        parts.append(chunk)
    return "".join(parts)


def _json_value(value: Any, depth: int = 0) -> Any:
    """`value` if it is plain JSON (str, number, bool, None, lists, string-keyed objects)."""
    if depth > MAX_DEPTH:
        raise TemplateFailed(f"template: result nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TemplateFailed("template: result object keys must be strings")
        return {k: _json_value(v, depth + 1) for k, v in value.items()}
    raise TemplateFailed(f"template: a {type(value).__name__} is not a JSON value")
