"""The drill's token probe: a real token in the real store, revoked only by a real halt hook."""

from __future__ import annotations

from tests.approvals_kit import Kit, kit_fixture  # noqa: F401
from tests.integration.control.test_halt_effects import ADMIN, wire

from clearance.approvals.drill import ApprovalTokenProbe
from clearance.control.drill import DRILL_TOOL, run_drill
from clearance.control.plane import ControlPlane
from clearance.model.decision import Outcome
from clearance.model.request import Request


def probe(kit: Kit) -> ApprovalTokenProbe:
    return ApprovalTokenProbe(kit.service, operator_id="alice", tool=DRILL_TOOL, clock=kit.clock)


def test_drill_passes_with_the_approval_store_probe(kit: Kit) -> None:
    plane, _ = wire(kit)
    report = run_drill(
        kit.gate, plane.killswitch, operator=ADMIN, clock=kit.clock, tokens=probe(kit)
    )
    assert report.ok, report.failures()
    assert ("token revoked", "revoked") in [(s.name, s.detail) for s in report.steps]
    kinds = [k for k, _, _ in kit.audit.events]
    assert "approval.drill" in kinds
    assert "approval.tokens_revoked" in kinds


def test_drill_fails_when_the_halt_does_not_revoke_tokens(kit: Kit) -> None:
    """A kill switch wired without its token hook must not pass a drill."""
    plane = ControlPlane(kit.store, clock=kit.clock, audit=kit.audit, pending=kit.service)
    kit.gate.pre_checks.insert(0, plane.killswitch)
    report = run_drill(
        kit.gate, plane.killswitch, operator=ADMIN, clock=kit.clock, tokens=probe(kit)
    )
    assert not report.ok
    assert report.failures() == ["token revoked: STILL VALID"]


def test_a_drill_token_permits_nothing_but_its_scratch_request(kit: Kit) -> None:
    """The token binds the scratch request's digest: a real tool with it is an invalid token."""
    s = kit.session()
    token = probe(kit).issue(s.agent_id, s.session_id)
    forged = Request(
        agent_id=s.agent_id,
        session_id=s.session_id,
        tool="pay_vendor",
        args={"amount": 5, "from_account": "chk-1", "vendor": "acme"},
        approval_token=token,
    )
    decision = kit.decide(forged)
    assert decision.outcome is Outcome.DENY
    assert decision.rule == "invalid-token"


def test_a_drill_token_expires(kit: Kit) -> None:
    s = kit.session()
    tokens = probe(kit)
    token = tokens.issue(s.agent_id, s.session_id)
    assert tokens.valid(token)
    kit.clock.advance(tokens.ttl.total_seconds() + 1)
    assert not tokens.valid(token)
