"""Every canonical-JSON path must produce exactly the bytes of the reference RFC 8785 encoder.

``canonical_bytes`` has three paths (``clearance/formats/canonical.py``): orjson for the values it
provably writes like RFC 8785, the pure-Python ``_encode``, and the reference ``rfc8785``. Each
path is checked on its own against ``rfc8785.dumps``, on values aimed at every place where a fast
encoder could differ: member-name order (UTF-16 code units against code points: surrogate pairs
against U+E000..U+FFFF), string escaping (controls, DEL, U+2028/2029, quotes, backslash, non-ASCII),
integers at and beyond +/-(2**53 - 1), floats (ECMAScript formatting, -0.0, subnormals, NaN and the
infinities), lone surrogates, non-string keys, subclasses with their own ``__str__``/``__repr__``,
bool against int, and non-JSON types. Where the reference refuses a value, ``canonical_bytes`` must
refuse it too, with ``NotCanonicalError``.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import functools
import json
import math
import struct
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clearance.formats import _accel, canonical, strict
from clearance.formats.canonical import (
    NotCanonicalError,
    canonical_bytes,
    es_number,
    request_digest,
)
from clearance.formats.strict import StrictJSONError, loads_canonical


class Color(enum.IntEnum):
    RED = 1


class Mood(enum.StrEnum):
    CALM = "calm"


class Plain(enum.Enum):
    ONE = 1


class LoudStr(str):
    def __str__(self) -> str:
        return "LOUD"


class OddInt(int):
    def __str__(self) -> str:
        return "odd"

    __repr__ = __str__


class OddFloat(float):
    def __repr__(self) -> str:
        return "odd"

    __str__ = __repr__


EDGE_CHARS = [
    "\x00",
    "\x1f",
    "\x7f",
    "\u2028",
    "\u2029",
    '"',
    "\\",
    "/",
    "\b",
    "\f",
    "\n",
    "\r",
    "\t",
    "\u00e9",
    "\ufeff",
    "\ue000",
    "\uffff",
    "\U0001f600",
    "\U00010000",
    "\U0010ffff",
]
chars = st.one_of(
    st.characters(codec="utf-8"),  # every character but lone surrogates
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF),  # sorts after surrogates in UTF-16
    st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF),  # a surrogate pair in UTF-16
    st.sampled_from(EDGE_CHARS),
)
texts = st.text(chars, max_size=8)
ints = st.one_of(
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.sampled_from([0, -1, 2**31, 2**32, 2**53 - 1, -(2**53) + 1]),
)
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 1e21, 1e-7, 1e-6, 5e-324, 2.0**53, 1e16, 0.1, -1.5e300]),
)
subclassed = st.one_of(
    st.just(Color.RED),
    st.just(Mood.CALM),
    texts.map(LoudStr),
    ints.map(OddInt),
    floats.map(OddFloat),
)
good_leaves = st.one_of(st.none(), st.booleans(), ints, floats, texts, subclassed)
bad_leaves = st.one_of(
    st.sampled_from(
        [
            2**53,
            -(2**53),
            2**64,
            -(2**63) - 1,
            10**30,
            math.nan,
            math.inf,
            -math.inf,
            "\ud800",
            "a\udfffb",
            Plain.ONE,
            uuid.UUID(int=1),
            b"bytes",
            {1, 2},
            datetime(2026, 1, 1, tzinfo=UTC),
        ]
    ),
    st.integers(min_value=2**53).map(lambda i: -i if i % 2 else i),
)


def _trees(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.lists(children, max_size=3).map(tuple),
            st.dictionaries(texts, children, max_size=5),
            st.dictionaries(texts, children, max_size=3).map(collections.OrderedDict),
        ),
        max_leaves=25,
    )


json_values = _trees(good_leaves)
any_values = _trees(st.one_of(good_leaves, bad_leaves)) | st.dictionaries(
    st.one_of(texts, st.integers(), st.sampled_from(["\ud800", ("t",)])), good_leaves, max_size=3
)

ORDER_EXAMPLE = {"\U0001f600": 1, "\uffff": 2, "\ue000": 3, "a": 4, "": 5, "\u00e9": 6}


def _reference(value: Any) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except (ValueError, TypeError, RecursionError):
        return None


def _pure(value: Any) -> bytes | None:
    parts: list[str] = []
    if not canonical._encode(value, parts):
        return None
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        return None


def _orjson(value: Any) -> bytes | None:
    ready = canonical._for_orjson(value)
    if ready is canonical._DECLINED or _accel.sorted_dumps is None:
        return None
    try:
        return _accel.sorted_dumps(ready)
    except TypeError:
        return None


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values)
@example(ORDER_EXAMPLE)
@example({"k": [True, 1, False, 0, 1.0, None]})
def test_every_path_equals_the_reference(value: Any) -> None:
    want = rfc8785.dumps(value)
    assert canonical_bytes(value) == want
    for path in (_pure, _orjson):
        got = path(value)
        assert got is None or got == want, path.__name__


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(any_values)
def test_refuses_exactly_what_the_reference_refuses(value: Any) -> None:
    want = _reference(value)
    if want is None:
        with pytest.raises(NotCanonicalError):
            canonical_bytes(value)
    else:
        assert canonical_bytes(value) == want
    for path in (_pure, _orjson):
        got = path(value)
        assert got is None or got == want, path.__name__


def test_the_accelerator_takes_ordinary_values_and_declines_the_hazards() -> None:
    """A guard against a silently disabled fast path, and against one that takes too much."""
    assert canonical.ACCELERATOR.startswith("orjson ")
    assert _orjson({"a": [1, 2.5, "x", None, True], "b": {"c": "\u00e9"}}) is not None
    for hazard in (
        ORDER_EXAMPLE,
        {"a": Color.RED},
        {"a": Mood.CALM},
        {"a": LoudStr("x")},
        {"a": OddInt(3)},
        {"a": OddFloat(0.5)},
        {"a": Plain.ONE},
        {"a": uuid.UUID(int=1)},
        {"a": math.nan},
        {1: "a"},
        collections.OrderedDict(a=1),
    ):
        assert _orjson(hazard) is None, hazard


@pytest.mark.parametrize("edge", [2**53 - 1, -(2**53) + 1, 2**53, -(2**53), 2**63, 2**64])
def test_integer_boundary(edge: int) -> None:
    want = _reference([edge])
    if want is None:
        with pytest.raises(NotCanonicalError, match="2\\*\\*53"):
            canonical_bytes([edge])
    else:
        assert canonical_bytes([edge]) == want == str([edge]).encode()


def test_deep_nesting_beyond_the_accelerators_limit() -> None:
    value: Any = "x"
    for _ in range(300):
        value = {"a": [value]}
    assert canonical_bytes(value) == rfc8785.dumps(value)
    for _ in range(5000):
        value = [value]
    with pytest.raises(RecursionError):
        rfc8785.dumps(value)
    with pytest.raises(NotCanonicalError, match="nested deeper"):
        canonical_bytes(value)


@settings(max_examples=2000, deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_every_float_bit_pattern_formats_like_ecmascript(bits: int) -> None:
    x = struct.unpack("<d", struct.pack("<Q", bits))[0]
    if math.isfinite(x):
        assert es_number(x) == rfc8785.dumps(x).decode()
        assert canonical_bytes([x]) == rfc8785.dumps([x])


@settings(deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers(-(2**53) + 1, 2**53 - 1), max_size=6))
def test_request_digest_is_stable_under_key_order(args: dict[str, int]) -> None:
    reordered = dict(reversed(list(args.items())))
    digest = functools.partial(
        request_digest, agent_id="a", session_id="s", tool="t", action="call", target=None
    )
    assert digest(args=args) == digest(args=reordered)


def test_known_es_number_forms() -> None:
    assert es_number(10.0) == "10"
    assert es_number(1e21) == "1e+21"
    assert es_number(1.5e-7) == "1.5e-7"
    assert es_number(0.000001) == "0.000001"
    assert es_number(-0.0) == "0"
    assert es_number(123456789012345680000.0) == "123456789012345680000"


# -- strict evidence JSON: parse and prove canonical ----------------------------------------------

ascii_names = st.text(st.characters(max_codepoint=0x7F), max_size=6)
strict_values = st.recursive(
    st.none() | st.booleans() | ints | texts,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ascii_names, children, max_size=4)
    ),
    max_leaves=20,
)

PARSERS: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes] | None]] = {
    "accelerated": (orjson.loads, _accel.sorted_dumps),
    "pure": (json.loads, None),
}


@contextlib.contextmanager
def _parser(name: str) -> Iterator[None]:
    """Run ``loads_canonical`` as a verifier with (accelerated) or without (pure) orjson would."""
    saved = (_accel.loads, _accel.sorted_dumps)
    _accel.loads, _accel.sorted_dumps = PARSERS[name]
    try:
        yield
    finally:
        _accel.loads, _accel.sorted_dumps = saved


def _variants(value: Any) -> list[bytes]:
    """Serialisations of ``value`` a lenient writer might produce."""
    out = [
        json.dumps(value).encode(),
        json.dumps(value, separators=(",", ":")).encode(),
        json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
        + b" ",
    ]
    if isinstance(value, dict) and len(value) > 1:
        rev = dict(reversed(list(value.items())))
        out.append(json.dumps(rev, separators=(",", ":"), ensure_ascii=False).encode())
    return out


@pytest.mark.parametrize("parser", sorted(PARSERS))
@settings(max_examples=300, deadline=None)
@given(value=strict_values)
def test_loads_canonical_accepts_exactly_the_canonical_bytes(parser: str, value: Any) -> None:
    raw = rfc8785.dumps(value)
    with _parser(parser):
        assert loads_canonical(raw) == value
        for other in _variants(value):
            if other != raw:
                with pytest.raises(StrictJSONError):
                    loads_canonical(other)


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a":1.5}', "not an integer"),
        (b'{"a":1.0}', "not an integer"),
        (b'{"a":1e2}', "not an integer"),
        (b'{"a":9007199254740992}', "representable"),
        (b'{"a":-9007199254740992}', "representable"),
        (b'{"a":123456789012345678901234567890}', "not an integer|representable"),
        (b'{"a":1,"a":1}', "canonical"),
        (b'{"b":1,"a":2}', "canonical"),
        (b'{"a": 1}', "canonical"),
        (b'{"a":"\\u00e9"}', "canonical"),
        (b'{"a":"\\/"}', "canonical"),
        ('{"\u00e9":1}'.encode(), "not ASCII"),
        (b'{"\\u00e9":1}', "canonical"),
        (b'{"a":"\\ud800"}', "surrogate|not valid JSON"),
        (b'{"a":NaN}', "not an integer|not valid JSON"),
        (b'{"a":Infinity}', "not an integer|not valid JSON"),
        (b"\xef\xbb\xbf{}", "canonical|not valid JSON"),
        (b'{"a":"\xff"}', "not valid JSON"),
        (b"{", "not valid JSON"),
    ],
)
def test_loads_canonical_rejects(parser: str, raw: bytes, message: str) -> None:
    with _parser(parser), pytest.raises(StrictJSONError, match=message):
        loads_canonical(raw)


def test_check_strict_names_the_rule() -> None:
    strict.check_strict({"a": [1, {"b": None}]})
    with pytest.raises(StrictJSONError, match="not JSON"):
        strict.check_strict({"a": (1,)})
    with pytest.raises(StrictJSONError, match="not ASCII"):
        strict.check_strict({"\u00e9": 1})
    with pytest.raises(StrictJSONError, match="not an integer"):
        strict.check_strict({"a": [0.5]})
