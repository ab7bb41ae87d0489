"""Every shipped example policy decides the same with and without the Python forms of conditions.

The same policy is loaded twice; in the second copy every condition runs on the CEL engine only.
Requests draw each argument from values that satisfy or just miss the tool's schema, plus values
of the wrong type, so that conditions see in-domain and out-of-domain inputs alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from clearance.model import Request, SessionFacts
from clearance.model.session import Environment
from clearance.policy import evaluate, load_policy
from clearance.policy.compile import CompiledPolicy
from clearance.policy.document import Param

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/policy.yaml"))
assert EXAMPLES, "the example policies are missing"

_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
)


def _compiled(path: Path, *, native: bool) -> CompiledPolicy:
    compiled = load_policy(path.read_text(), source_name=path.name).compiled
    if not native:
        for rule in compiled.rules:
            if rule.condition is not None:
                object.__setattr__(rule.condition, "native", None)
    return compiled


def _value(param: Param, data: list[Any]) -> st.SearchStrategy[Any]:
    options: list[st.SearchStrategy[Any]] = [_ANY]
    if param.enum:
        options.append(st.sampled_from(list(param.enum)))
    if param.type in ("integer", "number"):
        low = param.min if param.min is not None else -1000
        high = param.max if param.max is not None else 1000
        options.append(st.integers(min_value=int(low) - 1, max_value=int(high) + 1))
        if param.type == "number":
            options.append(st.floats(min_value=float(low) - 1, max_value=float(high) + 1))
    if param.type == "string":
        options.append(st.sampled_from([str(v) for v in data] or ["x"]))
        if param.pattern:
            options.append(st.from_regex(param.pattern, fullmatch=True))
        options.append(
            st.sampled_from(["https://docs.financeapp.example/a", "bob@financeapp.example"])
        )
    if param.type == "array":
        items: list[Any] = [str(v) for v in data] or [1]
        options.append(st.lists(st.sampled_from(items), max_size=3))
    return st.one_of(options)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_python_forms_never_change_a_verdict(path: Path, data: st.DataObject) -> None:
    fast = _compiled(path, native=True)
    engine = _compiled(path, native=False)
    tool_name = data.draw(st.sampled_from(sorted(fast.tools)))
    tool = fast.tools[tool_name]
    listed = [v for items in fast.data.values() for v in items]
    args = {
        name: data.draw(_value(param, listed), label=name)
        for name, param in tool.spec.params.items()
        if param.required or data.draw(st.booleans())
    }
    task = data.draw(
        st.sampled_from(
            sorted(t for t, tools in fast.tasks.items() if tool_name in tools) or sorted(fast.tasks)
        )
    )
    facts = SessionFacts(
        task=task,
        environment=data.draw(st.sampled_from(sorted(fast.environments))),
        principal=data.draw(st.sampled_from([None, "alice"])),
        taint=data.draw(
            st.sampled_from([(), ("untrusted:fetch_url",), ("untrusted:injection:x",)])
        ),
        delegation=data.draw(st.sampled_from([(), ("planner",), ("planner", "deployer")])),
        calls=data.draw(st.sampled_from([{}, {tool_name: 3}, {tool_name: 50}])),
    )
    request = Request.model_construct(
        agent_id="agent-1",
        session_id="ses-1",
        tool=tool_name,
        args=args,
        action="call",
        target=None,
    )
    assert evaluate(fast, request, facts) == evaluate(engine, request, facts)


def test_the_comparison_is_not_vacuous() -> None:
    compiled = _compiled(EXAMPLES[0], native=True)
    with_conditions = [r for r in compiled.rules if r.condition is not None]
    assert with_conditions
    assert any(r.condition is not None and r.condition.native is not None for r in with_conditions)
    assert Environment.PRODUCTION.value in compiled.environments
