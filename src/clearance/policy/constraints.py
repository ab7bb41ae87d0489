"""Parameter schemas checked before any rule: type, allowed values, ranges, regex, sizes.

A violation is a DENY with rule ``constraint`` whose reason names the parameter and the bound, so
an agent (and the operator reading the log) learns exactly which argument was refused. Checks run
in a fixed order per parameter - type, then allowed values, then sizes, then the pattern - so a
huge string is refused by its length before a regular expression ever reads it. Numbers must be
finite: ``NaN`` compares false with every bound and would otherwise slip through them.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clearance.formats.canonical import canonical_bytes
from clearance.policy.document import Param
from clearance.policy.problems import did_you_mean

_MAX_DEPTH = 64
#: Integers beyond this lose precision in JSON and have no RFC 8785 form (the request digest).
MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Violation:
    """Why an argument was refused: the parameter and a sentence naming the bound."""

    param: str
    message: str


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def json_problem(value: object, depth: int = 0) -> str | None:
    """Why ``value`` is not plain JSON (non-finite number, non-text key, other type), or None."""
    if depth > _MAX_DEPTH:
        return "is nested too deeply"
    if value is None or isinstance(value, str | bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_SAFE_INTEGER else "is outside +/-(2**53 - 1)"
    if isinstance(value, float):
        return None if math.isfinite(value) else "is not a finite number"
    if isinstance(value, list):
        for item in value:
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "has a key that is not text"
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    return f"holds a {type(value).__name__}, which is not a JSON value"


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: Per JSON type: the test a value must pass and what to say when it does not.
_TYPES: dict[str, tuple[Callable[[object], bool], str]] = {
    "string": (lambda v: isinstance(v, str), "must be text"),
    "boolean": (lambda v: isinstance(v, bool), "must be true or false"),
    "integer": (_is_integer, "must be an integer"),
    "number": (_is_number, "must be a number"),
    "array": (lambda v: isinstance(v, list), "must be a list"),
    "object": (lambda v: isinstance(v, dict), "must be an object"),
}


#: A compiled bound: the reason a value breaks it, or None.
Bound = Callable[[Any], str | None]


def _bound_steps(param: Param, pattern: re.Pattern[str] | None) -> tuple[Bound, ...]:
    """The bounds ``param`` declares, in the documented order, each compiled to one closure.

    Built once per parameter at compile time, so a decision runs only the bounds that exist
    instead of testing every optional field of the schema for None.
    """
    steps: list[Bound] = []
    low, high = param.min, param.max
    if low is not None:
        steps.append(lambda v: f"must be at least {low:g} (got {v:g})" if v < low else None)
    if high is not None:
        steps.append(lambda v: f"must be at most {high:g} (got {v:g})" if v > high else None)
    shortest, longest = param.min_length, param.max_length
    if shortest is not None:
        steps.append(
            lambda v: (
                f"must be at least {shortest} characters long (got {len(v)})"
                if len(v) < shortest
                else None
            )
        )
    if longest is not None:
        steps.append(
            lambda v: (
                f"must be at most {longest} characters long (got {len(v)})"
                if len(v) > longest
                else None
            )
        )
    most = param.max_items
    if most is not None:
        steps.append(
            lambda v: f"must hold at most {most} items (got {len(v)})" if len(v) > most else None
        )
    max_bytes = param.max_bytes
    if max_bytes is not None:

        def byte_size(value: Any) -> str | None:
            size = _size_in_bytes(value)
            if size is None or size > max_bytes:
                got = "invalid text" if size is None else f"{size}"
                return f"must be at most {max_bytes} bytes (got {got})"
            return None

        steps.append(byte_size)
    if pattern is not None:
        source = param.pattern
        steps.append(
            lambda v: (
                f"must match `{source}` (got `{_describe(v)}`)"
                if pattern.fullmatch(v) is None
                else None
            )
        )
    return tuple(steps)


class ParamCheck:
    """One parameter's schema, compiled once: type test, allowed values, then its bounds."""

    __slots__ = ("_enum", "_steps", "_type_ok", "_type_wanted", "name", "param")

    def __init__(self, name: str, param: Param) -> None:
        self.name = name
        self.param = param
        pattern = re.compile(param.pattern) if param.pattern is not None else None
        self._type_ok, self._type_wanted = _TYPES[param.type]
        self._enum = tuple(param.enum) if param.enum is not None else None
        self._steps = _bound_steps(param, pattern)

    def check(self, value: object) -> str | None:
        """The reason ``value`` breaks this schema, or None when it fits."""
        if not self._type_ok(value):
            return f"{self._type_wanted} (got {type(value).__name__})"
        if type(value) is int:
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                return "is outside +/-(2**53 - 1)"
        elif type(value) is float:
            if not math.isfinite(value):
                return "is not a finite number"
        elif not isinstance(value, str | bool):
            problem = json_problem(value)
            if problem is not None:
                return problem
        enum = self._enum
        if enum is not None and not any(
            (value == allowed and type(value) is type(allowed)) or _same_number(value, allowed)
            for allowed in enum
        ):
            shown = ", ".join(f"`{a}`" for a in enum[:10])
            return f"must be one of {shown} (got `{_describe(value)}`)"
        for step in self._steps:
            problem = step(value)
            if problem is not None:
                return problem
        return None


def _same_number(value: object, allowed: object) -> bool:
    numeric = (int, float)
    return (
        isinstance(value, numeric)
        and isinstance(allowed, numeric)
        and not isinstance(value, bool)
        and not isinstance(allowed, bool)
        and value == allowed
    )


def _size_in_bytes(value: object) -> int | None:
    try:
        if isinstance(value, str):
            return len(value.encode("utf-8"))
        return len(canonical_bytes(value))
    except (UnicodeEncodeError, ValueError, TypeError):
        return None


class ArgsSchema:
    """All parameter checks of one tool, plus whether undeclared arguments are allowed."""

    __slots__ = ("_additional", "_checks", "_names", "_required")

    def __init__(self, params: Mapping[str, Param], *, additional: bool) -> None:
        self._checks: Sequence[ParamCheck] = tuple(ParamCheck(n, p) for n, p in params.items())
        self._names = frozenset(params)
        self._required = tuple(n for n, p in params.items() if p.required)
        self._additional = additional

    def check(self, args: Mapping[str, Any]) -> Violation | None:
        """The first violation in a fixed order (declared parameters, then extras), or None."""
        for name in self._required:
            if name not in args:
                return Violation(name, f"parameter `{name}` is required")
        for check in self._checks:
            if check.name in args:
                problem = check.check(args[check.name])
                if problem is not None:
                    return Violation(check.name, f"parameter `{check.name}` {problem}")
        if len(args) > len(self._names) or not self._names.issuperset(args):
            return self._extras(args)
        return None

    def _extras(self, args: Mapping[str, Any]) -> Violation | None:
        for name in sorted(set(args) - self._names):
            if not self._additional:
                hint = did_you_mean(name, self._names)
                suffix = f"; {hint}" if hint else ""
                return Violation(name, f"parameter `{name}` is not accepted by this tool{suffix}")
            problem = json_problem(args[name])
            if problem is not None:
                return Violation(name, f"parameter `{name}` {problem}")
        return None
