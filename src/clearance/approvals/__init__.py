"""Human approvals as cryptographic objects, break-glass overrides and approval decay.

The gate hands APPROVAL verdicts to ``ApprovalService.create`` and requests carrying an execution
token to ``ApprovalService.redeem``; ``BreakGlass`` and ``DecayOverride`` are gate overrides.
See ``docs/approvals.md`` for the life of a request and the CLI.
"""

from clearance.approvals.backlog import BacklogMonitor
from clearance.approvals.breakglass import BreakGlass, Scope
from clearance.approvals.decay import DecayOverride
from clearance.approvals.notify import LogNotifier, Notification, Notifier, WebhookNotifier
from clearance.approvals.rules import Operator
from clearance.approvals.service import (
    AgentStatus,
    ApprovalService,
    ApprovalTicket,
    ApprovalView,
    State,
)
from clearance.approvals.settings import ApprovalSettings, BreakGlassGrant, BreakGlassSettings
from clearance.approvals.summary import compile_template
from clearance.approvals.tokens import IntentKey
from clearance.approvals.waiting import PendingApproval, await_approval, wait_for_approval

__all__ = [
    "AgentStatus",
    "ApprovalService",
    "ApprovalSettings",
    "ApprovalTicket",
    "ApprovalView",
    "BacklogMonitor",
    "BreakGlass",
    "BreakGlassGrant",
    "BreakGlassSettings",
    "DecayOverride",
    "IntentKey",
    "LogNotifier",
    "Notification",
    "Notifier",
    "Operator",
    "PendingApproval",
    "Scope",
    "State",
    "WebhookNotifier",
    "await_approval",
    "compile_template",
    "wait_for_approval",
]
