"""The data rewrite keeps CEL's meaning: function form and literal form agree with plain CEL."""

from __future__ import annotations

import json
from typing import Any

import cel
import pytest

from clearance.policy.compile import _membership
from clearance.policy.expressions import compile_condition, data_function_name

DATA: dict[str, list[Any]] = {"payees": ["a", "b"], "limits": [1, 2.5]}


def _plain(source: str, args: dict[str, Any]) -> Any:
    """The same condition with data given as a CEL variable: the reference meaning."""
    return cel.compile(source).execute(cel.Context(variables={"args": args, "data": DATA}))


def _compiled(source: str, args: dict[str, Any]) -> Any:
    condition = compile_condition(source, data=DATA, check_field=lambda _r, _n: None)
    functions = {data_function_name(n): _membership(v) for n, v in DATA.items()}
    needed = {k: v for k, v in functions.items() if k in condition.needs.functions}
    return condition.program.execute(
        cel.Context(variables={"args": args}, functions=needed)
    ), condition


@pytest.mark.parametrize(
    ("source", "form"),
    [
        ("args.x in data.payees", "call"),
        ("!(args.x in data.payees)", "call"),
        ("args.y > 1 && args.x in data.payees || false", "call"),
        ("(args.x + 'x').size() > 0 ? args.x in data.payees : false", "call"),
        ("args.x + '' in data.payees", "call"),
        ("[args.x in data.payees, true][0]", "call"),
        ("args.n in data.limits", "call"),
        ("args.y < 2 in data.payees", "literal"),
        ("data.payees.exists(p, p == args.x)", "literal"),
        ("size(data.payees) == 2", "literal"),
        ("data.payees[0] == args.x", "literal"),
    ],
)
@pytest.mark.parametrize("x", ["a", "c"])
def test_rewrites_agree_with_plain_cel(source: str, form: str, x: str) -> None:
    args = {"x": x, "y": 1, "n": 2.5}
    try:
        want: Any = _plain(source, args)
    except Exception as exc:  # the reference may error; then ours must error too
        want = type(exc)
    try:
        got, condition = _compiled(source, args)
        uses_call = bool(condition.needs.functions)
        assert uses_call is (form == "call"), condition.program.source
    except Exception as exc:
        got = type(exc)
    assert got == want


def test_strings_that_look_like_data_are_not_rewritten() -> None:
    got, condition = _compiled(
        "'data.payees' == args.x || \"in data.payees\" == args.x", {"x": "data.payees"}
    )
    assert got is True
    assert not condition.needs.functions


def test_needs_name_only_the_fields_read() -> None:
    condition = compile_condition(
        "has(args.memo) && args.amount > 1.0 && session.tainted && request.tool == 't'",
        data={},
        check_field=lambda _r, _n: None,
    )
    assert dict(condition.needs.fields) == {
        "args": frozenset({"memo", "amount"}),
        "session": frozenset({"tainted"}),
        "request": frozenset({"tool"}),
    }
    assert condition.needs.whole == frozenset()
    whole = compile_condition("size(args) > 1", data={}, check_field=lambda _r, _n: None)
    assert whole.needs.whole == frozenset({"args"})


def test_literal_data_keeps_unicode_and_quotes() -> None:
    data = {"names": ['o"brien', "zoë", "a\\b"]}
    condition = compile_condition(
        "data.names.exists(n, n == args.x)", data=data, check_field=lambda _r, _n: None
    )
    for name in data["names"]:
        assert condition.program.execute(cel.Context(variables={"args": {"x": name}})) is True
    assert json.dumps(data["names"], ensure_ascii=False) in condition.program.source
