"""Parameter schemas: each bound refuses the value just outside it and accepts the one inside."""

from __future__ import annotations

import math
from typing import Any

import pytest

from clearance.policy.constraints import ArgsSchema, json_problem
from clearance.policy.document import Param


def _schema(additional: bool = False, **params: dict[str, Any]) -> ArgsSchema:
    return ArgsSchema(
        {k: Param.model_validate(v) for k, v in params.items()}, additional=additional
    )


@pytest.mark.parametrize(
    ("param", "good", "bad", "message"),
    [
        ({"type": "number", "min": 0.01}, 0.01, 0.0099, "at least 0.01"),
        ({"type": "number", "max": 10}, 10, 10.000001, "at most 10"),
        ({"type": "number"}, 1.5, math.nan, "is not a finite number"),
        ({"type": "number"}, 1, True, "must be a number"),
        ({"type": "integer"}, 3, 3.0, "must be an integer"),
        ({"type": "integer"}, 2**53 - 1, 2**53, "outside"),
        ({"type": "number"}, -(2**53 - 1), -(2**53), "outside"),
        ({"type": "integer"}, 3, False, "must be an integer"),
        ({"type": "boolean"}, False, 0, "true or false"),
        ({"type": "string", "max_length": 3}, "abc", "abcd", "at most 3 characters"),
        ({"type": "string", "min_length": 2}, "ab", "a", "at least 2 characters"),
        ({"type": "string", "max_bytes": 4}, "abcd", "abcé", "at most 4 bytes"),
        ({"type": "string", "max_bytes": 4}, "ab", "\ud800", "invalid text"),
        ({"type": "string", "pattern": "[a-c]+"}, "abc", "abcd", "must match"),
        ({"type": "string", "pattern": "[a-c]+"}, "abc", "abc\n", "must match"),
        ({"type": "string", "enum": ["a", "b"]}, "b", "c", "one of `a`, `b`"),
        ({"type": "integer", "enum": [1, 2]}, 2, 3, "one of"),
        ({"type": "number", "enum": [1, 2.5]}, 1.0, 2, "one of"),
        ({"type": "array", "max_items": 2}, [1, 2], [1, 2, 3], "at most 2 items"),
        ({"type": "array"}, [1], [1, math.inf], "finite"),
        ({"type": "array"}, [], "[]", "must be a list"),
        ({"type": "object", "max_bytes": 9}, {"a": 1}, {"a": 12345}, "at most 9 bytes"),
        ({"type": "object"}, {"a": [1]}, {"a": {1, 2}}, "not a JSON value"),
        ({"type": "object"}, {}, {1: "a"}, "key that is not text"),
    ],
)
def test_bound_edges(param: dict[str, Any], good: Any, bad: Any, message: str) -> None:
    schema = _schema(p=param)
    assert schema.check({"p": good}) is None
    violation = schema.check({"p": bad})
    assert violation is not None
    assert violation.param == "p"
    assert message in violation.message
    assert violation.message.startswith("parameter `p` ")


def test_required_and_extra_parameters() -> None:
    schema = _schema(amount={"type": "number", "required": True}, memo={"type": "string"})
    assert schema.check({"amount": 1}) is None
    missing = schema.check({"memo": "x"})
    assert missing is not None
    assert "`amount` is required" in missing.message
    extra = schema.check({"amount": 1, "amont": 2})
    assert extra is not None
    assert "did you mean `amount`" in extra.message


def test_additional_parameters_must_still_be_json() -> None:
    schema = _schema(additional=True)
    assert schema.check({"x": {"y": [1, "a", None]}}) is None
    bad = schema.check({"x": {"y": math.nan}})
    assert bad is not None
    assert "finite" in bad.message


def test_json_problem_depth_limit() -> None:
    value: Any = 1
    for _ in range(100):
        value = [value]
    assert json_problem(value) == "is nested too deeply"


def test_long_strings_are_refused_before_the_pattern_runs() -> None:
    schema = _schema(p={"type": "string", "max_length": 10, "pattern": "(a+)+b"})
    violation = schema.check({"p": "a" * 100_000})
    assert violation is not None
    assert "characters" in violation.message
