"""ApprovalService through a real gate: create, approve, claim, redeem, deny, expire, explain."""

from __future__ import annotations

import pytest
from tests.approvals_kit import ALICE, BOB, CAROL, DAVE, DORA, Kit, kit_fixture  # noqa: F401

from clearance.approvals.service import State
from clearance.errors import ApprovalError, ApprovalExpiredError, ApproverNotAllowedError
from clearance.model.decision import Outcome


def test_approval_then_token_then_permit(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=2400, from_account="chk-0000003847", vendor="acme")
    first = kit.decide(req)
    assert first.outcome is Outcome.APPROVAL
    assert first.approval_id == "apr_" + first.decision_id
    assert first.intent is not None
    assert first.approval_expires is not None

    view = kit.service.approve(first.approval_id, ALICE, kit.clock.now())
    assert view.state is State.APPROVED
    token = kit.token_for(first, req)
    second = kit.decide(req, token)
    assert second.outcome is Outcome.PERMIT
    assert second.rule == f"approval:{first.approval_id}"
    assert "alice" in second.reason


def test_summary_is_rendered_from_the_tool_template_and_masked(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=2400, from_account="chk-0000003847", vendor="acme")
    d = kit.decide(req)
    assert d.approval_id is not None
    view = kit.service.show(d.approval_id, ALICE)
    assert view.row.summary == "pay 2400 from *3847 to acme because invoice #4471 is due today"
    assert view.row.context["task"] == "payments"
    assert view.row.context["environment"] == "staging"
    assert view.row.context["reasoning"] == "invoice #4471 is due today"
    assert view.row.rule == "vendor-payments"
    assert view.row.tier == "write-limited"


def test_history_shows_the_sessions_recent_decisions(kit: Kit) -> None:
    s = kit.session()
    assert kit.decide(kit.request(s, "read_account", account_id="a-1")).permitted
    d = kit.decide(kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v"))
    assert d.approval_id is not None
    history = kit.service.show(d.approval_id, ALICE).row.context["history"]
    assert [(h["tool"], h["outcome"]) for h in history] == [("read_account", "PERMIT")]


def test_deny_ends_it_and_the_reason_reaches_the_agent(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.approval_id is not None
    assert d.intent is not None
    kit.service.deny(d.approval_id, BOB, kit.clock.now(), comment="wrong vendor")
    status = kit.service.status(
        d.approval_id,
        intent=d.intent,
        agent_id=s.agent_id,
        session_id=s.session_id,
        now=kit.clock.now(),
    )
    assert status.state is State.DENIED
    assert status.reason == "wrong vendor"
    assert status.token is None
    with pytest.raises(ApprovalError):
        kit.service.approve(d.approval_id, ALICE, kit.clock.now())


def test_expired_request_is_recorded_as_deny(kit: Kit) -> None:
    s = kit.session()
    d = kit.decide(kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v"))
    assert d.approval_id is not None
    kit.clock.advance(15 * 60)
    assert kit.service.expire_due(kit.clock.now()) == [d.approval_id]
    kind, fields, _ = kit.audit.events[-1]
    assert kind == "approval.expired"
    assert fields["outcome"] == "DENY"
    with pytest.raises(ApprovalError):
        kit.service.approve(d.approval_id, ALICE, kit.clock.now())


def test_approving_after_the_deadline_expires_it(kit: Kit) -> None:
    s = kit.session()
    d = kit.decide(kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v"))
    assert d.approval_id is not None
    kit.clock.advance(15 * 60 + 1)
    with pytest.raises(ApprovalExpiredError):
        kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    assert kit.service.show(d.approval_id, ALICE).state is State.EXPIRED


def test_destructive_needs_two_distinct_members_of_the_rules_group(kit: Kit) -> None:
    s = kit.session(task="maintenance")
    req = kit.request(s, "drop_table", table="orders")
    d = kit.decide(req)
    assert d.approval_id is not None
    with pytest.raises(ApproverNotAllowedError):
        kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    assert kit.service.approve(d.approval_id, DORA, kit.clock.now()).state is State.PENDING
    assert kit.service.approve(d.approval_id, DAVE, kit.clock.now()).state is State.APPROVED
    assert kit.decide(req, kit.token_for(d, req)).permitted


def test_explain_keeps_it_pending_and_the_agent_sees_the_question(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.approval_id is not None
    assert d.intent is not None
    kit.service.explain(d.approval_id, CAROL, "which invoice?", kit.clock.now())
    status = kit.service.status(
        d.approval_id,
        intent=d.intent,
        agent_id=s.agent_id,
        session_id=s.session_id,
        now=kit.clock.now(),
    )
    assert status.state is State.PENDING
    assert status.questions == ("which invoice?",)
    kit.service.answer(
        d.approval_id,
        agent_id=s.agent_id,
        session_id=s.session_id,
        text="#4471",
        now=kit.clock.now(),
    )
    status = kit.service.status(
        d.approval_id,
        intent=d.intent,
        agent_id=s.agent_id,
        session_id=s.session_id,
        now=kit.clock.now(),
    )
    assert status.questions == ()
    assert [m.kind for m in kit.service.show(d.approval_id, ALICE).messages] == [
        "question",
        "answer",
    ]


def test_batch_approve_is_all_or_nothing(kit: Kit) -> None:
    s = kit.session()
    ids = []
    for n in range(3):
        d = kit.decide(kit.request(s, "pay_vendor", amount=n + 1, from_account="x", vendor="v"))
        assert d.approval_id is not None
        ids.append(d.approval_id)
    other = kit.decide(
        kit.request(
            kit.session(agent_id="fin-2"), "pay_vendor", amount=1, from_account="x", vendor="v"
        )
    )
    assert other.approval_id is not None
    batches = kit.service.batches(ALICE, kit.clock.now())
    assert sorted(len(b.items) for b in batches) == [1, 3]
    kit.service.deny(ids[2], BOB, kit.clock.now())
    with pytest.raises(ApprovalError):
        kit.service.approve_batch(ids, ALICE, kit.clock.now())
    assert [kit.service.show(i, ALICE).state for i in ids[:2]] == [State.PENDING, State.PENDING]
    views = kit.service.approve_batch(ids[:2], ALICE, kit.clock.now())
    assert [v.state for v in views] == [State.APPROVED, State.APPROVED]
    assert kit.service.show(other.approval_id, ALICE).state is State.PENDING


def test_notifications_follow_the_life_of_a_request(kit: Kit) -> None:
    s = kit.session()
    d = kit.decide(kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v"))
    assert d.approval_id is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    assert [n.kind for n in kit.notifier.sent] == ["created", "approved"]
