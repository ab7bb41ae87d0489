"""The one mapping every adapter shares: trusted session -> ``Request``, ``Decision`` -> refusal,
tool output -> ``ActionResult``, sandbox obligation -> limits.

Adapters differ only in how their stack spells a tool call and a refusal; what a call means to the
gate, and what each outcome means to the caller, is decided here once::

    session = SessionHandle(agent_id="fin-1", session_id=s.session_id)   # from the orchestrator
    request = build_request(session, "transfer_funds", {"amount": 10, "to_account": "acc-1"})
    decision = transport.decide(request)
    enforce(decision, approval_url=approval_link("http://127.0.0.1:8787"))   # raises unless PERMIT
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from clearance.errors import ConfigError, RequestError
from clearance.formats.canonical import NotCanonicalError, canonical_bytes
from clearance.integrations.errors import ApprovalPending, Denied, GateUnavailable
from clearance.model.decision import Decision, Obligation, Outcome
from clearance.model.request import Request
from clearance.model.result import REPORTED_OUTPUT_CHARS, ActionResult
from clearance.sandbox.egress import EgressPolicy
from clearance.sandbox.limits import MIB, SandboxLimits

AGENT_ENV = "CLEARANCE_AGENT_ID"
SESSION_ENV = "CLEARANCE_SESSION_ID"

ApprovalLink = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class SessionHandle:
    """Who is calling: set by the orchestrator that opened the session, never by the model.

    Adapters take this handle at construction time and never read identity from tool arguments,
    prompts or client-supplied metadata.
    """

    agent_id: str
    session_id: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SessionHandle:
        """The handle a launcher put in ``CLEARANCE_AGENT_ID`` and ``CLEARANCE_SESSION_ID``."""
        env = os.environ if environ is None else environ
        agent_id, session_id = env.get(AGENT_ENV, ""), env.get(SESSION_ENV, "")
        if not agent_id or not session_id:
            raise ConfigError(
                f"no clearance session: `{AGENT_ENV}` and `{SESSION_ENV}` must both be set",
                hint="the launcher opens a session (`Gate.open_session`) and exports both ids",
            )
        return cls(agent_id=agent_id, session_id=session_id)


def approval_link(base_url: str) -> ApprovalLink:
    """Dashboard page of an approval, under the sidecar at ``base_url``."""
    base = base_url.rstrip("/")
    return lambda approval_id: f"{base}/approvals/{approval_id}"


def build_request(
    session: SessionHandle,
    tool: str,
    args: Mapping[str, Any],
    *,
    action: str = "call",
    target: str | None = None,
    reasoning: str | None = None,
    idempotency_key: str | None = None,
    approval_token: str | None = None,
) -> Request:
    """The request for one call, identity from ``session``; args must be plain JSON.

    The args are copied through their canonical JSON so the request cannot share mutable objects
    with the caller: what the gate decided is what the digest binds. A value JSON cannot carry
    exactly (NaN, an infinity, an integer beyond 2**53, a lone surrogate, a non-JSON object) is
    refused here, never silently turned into something else.
    """
    try:
        plain = orjson.loads(canonical_bytes(dict(args)))
    except NotCanonicalError as exc:
        raise RequestError(
            f"the arguments of `{tool}` are not JSON: {exc}",
            hint="gated tools take JSON values (strings, numbers, booleans, lists, objects)",
        ) from exc
    try:
        return Request(
            agent_id=session.agent_id,
            session_id=session.session_id,
            tool=tool,
            action=action,
            args=plain,
            target=target,
            reasoning=reasoning,
            idempotency_key=idempotency_key,
            approval_token=approval_token,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise RequestError(f"invalid request for `{tool}`: {where}: {problem['msg']}") from exc


def refusal(decision: Decision, *, approval_url: ApprovalLink | None = None) -> Exception | None:
    """The exception an adapter raises for ``decision``, or None when it may dispatch."""
    if decision.outcome is Outcome.PERMIT:
        return None
    if decision.outcome is Outcome.DENY:
        return Denied(rule=decision.rule, reason=decision.reason, decision=decision)
    if decision.outcome is Outcome.APPROVAL:
        if decision.approval_id is None or decision.approval_expires is None:
            return GateUnavailable(
                "an APPROVAL decision came without an approval id",
                rule=decision.rule,
                decision=decision,
            )
        return ApprovalPending(
            approval_id=decision.approval_id,
            expires_at=decision.approval_expires,
            url=approval_url(decision.approval_id) if approval_url else None,
            decision=decision,
        )
    return GateUnavailable(decision.reason, rule=decision.rule, decision=decision)


def enforce(decision: Decision, *, approval_url: ApprovalLink | None = None) -> Decision:
    """Return ``decision`` if it permits dispatch; raise the matching ``ToolRefused`` otherwise."""
    refused = refusal(decision, approval_url=approval_url)
    if refused is not None:
        raise refused
    return decision


def refusal_text(error: Exception) -> str:
    """One line for the model: the rule and reason, and for approvals where and until when."""
    if isinstance(error, ApprovalPending):
        where = f" at {error.url}" if error.url else ""
        return (
            f"approval `{error.approval_id}` pending{where}, expires {error.expires_at}; "
            f"rule `{error.rule}`: {error.reason}; retry after approval"
        )
    if isinstance(error, Denied):
        return f"denied by rule `{error.rule}`: {error.reason}"
    if isinstance(error, GateUnavailable):
        return f"blocked: the gate did not decide ({error.rule}): {error.reason}"
    return f"blocked: {error}"


def output_summary(output: Any, limit: int = REPORTED_OUTPUT_CHARS) -> tuple[int, str]:
    """``(size in bytes, first `limit` characters)`` of a tool's output, as JSON where possible.

    The gate scans all of the reported text (injections, value provenance); the audit log keeps
    a masked summary of its start (``AUDITED_OUTPUT_CHARS``).
    """
    if isinstance(output, bytes):
        text = output.decode("utf-8", "replace")
    elif isinstance(output, str):
        text = output
    else:
        try:
            text = orjson.dumps(output, default=str).decode()
        except TypeError:
            text = repr(output)
    return len(text.encode("utf-8")), text[:limit]


def result_of(
    decision: Decision, *, success: bool, output: Any = None, error: str | None = None
) -> ActionResult:
    """The ``ActionResult`` reported against ``decision`` after the call ran (or failed)."""
    size, summary = output_summary(output) if output is not None else (0, None)
    return ActionResult(
        decision_id=decision.decision_id,
        success=success,
        output_size=size,
        output=summary,
        error=None if error is None else error[:4096],
    )


@dataclass(frozen=True, slots=True)
class SandboxPlan:
    """How a sandbox obligation says the call must run."""

    limits: SandboxLimits
    egress: EgressPolicy | None


def sandbox_obligation(decision: Decision) -> Obligation | None:
    """The decision's ``sandbox`` obligation, if any."""
    return next((o for o in decision.obligations if o.kind == "sandbox"), None)


