"""Random garbage requests never yield PERMIT."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clearance.model import Outcome, Request, SessionFacts
from clearance.policy import evaluate, load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "financeapp" / "policy.yaml"
COMPILED = load_policy(EXAMPLE).compiled
TOOLS = sorted(COMPILED.tools)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
facts = st.builds(
    SessionFacts,
    task=st.sampled_from([*COMPILED.tasks, "", "admin"]),
    environment=st.sampled_from(["staging", "production", "development"]),
    taint=st.lists(st.text(max_size=5), max_size=2).map(tuple),
    calls=st.dictionaries(st.text(max_size=5), st.integers(0, 10), max_size=3),
    attended=st.booleans(),
)


def _verdict(tool: str, args: dict[str, Any], session: SessionFacts) -> Outcome:
    fields: dict[str, Any] = {"agent_id": "a", "session_id": "s", "tool": tool, "args": args}
    try:
        request = Request(**fields)
    except ValidationError:
        # Request refuses NaN, Infinity and huge integers; policy must not PERMIT them either.
        request = Request.model_construct(**fields)
    return evaluate(COMPILED, request, session).outcome


@settings(max_examples=300, deadline=None)
@given(
    tool=st.text(max_size=20).filter(lambda t: t and t not in COMPILED.tools),
    args=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    session=facts,
)
def test_unknown_tools_never_permit(tool: str, args: dict[str, Any], session: SessionFacts) -> None:
    assert _verdict(tool, args, session) is not Outcome.PERMIT


@settings(max_examples=300, deadline=None)
@given(
    tool=st.sampled_from(TOOLS),
    junk=st.text(min_size=1, max_size=8),
    value=json_values,
    args=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    session=facts,
)
def test_undeclared_arguments_never_permit(
    tool: str, junk: str, value: Any, args: dict[str, Any], session: SessionFacts
) -> None:
    args = {**args, f"x-{junk}": value}
    assert _verdict(tool, args, session) is not Outcome.PERMIT


@settings(max_examples=300, deadline=None)
@given(tool=st.sampled_from(TOOLS), session=facts, data=st.data())
def test_wrongly_typed_declared_arguments_never_permit(
    tool: str, session: SessionFacts, data: st.DataObject
) -> None:
    params = COMPILED.tools[tool].spec.params
    name = data.draw(st.sampled_from(sorted(params)))
    wrong = {
        "string": st.integers() | st.none() | st.lists(st.text(), max_size=2),
        "number": st.text() | st.booleans() | st.sampled_from([math.nan, math.inf, -math.inf]),
        "integer": st.floats() | st.text() | st.booleans(),
        "array": st.text() | st.integers() | st.dictionaries(st.text(), st.integers()),
        "object": st.text() | st.lists(st.integers()),
        "boolean": st.integers() | st.text(),
    }[params[name].type]
    args = data.draw(st.dictionaries(st.sampled_from(sorted(params)), json_values, max_size=3))
    args[name] = data.draw(wrong)
    assert _verdict(tool, args, session) is not Outcome.PERMIT
