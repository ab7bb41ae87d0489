"""Approval decay: a routine medium-risk approval becomes a notification once it has earned it.

When the policy sets ``approvals.decay.after = N``, an APPROVAL verdict of a decaying tier (by
default write-limited only) is turned into PERMIT (rule ``decay:<rule>``) for an agent, tool and
rule whose last N approvals were granted with no denial, expiry or failed outcome in between. The humans are still told (a
``decayed`` notification). Decay never applies to write-broad or destructive tiers, to a verdict
without a tier, or to a rule that asks for more than one approver.

Counting is done by ``ApprovalService`` (approval: +1; denial or expiry: reset); this module adds
the override and resets the count when a dispatched call that was permitted by an approval or by
decay reports a failure.

Example::

    decay = DecayOverride(store, settings=settings, notifiers=[LogNotifier()])
    gate = Gate(store, approvals=service, overrides=[breakglass, decay], observers=[decay])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from clearance.approvals.notify import Notification, Notifier, notify_all
from clearance.approvals.settings import ApprovalSettings, resolve
from clearance.model.decision import Decision, Outcome, Verdict
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.store.approvals_sql import ApprovalStore, approval_store
from clearance.store.protocol import SessionState

DECAY_PREFIX = "decay:"


class DecayOverride:
    """Gate override (decay) and observer (reset on failure) in one."""

    def __init__(
        self,
        store: object,
        *,
        settings: ApprovalSettings | Callable[[], ApprovalSettings],
        notifiers: Sequence[Notifier] = (),
    ) -> None:
        self.store: ApprovalStore = approval_store(store)
        self._decisions = store
        self._settings = settings
        self.notifiers = list(notifiers)

    def apply(
        self,
        request: Request,
        state: SessionState,  # noqa: ARG002 - the gate's Override shape
        verdict: Verdict,
        now: datetime,  # noqa: ARG002
    ) -> Verdict:
        """PERMIT ``decay:<rule>`` when the approval has decayed; otherwise ``verdict`` unchanged."""
        if verdict.outcome is not Outcome.APPROVAL or verdict.approvers > 1:
            return verdict
        settings = resolve(self._settings)
        # INVARIANT: decays() is false for write-broad and destructive, whatever the settings say.
        if verdict.tier is None or verdict.tier.is_high_risk or not settings.decays(verdict.tier):
            return verdict
        needed = settings.decay_after
        if needed is None or request.tool in settings.critical_tools:
            return verdict
        count = self.store.decay_count(request.agent_id, request.tool, verdict.rule)
        if count < needed:
            return verdict
        notify_all(
            self.notifiers,
            Notification(
                kind="decayed",
                approval_id="-",
                agent_id=request.agent_id,
                tool=request.tool,
                summary=f"{request.tool}.{request.action} permitted without approval",
                tier=verdict.tier.value,
                detail=f"{count} incident-free approvals under rule {verdict.rule}",
            ),
        )
        return verdict.model_copy(
            update={
                "outcome": Outcome.PERMIT,
                "rule": DECAY_PREFIX + verdict.rule,
                "reason": f"{verdict.reason} (approval decayed to a notification after "
                f"{count} incident-free approvals)",
            }
        )

    def on_decision(self, request: Request, decision: Decision, state: SessionState | None) -> None:
        """Observer hook; decay needs nothing at decision time."""

    def on_result(self, result: ActionResult, decision: dict[str, Any]) -> None:
        """Reset the count when a call permitted by approval or decay failed."""
        if result.success:
            return
        rule = str(decision.get("rule", ""))
        record = getattr(self._decisions, "get_decision", None)
        stored = record(result.decision_id) if record is not None else None
        if stored is None:
            return
        agent_id, tool = stored.request.get("agent_id"), stored.request.get("tool")
        if rule.startswith(DECAY_PREFIX):
            base_rule = rule[len(DECAY_PREFIX) :]
        elif rule.startswith("approval:"):
            approval = self.store.get_approval(rule.removeprefix("approval:"))
            if approval is None:
                return
            base_rule = approval.rule
        else:
            return
        # Observers get no clock: the reset is stamped with the failed decision's own time.
        self.store.decay_reset(str(agent_id), str(tool), base_rule, str(decision.get("time", "")))
