"""The shipped LangChain example: the denied call never runs, the forged resume is refused, the
approved transfer runs once, and the audit log holds every decision and verifies offline."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langchain" / "run.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("langchain_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


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
