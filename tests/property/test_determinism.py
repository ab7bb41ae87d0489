"""The same request and policy always give the same verdict - also after a bundle round-trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clearance.model import Request, SessionFacts
from clearance.policy import Bundle, evaluate, load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "financeapp" / "policy.yaml"
BUNDLE = load_policy(EXAMPLE)
REPLAYED = Bundle.from_bytes(BUNDLE.to_bytes())

accounts = st.one_of(
    st.from_regex(r"ACC-[0-9]{6}", fullmatch=True), st.sampled_from(["ACC-100001", "ACC-200017"])
)
args = st.fixed_dictionaries(
    {
        "from_account": accounts,
        "to_account": accounts,
        "amount": st.floats(min_value=0, max_value=2_000_000, allow_nan=False),
    },
    optional={"memo": st.text(max_size=20)},
)
facts = st.builds(
    SessionFacts,
    task=st.sampled_from(["transfer", "balance_check", "report", "nope"]),
    environment=st.sampled_from(["staging", "production", "development"]),
    taint=st.lists(st.sampled_from(["fetch_url"]), max_size=1).map(tuple),
    attended=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(args=args, facts=facts)
def test_same_inputs_same_verdict(args: dict[str, Any], facts: SessionFacts) -> None:
    request = Request(agent_id="a", session_id="s", tool="transfer_funds", args=args)
    first = evaluate(BUNDLE.compiled, request, facts)
    assert evaluate(BUNDLE.compiled, request, facts) == first
    assert evaluate(REPLAYED.compiled, request, facts) == first
    assert first.model_dump_json() == evaluate(REPLAYED.compiled, request, facts).model_dump_json()
