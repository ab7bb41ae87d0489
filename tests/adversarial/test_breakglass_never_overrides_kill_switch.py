"""Attack: use an open break-glass override to get past an emergency stop."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.approvals.breakglass import Scope
from clearance.model.decision import Outcome, Verdict
from clearance.model.request import Request
from clearance.model.tools import RiskTier
from clearance.store.protocol import SessionState

BROAD = frozenset({RiskTier.WRITE_BROAD})


class EmergencyStop:
    """A stand-in for the kill switch pre-check: every request of ``agent`` is stopped."""

    def __init__(self, agent: str) -> None:
        self.agent = agent

    def check(self, request: Request, state: SessionState, now: datetime) -> Verdict | None:
        if request.agent_id != self.agent:
            return None
        return Verdict(outcome=Outcome.DENY, rule="kill-switch", reason="emergency stop")


def test_kill_switch_wins_over_an_open_override(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "wire_abroad", amount=10)
    kit.breakglass.open(
        ALICE,
        reason="INC-91 must wire now",
        scope=Scope(tool="wire_abroad", tiers=BROAD),
        duration=timedelta(minutes=30),
        now=kit.clock.now(),
    )
    assert kit.decide(req).permitted
    kit.gate.pre_checks.append(EmergencyStop(s.agent_id))
    stopped = kit.decide(req)
    assert stopped.outcome is Outcome.DENY
    assert stopped.rule == "kill-switch"


def test_override_refuses_a_kill_switch_verdict_even_when_run_after_it(kit: Kit) -> None:
    s = kit.session()
    req = kit.request(s, "wire_abroad", amount=10)
    kit.breakglass.open(
        ALICE,
        reason="INC-92 must wire now",
        scope=Scope(tool="wire_abroad", tiers=BROAD),
        duration=timedelta(minutes=30),
        now=kit.clock.now(),
    )
    state = kit.store.session_state(s.session_id)
    assert state is not None
    stop = Verdict(
        outcome=Outcome.DENY, rule="kill-switch", reason="emergency stop", tier=RiskTier.WRITE_BROAD
    )
    assert kit.breakglass.apply(req, state, stop, kit.clock.now()) == stop
