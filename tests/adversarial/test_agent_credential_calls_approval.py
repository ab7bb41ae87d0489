"""Attack: an agent credential calls operator functions (approve, deny, explain, break glass)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.approvals.breakglass import Scope
from clearance.approvals.rules import Operator
from clearance.approvals.service import State
from clearance.errors import AuthorizationError
from clearance.model.tools import RiskTier

AGENT = Operator(
    "fin-2", roles=frozenset({"agent", "approver", "breakglass"}), groups=frozenset({"payments"})
)


def test_agent_principal_is_refused_everywhere(kit: Kit) -> None:
    s = kit.session()
    d = kit.decide(kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v"))
    assert d.approval_id is not None
    now = kit.clock.now()
    calls = [
        lambda: kit.service.approve(d.approval_id, AGENT, now),
        lambda: kit.service.deny(d.approval_id, AGENT, now),
        lambda: kit.service.explain(d.approval_id, AGENT, "?", now),
        lambda: kit.service.approve_batch([d.approval_id], AGENT, now),
        lambda: kit.service.list_pending(AGENT, now),
        lambda: kit.service.show(d.approval_id, AGENT),
        lambda: kit.breakglass.open(
            AGENT,
            reason="agent wants out",
            scope=Scope(tool="pay_vendor", tiers=frozenset({RiskTier.WRITE_LIMITED})),
            duration=timedelta(minutes=5),
            now=now,
        ),
        lambda: kit.breakglass.list(AGENT, now),
    ]
    for call in calls:
        with pytest.raises(AuthorizationError):
            call()
    assert kit.service.show(d.approval_id, ALICE).state is State.PENDING
    assert kit.breakglass.list(ALICE, now) == []
