"""The shipped OpenAI Agents SDK example: the denied call never runs, an SDK-only approval is not
taken as approval, the approved transfer runs once, and the audit log holds every decision and
verifies offline."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from tests import examples_kit


def load_example() -> ModuleType:
    return examples_kit.load_example("openai-agents")


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_example().run(tmp_path_factory.mktemp("openai-agents-example") / "data")


def test_the_denied_call_never_runs_and_the_model_reads_the_rule(outcome: Any) -> None:
    assert outcome.ledger.deleted == []
    assert outcome.tool_results[1] == (
        "denied by rule `never-delete`: the payments agent never deletes records"
    )


def test_an_sdk_only_approval_does_not_run_the_transfer(outcome: Any) -> None:
    assert outcome.sdk_only_result.startswith(f"approval `{outcome.approval_id}` pending")


def test_the_transfer_runs_once_after_the_clearance_approval(outcome: Any) -> None:
    assert outcome.ledger.transfers == [(5000.0, "acc-200")]
    assert outcome.tool_results == [
        "acc-100: 1,204.50 EUR",
        "denied by rule `never-delete`: the payments agent never deletes records",
        "sent 5000.00 to acc-200",
    ]


def test_the_audit_trail_holds_every_decision_and_outcome_and_verifies(outcome: Any) -> None:
    decisions = [
        (e["tool"], e["outcome"], e["rule"]) for e in outcome.audit if e["kind"] == "decision"
    ]
    assert decisions == [
        ("read_account", "PERMIT", "reads"),
        ("delete_records", "DENY", "never-delete"),
        ("transfer_funds", "APPROVAL", "large-transfer"),
        ("transfer_funds", "PERMIT", f"approval:{outcome.approval_id}"),
    ]
    reported = [e for e in outcome.audit if e["kind"] == "outcome"]
    assert [e["payload"]["success"] for e in reported] == [True, True]
    assert outcome.verified is True
