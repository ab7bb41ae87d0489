"""How an adapter reaches the gate: in-process (``Gate``) or the sidecar, behind one protocol.

Every adapter calls :func:`decide` and :func:`report` here, never the transport directly: those
two functions are the integrations' fail-closed boundary. Whatever goes wrong in a transport (an
exception, a decision for another request) becomes ``GateUnavailable``, so the tool is not called::

    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    decision = decide(transport, request)             # raises GateUnavailable, never returns junk
"""

from __future__ import annotations

import logging
from typing import Protocol

from clearance.approvals.service import AgentStatus, ApprovalService, State
from clearance.approvals.waiting import PendingApproval, wait_for_approval
from clearance.errors import ConfigError
from clearance.gate.clock import Clock, SystemClock
from clearance.gate.gate import Gate
from clearance.integrations.errors import ApprovalPending, Denied, GateUnavailable
from clearance.integrations.mapping import ApprovalLink, enforce, refusal
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult

log = logging.getLogger("clearance.integrations")
APPROVED_SUFFIX = ":approved"


class Transport(Protocol):
    """A way to the gate. Implementations may raise anything; callers go through ``decide``."""

    def decide(self, request: Request) -> Decision:
        """The gate's decision for ``request``."""
        ...

    def report(self, result: ActionResult, *, agent_id: str) -> None:
        """Record what happened after a permitted call."""
        ...

    def wait_for_approval(self, pending: PendingApproval, *, timeout_s: float) -> AgentStatus:
        """Block up to ``timeout_s`` for a human decision; the last status (maybe still pending)."""
        ...


class InProcessTransport:
    """The gate in this process: the handle itself proves the agent's identity."""

    def __init__(
        self,
        gate: Gate,
        *,
        approvals: ApprovalService | None = None,
        clock: Clock | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.gate = gate
        self.approvals = approvals
        self.clock = clock or gate.clock or SystemClock()
        self.poll_s = poll_s

    def decide(self, request: Request) -> Decision:
        """``Gate.decide``: never raises, every failure inside is SILENCE."""
        return self.gate.decide(request)

    def report(self, result: ActionResult, *, agent_id: str) -> None:
        """``Gate.report``."""
        self.gate.report(result, agent_id=agent_id)

    def granted_tools(self, session_id: str) -> frozenset[str] | None:
        """The tools the session's task grants under the active policy (None if unknown).

        Adapters use it only to hide tools (an MCP ``tools/list``); every call is still decided.
        """
        state = self.gate.store.session_state(session_id)
        bundle = self.gate.bundle
        if state is None or bundle is None:
            return frozenset()
        return bundle.compiled.tasks.get(state.session.task, frozenset())

    def wait_for_approval(self, pending: PendingApproval, *, timeout_s: float) -> AgentStatus:
        """Poll the approval service (another process may approve through the shared store)."""
        if self.approvals is None:
            raise ConfigError(
                "this transport has no approval service to wait on",
                hint="pass `approvals=` (e.g. `runtime.approvals`) to InProcessTransport",
            )
        return wait_for_approval(
            self.approvals, pending, clock=self.clock, timeout_s=timeout_s, poll_s=self.poll_s
        )


def decide(transport: Transport, request: Request) -> Decision:
    """The transport's decision for exactly ``request``, or ``GateUnavailable``.

    A decision whose request digest is not this request's digest is refused: a confused or
    compromised transport must not be able to hand one call's permit to another.
    """
    try:
        decision = transport.decide(request)
    except Exception as exc:  # the integrations' fail-closed boundary
        log.warning("gate unreachable for %s", request.tool, exc_info=True)
        raise GateUnavailable(f"the gate could not be reached: {exc}") from exc
    if decision.request_digest != request.digest:
        raise GateUnavailable(
            f"the decision `{decision.decision_id}` is for another request",
            rule="digest-mismatch",
            decision=decision,
        )
    return decision


def report(transport: Transport, result: ActionResult, *, agent_id: str) -> bool:
    """Record an outcome; False (and a logged error) when it could not be recorded.

    The call already ran, so its result is not withheld; the missing outcome is logged loudly
    because breakers and taint depend on it.
    """
    try:
        transport.report(result, agent_id=agent_id)
    except Exception:  # the tool ran; losing its outcome must not lose its result
        log.exception("the outcome of decision %s was not recorded", result.decision_id)
        return False
    return True


def wait(transport: Transport, pending: PendingApproval, *, timeout_s: float) -> AgentStatus:
    """Wait for a human decision; a transport failure is ``GateUnavailable``."""
    try:
        return transport.wait_for_approval(pending, timeout_s=timeout_s)
    except Exception as exc:  # fail closed: no status means no token
        raise GateUnavailable(f"could not read approval `{pending.approval_id}`: {exc}") from exc


def authorize(
    transport: Transport,
    request: Request,
    *,
    approval_url: ApprovalLink | None = None,
    wait_s: float = 0.0,
) -> Decision:
    """A PERMIT decision for ``request`` or the ``ToolRefused`` that says why not.

    With ``wait_s > 0`` an APPROVAL is waited on: once a human approves, the identical request is
    resubmitted with the one-time execution token and the gate's answer to *that* is what counts
    (an approval is never taken on the word of the waiting code).
    """
    decision = decide(transport, request)
    if decision.outcome is not Outcome.APPROVAL or wait_s <= 0:
        return enforce(decision, approval_url=approval_url)
    pending_error = refusal(decision, approval_url=approval_url)
    if not isinstance(pending_error, ApprovalPending):
        raise pending_error or GateUnavailable("an APPROVAL decision could not be waited on")
    status = wait(transport, PendingApproval.from_decision(decision, request), timeout_s=wait_s)
    if status.token is not None:
        redeemed = decide(transport, redemption(request, status.token))
        return enforce(redeemed, approval_url=approval_url)
    if status.state is State.PENDING:
        raise pending_error
    raise Denied(
        rule=f"approval:{status.state.value}",
        reason=status.reason or f"the approval request was {status.state.value}",
        decision=decision,
    )


def redemption(request: Request, token: str) -> Request:
    """``request`` resubmitted with its execution token.

    The gate answers a known idempotency key from its record before it looks at a token, so the
    redemption carries the key with an ``:approved`` suffix: one key for the APPROVAL decision, one
    for the PERMIT that redeemed it, and a retry of either still gets its own stored answer.
    """
    key = request.idempotency_key
    return request.model_copy(
        update={
            "approval_token": token,
            "idempotency_key": None if key is None else f"{key}{APPROVED_SUFFIX}",
        }
    )
