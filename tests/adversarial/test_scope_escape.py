"""A session can only call the tools its task grants, and the agent cannot widen its own scope."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from clearance.model import Outcome, Request, SessionFacts
from clearance.policy import evaluate, load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "financeapp" / "policy.yaml"
COMPILED = load_policy(EXAMPLE).compiled

OUTSIDE = [
    (task, tool)
    for task, granted in COMPILED.tasks.items()
    for tool in COMPILED.tools
    if tool not in granted
]


@pytest.mark.parametrize(("task", "tool"), OUTSIDE)
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_tool_outside_the_task_is_denied_scope(task: str, tool: str, environment: str) -> None:
    verdict = evaluate(
        COMPILED,
        Request(agent_id="a", session_id="s", tool=tool, args={}),
        SessionFacts(task=task, environment=environment, taint=("fetch_url",)),
    )
    assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "scope")


def test_injected_balance_check_cannot_transfer() -> None:
    verdict = evaluate(
        COMPILED,
        Request(
            agent_id="a",
            session_id="s",
            tool="transfer_funds",
            args={"from_account": "ACC-000001", "to_account": "ACC-100001", "amount": 1},
        ),
        SessionFacts(task="balance_check", environment="staging"),
    )
    assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "scope")


@pytest.mark.parametrize("field", ["task", "environment", "principal", "attended"])
def test_request_cannot_carry_session_authority(field: str) -> None:
    with pytest.raises(ValidationError):
        Request.model_validate(
            {"agent_id": "a", "session_id": "s", "tool": "read_account", field: "transfer"}
        )


def test_authority_smuggled_in_arguments_is_refused() -> None:
    verdict = evaluate(
        COMPILED,
        Request(
            agent_id="a",
            session_id="s",
            tool="read_account",
            args={"account_id": "ACC-000001", "task": "transfer", "environment": "staging"},
        ),
        SessionFacts(task="balance_check", environment="production"),
    )
    assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "constraint")


@pytest.mark.parametrize("task", ["", "Transfer", "transfer ", "*", "balance_*"])
def test_tasks_are_matched_exactly(task: str) -> None:
    verdict = evaluate(
        COMPILED,
        Request(
            agent_id="a", session_id="s", tool="read_account", args={"account_id": "ACC-000001"}
        ),
        SessionFacts(task=task, environment="staging"),
    )
    assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "scope")
