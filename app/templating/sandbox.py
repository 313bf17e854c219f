"""The Jinja2 sandbox tenant templates render in, with bounds on everything that amplifies.

Jinja2's immutable sandbox stops attribute escapes (`__class__`, `__globals__`, …) and
mutation; it does not bound work. A template is 16 KiB of the tenant's code run on every
event, so this environment also bounds, per render: the size of what `+`, `*`, `~` and
the filters build (counted through nested lists, so a list of references to one big list
is as big as it prints), integer size, `range` items, loop iterations (all loops
together) and calls (macros, methods, functions). Recursive loops are refused outright.
Every violation is a SecurityError; the renderer reports it as the event's failure.

These make abuse fail fast and with a reason. They cannot bound every C-level operation
(comparing big lists, sorting big strings in a loop), so renders also run in a child
process with CPU, memory and wall-clock limits (app/templating/renderer.py): the sandbox is
the first line, the process the backstop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_OUTPUT_BYTES = 262_144
MAX_RANGE_ITEMS = 10_000
#: Iterations of all `for` loops of one render together (nested loops multiply).
MAX_LOOP_ITERATIONS = 100_000
#: Calls of one render (macros, methods, globals): a macro calling itself twice is 2**n.
MAX_CALLS = 100_000
MAX_EXPONENT = 64
#: Results of `*` and `**` on integers; JSON output takes 64-bit integers anyway.
MAX_INT_BITS = 1024
MAX_INT_ARGUMENT = 10_000
# The filter every `for` loop's iterable passes through (added by `transform`).
LOOP_FILTER = "_counted_loop"

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


def deep_size(value: Any, cutoff: int = MAX_OUTPUT_BYTES) -> int:
    """How big `value` prints, roughly: characters of strings plus one per other value,
    through nested lists and objects (each reference counted, as printing repeats it).
    Stops counting past `cutoff`, so a huge value costs no more than `cutoff` steps."""
    if isinstance(value, (str, bytes)):
        return max(1, len(value))
    total = 0
    stack = [value]
    while stack and total <= cutoff:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += max(1, len(item))
        elif isinstance(item, dict):
            total += 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 1
            stack.extend(item)
        else:
            total += 1
    return total


def check_size(value: Any, what: str) -> None:
    """Refuse `value` if it would print larger than the output limit."""
    if deep_size(value) > MAX_OUTPUT_BYTES:
        raise SecurityError(f"{what} has more than {MAX_OUTPUT_BYTES} items")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with bounds on the operations that can amplify. One instance
    per render: the loop, call and range budgets are the render's."""

    intercepted_binops = frozenset({"+", "*", "%", "**"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, finalize=self._finalize)
        self._range_left = MAX_RANGE_ITEMS
        self._loops_left = MAX_LOOP_ITERATIONS
        self._calls_left = MAX_CALLS
        for name in ("lipsum", "namespace"):
            self.globals.pop(name, None)
        self.globals["range"] = self._range
        self.filters = {
            name: _bounded_filter(name, f)
            for name, f in self.filters.items()
            if name in SAFE_FILTERS
        }
        self.filters[LOOP_FILTER] = self._counted_loop

    def _range(self, *args: int) -> Iterator[int]:
        items = range(*args)
        if len(items) > self._range_left:
            raise SecurityError(f"range() may produce at most {MAX_RANGE_ITEMS} items per render")
        self._range_left -= len(items)
        return iter(items)

    def _counted_loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self._loops_left -= 1
            if self._loops_left < 0:
                raise SecurityError(
                    f"loops may run at most {MAX_LOOP_ITERATIONS} iterations per render"
                )
            yield item

    def _finalize(self, value: Any) -> Any:
        # Every `{{ … }}` of a text leaf, before it becomes a string.
        check_size(value, "an output value")
        return value

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Count the call against the render's budget, then call as the sandbox does."""
        __self._calls_left -= 1
        if __self._calls_left < 0:
            raise SecurityError(f"a render may make at most {MAX_CALLS} calls")
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Refuse `%` formatting and any `+`, `*`, `**` whose result would be too big."""
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not available")
        if operator == "**" and isinstance(right, (int, float)):
            if abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponents are limited to {MAX_EXPONENT}")
            if _is_int(left) and _is_int(right) and left.bit_length() * right > MAX_INT_BITS:
                raise SecurityError(f"integers are limited to {MAX_INT_BITS} bits")
        if operator == "*":
            if _is_int(left) and _is_int(right):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise SecurityError(f"integers are limited to {MAX_INT_BITS} bits")
            else:
                for seq, times in ((left, right), (right, left)):
                    if (
                        isinstance(seq, (str, bytes, list, tuple))
                        and _is_int(times)
                        and times > 0
                        and deep_size(seq) * times > MAX_OUTPUT_BYTES
                    ):
                        raise SecurityError(
                            f"a repeated value may not exceed {MAX_OUTPUT_BYTES} items"
                        )
        if (
            operator == "+"
            and isinstance(left, (str, bytes, list, tuple))
            and deep_size(left) + deep_size(right) > MAX_OUTPUT_BYTES
        ):
            raise SecurityError(f"a joined value may not exceed {MAX_OUTPUT_BYTES} items")
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Only whitelisted methods of built-in values; the sandbox's rules otherwise."""
        if callable(value) and isinstance(obj, (str, bytes, list, tuple, dict, int, float)):
            return attr in SAFE_METHODS
        return bool(super().is_safe_attribute(obj, attr, value))

    def wrap_str_format(self, value: Any) -> None:
        """No str.format: its width and fill can build any size. (`format` is not in
        SAFE_METHODS, so the attribute is refused as unsafe.)"""
        return None


def _bounded_filter(name: str, func: Any) -> Any:
    passes_context = hasattr(func, "jinja_pass_arg")

    def bounded(*args: Any, **kwargs: Any) -> Any:
        offset = 1 if passes_context else 0
        for value in (*args[offset:], *kwargs.values()):
            if _is_int(value) and abs(value) > MAX_INT_ARGUMENT:
                raise SecurityError(f"filter {name}: numbers are limited to {MAX_INT_ARGUMENT}")
            # A filter walks or prints its input: a nested value of references to one big
            # list (cheap to build) would cost its printed size.
            check_size(value, f"filter {name}: an argument")
        if name == "replace":
            # With jinja_pass_arg the first argument is the eval context, then the value.
            text, _old, new = (*args[offset:], "", "", "")[:3]
            if deep_size(text) * max(1, deep_size(new)) > MAX_OUTPUT_BYTES:
                raise SecurityError("filter replace: the result could exceed the output limit")
        if name == "join":
            items = list(args[offset]) if len(args) > offset else []
            separator = args[offset + 1] if len(args) > offset + 1 else kwargs.get("d", "")
            if deep_size(separator) * len(items) > MAX_OUTPUT_BYTES:
                raise SecurityError("filter join: the result could exceed the output limit")
            args = (*args[:offset], items, *args[offset + 1 :])
        if name == "sum":
            # sum(start=[]) concatenates lists, each step copying the whole result so far.
            start = args[offset + 2] if len(args) > offset + 2 else kwargs.get("start", 0)
            if not isinstance(start, (int, float)):
                raise SecurityError("filter sum: start must be a number")
        return func(*args, **kwargs)

    # Jinja passes the environment/context to filters marked for it; keep the marks.
    bounded.__dict__.update(getattr(func, "__dict__", {}))
    if hasattr(func, "jinja_pass_arg"):
        bounded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


class _Bounded(NodeTransformer):  # type: ignore[misc]
    """Rewrites a parsed template so the sandbox's bounds apply to it:

    - `a ~ b` → `(a|string) + (b|string)`: the bounded `+` instead of an unbounded join
      (`{% set s = s ~ s %}` repeated would double without limit);
    - `{% for x in xs %}` → `{% for x in xs|_counted_loop %}`: every iteration counts;
    - `{% for … recursive %}` is refused: each `loop(…)` would iterate uncounted.
    """

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        parts = [
            nodes.Filter(self.visit(n), "string", [], [], None, None, lineno=node.lineno)
            for n in node.nodes
        ]
        result: nodes.Expr = parts[0]
        for part in parts[1:]:
            result = nodes.Add(result, part, lineno=node.lineno)
        return result

    def visit_For(self, node: nodes.For) -> nodes.Node:
        if node.recursive:
            raise SecurityError("recursive loops are not available")
        visited = self.generic_visit(node)
        assert isinstance(visited, nodes.For)
        visited.iter = nodes.Filter(
            visited.iter, LOOP_FILTER, [], [], None, None, lineno=visited.lineno
        )
        return visited


def transform(ast: nodes.Node) -> Any:
    """`ast` rewritten for the sandbox's bounds (see `_Bounded`); SecurityError if refused."""
    return _Bounded().visit(ast)
