"""The Python form of a condition must never answer differently from the CEL engine.

Random conditions over random argument values: whenever the closures answer (they may decline by
raising, or decline a whole decision through ``within_domain``), the engine must answer the same
boolean, without error. The values include the edges of the closures' domain: integers beyond 64
bits and beyond 2**53 beside doubles, NaN and infinities, lone surrogates, tuples, nested maps,
missing keys and wrong types.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import cel
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given, settings

from clearance.policy.expressions import Condition, compile_condition
from clearance.policy.native import OutsideDomainError, compile_native, within_domain

FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "_in_data_payees": lambda value: value in {"ACC-1", "ACC-2", 7},
    "re_search": lambda text, pattern: re.search(pattern, text) is not None,
    "lower": lambda value: value.lower(),
    "sources": lambda value: ["data"] if value == "ACC-1" else [],
}
FIELDS = ("a", "b", "s", "t", "l", "m", "f", "missing")

scalars = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, -1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e300, float(2**53)]),
    st.text(max_size=6),
    st.sampled_from(["", "a", "ACC-1", "ACC-2", "é", "\ud800", "A\udfffB", "select 1"]),
    st.booleans(),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(FIELDS[:4]), inner, max_size=3),
    ),
    max_leaves=6,
)
in_domain = st.recursive(
    st.one_of(
        st.integers(min_value=-5, max_value=5),
        st.sampled_from([0.5, 1.0, -0.0, 2.0]),
        st.sampled_from(["", "a", "s", "ACC-1", "é", "select"]),
        st.booleans(),
        st.none(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FIELDS[:4]), inner, max_size=3)
    ),
    max_leaves=4,
)
arguments = st.one_of(
    st.fixed_dictionaries(dict.fromkeys(FIELDS[:-1], in_domain)),
    st.dictionaries(st.sampled_from(FIELDS[:-1]), in_domain, max_size=6),
    st.dictionaries(st.sampled_from(FIELDS[:-1]), values, max_size=6),
)

literal = st.sampled_from(
    [
        "0",
        "1",
        "-1",
        "9007199254740993",
        "9223372036854775807",
        "-9223372036854775808",
        "0.5",
        "1.0",
        "-0.0",
        "1e300",
        '""',
        '"a"',
        '"ACC-1"',
        "'é'",
        '"\\u00e9"',
        "true",
        "false",
        "null",
        "[1, 2]",
        '["ACC-1", "x"]',
        "[1.0, -2]",
        "[]",
    ]
)
field = st.sampled_from(FIELDS).map(lambda name: f"args.{name}")
value_expr = st.recursive(
    st.one_of(literal, field),
    lambda inner: st.one_of(
        inner.map(lambda e: f"size({e})"),
        inner.map(lambda e: f"{e}.size()"),
        st.tuples(inner, st.sampled_from(FIELDS)).map(lambda p: f"{p[0]}.{p[1]}"),
        st.tuples(inner, st.sampled_from(['"a"', '"s"', "0", "1", "-1"])).map(
            lambda p: f"{p[0]}[{p[1]}]"
        ),
        inner.map(lambda e: f"lower({e})"),
        inner.map(lambda e: f"sources({e})"),
    ),
    max_leaves=3,
)
relation = st.tuples(
    value_expr, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in"]), value_expr
).map(lambda p: f"{p[0]} {p[1]} {p[2]}")
atom = st.one_of(
    relation,
    field,
    st.sampled_from(FIELDS).map(lambda name: f"has(args.{name})"),
    value_expr.map(lambda e: f"_in_data_payees({e})"),
    st.tuples(value_expr, st.sampled_from(["contains", "startsWith", "endsWith"]), value_expr).map(
        lambda p: f"{p[0]}.{p[1]}({p[2]})"
    ),
    value_expr.map(lambda e: f're_search({e}, "^[a-z]+$")'),
    st.sampled_from(["true", "false"]),
)
condition = st.recursive(
    atom,
    lambda inner: st.one_of(
        inner.map(lambda e: f"!({e})"),
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(
            lambda p: f"({p[0]}) {p[1]} ({p[2]})"
        ),
        st.tuples(inner, inner, inner).map(lambda p: f"({p[0]}) ? ({p[1]}) : ({p[2]})"),
    ),
    max_leaves=4,
)

_DECLINED = object()


def _compile(source: str) -> Condition | None:
    try:
        return compile_condition(
            source, data={"payees": ["ACC-1", "ACC-2", 7]}, check_field=lambda _r, _f: None
        )
    except Exception:
        return None


def _engine(condition: Condition, args: dict[str, Any]) -> tuple[Any, Exception | None]:
    needs = condition.needs
    subset = (
        args
        if "args" in needs.whole
        else {k: args[k] for k in needs.fields.get("args", ()) if k in args}
    )
    functions = {name: FUNCTIONS[name] for name in needs.functions if name in FUNCTIONS}
    try:
        context = cel.Context(variables={"args": subset}, functions=functions)
        return condition.program.execute(context), None
    except Exception as exc:
        return None, exc


def _native(condition: Condition, args: dict[str, Any]) -> Any:
    needs = condition.needs
    if condition.native is None or not within_domain({"args": args}, needs.whole, needs.fields):
        return _DECLINED
    try:
        return condition.native(({"args": args}, FUNCTIONS))
    except Exception:
        return _DECLINED


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (
        a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
    )


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=condition, args=arguments)
@example(source="args.a <= 1000.0", args={"a": 2**53 + 1})
@example(source="args.a == args.b", args={"a": 2**53 + 1, "b": float(2**53)})
@example(source="args.a < 1.0", args={"a": float("nan")})
@example(source='args.s == "a"', args={"s": "\ud800"})
@example(source="size(args.l) == 2", args={"l": (1, 2)})
@example(source="_in_data_payees(args.l)", args={"l": (1, 2)})
@example(source="(args.missing > 1) && false", args={})
@example(source="false && (args.missing > 1)", args={})
@example(source="(args.missing > 1) || true", args={})
@example(source="has(args.m.a)", args={"m": {"a": 1}})
@example(source='args.l.contains("a")', args={"l": ["a"]})
@example(source="size(args.s) == 2", args={"s": "é"})
@example(source="args.s.size() == 1", args={"s": "é"})
@example(source='args.m.contains("a")', args={"m": {"a": 1}})
@example(source="args.a == 1 && size(args.s) > 0", args={"a": 1, "s": "x", "t": "\ud800"})
def test_native_answers_agree_with_the_engine(source: str, args: dict[str, Any]) -> None:
    compiled = _compile(source)
    if compiled is None:
        return
    answer = _native(compiled, args)
    if answer is _DECLINED:
        return
    expected, error = _engine(compiled, args)
    assert error is None, f"{source!r} on {args!r}: native {answer!r}, engine raised {error!r}"
    assert type(answer) is bool
    assert _same(answer, expected), (
        f"{source!r} on {args!r}: native {answer!r}, engine {expected!r}"
    )


@pytest.mark.parametrize(
    "source",
    [
        "args.a + 1 > 2",
        "args.l.exists(x, x > 1)",
        'args.s.matches("^a")',
        "int(args.s) == 1",
        "args.a == 1u",
        "args.a == 0x10",
        'args.s == b"a"',
        '{"k": 1}.k == 1',
        "args.a < args.b < args.f",
        'args.s == r"\\d"',
        "timestamp(args.s) > timestamp(args.t)",
    ],
)
def test_conditions_outside_the_subset_run_on_the_engine_only(source: str) -> None:
    assert compile_native(source, frozenset(FUNCTIONS)) is None


@pytest.mark.parametrize(
    ("source", "args"),
    [
        ("args.a > 1", {}),  # missing key: the engine's error stands (SILENCE)
        ("args.a > 1", {"a": "2"}),  # string against int: no such overload
        ("args.a > 1", {"a": float("nan")}),
        ("args.a == 1", {"a": True}),
        ("args.l[5] == 1", {"l": [1]}),
        ("lower(args.a) == 'x'", {"a": 1}),  # the function raises
        ('args.s.startsWith("a")', {"s": 1}),
    ],
)
def test_values_outside_the_domain_are_declined(source: str, args: dict[str, Any]) -> None:
    compiled = _compile(source)
    assert compiled is not None
    assert compiled.native is not None
    with pytest.raises((OutsideDomainError, Exception)):
        compiled.native(({"args": args}, FUNCTIONS))


def test_a_value_the_engine_cannot_convert_declines_the_whole_decision() -> None:
    compiled = _compile("args.a == 1")
    assert compiled is not None
    assert not within_domain({"args": {"a": "\ud800"}}, compiled.needs.whole, compiled.needs.fields)
    assert within_domain(
        {"args": {"a": 1, "b": "\ud800"}}, compiled.needs.whole, compiled.needs.fields
    )
