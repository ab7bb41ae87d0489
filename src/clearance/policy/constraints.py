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


class ParamCheck:
    """One parameter's schema, with its regular expression compiled once."""

    __slots__ = ("_has_bounds", "_pattern", "_type_ok", "_type_wanted", "name", "param")

    def __init__(self, name: str, param: Param) -> None:
        self.name = name
        self.param = param
        self._pattern = re.compile(param.pattern) if param.pattern is not None else None
        self._type_ok, self._type_wanted = _TYPES[param.type]
        self._has_bounds = any(
            getattr(param, key) is not None
            for key in (
                "min",
                "max",
                "min_length",
                "max_length",
                "max_items",
                "max_bytes",
                "pattern",
            )
        )

    def check(self, value: object) -> str | None:
        """The reason ``value`` breaks this schema, or None when it fits."""
        p = self.param
        if not self._type_ok(value):
            return f"{self._type_wanted} (got {type(value).__name__})"
        if not isinstance(value, str | bool):
            problem = json_problem(value)
            if problem is not None:
                return problem
        if p.enum is not None and not any(
            (value == allowed and type(value) is type(allowed)) or _same_number(value, allowed)
            for allowed in p.enum
        ):
            shown = ", ".join(f"`{a}`" for a in p.enum[:10])
            return f"must be one of {shown} (got `{_describe(value)}`)"
        return self._bounds(value) if self._has_bounds else None

    def _bounds(self, value: Any) -> str | None:
        p = self.param
        if p.min is not None and value < p.min:
            return f"must be at least {p.min:g} (got {value:g})"
        if p.max is not None and value > p.max:
            return f"must be at most {p.max:g} (got {value:g})"
        if p.min_length is not None and len(value) < p.min_length:
            return f"must be at least {p.min_length} characters long (got {len(value)})"
        if p.max_length is not None and len(value) > p.max_length:
            return f"must be at most {p.max_length} characters long (got {len(value)})"
        if p.max_items is not None and len(value) > p.max_items:
            return f"must hold at most {p.max_items} items (got {len(value)})"
        if p.max_bytes is not None:
            size = _size_in_bytes(value)
            if size is None or size > p.max_bytes:
                got = "invalid text" if size is None else f"{size}"
                return f"must be at most {p.max_bytes} bytes (got {got})"
        if self._pattern is not None and self._pattern.fullmatch(value) is None:
            return f"must match `{p.pattern}` (got `{_describe(value)}`)"
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
