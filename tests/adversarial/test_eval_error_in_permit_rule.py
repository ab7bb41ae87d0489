"""An evaluation error inside a permit rule never permits and is never skipped."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clearance.model import Outcome, Request, SessionFacts
from clearance.policy import evaluate, load_policy

POLICY = load_policy(
    """\
version: "1"
name: fragile
tools:
  pay:
    tier: write-broad
    params:
      amount: {type: number}
      to: {type: string}
      meta: {type: object}
tasks: {a: {tools: [pay]}}
environments: {staging: {}, production: {}}
rules:
  - id: lenient-permit
    tools: [pay]
    outcome: permit
    when: args.amount < 100.0 && args.to.startsWith("ACC-") && args.meta.ok == true
  - id: backstop-deny
    tools: [pay]
    outcome: deny
    when: has(args.to) && args.to == "ACC-EVIL"
""",
    source_name="fragile.yaml",
).compiled

FACTS = SessionFacts(task="a", environment="staging")


def _decide(args: dict[str, Any]) -> Any:
    return evaluate(POLICY, Request(agent_id="a", session_id="s", tool="pay", args=args), FACTS)


def test_complete_arguments_permit() -> None:
    assert _decide({"amount": 5, "to": "ACC-1", "meta": {"ok": True}}).outcome is Outcome.PERMIT


def test_missing_nested_key_is_silence_naming_the_rule_and_expression() -> None:
    verdict = _decide({"amount": 5, "to": "ACC-1", "meta": {}})
    assert (verdict.outcome, verdict.rule) == (Outcome.SILENCE, "lenient-permit")
    assert "args.meta.ok == true" in verdict.reason
    assert verdict.location == "fragile.yaml:13"


def test_type_confusion_is_silence() -> None:
    verdict = _decide({"amount": 5, "to": "ACC-1", "meta": {"ok": "yes"}})
    assert verdict.outcome is not Outcome.PERMIT


@settings(max_examples=200, deadline=None)
@given(
    args=st.fixed_dictionaries(
        {},
        optional={
            "amount": st.floats(min_value=-10, max_value=1000, allow_nan=False),
            "to": st.sampled_from(["ACC-1", "ACC-EVIL", "x"]),
            "meta": st.dictionaries(
                st.sampled_from(["ok", "other"]),
                st.one_of(st.booleans(), st.integers(-100, 100), st.text(max_size=3)),
                max_size=2,
            ),
        },
    )
)
def test_permit_only_when_the_whole_condition_truly_holds(args: dict[str, Any]) -> None:
    verdict = _decide(args)
    holds = (
        {"amount", "to", "meta"} <= set(args)
        and args["amount"] < 100
        and args["to"].startswith("ACC-")
        and args["meta"].get("ok") is True
        and args["to"] != "ACC-EVIL"
    )
    assert (verdict.outcome is Outcome.PERMIT) == holds
    if (
        "meta" in args
        and "ok" not in args["meta"]
        and {"amount", "to"} <= set(args)
        and args["amount"] < 100
        and args["to"].startswith("ACC-")
    ):
        assert verdict.outcome is Outcome.SILENCE
