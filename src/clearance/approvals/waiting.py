"""Waiting for a human, from the agent's side: block, await, or park and resume later.

Frameworks get an APPROVAL decision with an approval id and a signed intent. They can

* block: ``wait_for_approval(source, pending, clock=clock, timeout_s=300)``;
* await: ``await await_approval(source, pending, clock=clock, timeout_s=300)``;
* park: store ``pending.to_dict()`` with the run, and later call ``check(...)`` (or wait again).

All three return an ``AgentStatus``. When the timeout passes first the status is still
``pending``: waiting gave up, the request did not (it expires on its own deadline). When the
status is ``approved`` it carries the one-time execution token; resubmit the identical request
with ``approval_token=status.token``. A ``denied`` status carries the reviewer's reason, to hand
back to the model so it can re-plan instead of failing.

Example::

    decision = gate.decide(request)
    if decision.outcome is Outcome.APPROVAL:
        pending = PendingApproval.from_decision(decision, request)
        status = wait_for_approval(service, pending, clock=SystemClock(), timeout_s=600)
        if status.token:
            decision = gate.decide(request.model_copy(update={"approval_token": status.token}))
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Protocol

from clearance.approvals.service import AgentStatus, State
from clearance.errors import ApprovalError
from clearance.model.decision import Decision
from clearance.model.request import Request


class Clock(Protocol):
    """The gate's clock (``clearance.gate.clock``), passed in: approvals never read time."""

    def now(self) -> datetime:
        """Current UTC time."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going backwards."""
        ...


class StatusSource(Protocol):
    """Where the agent's status comes from: the in-process service or an HTTP client."""

    def status(
        self, approval_id: str, *, intent: str, agent_id: str, session_id: str, now: datetime
    ) -> AgentStatus:
        """The agent's view of its request."""
        ...

    def wait_changed(self, timeout_s: float) -> None:
        """Block until something may have changed, or ``timeout_s`` passes."""
        ...


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """Everything needed to resume waiting later (serialisable with ``to_dict``)."""

    approval_id: str
    intent: str
    agent_id: str
    session_id: str
    expires: str

    @classmethod
    def from_decision(cls, decision: Decision, request: Request) -> PendingApproval:
        """The pending approval of an APPROVAL decision for ``request``."""
        if (
            decision.approval_id is None
            or decision.intent is None
            or decision.approval_expires is None
        ):
            raise ApprovalError(
                f"decision `{decision.decision_id}` is {decision.outcome}, not a pending approval"
            )
        return cls(
            approval_id=decision.approval_id,
            intent=decision.intent,
            agent_id=request.agent_id,
            session_id=request.session_id,
            expires=decision.approval_expires,
        )

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict (the intent is not secret: it only names the request)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> PendingApproval:
        """The inverse of ``to_dict``."""
        return cls(**data)


def check(source: StatusSource, pending: PendingApproval, *, now: datetime) -> AgentStatus:
    """One status read without waiting (resume-later style)."""
    return source.status(
        pending.approval_id,
        intent=pending.intent,
        agent_id=pending.agent_id,
        session_id=pending.session_id,
        now=now,
    )


def wait_for_approval(
    source: StatusSource,
    pending: PendingApproval,
    *,
    clock: Clock,
    timeout_s: float,
    poll_s: float = 1.0,
) -> AgentStatus:
    """Block until the request is decided or ``timeout_s`` passes; return the last status."""
    give_up = clock.monotonic() + timeout_s
    while True:
        status = check(source, pending, now=clock.now())
        remaining = give_up - clock.monotonic()
        if status.state is not State.PENDING or remaining <= 0:
            return status
        source.wait_changed(min(poll_s, remaining))


async def await_approval(
    source: StatusSource,
    pending: PendingApproval,
    *,
    clock: Clock,
    timeout_s: float,
    poll_s: float = 1.0,
) -> AgentStatus:
    """``wait_for_approval`` for asyncio: store reads run in a worker thread between sleeps."""
    give_up = clock.monotonic() + timeout_s
    while True:
        status = await asyncio.to_thread(check, source, pending, now=clock.now())
        remaining = give_up - clock.monotonic()
        if status.state is not State.PENDING or remaining <= 0:
            return status
        await asyncio.sleep(min(poll_s, remaining))
