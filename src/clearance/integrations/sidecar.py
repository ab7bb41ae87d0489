"""The sidecar (``clearance serve``) as a :class:`~clearance.integrations.transport.Transport`.

Every adapter (the guard, the hooks, the MCP gateway, the SDK adapters) takes a transport; give it
this one and its calls go over HTTP to a gate in another process, with the same guarantees as the
in-process gate::

    transport = SidecarTransport.connect("http://127.0.0.1:8700", api_key=os.environ["KEY"])
    guard = Guard(transport, SessionHandle.from_env())

What changes over the wire, and why it stays safe:

* The agent's identity is the API key's, not the request's ``agent_id``. The service builds the
  request from the key, so a handle naming another agent gets a decision for a *different*
  request digest, which :func:`clearance.integrations.transport.decide` refuses.
* A request carrying an execution token is sent to ``/v1/tokens/redeem``; the service checks the
  token against the digest exactly as the in-process gate does.
* Waiting for a human polls ``/v1/approvals/{id}/status`` with the signed intent of the APPROVAL
  decision; the one-time token comes back once and the adapter redeems it through the normal
  ``authorize`` path.
* Any network or protocol failure raises; the transport functions turn that into
  ``GateUnavailable``, so nothing is dispatched.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from clearance.approvals.service import AgentStatus, State
from clearance.approvals.waiting import PendingApproval, wait_for_approval
from clearance.client import DEFAULT_TIMEOUT_S, GateClient, GateClientError
from clearance.errors import ClearanceError
from clearance.gate.clock import Clock, SystemClock
from clearance.model.decision import Decision
from clearance.model.request import Request
from clearance.model.result import ActionResult

log = logging.getLogger("clearance.integrations.sidecar")


class SidecarTransport:
    """A gate served over HTTP, reached with one agent key (the key is the agent's identity)."""

    def __init__(
        self, client: GateClient, *, clock: Clock | None = None, poll_s: float = 0.5
    ) -> None:
        self.client = client
        self.clock = clock or SystemClock()
        self.poll_s = poll_s
        self._closed = threading.Event()

    @classmethod
    def connect(
        cls,
        base_url: str,
        *,
        api_key: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        poll_s: float = 0.5,
    ) -> SidecarTransport:
        """A transport with its own connection pool to the sidecar at ``base_url``."""
        return cls(GateClient(base_url, api_key=api_key, timeout=timeout), poll_s=poll_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and wake any thread waiting for an approval."""
        self._closed.set()
        self.client.close()

    def decide(self, request: Request) -> Decision:
        """``POST /v1/decide`` (or ``/v1/tokens/redeem`` with a token); raises when unreachable."""
        options: dict[str, Any] = {
            "action": request.action,
            "target": request.target,
            "reasoning": request.reasoning,
            "context_hash": request.context_hash,
            "idempotency_key": request.idempotency_key,
        }
        args = dict(request.args)
        if request.approval_token is not None:
            return self.client.redeem(
                request.session_id,
                request.tool,
                args,
                approval_token=request.approval_token,
                **options,
            )
        return self.client.decide(request.session_id, request.tool, args, **options)

    def granted_tools(self, session_id: str) -> frozenset[str]:
        """The tools the session's task grants, as the sidecar answers for this key's agent.

        Adapters use it only to hide tools (an MCP ``tools/list``); every call is still decided.
        When the sidecar cannot answer (unreachable, not this agent's session), nothing is shown.
        """
        try:
            return self.client.grants(session_id)
        except ClearanceError:
            log.warning("the sidecar did not list the grants of %s; hiding every tool", session_id)
            return frozenset()

    def report(self, result: ActionResult, *, agent_id: str) -> None:
        """``POST /v1/results``; the service checks the decision belongs to the key's agent."""
        del agent_id  # the key names the agent; the service refuses another agent's decision
        self.client.report(result)

    def wait_for_approval(self, pending: PendingApproval, *, timeout_s: float) -> AgentStatus:
        """Poll the approval's status up to ``timeout_s``; the last status (maybe pending)."""
        return wait_for_approval(
            _StatusReader(self.client, self._closed),
            pending,
            clock=self.clock,
            timeout_s=timeout_s,
            poll_s=self.poll_s,
        )


class _StatusReader:
    """The approvals ``StatusSource`` protocol over the agent API's status route."""

    def __init__(self, client: GateClient, closed: threading.Event) -> None:
        self.client = client
        self.closed = closed

    def status(
        self, approval_id: str, *, intent: str, agent_id: str, session_id: str, now: datetime
    ) -> AgentStatus:
        """One status read; the service takes the agent from the key, the clock from the gate."""
        del agent_id, now
        if self.closed.is_set():
            raise GateClientError("the sidecar transport is closed")
        body = self.client.approval_status(approval_id, session_id=session_id, intent=intent)
        return status_from_wire(body)

    def wait_changed(self, timeout_s: float) -> None:
        """Sleep between polls (the service has no change feed for agents); wakes on close."""
        self.closed.wait(timeout_s)


def status_from_wire(body: dict[str, Any]) -> AgentStatus:
    """The ``ApprovalStatusV1`` body as an ``AgentStatus``; a malformed body raises.

    Raising (rather than guessing a state) is what keeps a garbled answer from ever reading as
    ``approved``: the caller turns the error into ``GateUnavailable``.
    """
    try:
        questions = body.get("questions") or []
        return AgentStatus(
            approval_id=str(body["approval_id"]),
            state=State(body["state"]),
            expires_at=str(body["expires_at"]),
            token=_optional_str(body.get("token")),
            token_expires=_optional_str(body.get("token_expires")),
            reason=_optional_str(body.get("reason")),
            questions=tuple(str(q) for q in questions),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise GateClientError(
            f"the sidecar sent an approval status that is not one: {exc}",
            hint="check that the client and the service run the same clearance version",
        ) from exc


def _optional_str(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got `{value!r}`")
    return value
