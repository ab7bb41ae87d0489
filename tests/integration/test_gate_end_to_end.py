"""Gate.decide() end to end on a real SQLite store and a real compiled policy."""

from __future__ import annotations

import pytest

from clearance.gate.gate import Gate
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.model.session import Session


def _req(session: Session, tool: str, **args: object) -> Request:
    return Request(agent_id=session.agent_id, session_id=session.session_id, tool=tool, args=args)


def test_permit_names_the_rule_and_the_policy_digest(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    d = gate.decide(_req(s, "read_account", account_id="acc-1"))
    assert d.outcome is Outcome.PERMIT
    assert d.rule == "reads"
    assert gate.bundle is not None
    assert d.policy == gate.bundle.digest
    assert d.request_digest == _req(s, "read_account", account_id="acc-1").digest


def test_tool_outside_the_task_is_denied_by_scope(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    d = gate.decide(_req(s, "transfer_funds", amount=10.0, to_account="acc-1"))
    assert d.outcome is Outcome.DENY
    assert d.rule == "scope"


def test_unknown_tool_is_silence(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    d = gate.decide(_req(s, "launch_rocket"))
    assert d.outcome is Outcome.SILENCE
    assert d.rule == "unknown-tool"


def test_calls_are_counted_per_session_and_tool(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    for _ in range(3):
        assert gate.decide(_req(s, "read_account", account_id="acc-1")).permitted
    state = gate.store.session_state(s.session_id)
    assert state is not None
    assert state.calls == {"read_account": 3}


def test_closed_session_denies(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    gate.close_session(s.session_id)
    d = gate.decide(_req(s, "read_account", account_id="acc-1"))
    assert d.outcome is Outcome.DENY
    assert d.rule == "session"


def test_session_ids_are_minted_with_high_entropy(gate: Gate) -> None:
    ids = {
        gate.open_session(agent_id="a", task="balance_check", environment="staging").session_id
        for _ in range(50)
    }
    assert len(ids) == 50
    assert all(len(i) >= 32 for i in ids)


def test_idempotent_retry_returns_the_same_decision(gate: Gate) -> None:
    s = gate.open_session(agent_id="fin-1", task="transfer", environment="staging")
    req = _req(s, "transfer_funds", amount=10.0, to_account="acc-1").model_copy(
        update={"idempotency_key": "pay-1"}
    )
    first = gate.decide(req)
    second = gate.decide(req)
    assert first.outcome is Outcome.PERMIT
    assert second.decision_id == first.decision_id
    state = gate.store.session_state(s.session_id)
    assert state is not None
    assert state.calls == {"transfer_funds": 1}


@pytest.mark.parametrize(
    ("tool", "args", "outcome"),
    [
        ("transfer_funds", {"amount": 10.0, "to_account": "acc-1"}, "PERMIT"),
        ("transfer_funds", {"amount": -1.0, "to_account": "acc-1"}, "DENY"),
        ("delete_records", {"table": "users"}, "DENY"),
        ("read_account", {"account_id": "acc-1"}, "DENY"),
    ],
)
def test_replay_reproduces_the_archived_decision(
    gate: Gate, tool: str, args: dict[str, object], outcome: str
) -> None:
    s = gate.open_session(agent_id="fin-1", task="transfer", environment="staging")
    if tool == "read_account":
        s = gate.open_session(agent_id="fin-1", task="cleanup", environment="staging")
        tool, args = "transfer_funds", {"amount": 1.0, "to_account": "acc-1"}
    d = gate.decide(_req(s, tool, **args))
    assert d.outcome.value == outcome
    replay = gate.replay(d.decision_id)
    assert replay.identical, (replay.original, replay.replayed)


def test_replay_uses_the_archived_bundle_after_a_new_activation(gate: Gate) -> None:
    from tests.conftest import SMALL_POLICY

    from clearance.policy import load_policy

    s = gate.open_session(agent_id="fin-1", task="balance_check", environment="staging")
    d = gate.decide(_req(s, "read_account", account_id="acc-1"))
    stricter = SMALL_POLICY.replace(
        "outcome: permit\n    reason: reads", "outcome: deny\n    reason: reads"
    )
    gate.activate(load_policy(stricter, source_name="stricter.yaml"), by="test")
    assert not gate.decide(_req(s, "read_account", account_id="acc-1")).permitted
    replay = gate.replay(d.decision_id)
    assert replay.identical
    assert replay.replayed["outcome"] == "PERMIT"
