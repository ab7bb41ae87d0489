"""Attack: the clock jumps past the deadline between approval steps, or backwards after it."""

from __future__ import annotations

import pytest
from tests.approvals_kit import ALICE, BOB, Kit, kit_fixture  # noqa: F401

from clearance.approvals.service import State
from clearance.errors import ApprovalError, ApprovalExpiredError
from clearance.model.decision import Outcome


def test_jump_past_pending_deadline_denies_and_records(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.approval_id is not None
    assert d.intent is not None
    kit.clock.advance(3600)
    with pytest.raises(ApprovalExpiredError):
        kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    status = kit.service.status(
        d.approval_id,
        intent=d.intent,
        agent_id=s.agent_id,
        session_id=s.session_id,
        now=kit.clock.now(),
    )
    assert status.state is State.EXPIRED
    assert status.token is None
    assert "approval.expired" in kit.audit.kinds()
    kit.clock.advance(-7200)  # the wall clock goes back: the expiry stays
    with pytest.raises(ApprovalError, match=r"no longer pending"):
        kit.service.approve(d.approval_id, BOB, kit.clock.now())


def test_jump_past_token_expiry_denies_the_redeem(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.approval_id is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    token = kit.token_for(d, req)
    kit.clock.advance(5 * 60)
    late = kit.decide(req, token)
    assert late.outcome is Outcome.DENY
    assert late.rule == "invalid-token"
    assert kit.audit.reasons("approval.token_rejected") == ["expired"]


def test_unclaimed_token_window_closes(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.approval_id is not None
    assert d.intent is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    kit.clock.advance(6 * 60)
    status = kit.service.status(
        d.approval_id,
        intent=d.intent,
        agent_id=s.agent_id,
        session_id=s.session_id,
        now=kit.clock.now(),
    )
    assert status.state is State.EXPIRED
    assert status.token is None
