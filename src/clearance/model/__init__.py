"""Plain typed values shared by every layer: no I/O, no clock."""

from clearance.model.decision import Decision, Obligation, Outcome, Verdict
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.model.session import Environment, Session, SessionFacts
from clearance.model.tools import RiskTier

__all__ = [
    "ActionResult",
    "Decision",
    "Environment",
    "Obligation",
    "Outcome",
    "Request",
    "RiskTier",
    "Session",
    "SessionFacts",
    "Verdict",
]
