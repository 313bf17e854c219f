"""The JSON template renderer: types kept, the sandbox closed, the limits enforced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.templating import templates
from app.templating.templates import TemplateFailed, check, render

BODY = {"issue": {"id": 42, "title": "Crash", "labels": [{"name": "bug"}, {"name": "p1"}]}}


def test_lone_expressions_keep_their_json_type_and_text_leaves_are_strings() -> None:
    template = {
        "id": "{{ body.issue.id }}",
        "labels": "{{ body.issue.labels | map(attribute='name') | list }}",
        "text": "#{{ body.issue.id }}: {{ body.issue.title }}",
        "joined": "{{ 'issue-' ~ body.issue.id }}",
        "event": "{{ headers['x-github-event'] }}",
        "fixed": [1, True, None],
    }
    assert render(template, BODY, {"x-github-event": "issues"}) == {
        "id": 42,
        "labels": ["bug", "p1"],
        "text": "#42: Crash",
        "joined": "issue-42",
        "event": "issues",
        "fixed": [1, True, None],
    }


def test_a_title_that_looks_like_a_number_stays_a_string() -> None:
    assert render({"t": "{{ body.t }}", "u": "x{{ body.t }}"}, {"t": "123"}, {}) == {
        "t": "123",
        "u": "x123",
    }


def test_body_values_are_data_not_template_source() -> None:
    body = {"title": "{{ ''.__class__ }}"}
    assert render("{{ body.title }}", body, {}) == "{{ ''.__class__ }}"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__['os'] }}",
        "{{ body.__class__.__subclasses__() }}",
        "{{ self.__init__.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ (body.issue.labels|first).__class__ }}",
        "{{ '{0.__class__}'.format(body) }}",
        "{{ body.update({'x': 1}) }}",
        "{% set x = body.issue.labels.append(1) %}",
    ],
)
def test_sandbox_escapes_are_refused(source: str, tmp_path: Path) -> None:
    with pytest.raises(TemplateFailed):
        render(source, BODY, {})
    assert BODY["issue"]["labels"] == [{"name": "bug"}, {"name": "p1"}]


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 100000000 }}",
        "{{ [1] * 100000000 }}",
        "{{ 2 ** 100000 }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ 'x'.ljust(1000000000) }}",
        "{{ 'x' | center(1000000000) }}",
        "{{ 'x' | indent(1000000000) }}",
        "{{ lipsum(100000) }}",
        "{% for i in range(100000) %}{% endfor %}",
        "{% for i in range(5000) %}{{ 'x' * 100 }}{% endfor %}",
        "{% set s = 'x' * 200000 %}{{ s ~ s }}",
        "{{ ('x' * 1000) | replace('x', 'y' * 1000) }}",
        "{{ range(10000) | join('x' * 100000) }}",
    ],
)
def test_resource_bounds_are_refused(source: str) -> None:
    # Refused before building (the sandbox, the filter list, the stream) — not by the final
    # size check after a huge value was built.
    with pytest.raises(TemplateFailed) as refused:
        render(source, BODY, {})
    assert "output of" not in str(refused.value)


def test_bounded_filters_still_work() -> None:
    assert (
        render("{{ body.issue.labels | map(attribute='name') | join(', ') }}", BODY, {})
        == "bug, p1"
    )
    assert render("{{ 'abc' | replace('b', 'xx') }}", BODY, {}) == "axxc"


def test_template_size_is_limited_when_saved() -> None:
    check({"a": "x" * 100})
    with pytest.raises(TemplateFailed, match="limit"):
        check({"a": "x" * (templates.MAX_TEMPLATE_BYTES + 1)})


def test_syntax_errors_are_reported_when_saved() -> None:
    with pytest.raises(TemplateFailed):
        check({"a": "{% if %}"})


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ body.nope }}", "nope"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ cycler }}", "not a JSON value"),
    ],
)
def test_render_errors_name_their_cause(source: str, reason: str) -> None:
    with pytest.raises(TemplateFailed, match=reason):
        render(source, BODY, {})


def test_missing_values_can_default() -> None:
    assert render({"v": "{{ body.nope | default(none) }}"}, BODY, {}) == {"v": None}


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_is_bounded() -> None:
    with pytest.raises(TemplateFailed, match="deeper"):
        check(_deep(templates.MAX_DEPTH + 2))


_ALIASED = "{% set a = [1] * 100000 %}"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        # Issue 20: a nested loop over a long string is billions of iterations of nothing.
        (
            "{% set s = 'x' * 2000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
            "loops may run at most",
        ),
        # A list of references to one big list: small to build, huge to walk or print.
        ("{{ [[1] * 1000] * 1000 }}", "may not exceed"),
        ("{% set a = [[1] * 1000] * 200 %}{{ a + a }}", "may not exceed"),
        (_ALIASED + "{{ [a, a, a, a] }}", "more than"),
        (_ALIASED + "x{{ [a, a, a, a] }}", "more than"),
        (_ALIASED + "{{ [a, a, a, a] | join }}", "more than"),
        (_ALIASED + "{{ [a, a, a, a] | string }}", "more than"),
        (_ALIASED + "{{ [a, a, a, a] | tojson }}", "more than"),
        ("{{ [[1] * 100, [1] * 100] | sum(start=[]) }}", "sum"),
        # Integers: every step within the exponent bound, the result far beyond any use.
        ("{{ ((2 ** 64) ** 64) ** 64 }}", "bits"),
        ("{{ (2 ** 60) ** 60 }}", "bits"),
        (
            "{% set n = 2 ** 60 %}{{ n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n }}",
            "bits",
        ),
        # Calls: a macro calling itself twice is 2**n calls without any loop.
        (
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
            "{{ f(17) }}",
            "calls",
        ),
        ("{% for a in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}", "recursive"),
    ],
)
def test_amplification_is_refused_by_the_sandbox_with_its_reason(source: str, reason: str) -> None:
    with pytest.raises(TemplateFailed) as refused:
        render(source, BODY, {})
    assert "sandbox" in str(refused.value) and reason in str(refused.value), refused.value


def test_loops_and_calls_within_the_budget_still_render() -> None:
    source = (
        "{% macro twice(x) %}{{ x }}{{ x }}{% endmacro %}"
        "{% for i in range(50) %}{% for j in range(50) %}{% endfor %}{% endfor %}"
        "{{ twice(body.issue.id) }}-{{ 2 ** 63 - 1 }}-{{ ([1, 2] * 3) | sum }}"
    )
    assert render(source, BODY, {}) == f"4242-{2**63 - 1}-9"
