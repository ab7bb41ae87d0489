"""The shipped Claude Code hooks example: both hook kinds deny with the reason Claude sees, the push
waits for the operator's approval through the operator API and runs once, outcomes reach the audit
log, and ``clearance audit verify`` accepts the log."""

from __future__ import annotations

from typing import Any

import pytest
from tests.examples_kit import load_example


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_example("claude-code-hooks").run(tmp_path_factory.mktemp("hooks-example") / "data")


def test_each_hook_kind_allows_and_denies_with_the_reason_claude_sees(outcome: Any) -> None:
    seen = [(s.hook, s.call, s.allowed, s.reason) for s in outcome.steps]
    assert seen[:3] == [
        ("command", "Bash(git status)", True, ""),
        ("command", "Bash(rm -rf build)", False,
         "denied by rule `no-rm`: the agent never deletes files from the shell"),
        ("http", "Read(/workspace/shop/.env)", False,
         "denied by rule `no-env-files`: env files hold secrets"),
    ]  # fmt: skip


def test_the_push_waits_for_the_operator_then_runs_once(outcome: Any) -> None:
    assert [(s.hook, s.call, s.allowed) for s in outcome.steps[3:]] == [
        ("http", "Bash(git push origin main)", True)
    ]
    assert outcome.approved_by.startswith("op-lead approved apr_")
    decisions = [(e["tool"], e["outcome"]) for e in outcome.trail if e["kind"] == "decision"]
    assert decisions == [("Bash", "PERMIT"), ("Bash", "DENY"), ("Read", "DENY"),
                         ("Bash", "APPROVAL"), ("Bash", "PERMIT")]  # fmt: skip
    redeemed = [e for e in outcome.trail if e["kind"] == "decision"][-1]
    assert redeemed["rule"] == "approval:" + outcome.approved_by.rsplit(" ", 1)[1]


def test_outcomes_reach_the_audit_log_and_it_verifies(outcome: Any) -> None:
    decisions = {e["decision_id"]: e for e in outcome.trail if e["kind"] == "decision"}
    recorded = [decisions[e["decision_id"]] for e in outcome.trail if e["kind"] == "outcome"]
    assert [(d["outcome"], d["rule"]) for d in recorded] == [
        ("PERMIT", "git-local"),
        ("APPROVAL", "git-push"),  # the approved push: recorded against its approval
    ]
    assert outcome.verified, outcome.verify_output