def sandbox_plan(obligation: Obligation) -> SandboxPlan:
    """Limits and egress of a ``sandbox`` obligation (the compiled policy's parameter names).

    A private-address grant is refused here: the policy's boolean cannot name the networks the
    egress proxy needs, and guessing them would widen what the job can reach.
    """
    params = obligation.params
    limits: dict[str, Any] = {}
    if "wall_time_seconds" in params:
        limits["wall_seconds"] = float(params["wall_time_seconds"])
    if "output_bytes" in params:
        limits["output_bytes"] = max(int(params["output_bytes"]), 1024)
    if "memory_mb" in params:
        limits["memory_bytes"] = max(int(params["memory_mb"]), 32) * MIB
    if "cpu_seconds" in params:
        limits["cpu_seconds"] = int(params["cpu_seconds"])
    if "processes" in params:
        limits["processes"] = max(int(params["processes"]), 4)
    if "tmp_mb" in params:
        limits["tmp_bytes"] = max(int(params["tmp_mb"]), 1) * MIB
    hosts = tuple(params.get("egress") or ())
    if hosts and params.get("allow_private_addresses"):
        raise ConfigError(
            "the sandbox obligation allows private addresses, which this adapter cannot scope",
            hint="name the private networks in the egress proxy configuration instead",
        )
    egress = (
        EgressPolicy(allow=hosts, max_bytes_out=int(params.get("max_bytes_out", 10 * MIB)))
        if hosts
        else None
    )
    return SandboxPlan(limits=SandboxLimits(**limits), egress=egress)
