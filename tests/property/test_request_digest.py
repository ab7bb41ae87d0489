"""The request digest is stable under key order, and changes with any argument."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from clearance.model import Request

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53 - 1), 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=15,
)


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


@given(args=st.dictionaries(st.text(max_size=6), values, max_size=5))
def test_digest_ignores_key_order(args: dict[str, Any]) -> None:
    one = Request(agent_id="a", session_id="s", tool="t", args=args)
    two = Request(agent_id="a", session_id="s", tool="t", args=_reordered(args))
    assert one.digest == two.digest
    assert one.digest.startswith("sha256:")


@given(
    args=st.dictionaries(st.text(max_size=6), values, min_size=1, max_size=5),
    extra=st.text(min_size=1, max_size=4),
)
def test_digest_changes_with_arguments(args: dict[str, Any], extra: str) -> None:
    one = Request(agent_id="a", session_id="s", tool="t", args=args)
    key = next(iter(args))
    two = Request(agent_id="a", session_id="s", tool="t", args={**args, key: [args[key], extra]})
    assert one.digest != two.digest
