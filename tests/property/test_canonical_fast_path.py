"""The canonical-JSON fast path must produce exactly the bytes of the reference RFC 8785 encoder."""

from __future__ import annotations

import math
import struct

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from clearance.formats.canonical import canonical_bytes, es_number, request_digest

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=400)
@given(json_values)
def test_fast_path_equals_reference(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=2000)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_every_float_bit_pattern_formats_like_ecmascript(bits: int) -> None:
    x = struct.unpack("<d", struct.pack("<Q", bits))[0]
    if math.isfinite(x):
        assert es_number(x) == rfc8785.dumps(x).decode()


@given(st.dictionaries(st.text(max_size=6), st.integers(-(2**53) + 1, 2**53 - 1), max_size=6))
def test_request_digest_is_stable_under_key_order(args: dict[str, int]) -> None:
    reordered = dict(reversed(list(args.items())))
    kwargs = {"agent_id": "a", "session_id": "s", "tool": "t", "action": "call", "target": None}
    assert request_digest(args=args, **kwargs) == request_digest(args=reordered, **kwargs)


def test_known_es_number_forms() -> None:
    assert es_number(10.0) == "10"
    assert es_number(1e21) == "1e+21"
    assert es_number(1.5e-7) == "1.5e-7"
    assert es_number(0.000001) == "0.000001"
    assert es_number(-0.0) == "0"
    assert es_number(123456789012345680000.0) == "123456789012345680000"
