"""Attack: an agent tries to grant itself a task or environment through the request."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from clearance.gate.gate import Gate
from clearance.model.decision import Outcome
from clearance.model.request import Request


@pytest.mark.parametrize("field", ["task", "environment", "principal", "delegation", "grants"])
def test_authority_fields_are_not_part_of_a_request(field: str) -> None:
    with pytest.raises(ValidationError):
        Request.model_validate(
            {"agent_id": "a", "session_id": "s", "tool": "transfer_funds", field: "transfer"}
        )


def test_args_claiming_a_task_change_nothing(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    d = gate.decide(
        Request(
            agent_id="fin-1",
            session_id=s.session_id,
            tool="transfer_funds",
            args={
                "amount": 5.0,
                "to_account": "acc-1",
                "task": "transfer",
                "session": {"task": "transfer"},
            },
        )
    )
    assert d.outcome is not Outcome.PERMIT


def test_another_agents_session_cannot_be_used(gate: Gate) -> None:
    victim = gate.open_session(agent_id="treasury", task="transfer", environment="staging")
    d = gate.decide(
        Request(
            agent_id="intruder",
            session_id=victim.session_id,
            tool="transfer_funds",
            args={"amount": 5.0, "to_account": "acc-1"},
        )
    )
    assert d.outcome is Outcome.DENY
    assert d.rule == "session"


def test_a_guessed_session_id_is_denied(gate: Gate) -> None:
    d = gate.decide(
        Request(
            agent_id="fin-1", session_id="ses_1", tool="read_account", args={"account_id": "acc-1"}
        )
    )
    assert d.outcome is Outcome.DENY
