"""Strict evidence JSON: parse bytes and prove them canonical in one step.

Example::

    >>> from clearance.formats.strict import loads_canonical
    >>> loads_canonical(b'{"a":1,"b":[true,null,"x"]}')
    {'a': 1, 'b': [True, None, 'x']}
    >>> loads_canonical(b'{"b":1,"a":2}')
    Traceback (most recent call last):
    ...
    clearance.formats.strict.StrictJSONError: bytes are not the canonical (RFC 8785) serialisation

Entry headers and receipt statements are *strict* evidence JSON (AUDIT.md 3.2, 3.8): ASCII member
names, integers only (within +/-(2**53 - 1)), no floats, and stored as their RFC 8785 bytes so that
one entry has exactly one byte representation. ``loads_canonical`` is the one check of all of that:
it parses with the fastest parser available, walks the value once for the strict rules, re-encodes
it and compares with the input. Everything a lenient parser lets through is caught by that
comparison: duplicate member names (the parsed object has fewer members), whitespace, escapes RFC
8785 would not write, unsorted names, ``1.0`` for ``1``.

Why the re-encoding may use the accelerated encoder without its usual checks: after the walk the
value holds only the exact types a JSON parser returns (dict, list, str, int, bool, None), ASCII
names and integers in range, and for such values sorting by code point (orjson, the standard
library) is sorting by UTF-16 code unit (RFC 8785), and neither encoder differs from RFC 8785 in
anything else.
"""

from __future__ import annotations

import json
from typing import Any

from clearance.formats import _accel

_MAX_SAFE_INT = 2**53 - 1
_NO_CHECK = frozenset({str, bool, type(None)})
_sorted_stdlib = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


class StrictJSONError(ValueError):
    """Bytes or a value break the strict evidence JSON rules; the message says which rule."""


def loads_canonical(raw: bytes) -> Any:
    """Parse strict evidence JSON, or raise ``StrictJSONError`` naming what is wrong with ``raw``."""
    try:
        value = _accel.loads(raw)
    except ValueError as exc:  # includes UnicodeDecodeError and both parsers' decode errors
        raise StrictJSONError(f"not valid JSON: {exc}") from exc
    # INVARIANT: ASCII input re-encodes equal only to ASCII output, so when ``raw`` is ASCII a
    # non-ASCII name (written as a \u escape) fails the comparison below and need not be looked for.
    _check(value, "", names=not raw.isascii())
    try:
        encoded = _encode_checked(value)
    except (TypeError, ValueError) as exc:  # a lone surrogate, from the standard library parser
        raise StrictJSONError("a string holds a lone surrogate") from exc
    if encoded != raw:
        raise StrictJSONError("bytes are not the canonical (RFC 8785) serialisation")
    return value


def check_strict(value: Any) -> None:
    """Raise ``StrictJSONError`` unless ``value`` follows the strict evidence rules at every depth.

    The rules: only JSON types (objects with string names, arrays, strings, integers, booleans,
    null), ASCII member names, integers within +/-(2**53 - 1), no floats.
    """
    _check(value, "", names=True)


def _encode_checked(value: Any) -> bytes:
    """RFC 8785 bytes of a value ``_check`` accepted (see the module docstring for why)."""
    if _accel.sorted_dumps is not None:
        return _accel.sorted_dumps(value)
    return _sorted_stdlib(value).encode("utf-8")


def _check(value: Any, where: str, *, names: bool) -> None:
    t = type(value)
    if t is dict:
        for name, item in value.items():
            if names and not (type(name) is str and name.isascii()):
                raise StrictJSONError(f"member name `{str(name)[:40]}` is not ASCII")
            t = type(item)
            if t is int:  # inline: most members are strings or small integers
                if not -_MAX_SAFE_INT <= item <= _MAX_SAFE_INT:
                    raise _out_of_range(name)
            elif t not in _NO_CHECK:
                _check(item, name, names=names)
    elif t is list:
        for item in value:
            if type(item) not in _NO_CHECK:
                _check(item, where, names=names)
    elif t is int:
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            raise _out_of_range(where)
    elif t is float:
        raise StrictJSONError(
            f"number `{str(value)[:30]}` in `{where}` is not an integer; evidence holds integers only"
        )
    elif t not in _NO_CHECK:
        raise StrictJSONError(f"a value of type `{t.__name__}` in `{where}` is not JSON")


def _out_of_range(where: str) -> StrictJSONError:
    return StrictJSONError(f"integer in `{where}` is outside the exactly representable range")
