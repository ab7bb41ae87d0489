"""Attack: approve your own request, or your own agent's, or the one made on your behalf."""

from __future__ import annotations

import pytest
from tests.approvals_kit import BOB, Kit, kit_fixture  # noqa: F401

from clearance.approvals.rules import Operator
from clearance.approvals.service import State
from clearance.errors import SelfApprovalError


@pytest.mark.parametrize(
    ("operator", "session_kw"),
    [
        (Operator("alice", agents_owned=frozenset({"fin-1"})), {}),
        (Operator("fin-1", groups=frozenset({"payments"})), {}),
        (Operator("carol"), {"principal": "carol"}),
        (Operator("carol"), {"delegation": ("carol", "planner-agent")}),
    ],
    ids=["owner-of-agent", "agent-id-as-operator", "principal", "in-delegation-chain"],
)
def test_self_approval_is_refused_and_leaves_it_pending(
    kit: Kit, operator: Operator, session_kw: dict
) -> None:
    s = kit.session(**session_kw)
    d = kit.decide(kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v"))
    assert d.approval_id is not None
    with pytest.raises(SelfApprovalError):
        kit.service.approve(d.approval_id, operator, kit.clock.now())
    view = kit.service.show(d.approval_id, BOB)
    assert view.state is State.PENDING
    assert view.votes == ()
    with pytest.raises(SelfApprovalError):
        kit.service.approve_batch([d.approval_id], operator, kit.clock.now())
    assert kit.service.approve(d.approval_id, BOB, kit.clock.now()).state is State.APPROVED
