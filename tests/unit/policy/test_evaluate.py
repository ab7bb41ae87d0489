"""Evaluation: the order of checks, combining, strict and shadow modes, fail-closed errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from clearance.model import Outcome, Request, SessionFacts
from clearance.policy import Bundle, evaluate, load_policy

Decide = Callable[..., object]

TRANSFER = {"from_account": "ACC-000001", "to_account": "ACC-100001", "amount": 20}
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "financeapp" / "policy.yaml"


def test_unknown_tool_is_silence(decide: Decide) -> None:
    verdict = decide("wire_money", {})
    assert (verdict.outcome, verdict.rule) == (Outcome.SILENCE, "unknown-tool")


def test_scope_is_checked_before_constraints(decide: Decide) -> None:
    verdict = decide("transfer_funds", {"amount": -1}, task="balance_check")
    assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "scope")


def test_constraint_is_checked_before_rules(decide: Decide) -> None:
    verdict = decide(
        "delete_records", {"table": "payees", "ids": list(range(101))}, task="maintenance"
    )
    assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "constraint")
    assert "at most 100 items" in verdict.reason


def test_verdict_names_the_rule_location_and_tier(decide: Decide) -> None:
    verdict = decide("transfer_funds", TRANSFER)
    assert verdict.outcome is Outcome.PERMIT
    assert verdict.rule == "small-transfer-known-payee"
    assert verdict.location is not None
    assert verdict.location.startswith("policy.yaml:")
    assert verdict.tier is not None
    assert verdict.tier.value == "write-broad"


def test_deny_beats_approval(decide: Decide) -> None:
    # sql-schema-change (deny) and sql-other (approval) and the production approval all match
    verdict = decide(
        "execute_sql",
        {"database": "ledger", "query": "DROP TABLE t"},
        task="maintenance",
        environment="production",
    )
    assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "sql-schema-change")


def test_approval_beats_permit_and_first_approval_names_the_rule(decide: Decide) -> None:
    verdict = decide("transfer_funds", {**TRANSFER, "amount": 5000}, taint=["fetch_url"])
    assert (verdict.outcome, verdict.rule) == (Outcome.APPROVAL, "large-transfer")
    assert verdict.approver_group == "finance-approvers"


def test_critical_tier_needs_two_approvers(decide: Decide) -> None:
    verdict = decide(
        "execute_sql", {"database": "ledger", "query": "update t set a = 1"}, task="maintenance"
    )
    assert (verdict.outcome, verdict.approvers, verdict.approver_group) == (
        Outcome.APPROVAL,
        2,
        "dba",
    )
    assert [o.kind for o in verdict.obligations] == ["sandbox"]


def test_no_rules_denies_everything(
    policy_with: Callable[[str], Bundle], decider: Callable[[Bundle], Decide]
) -> None:
    decide = decider(policy_with(""))
    for tool, args in [("read_account", {"account_id": "a"}), ("transfer_funds", TRANSFER)]:
        verdict = decide(tool, {k: v for k, v in args.items() if k != "from_account"})
        assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "default")


def test_default_approval(
    policy_with: Callable[[str], Bundle], decider: Callable[[Bundle], Decide]
) -> None:
    decide = decider(policy_with("default: approval\n"))
    verdict = decide("read_account", {"account_id": "a"})
    assert (verdict.outcome, verdict.rule, verdict.approvers) == (Outcome.APPROVAL, "default", 1)


def test_strict_mode_turns_approval_into_deny_when_unattended(
    policy_with: Callable[[str], Bundle], decider: Callable[[Bundle], Decide]
) -> None:
    decide = decider(
        policy_with(
            "strict: true\nrules:\n  - {id: ask, tools: [read_account], outcome: approval}\n"
        )
    )
    attended = decide("read_account", {"account_id": "a"})
    unattended = decide("read_account", {"account_id": "a"}, attended=False)
    assert attended.outcome is Outcome.APPROVAL
    assert (unattended.outcome, unattended.rule) == (Outcome.DENY, "ask")
    assert "strict mode" in unattended.reason
    assert unattended.approvers == 0


@pytest.mark.parametrize(
    ("extra", "tool_shadow"),
    [("mode: shadow\n", True), ("", False)],
)
def test_shadow_mode_is_flagged(
    policy_with: Callable[[str], Bundle],
    decider: Callable[[Bundle], Decide],
    extra: str,
    tool_shadow: bool,
) -> None:
    decide = decider(policy_with(extra))
    verdict = decide("read_account", {"account_id": "a"})
    assert verdict.outcome is Outcome.DENY  # the would-be outcome is kept
    assert verdict.shadow is tool_shadow


def test_per_tool_shadow_overrides_policy_mode(decider: Callable[[Bundle], Decide]) -> None:
    from clearance.policy import load_policy

    text = (
        "version: '1'\nname: x\nmode: shadow\ntools:\n  a: {tier: read-only, mode: enforce}\n"
        "  b: {tier: read-only}\ntasks: {t: {tools: [a, b]}}\n"
        "environments: {staging: {}, production: {}}\n"
    )
    decide = decider(load_policy(text))
    assert decide("a", task="t").shadow is False
    assert decide("b", task="t").shadow is True


@pytest.mark.parametrize(
    ("when", "detail"),
    [
        ("args.missing == 1", "KeyError"),
        ("args.account_id > 5", "TypeError"),
        ("args.account_id", "not a bool"),
        ("1 / 0 == 1", "ZeroDivisionError"),
    ],
)
def test_error_in_a_permit_rule_is_silence(
    decider: Callable[[Bundle], Decide], when: str, detail: str
) -> None:
    from clearance.policy import load_policy

    bundle = load_policy(
        "version: '1'\nname: x\ntools:\n  t:\n    tier: read-only\n    additional_params: true\n"
        "tasks: {a: {tools: [t]}}\nenvironments: {staging: {}, production: {}}\n"
        f"rules:\n  - {{id: allow, outcome: permit, when: '{when}'}}\n",
        source_name="e.yaml",
    )
    verdict = decider(bundle)("t", {"account_id": "acc"}, task="a")
    assert (verdict.outcome, verdict.rule) == (Outcome.SILENCE, "allow")
    assert detail in verdict.reason
    assert when in verdict.reason
    assert verdict.location == "e.yaml:10"


def test_error_in_a_later_rule_is_not_skipped_after_a_permit(
    decider: Callable[[Bundle], Decide],
) -> None:
    from clearance.policy import load_policy

    bundle = load_policy(
        "version: '1'\nname: x\ntools:\n  t: {tier: read-only, additional_params: true}\n"
        "tasks: {a: {tools: [t]}}\nenvironments: {staging: {}, production: {}}\n"
        "rules:\n  - {id: allow, outcome: permit}\n"
        "  - {id: broken, outcome: deny, when: 'args.n > 5'}\n"
    )
    verdict = decider(bundle)("t", {}, task="a")
    assert (verdict.outcome, verdict.rule) == (Outcome.SILENCE, "broken")


def test_rule_filters_by_task_and_environment(decider: Callable[[Bundle], Decide]) -> None:
    from clearance.policy import load_policy

    bundle = load_policy(
        "version: '1'\nname: x\ntools:\n  t: {tier: read-only}\n"
        "tasks: {a: {tools: [t]}, b: {tools: [t]}}\nenvironments: {staging: {}, production: {}}\n"
        "rules:\n  - {id: only-a-staging, tasks: [a], environments: [staging], outcome: permit}\n"
    )
    decide = decider(bundle)
    assert decide("t", task="a").outcome is Outcome.PERMIT
    assert decide("t", task="b").rule == "default"
    assert decide("t", task="a", environment="production").rule == "default"


def test_environment_deny_tiers(decider: Callable[[Bundle], Decide]) -> None:
    from clearance.policy import load_policy

    bundle = load_policy(
        "version: '1'\nname: x\ntools:\n  t: {tier: destructive}\n"
        "tasks: {a: {tools: [t]}}\n"
        "environments: {staging: {}, production: {deny_tiers: [destructive]}}\n"
        "rules:\n  - {id: ok, outcome: permit}\n"
    )
    decide = decider(bundle)
    assert decide("t", task="a").outcome is Outcome.PERMIT
    verdict = decide("t", task="a", environment="production")
    assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "environment:production")


def test_session_request_and_scan_variables(decider: Callable[[Bundle], Decide]) -> None:
    from clearance.policy import load_policy

    bundle = load_policy(
        "version: '1'\nname: x\ntools:\n  t: {tier: read-only}\n"
        "tasks: {a: {tools: [t]}}\nenvironments: {staging: {}, production: {}}\n"
        "rules:\n"
        "  - {id: calls, outcome: deny, when: \"'t' in session.calls && session.calls['t'] >= 3\"}\n"
        "  - {id: principal, outcome: permit, when: \"session.principal == 'alice'\"}\n"
        "  - {id: injection, outcome: deny, when: 'scan.injection > 0.8'}\n"
        "  - {id: agent, outcome: deny, when: \"request.agent_id.startsWith('evil')\"}\n"
    )
    decide = decider(bundle)
    assert decide("t", task="a", principal="alice").rule == "principal"
    assert decide("t", task="a", principal="alice", calls={"t": 3}).rule == "calls"
    assert decide("t", task="a", principal="alice", scan={"injection": 0.9}).rule == "injection"
    verdict = evaluate(
        bundle.compiled,
        Request(agent_id="evil-1", session_id="s", tool="t"),
        SessionFacts(task="a", environment="staging"),
    )
    assert verdict.rule == "agent"


class _Seen:
    def __init__(self, table: dict[str, frozenset[str]]) -> None:
        self.table = table

    def sources(self, value: object) -> frozenset[str]:
        return self.table.get(str(value), frozenset())


def test_provenance_hooks(decider: Callable[[Bundle], Decide]) -> None:
    from clearance.policy import load_policy

    bundle = load_policy(
        "version: '1'\nname: x\ntools:\n  pay: {tier: write-broad, params: {to: {type: string}}}\n"
        "tasks: {a: {tools: [pay]}}\nenvironments: {staging: {}, production: {}}\n"
        "data: {payees: [ACC-1]}\n"
        "rules:\n"
        "  - {id: named, outcome: permit, when: 'from_instruction(args.to) || from_data(args.to)'}\n"
        "  - {id: planted, outcome: approval, when: 'only_untrusted(args.to)'}\n"
        "  - {id: many, outcome: deny, when: 'size(sources(args.to)) > 2'}\n"
    )
    decide = decider(bundle)
    assert decide("pay", {"to": "ACC-1"}, task="a").rule == "named"
    assert decide("pay", {"to": "ACC-2"}, task="a").rule == "default"  # no provenance: unseen
    told = _Seen({"ACC-2": frozenset({"instruction"})})
    assert decide("pay", {"to": "ACC-2"}, task="a", provenance=told).rule == "named"
    planted = _Seen({"ACC-3": frozenset({"untrusted:fetch_url"})})
    assert decide("pay", {"to": "ACC-3"}, task="a", provenance=planted).rule == "planted"
    busy = _Seen({"ACC-4": frozenset({"instruction", "trusted:read", "untrusted:x"})})
    assert decide("pay", {"to": "ACC-4"}, task="a", provenance=busy).rule == "many"


def test_evaluate_is_repeatable(decide: Decide) -> None:
    first = decide("transfer_funds", {**TRANSFER, "amount": 5000})
    assert all(decide("transfer_funds", {**TRANSFER, "amount": 5000}) == first for _ in range(5))


def test_remembered_verdicts_for_several_matches_equal_fresh_ones(
    decider: Callable[[Bundle], Decide],
) -> None:
    # large-transfer, unknown-payee and transfer-after-untrusted-content all match: a verdict
    # built from several rules, remembered by the plan after the first evaluation.
    args = {**TRANSFER, "amount": 5000, "to_account": "ACC-999999"}
    warm = decider(load_policy(EXAMPLE))
    first = warm("transfer_funds", args, taint=["fetch_url"])
    again = warm("transfer_funds", args, taint=["fetch_url"])
    fresh = decider(load_policy(EXAMPLE))("transfer_funds", args, taint=["fetch_url"])
    assert first == again == fresh
    assert (first.outcome, first.rule) == (Outcome.APPROVAL, "large-transfer")
    # a different set of matches is not answered from the memory of another
    fewer = warm("transfer_funds", {**args, "to_account": "ACC-100001"}, taint=["fetch_url"])
    assert fewer == decider(load_policy(EXAMPLE))(
        "transfer_funds", {**args, "to_account": "ACC-100001"}, taint=["fetch_url"]
    )
