"""The rules of approval: who may decide, how many must agree.

* Only operators decide. A principal carrying the ``agent`` role (an agent credential) is refused
  every operator action with ``AuthorizationError``, whatever else it claims.
* Approving needs the ``approver`` role and membership of the rule's approver group (the
  policy's ``approvals.groups`` list operator ids; the authenticated identity may also carry the
  group name).
* Nobody approves a request they made or their own agent made: the operator must not be the
  agent, the session's principal, anyone in its delegation chain, or the owner of the agent.
* Critical actions (destructive tier, bulk or privilege-changing tools, or rules asking for it)
  need two distinct approvers; an operator's second vote is refused.
* Any single deny ends the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clearance.approvals.settings import ApprovalSettings
from clearance.errors import ApproverNotAllowedError, AuthorizationError, SelfApprovalError
from clearance.model.decision import Verdict

ROLE_AGENT = "agent"
ROLE_APPROVER = "approver"
ROLE_VIEWER = "viewer"
ROLE_BREAKGLASS = "breakglass"
CRITICAL_APPROVERS = 2


@dataclass(frozen=True, slots=True)
class Operator:
    """An authenticated human principal, as the server's identity layer established it."""

    id: str
    roles: frozenset[str] = frozenset({ROLE_APPROVER})
    groups: frozenset[str] = frozenset()
    agents_owned: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_agent(self) -> bool:
        """True for an agent credential: it may never act as an operator."""
        return ROLE_AGENT in self.roles


def require_role(operator: Operator, *roles: str) -> None:
    """Raise ``AuthorizationError`` unless ``operator`` is a human holding one of ``roles``."""
    if operator.is_agent:
        raise AuthorizationError(
            f"`{operator.id}` authenticated as an agent and cannot act on approvals",
            hint="approvals are decided with an operator credential",
        )
    if not operator.roles.intersection(roles):
        raise AuthorizationError(
            f"operator `{operator.id}` lacks the role {' or '.join(f'`{r}`' for r in roles)}"
        )


def is_critical(verdict: Verdict, tool: str, settings: ApprovalSettings) -> bool:
    """A critical tier, a bulk or privilege-changing tool, or a rule asking for two approvers."""
    return (
        (verdict.tier is not None and verdict.tier in settings.critical_tiers)
        or tool in settings.critical_tools
        or verdict.approvers >= CRITICAL_APPROVERS
    )


def required_approvals(verdict: Verdict, tool: str, settings: ApprovalSettings) -> int:
    """How many distinct approvers this request needs: the rule's number, at least 2 if critical."""
    floor = CRITICAL_APPROVERS if is_critical(verdict, tool, settings) else 1
    return max(verdict.approvers, floor)


def approver_group(verdict: Verdict, settings: ApprovalSettings) -> str | None:
    """The group that decides: the rule's, else the policy default, else any approver."""
    return verdict.approver_group or settings.default_group


def check_member(operator: Operator, group: str | None, settings: ApprovalSettings) -> None:
    """Raise ``ApproverNotAllowedError`` unless ``operator`` is in ``group`` (None: anyone)."""
    if group is None:
        return
    if operator.id in settings.groups.get(group, frozenset()) or group in operator.groups:
        return
    raise ApproverNotAllowedError(
        f"operator `{operator.id}` is not in the approver group `{group}`",
        hint="ask a member of that group, or change approvals.groups in the policy",
    )


def check_not_self(operator: Operator, agent_id: str, context: Mapping[str, Any]) -> None:
    """Raise ``SelfApprovalError`` when ``operator`` made the request or owns the agent that did."""
    principal = context.get("principal")
    delegation = context.get("delegation") or ()
    if operator.id == agent_id or agent_id in operator.agents_owned:
        raise SelfApprovalError(
            f"operator `{operator.id}` owns agent `{agent_id}` and cannot approve its requests",
            hint="another member of the approver group must decide",
        )
    if operator.id == principal or operator.id in delegation:
        raise SelfApprovalError(
            f"operator `{operator.id}` is the principal this request acts for",
            hint="another member of the approver group must decide",
        )
