"""The token half of a kill-switch drill: a real execution token, and whether it still redeems.

``clearance.control.drill.run_drill`` halts a scratch agent and asks its ``TokenProbe`` whether the
token the agent held survived. This probe answers from the approval store itself, the same rows a
redemption reads, so a drill passes only if the halt really revoked the token::

    probe = ApprovalTokenProbe(runtime.approvals, operator_id="alice", tool=DRILL_TOOL,
                               clock=runtime.gate.clock)
    run_drill(gate, killswitch, operator=alice, clock=gate.clock, tokens=probe)
"""

from __future__ import annotations

from datetime import timedelta

from clearance.approvals.service import ApprovalService
from clearance.approvals.waiting import Clock
from clearance.errors import InvalidTokenError
from clearance.model.request import Request

DRILL_TOKEN_TTL = timedelta(minutes=2)


class ApprovalTokenProbe:
    """Issues drill tokens through ``ApprovalService`` and checks them like a redemption would."""

    def __init__(
        self,
        approvals: ApprovalService,
        *,
        operator_id: str,
        tool: str,
        clock: Clock,
        ttl: timedelta = DRILL_TOKEN_TTL,
    ) -> None:
        self.approvals = approvals
        self.operator_id = operator_id
        self.tool = tool
        self.clock = clock
        self.ttl = ttl
        self._held: dict[str, tuple[str, str]] = {}

    def issue(self, agent_id: str, session_id: str) -> str:
        """A token the scratch agent holds, bound to its drill probe request."""
        request = Request(
            agent_id=agent_id, session_id=session_id, tool=self.tool, args={"drill": True}
        )
        token = self.approvals.issue_drill_token(
            request, operator_id=self.operator_id, ttl=self.ttl, now=self.clock.now()
        )
        self._held[token] = (agent_id, session_id)
        return token

    def valid(self, token: str) -> bool:
        """True while the token is unrevoked, unexpired and bound to the agent that holds it."""
        agent_id, session_id = self._held[token]
        try:
            self.approvals.verify_token(
                token,
                agent_id=agent_id,
                session_id=session_id,
                tool=self.tool,
                now=self.clock.now(),
            )
        except InvalidTokenError:
            return False
        return True
