"""What the gate answers: DESIGN.md section 3."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from clearance.model._base import Value
from clearance.model.tools import RiskTier


class Outcome(StrEnum):
    """The four decisions. Only PERMIT dispatches."""

    PERMIT = "PERMIT"
    DENY = "DENY"
    APPROVAL = "APPROVAL"
    SILENCE = "SILENCE"

    @property
    def dispatches(self) -> bool:
        """True only for PERMIT."""
        return self is Outcome.PERMIT


class Obligation(Value):
    """Something the caller must do when dispatching a permitted call (e.g. run in the sandbox)."""

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class Verdict(Value):
    """The pure result of policy evaluation, before the gate adds state, identity and evidence."""

    outcome: Outcome
    rule: str
    reason: str
    tier: RiskTier | None = None
    obligations: tuple[Obligation, ...] = ()
    shadow: bool = False
    approvers: int = 0
    approver_group: str | None = None
    location: str | None = None


class Decision(Value):
    """The gate's answer to one request; ``outcome`` is what the caller must obey."""

    decision_id: str
    outcome: Outcome
    rule: str
    reason: str
    policy: str
    request_digest: str
    tier: RiskTier | None = None
    obligations: tuple[Obligation, ...] = ()
    shadow: bool = False
    shadow_outcome: Outcome | None = None
    time: str
    approval_id: str | None = None
    approval_expires: str | None = None
    intent: str | None = None
    receipt: dict[str, Any] | None = None

    @property
    def permitted(self) -> bool:
        """True when the call may be dispatched."""
        return self.outcome is Outcome.PERMIT
