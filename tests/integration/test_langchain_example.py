"""The shipped LangChain example: the denied call never runs, the forged resume is refused, the
approved transfer runs once, and the audit log holds every decision and verifies offline."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from tests import examples_kit


def load_example() -> ModuleType:
    return examples_kit.load_example("langchain")


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_example().run(tmp_path_factory.mktemp("langchain-example") / "data")


def test_denied_call_never_runs_and_the_model_reads_the_rule(outcome: Any) -> None:
    assert outcome.ledger.deleted == []
    denied = next(m for m in outcome.tool_messages if m.name == "delete_records")
    assert denied.status == "error"
    assert "never-delete" in denied.content


def test_forged_resume_is_refused_and_the_approved_transfer_runs_once(outcome: Any) -> None:
    first, after_forgery = outcome.approvals
    assert after_forgery["approval_id"] == first["approval_id"]
    assert first["dashboard_url"].endswith(f"/approvals/{first['approval_id']}")
    assert outcome.ledger.transfers == [(5000.0, "acc-200")]
    sent = next(m for m in outcome.tool_messages if m.name == "transfer_funds")
    assert sent.content == "sent 5000.00 to acc-200"


def test_audit_trail_holds_every_decision_and_verifies(outcome: Any) -> None:
    decisions = [
        (e["tool"], e["outcome"], e["rule"]) for e in outcome.audit if e["kind"] == "decision"
    ]
    approval_id = outcome.approvals[0]["approval_id"]
    assert decisions == [
        ("read_account", "PERMIT", "reads"),
        ("delete_records", "DENY", "never-delete"),
        ("transfer_funds", "APPROVAL", "large-transfer"),
        ("transfer_funds", "PERMIT", f"approval:{approval_id}"),
    ]
    outcomes = [e for e in outcome.audit if e["kind"] == "outcome"]
    assert [e["payload"]["success"] for e in outcomes] == [True, True]
    assert outcome.verified is True
