"""JSON templates of inbound hooks, rendered in Jinja2's immutable sandbox.

A template is JSON whose string leaves are Jinja2 templates, rendered against `body` (the
parsed request body) and `headers`. A leaf that is exactly one `{{ expression }}` keeps the
expression's JSON type (a number, list or object); any other leaf renders to a string.

The body is data, never template source. The template is written by the tenant, so the
sandbox is the guard against it: no attribute outside the sandbox (`__class__`,
`__globals__`, …), no mutation, and bounds on what a render may build — template size,
output size (streamed), sizes of `+` / `*` results, exponents, loop iterations over
`range`, a whitelist of filters and methods (none that pads or repeats by an argument),
no string formatting. Every violation and every error is a TemplateFailed whose message is
the event's recorded failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_TEMPLATE_BYTES = 16_384
MAX_OUTPUT_BYTES = 262_144
MAX_RANGE_ITEMS = 10_000
MAX_EXPONENT = 64
MAX_INT_ARGUMENT = 10_000
MAX_DEPTH = 20

_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
# Filters that build from their input without amplifying it.
SAFE_FILTERS = frozenset(
    {
        "abs", "batch", "capitalize", "count", "d", "default", "dictsort", "first", "float",
        "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
        "reject", "rejectattr", "replace", "reverse", "round", "select", "selectattr",
        "slice", "sort", "string", "striptags", "sum", "title", "tojson", "trim",
        "truncate", "unique", "upper", "urlencode", "wordcount",
    }
)  # fmt: skip
# Methods of str/list/dict a template may call; none pads, repeats or formats.
SAFE_METHODS = frozenset(
    {
        "lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize", "startswith",
        "endswith", "split", "rsplit", "get", "keys", "values", "items", "count", "index",
        "find", "isdigit", "isalpha", "removeprefix", "removesuffix",
    }
)  # fmt: skip


class TemplateFailed(Exception):
    """The template is invalid, broke a sandbox rule, or failed to render."""


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 0


class _Env(ImmutableSandboxedEnvironment):
    """The immutable sandbox with size bounds on the operators that can amplify."""

    intercepted_binops = frozenset({"+", "*", "%", "**"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False)
        self._range_left = MAX_RANGE_ITEMS
        for name in ("lipsum", "namespace"):
            self.globals.pop(name, None)
        self.globals["range"] = self._range
        self.filters = {
            name: _bounded_filter(name, f)
            for name, f in self.filters.items()
            if name in SAFE_FILTERS
        }

    def _range(self, *args: int) -> Iterator[int]:
        items = range(*args)
        if len(items) > self._range_left:
            raise SecurityError(f"range() may produce at most {MAX_RANGE_ITEMS} items per render")
        self._range_left -= len(items)
        return iter(items)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not available")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponents are limited to {MAX_EXPONENT}")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _size(seq) and isinstance(times, int) and _size(seq) * times > MAX_OUTPUT_BYTES:
                    raise SecurityError(f"a repeated value may not exceed {MAX_OUTPUT_BYTES} items")
        if operator == "+" and _size(left) + _size(right) > MAX_OUTPUT_BYTES:
            raise SecurityError(f"a joined value may not exceed {MAX_OUTPUT_BYTES} items")
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if callable(value) and isinstance(obj, (str, bytes, list, tuple, dict, int, float)):
            return attr in SAFE_METHODS
        return bool(super().is_safe_attribute(obj, attr, value))

    def wrap_str_format(self, value: Any) -> None:
        # No str.format: its width and fill can build any size. `format` is not in
        # SAFE_METHODS, so the attribute is refused as unsafe.
        return None


def _bounded_filter(name: str, func: Any) -> Any:
    passes_context = hasattr(func, "jinja_pass_arg")

    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and abs(value) > MAX_INT_ARGUMENT
            ):
                raise SecurityError(f"filter {name}: numbers are limited to {MAX_INT_ARGUMENT}")
        if name == "replace":
            # With jinja_pass_arg the first argument is the eval context, then the value.
            text, _old, new = (*args[1 if passes_context else 0 :], "", "", "")[:3]
            if _size(text) * max(1, _size(new)) > MAX_OUTPUT_BYTES:
                raise SecurityError("filter replace: the result could exceed the output limit")
        if name == "join":
            offset = 1 if passes_context else 0
            items = list(args[offset]) if len(args) > offset else []
            separator = args[offset + 1] if len(args) > offset + 1 else kwargs.get("d", "")
            if _size(separator) * len(items) > MAX_OUTPUT_BYTES:
                raise SecurityError("filter join: the result could exceed the output limit")
            args = (*args[:offset], items, *args[offset + 1 :])
        return func(*args, **kwargs)

    # Jinja passes the environment/context to filters marked for it; keep the marks.
    bounded.__dict__.update(getattr(func, "__dict__", {}))
    if hasattr(func, "jinja_pass_arg"):
        bounded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


class _ConcatToAdd(NodeTransformer):  # type: ignore[misc]
    """`a ~ b` → `(a|string) + (b|string)`: the sandbox's bounded `+` instead of an
    unbounded join (`{% set s = s ~ s %}` repeated would double without limit)."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        parts = [
            nodes.Filter(self.visit(n), "string", [], [], None, None, lineno=node.lineno)
            for n in node.nodes
        ]
        result: nodes.Expr = parts[0]
        for part in parts[1:]:
            result = nodes.Add(result, part, lineno=node.lineno)
        return result


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
    env = _Env()
    for leaf in _walk_leaves(template):
        _compile(env, leaf)


def _compile(env: _Env, source: str) -> Any:
    whole = _WHOLE_EXPRESSION.match(source)
    expr = whole.group("expr") if whole and "{{" not in whole.group("expr") else None
    try:
        if expr is not None and "}}" not in expr:
            ast = env.parse("{{" + expr + "}}")
            # A lone expression: evaluate it, keeping its type.
            body = _ConcatToAdd().visit(ast).body[0].nodes[0]
            return ("expr", body)
        ast = _ConcatToAdd().visit(env.parse(source))
        return ("text", env.from_string(ast))
    except TemplateError as exc:
        raise TemplateFailed(f"template: {exc.message or exc}") from None


def render(template: Any, body: Any, headers: Mapping[str, str]) -> Any:
    """The template rendered against `body` and `headers` (JSON values only)."""
    env = _Env()
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
    except TypeError as exc:
        raise TemplateFailed(f"template: result is not JSON ({exc})") from None
    except Exception as exc:
        # Anything the template's own expressions raise (ZeroDivisionError, KeyError, …).
        raise TemplateFailed(f"template: {type(exc).__name__}: {exc}") from None
    if size > MAX_OUTPUT_BYTES:
        raise TemplateFailed(f"template: output of {size} bytes; the limit is {MAX_OUTPUT_BYTES}")
    return result


def _evaluate(env: _Env, expr: nodes.Expr, context: dict[str, Any]) -> Any:
    template = env.from_string(nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr)]))
    module = template.make_module(context)
    value = getattr(module, "result", None)
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises, naming what is missing
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
