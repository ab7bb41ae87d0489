"""Extension points of the decision pipeline.

The pipeline in ``gate.py`` is fixed; the parts above the policy layer (kill switch, breakers,
approvals, break-glass, audit, metrics) plug in through these protocols so each stays in its own
package and the order of checks stays visible in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from clearance.model.decision import Decision, Verdict
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.store.protocol import DecisionRecord, SessionState


class PreCheck(Protocol):
    """Runs before policy; a returned verdict decides (kill switch, breakers, drain)."""

    def check(self, request: Request, state: SessionState, now: datetime) -> Verdict | None:
        """Return a verdict to stop the pipeline, or None to continue."""
        ...


class Override(Protocol):
    """Runs after policy and may change its verdict (break-glass, unusual-sequence approval)."""

    def apply(
        self, request: Request, state: SessionState, verdict: Verdict, now: datetime
    ) -> Verdict:
        """Return the verdict to use."""
        ...


class ApprovalTicket(Protocol):
    """What the agent gets for an APPROVAL: the approval id, its expiry and a signed intent."""

    @property
    def approval_id(self) -> str:
        """The approval request's id."""
        ...

    @property
    def expires(self) -> str:
        """When the request expires (a DENY from then on)."""
        ...

    @property
    def intent(self) -> str:
        """The Ed25519-signed intent naming approval id, request digest and expiry."""
        ...


class ApprovalHandler(Protocol):
    """Creates approval requests and redeems execution tokens."""

    def redeem(self, request: Request, state: SessionState, now: datetime) -> Verdict:
        """Verify ``request.approval_token`` for exactly this request; DENY verdict when invalid."""
        ...

    def create(
        self,
        request: Request,
        state: SessionState,
        verdict: Verdict,
        decision_id: str,
        policy_digest: str,
        now: datetime,
    ) -> ApprovalTicket:
        """Persist a pending approval request and return its ticket."""
        ...


class AuditSink(Protocol):
    """Durably records decisions and outcomes (audit-or-refuse)."""

    def record_decision(
        self, request: Request, decision: Decision, state: SessionState, extra: dict[str, Any]
    ) -> dict[str, Any]:
        """Append the decision entry, wait for the commit, return the signed receipt envelope.

        Raises ``AuditWriteError`` when the entry could not be committed.
        """
        ...

    def record_outcome(self, result: ActionResult, decision: dict[str, Any]) -> None:
        """Append the outcome entry of a dispatched call."""
        ...

    def record_event(self, kind: str, fields: dict[str, Any], payload: dict[str, Any]) -> None:
        """Append a non-decision event (policy activated, kill switch, break-glass, ...)."""
        ...


class Observer(Protocol):
    """Sees every decision and outcome after the fact (metrics, breakers, monitors).

    Observers must not raise; the gate logs and ignores their failures because a broken metric
    must never change a decision that has already been made and recorded.
    """

    def on_decision(self, request: Request, decision: Decision, state: SessionState | None) -> None:
        """Called after a decision is recorded; ``state`` is None for a SILENCE made without
        the session (the store failed, the session is unknown)."""
        ...

    def on_result(self, result: ActionResult, decision: dict[str, Any]) -> None:
        """Called after an outcome is recorded."""
        ...


class Tracer(Protocol):
    """Wraps each decision and each reported outcome in a trace span (``clearance.gate.tracing``).

    Unlike an observer, a tracer sees every decision, SILENCE included, and times it. ``run`` must
    be called exactly once and its answer returned unchanged: a tracing failure must never change,
    repeat or drop a decision. Exceptions ``run`` raises (an unknown decision id in ``report``)
    propagate to the caller.
    """

    def decide(self, request: Request, run: Callable[[Request], Decision]) -> Decision:
        """Return ``run(request)``, recorded as a span."""
        ...

    def report(self, result: ActionResult, run: Callable[[], DecisionRecord]) -> None:
        """Call ``run()`` (which records the outcome), recorded as a span."""
        ...
