"""DENY precedence: evaluate() and combine() agree with a ten-line reference oracle."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearance.model import Outcome, Request, SessionFacts
from clearance.policy import evaluate, load_policy
from clearance.policy.combine import combine

OUTCOMES = ["permit", "deny", "approval"]
rule_sets = st.lists(st.tuples(st.sampled_from(OUTCOMES), st.booleans()), max_size=8)


def oracle(rules: list[tuple[str, bool]], default: str) -> tuple[str, str]:
    """The specification, written as plainly as possible."""
    for outcome in ("deny", "approval", "permit"):
        for index, (rule_outcome, matches) in enumerate(rules):
            if matches and rule_outcome == outcome:
                return outcome, f"r{index}"
    return default, "default"


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(rules=rule_sets, default=st.sampled_from(["deny", "approval"]))
def test_evaluate_matches_the_oracle(rules: list[tuple[str, bool]], default: str) -> None:
    lines = [
        f"  - {{id: r{i}, outcome: {outcome}, when: '{str(matches).lower()}'}}"
        for i, (outcome, matches) in enumerate(rules)
    ]
    text = (
        f"version: '1'\nname: oracle\ndefault: {default}\n"
        "tools: {t: {tier: write-limited}}\ntasks: {a: {tools: [t]}}\n"
        "environments: {staging: {}, production: {}}\n"
        + ("rules:\n" + "\n".join(lines) + "\n" if lines else "")
    )
    verdict = evaluate(
        load_policy(text).compiled,
        Request(agent_id="a", session_id="s", tool="t"),
        SessionFacts(task="a", environment="staging"),
    )
    want_outcome, want_rule = oracle(rules, default)
    assert (verdict.outcome.value.lower(), verdict.rule) == (want_outcome, want_rule)


@given(
    outcomes=st.lists(st.sampled_from([Outcome.PERMIT, Outcome.APPROVAL, Outcome.DENY])),
    default=st.sampled_from([Outcome.DENY, Outcome.APPROVAL]),
)
def test_combine_matches_the_oracle(outcomes: list[Outcome], default: Outcome) -> None:
    want, _ = oracle([(o.value.lower(), True) for o in outcomes], default.value.lower())
    assert combine(outcomes, default=default).value.lower() == want
