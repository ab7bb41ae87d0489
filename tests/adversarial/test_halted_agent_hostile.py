"""Attack: a halted agent that is hung or hostile tries every way back in.

The halt needs nothing from the agent: it is made while the agent is blocked mid-call, and then
the agent tries a new session, another tool, an execution token it obtained before the halt, and
an idempotency key whose PERMIT is stored. Every attempt is DENY ``kill-switch``; nothing
dispatches. An agent credential cannot resume itself.
"""

from __future__ import annotations

import threading

import pytest
from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.control.killswitch import agent_hook
from clearance.control.operator import Operator
from clearance.control.plane import ControlPlane
from clearance.control.scope import Scope
from clearance.errors import AuthorizationError
from clearance.model.decision import Outcome

ADMIN = Operator("alice", frozenset({"admin"}))


def test_hung_then_hostile_agent_stays_stopped(kit: Kit) -> None:
    plane = ControlPlane(kit.store, clock=kit.clock, audit=kit.audit, pending=kit.service)
    plane.killswitch.on_halt("tokens.revoked", agent_hook(kit.service.revoke_tokens_for))
    kit.gate.pre_checks.insert(0, plane.killswitch)

    s = kit.session()
    read = kit.request(s, "read_account", account_id="acc-1").model_copy(
        update={"idempotency_key": "k1"}
    )
    assert kit.decide(read).outcome is Outcome.PERMIT
    pay = kit.request(s, "pay_vendor", amount=900, from_account="chk-1", vendor="acme")
    d = kit.decide(pay)
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())  # type: ignore[arg-type]
    token = kit.token_for(d, pay)

    hung = threading.Event()
    agent = threading.Thread(target=hung.wait, args=(30,))  # the agent blocks inside a tool call
    agent.start()
    try:
        report = plane.killswitch.halt(
            Scope.agent("fin-1"), operator=ADMIN, reason="hung", now=kit.clock.now()
        )
        assert agent.is_alive()  # the halt did not wait for the agent
        assert {e.hook: e.count for e in report.effects} == {"tokens.revoked": 1}
    finally:
        hung.set()
        agent.join(5)

    attempts = {
        "token": kit.decide(pay, token),
        "other tool": kit.decide(kit.request(s, "transfer_funds", amount=1, to_account="acc-1")),
    }
    fresh = kit.session(environment="production", task="maintenance")
    attempts["new session"] = kit.decide(kit.request(fresh, "read_account", account_id="acc-1"))
    for name, decision in attempts.items():
        assert (decision.outcome, decision.rule) == (Outcome.DENY, "kill-switch"), name

    with pytest.raises(AuthorizationError):
        plane.killswitch.resume(
            Scope.agent("fin-1"),
            operator=Operator("fin-1", frozenset({"agent"})),
            reason="me",
            now=kit.clock.now(),
        )
    assert kit.decide(kit.request(s, "read_account", account_id="acc-2")).rule == "kill-switch"


def test_halted_agent_cannot_replay_a_stored_permit(kit: Kit) -> None:
    plane = ControlPlane(kit.store, clock=kit.clock)
    kit.gate.pre_checks.insert(0, plane.killswitch)
    s = kit.session()
    read = kit.request(s, "read_account", account_id="acc-1").model_copy(
        update={"idempotency_key": "k1"}
    )
    assert kit.decide(read).outcome is Outcome.PERMIT
    plane.killswitch.halt(Scope.agent("fin-1"), operator=ADMIN, reason="r", now=kit.clock.now())
    replay = kit.decide(read)
    assert (replay.outcome, replay.rule) == (Outcome.DENY, "kill-switch")
