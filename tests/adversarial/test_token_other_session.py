"""Attack: a token (or the intent that claims it) used by another agent or from another session."""

from __future__ import annotations

import pytest
from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.errors import InvalidTokenError
from clearance.model.decision import Outcome


def test_token_from_another_session_or_agent_is_denied(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.approval_id is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    token = kit.token_for(d, req)

    same_agent_other_session = kit.session()
    other_agent = kit.session(agent_id="fin-evil")
    for thief in (same_agent_other_session, other_agent):
        stolen = kit.request(thief, "pay_vendor", amount=5, from_account="x", vendor="v")
        decision = kit.decide(stolen, token)
        assert decision.outcome is Outcome.DENY
        assert decision.rule == "invalid-token"
    assert kit.audit.reasons("approval.token_rejected") == ["other-session", "other-agent"]
    assert kit.decide(req, token).permitted


def test_intent_cannot_claim_the_token_for_another_session(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.approval_id is not None
    assert d.intent is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    thief = kit.session(agent_id="fin-evil")
    with pytest.raises(InvalidTokenError):
        kit.service.status(
            d.approval_id,
            intent=d.intent,
            agent_id=thief.agent_id,
            session_id=thief.session_id,
            now=kit.clock.now(),
        )
    tampered = d.intent[:-6] + "AAAAAA"
    with pytest.raises(InvalidTokenError):
        kit.service.status(
            d.approval_id,
            intent=tampered,
            agent_id=s.agent_id,
            session_id=s.session_id,
            now=kit.clock.now(),
        )
    assert kit.token_for(d, req)
