"""Attack: one person approves a critical (two-approver) request twice."""

from __future__ import annotations

import pytest
from tests.approvals_kit import DAVE, DORA, Kit, kit_fixture  # noqa: F401

from clearance.approvals.rules import Operator
from clearance.approvals.service import State
from clearance.errors import ApproverNotAllowedError
from clearance.model.decision import Outcome


def test_second_vote_of_the_same_person_does_not_count(kit: Kit) -> None:
    s = kit.session(task="maintenance")
    req = kit.request(s, "drop_table", table="orders")
    d = kit.decide(req)
    assert d.approval_id is not None
    assert d.intent is not None
    kit.service.approve(d.approval_id, DORA, kit.clock.now())
    with pytest.raises(ApproverNotAllowedError):
        kit.service.approve(d.approval_id, DORA, kit.clock.now())
    same_person_other_groups = Operator("dora", groups=frozenset({"dba", "payments"}))
    with pytest.raises(ApproverNotAllowedError):
        kit.service.approve(d.approval_id, same_person_other_groups, kit.clock.now())
    status = kit.service.status(
        d.approval_id,
        intent=d.intent,
        agent_id=s.agent_id,
        session_id=s.session_id,
        now=kit.clock.now(),
    )
    assert status.state is State.PENDING
    assert status.token is None
    # Without a token the resubmitted call is just a new approval request, never a PERMIT.
    assert kit.decide(req).outcome is Outcome.APPROVAL
    assert kit.service.approve(d.approval_id, DAVE, kit.clock.now()).state is State.APPROVED
