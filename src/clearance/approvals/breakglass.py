"""Break-glass: a named operator's signed, time-bounded override of DENY and APPROVAL.

Rules enforced here:

* Only operators named in a grant of the policy's ``breakglass:`` section may open an override,
  only for a scope (agent, tool, highest tier) inside that grant, only for at most the grant's
  ``max_duration``, and only with a reason. Agent credentials are refused outright.
* The override record is signed with the gate's Ed25519 key and stored; a record whose
  signature does not verify (edited in the store) is ignored, and that is audited.
* Inside its scope and time window, ``apply`` (the gate's ``Override`` protocol) turns DENY or
  APPROVAL into PERMIT with rule ``break-glass:<id>``; PERMIT and SILENCE are left alone, and an
  emergency stop (rule ``kill-switch``) is never overridden, even if a pipeline ran overrides
  after it.
* Opening, closing and every use write an audit entry of kind ``breakglass`` and raise an alert.

Example::

    glass = BreakGlass(store, key=key, audit=audit, settings=bg_settings, alert=pager.send)
    record = glass.open(alice, reason="payments outage INC-88", scope=Scope(tool="refund"),
                        duration=timedelta(minutes=30), now=clock.now())
    gate = Gate(store, approvals=service, overrides=[glass])
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from clearance.approvals.events import EventSink
from clearance.approvals.expiry import iso
from clearance.approvals.rules import (
    ROLE_APPROVER,
    ROLE_BREAKGLASS,
    ROLE_VIEWER,
    Operator,
    require_role,
)
from clearance.approvals.settings import BreakGlassGrant, BreakGlassSettings, resolve
from clearance.approvals.tokens import IntentKey, RejectedToken
from clearance.errors import ApprovalError, AuthorizationError
from clearance.model.decision import Outcome, Verdict
from clearance.model.ids import new_ulid
from clearance.model.request import Request
from clearance.model.tools import RiskTier
from clearance.store.approvals_sql import ApprovalStore, BreakGlassRow, approval_store
from clearance.store.protocol import SessionState

log = logging.getLogger("clearance.approvals.breakglass")

KIND = "breakglass"
PREFIX = "break-glass:"
NEVER_OVERRIDDEN = frozenset({"kill-switch"})
ANY = "*"
_MIN_REASON = 8

Alert = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Scope:
    """What an override covers: an agent (or ``*``), a tool (or ``*``) and a set of tiers."""

    agent: str = ANY
    tool: str = ANY
    tiers: frozenset[RiskTier] = frozenset({RiskTier.WRITE_LIMITED})

    def covers(self, request: Request, tier: RiskTier | None) -> bool:
        """True when ``request`` at ``tier`` is inside this scope (a verdict without a tier is not)."""
        return (
            self.agent in (ANY, request.agent_id)
            and self.tool in (ANY, request.tool)
            and tier is not None
            and tier in self.tiers
        )

    def within(self, grant: BreakGlassGrant) -> bool:
        """True when this scope is no wider than ``grant`` allows.

        A scope tool is taken literally and must match one of the grant's tool patterns, so ``*``
        is only allowed by a grant whose pattern is ``*`` itself.
        """
        return (
            (ANY in grant.agents or self.agent in grant.agents)
            and any(fnmatchcase(self.tool, pattern) for pattern in grant.tools)
            and bool(self.tiers)
            and self.tiers <= grant.tiers
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored and signed form."""
        return {
            "agent": self.agent,
            "tool": self.tool,
            "tiers": sorted(t.value for t in self.tiers),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scope:
        """The inverse of ``to_dict``."""
        return cls(
            agent=data["agent"],
            tool=data["tool"],
            tiers=frozenset(RiskTier(t) for t in data["tiers"]),
        )


def _signed_body(row: BreakGlassRow) -> dict[str, Any]:
    return {
        "kind": KIND,
        "override_id": row.override_id,
        "operator_id": row.operator_id,
        "reason": row.reason,
        "scope": row.scope,
        "opened_at": row.opened_at,
        "expires_at": row.expires_at,
    }


class BreakGlass:
    """Opens, closes, lists and applies break-glass overrides (see module docstring)."""

    def __init__(
        self,
        store: object,
        *,
        key: IntentKey,
        audit: EventSink,
        settings: BreakGlassSettings | Callable[[], BreakGlassSettings],
        alert: Alert,
    ) -> None:
        self.store: ApprovalStore = approval_store(store)
        self.key = key
        self.audit = audit
        self._settings = settings
        self.alert = alert

    # operator actions ---------------------------------------------------------------------
    def open(
        self,
        operator: Operator,
        *,
        reason: str,
        scope: Scope,
        duration: timedelta,
        now: datetime,
    ) -> BreakGlassRow:
        """Open an override; refuses anyone or anything the policy's grants do not allow."""
        require_role(operator, ROLE_BREAKGLASS, ROLE_APPROVER)
        reason = reason.strip()
        if len(reason) < _MIN_REASON:
            raise ApprovalError(
                "break-glass needs a reason", hint="say what is broken and why, e.g. an incident id"
            )
        if duration <= timedelta(0):
            raise ApprovalError("break-glass duration must be positive")
        grants = [
            g
            for g in resolve(self._settings).grants
            if operator.id in g.operators and scope.within(g)
        ]
        if not grants:
            raise AuthorizationError(
                f"operator `{operator.id}` may not break glass for {scope.to_dict()}",
                hint="the policy's breakglass grants name who may, for which scope",
            )
        longest = max(g.max_duration for g in grants)
        if duration > longest:
            raise AuthorizationError(
                f"break-glass for {duration} exceeds the allowed {longest}",
                hint="open a shorter override and renew it if needed",
            )
        row = BreakGlassRow(
            override_id="bg_" + new_ulid(),
            operator_id=operator.id,
            reason=reason[:2000],
            scope=scope.to_dict(),
            opened_at=iso(now),
            expires_at=iso(now + duration),
            signature="",
        )
        signed = replace(row, signature=self.key.sign(_signed_body(row)))
        with self.store.transaction():
            self.store.insert_breakglass(signed)
            self.audit.record_event(
                KIND,
                {"event": "opened", "override_id": signed.override_id, "operator": operator.id},
                {**_signed_body(signed), "signature": signed.signature},
            )
        self._alert("opened", signed, {})
        return signed

    def close(self, override_id: str, operator: Operator, now: datetime) -> None:
        """Close an override before its deadline."""
        require_role(operator, ROLE_BREAKGLASS, ROLE_APPROVER)
        with self.store.transaction():
            if not self.store.close_breakglass(override_id, operator.id, iso(now)):
                raise ApprovalError(f"no open break-glass override `{override_id}`")
            self.audit.record_event(
                KIND, {"event": "closed", "override_id": override_id, "operator": operator.id}, {}
            )
        row = self.store.get_breakglass(override_id)
        if row is not None:
            self._alert("closed", row, {"closed_by": operator.id})

    def list(
        self, operator: Operator, now: datetime, *, active_only: bool = True
    ) -> list[BreakGlassRow]:
        """Overrides, by default only those in force at ``now``."""
        require_role(operator, ROLE_BREAKGLASS, ROLE_APPROVER, ROLE_VIEWER)
        return self.store.list_breakglass(active_at=iso(now) if active_only else None)

    # the gate's Override ------------------------------------------------------------------
    def apply(
        self,
        request: Request,
        state: SessionState,  # noqa: ARG002 - the gate's Override shape
        verdict: Verdict,
        now: datetime,
    ) -> Verdict:
        """PERMIT ``break-glass:<id>`` inside an open override's scope; else ``verdict``."""
        if verdict.outcome not in (Outcome.DENY, Outcome.APPROVAL):
            return verdict
        if verdict.rule in NEVER_OVERRIDDEN:
            return verdict
        for row in self.store.list_breakglass(active_at=iso(now)):
            if not Scope.from_dict(row.scope).covers(request, verdict.tier):
                continue
            try:
                self.key.verify(_signed_body(row), row.signature)
            except RejectedToken as bad:
                self._record_forged(row, bad.reason)
                continue
            return self._use(row, request, verdict)
        return verdict

    def _use(self, row: BreakGlassRow, request: Request, verdict: Verdict) -> Verdict:
        details = {
            "agent_id": request.agent_id,
            "tool": request.tool,
            "request_digest": request.digest,
            "overridden_outcome": verdict.outcome.value,
            "overridden_rule": verdict.rule,
        }
        with self.store.transaction():
            self.store.count_breakglass_use(row.override_id)
            self.audit.record_event(
                KIND,
                {"event": "used", "override_id": row.override_id, "operator": row.operator_id},
                details,
            )
        self._alert("used", row, details)
        return verdict.model_copy(
            update={
                "outcome": Outcome.PERMIT,
                "rule": PREFIX + row.override_id,
                "reason": f"break-glass by {row.operator_id} ({row.reason}) over "
                f"{verdict.outcome.value} {verdict.rule}",
                "approvers": 0,
                "approver_group": None,
            }
        )

    def _record_forged(self, row: BreakGlassRow, reason: str) -> None:
        log.error(
            "break-glass override %s failed verification (%s); ignored", row.override_id, reason
        )
        self.audit.record_event(
            KIND, {"event": "rejected", "override_id": row.override_id}, {"reason": reason}
        )
        self._alert("rejected", row, {"reason": reason})

    def _alert(self, event: str, row: BreakGlassRow, details: dict[str, Any]) -> None:
        try:
            self.alert(
                f"break-glass {event}",
                {
                    "override_id": row.override_id,
                    "operator": row.operator_id,
                    "reason": row.reason,
                    "scope": row.scope,
                    "expires_at": row.expires_at,
                    **details,
                },
            )
        except Exception:
            log.exception("break-glass alert for %s failed", row.override_id)
