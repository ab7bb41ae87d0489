"""The shipped MCP example: denied calls never reach the bank, the approved transfer runs once,
and the audit log verifies offline."""

from __future__ import annotations

from typing import Any

import pytest
from tests.examples_kit import load_example


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_example("mcp").run(tmp_path_factory.mktemp("mcp-example") / "data")


def test_tools_are_namespaced_and_the_denied_call_never_reaches_the_bank(outcome: Any) -> None:
    assert outcome.tools == ["bank__delete_records", "bank__read_account", "bank__transfer_funds"]
    read, delete = outcome.results[:2]
    assert read == ("bank__read_account", False, "acc-1: 120.00")
    assert delete[1] is True
    assert "denied by rule `never-delete`" in delete[2]
    assert "delete_records" not in [e["tool"] for e in outcome.ledger]


def test_the_transfer_waits_for_approval_then_runs_once(outcome: Any) -> None:
    pending, done = outcome.results[2:]
    assert pending[1] is True
    assert "approval `apr_" in pending[2]
    assert done == ("bank__transfer_funds", False, "sent 5000.00 to acc-2")
    transfers = [e for e in outcome.ledger if e["tool"] == "transfer_funds"]
    assert transfers == [{"tool": "transfer_funds", "amount": 5000.0, "to_account": "acc-2"}]


def test_the_audit_log_verifies_offline(outcome: Any) -> None:
    assert outcome.verified
