"""Halts act on the approval service for real: pending approvals cancelled, tokens revoked.

The gate here is the approvals kit's (real store, policy, approval service and execution tokens)
with the control plane added in front, as the composition root adds it.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.approvals.service import State
from clearance.control.alerts import Alert, AlertRouter, CallbackSink
from clearance.control.drill import run_drill
from clearance.control.killswitch import agent_hook
from clearance.control.operator import Operator
from clearance.control.plane import ControlPlane
from clearance.control.scope import Scope
from clearance.errors import ApprovalError, AuthorizationError, InvalidTokenError
from clearance.model.decision import Outcome

ADMIN = Operator("alice", frozenset({"admin"}))


def wire(kit: Kit, **kw: Any) -> tuple[ControlPlane, list[Alert]]:
    alerts: list[Alert] = []
    plane = ControlPlane(
        kit.store,
        clock=kit.clock,
        audit=kit.audit,
        pending=kit.service,
        alerts=AlertRouter([CallbackSink(alerts.append)]),
        **kw,
    )
    ks = plane.killswitch
    ks.on_halt("approvals.cancelled", agent_hook(kit.service.cancel_for))
    ks.on_halt("tokens.revoked", agent_hook(kit.service.revoke_tokens_for))
    kit.gate.pre_checks.insert(0, ks)
    kit.gate.overrides.extend(plane.overrides)
    kit.gate.observers.extend(plane.observers)
    return plane, alerts


def pay(kit: Kit, s: Any, amount: int = 2400) -> Any:
    return kit.request(s, "pay_vendor", amount=amount, from_account="chk-0000003847", vendor="acme")


def test_halt_cancels_a_pending_approval(kit: Kit) -> None:
    plane, alerts = wire(kit)
    s = kit.session()
    d = kit.decide(pay(kit, s))
    assert d.outcome is Outcome.APPROVAL
    assert d.approval_id is not None
    report = plane.killswitch.halt(
        Scope.agent("fin-1"), operator=ADMIN, reason="loop", now=kit.clock.now()
    )
    assert {e.hook: e.count for e in report.effects} == {
        "approvals.cancelled": 1,
        "tokens.revoked": 0,
    }
    assert kit.service.show(d.approval_id, ALICE).state is not State.PENDING
    with pytest.raises(ApprovalError):
        kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    assert plane.alerts.flush(5)
    assert any(a.severity.value == "critical" and "halted" in a.title for a in alerts)
    (stop,) = plane.killswitch.status().stops
    assert {(e.hook, e.count) for e in stop.effects} == {
        ("approvals.cancelled", 1),
        ("tokens.revoked", 0),
    }


def test_halt_revokes_a_token_the_agent_holds(kit: Kit) -> None:
    plane, _ = wire(kit)
    s = kit.session()
    req = pay(kit, s)
    d = kit.decide(req)
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())  # type: ignore[arg-type]
    token = kit.token_for(d, req)
    report = plane.killswitch.halt(
        Scope.agent("fin-1"), operator=ADMIN, reason="r", now=kit.clock.now()
    )
    assert {e.hook: e.count for e in report.effects}["tokens.revoked"] == 1
    halted = kit.decide(req, token)
    assert (halted.outcome, halted.rule) == (Outcome.DENY, "kill-switch")
    plane.killswitch.resume(Scope.agent("fin-1"), operator=ADMIN, reason="ok", now=kit.clock.now())
    after = kit.decide(req, token)
    assert after.outcome is Outcome.DENY  # the token stays revoked after the resume
    with pytest.raises(InvalidTokenError):
        kit.service.verify_token(
            token, agent_id="fin-1", session_id=s.session_id, tool="pay_vendor", now=kit.clock.now()
        )


def test_resume_requires_an_operator_credential(kit: Kit) -> None:
    plane, _ = wire(kit)
    plane.killswitch.halt(Scope.agent("fin-1"), operator=ADMIN, reason="r", now=kit.clock.now())
    for who in (Operator("fin-1", frozenset()), Operator("bob", frozenset({"approver", "viewer"}))):
        with pytest.raises(AuthorizationError):
            plane.killswitch.resume(
                Scope.agent("fin-1"), operator=who, reason="r", now=kit.clock.now()
            )
    s = kit.session()
    assert kit.decide(kit.request(s, "read_account", account_id="a")).rule == "kill-switch"
    assert [f["action"] for k, f, _ in kit.audit.events if k == "killswitch"] == ["halt"]


def test_approval_backlog_trips_and_cancels_the_backlog(kit: Kit) -> None:
    plane, _ = wire(kit)
    s = kit.session()
    outcomes = [kit.decide(pay(kit, s, amount=100 + i)).outcome for i in range(4)]
    assert outcomes == [Outcome.APPROVAL] * 4
    (stop,) = plane.killswitch.status().stops
    assert (stop.stop.scope, stop.stop.rule) == ("agent:fin-1", "breaker:approval-backlog")
    assert {e.hook: e.count for e in stop.effects}["approvals.cancelled"] == 4
    assert kit.service.pending_count("fin-1") == 0
    assert kit.decide(pay(kit, s)).rule == "breaker:approval-backlog"


class ServiceTokens:
    """A real execution token for the drill's scratch agent, obtained the way an agent gets one."""

    def __init__(self, kit: Kit) -> None:
        self.kit = kit
        self.where: dict[str, tuple[str, str]] = {}

    def issue(self, agent_id: str, session_id: str) -> str:
        from clearance.model.request import Request

        req = Request(
            agent_id=agent_id,
            session_id=session_id,
            tool="pay_vendor",
            args={"amount": 5, "from_account": "chk-1", "vendor": "drill"},
        )
        d = self.kit.decide(req)
        assert d.approval_id is not None, d
        self.kit.service.approve(d.approval_id, ALICE, self.kit.clock.now())
        token = self.kit.token_for(d, req)
        self.where[token] = (agent_id, session_id)
        return token

    def valid(self, token: str) -> bool:
        agent, session = self.where[token]
        try:
            self.kit.service.verify_token(
                token,
                agent_id=agent,
                session_id=session,
                tool="pay_vendor",
                now=self.kit.clock.now(),
            )
        except InvalidTokenError:
            return False
        return True


def test_drill_proves_denial_and_revocation_and_is_recorded(kit: Kit) -> None:
    plane, _ = wire(kit)
    report = run_drill(
        kit.gate,
        plane.killswitch,
        operator=ADMIN,
        clock=kit.clock,
        tokens=ServiceTokens(kit),
        audit=kit.audit,
        task="payments",
        environment="staging",
    )
    assert report.ok, report.failures()
    names = [s.name for s in report.steps]
    assert names == [
        "open scratch session",
        "issue token",
        "halt",
        "call denied while halted",
        "token revoked",
        "resume",
        "calls no longer stopped",
    ]
    assert plane.killswitch.status().stops == ()
    last = plane.killswitch.store.last_drill()
    assert last is not None
    assert last.ok
    assert last.drill_id == report.drill_id
    actions = [f["action"] for k, f, _ in kit.audit.events if k == "killswitch"]
    assert actions == ["halt", "resume", "drill"]


def test_drill_without_a_token_service_does_not_claim_revocation(kit: Kit) -> None:
    plane, _ = wire(kit)
    report = run_drill(kit.gate, plane.killswitch, operator=ADMIN, clock=kit.clock)
    assert not report.ok
    assert report.failures() == ["token revoked: no token service wired: revocation not proven"]
    assert plane.killswitch.status().stops == ()
