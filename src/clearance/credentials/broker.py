"""The credential broker: short-lived, scoped secrets only against a PERMIT or an execution token.

An agent never holds standing credentials. To call a tool that declares one in policy it presents
either the id of a PERMIT decision the gate made for it (checked in the store: it exists, it is a
real PERMIT and not a shadow-mode one, it is this agent's, this session's and this tool's, and it is
recent) or a live execution token from an approval; the broker then fetches the secret from the
backend of the **session's** environment and records a lease. One grant buys one credential.

Secrets never appear in policies (they name secrets), requests, decisions, leases or audit events
(those carry the lease id, tool, secret name and environment); the value travels only inside the
returned ``Credential`` as a ``Secret`` that prints as ``Secret(****)``.

``revoke_for(agent_id)`` ends every live lease of an agent (the kill switch calls it): Vault
leases are revoked in Vault, local ones are marked revoked. With ``stops`` (the kill switch's
pre-check) a halted agent, tool or environment also gets no new credential, even against a PERMIT
it received just before the halt.

Example::

    broker = CredentialBroker(store, backends=[LocalBackend(Environment.STAGING, path=p)],
                              specs=credential_specs(bundle.compiled), audit=audit)
    cred = broker.issue(agent_id="fin-1", session_id=sid, tool="charge_card",
                        decision_id=decision.decision_id, now=clock.now())
    stripe.api_key = cred.secret.reveal()
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from clearance.credentials.backend import Backend
from clearance.credentials.scopes import CredentialSpec
from clearance.credentials.secret import Secret
from clearance.errors import ClearanceError, ConfigError, CredentialError
from clearance.model.decision import Outcome, Verdict
from clearance.model.ids import new_ulid
from clearance.model.request import Request
from clearance.model.session import Environment
from clearance.store.approvals_sql import ApprovalStore, LeaseRow, approval_store
from clearance.store.protocol import SessionState

log = logging.getLogger("clearance.credentials")

DEFAULT_DECISION_AGE = timedelta(minutes=2)


class EventSink(Protocol):
    """The slice of the gate's ``AuditSink`` the broker writes to."""

    def record_event(self, kind: str, fields: dict[str, Any], payload: dict[str, Any]) -> None:
        """Append one event; raise when it cannot be committed."""
        ...


class TokenVerifier(Protocol):
    """Checks an execution token without using it up (``ApprovalService.verify_token``)."""

    def verify_token(
        self, token: str, *, agent_id: str, session_id: str, tool: str, now: datetime
    ) -> str:
        """The approval id of a live token for this agent, session and tool; raise otherwise."""
        ...


class StopCheck(Protocol):
    """The gate's pre-check shape (``KillSwitch.check``): a DENY verdict stops the issue."""

    def check(self, request: Request, state: SessionState, now: datetime) -> Verdict | None:
        """A DENY when a stop covers ``request``; None to continue."""
        ...


@dataclass(frozen=True, slots=True)
class Credential:
    """A credential handed to an agent for one tool call."""

    lease_id: str
    tool: str
    environment: Environment
    expires_at: datetime
    secret: Secret


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(ts: datetime) -> str:
    """The store's timestamp format (RFC 3339 UTC, microseconds, ``Z``)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CredentialBroker:
    """Issues and revokes short-lived credentials (see module docstring)."""

    def __init__(
        self,
        store: object,
        *,
        backends: Iterable[Backend],
        specs: Mapping[str, CredentialSpec] | Callable[[], Mapping[str, CredentialSpec]],
        audit: EventSink,
        tokens: TokenVerifier | None = None,
        stops: StopCheck | None = None,
        max_decision_age: timedelta = DEFAULT_DECISION_AGE,
    ) -> None:
        self.store: ApprovalStore = approval_store(store)
        self._sessions = store
        self.backends: dict[Environment, Backend] = {}
        for backend in backends:
            if backend.environment in self.backends:
                raise ConfigError(f"two credential backends for {backend.environment.value}")
            self.backends[backend.environment] = backend
        self._specs = specs
        self.audit = audit
        self.tokens = tokens
        self.stops = stops
        self.max_decision_age = max_decision_age

    def _spec(self, tool: str) -> CredentialSpec:
        specs = self._specs() if callable(self._specs) else self._specs
        spec = specs.get(tool)
        if spec is None:
            raise CredentialError(
                f"the tool `{tool}` declares no credential",
                hint="declare it under credentials.tools in the policy",
            )
        return spec

    def issue(
        self,
        *,
        agent_id: str,
        session_id: str,
        tool: str,
        now: datetime,
        decision_id: str | None = None,
        token: str | None = None,
    ) -> Credential:
        """A credential for ``tool`` against exactly one grant: a PERMIT decision id or a token."""
        try:
            return self._issue(agent_id, session_id, tool, now, decision_id, token)
        except CredentialError as refused:
            self._record("credential.refused", agent_id, tool, {"reason": refused.message})
            raise

    def _issue(
        self,
        agent_id: str,
        session_id: str,
        tool: str,
        now: datetime,
        decision_id: str | None,
        token: str | None,
    ) -> Credential:
        if (decision_id is None) == (token is None):
            raise CredentialError(
                "present exactly one of a PERMIT decision id or an execution token"
            )
        spec = self._spec(tool)
        state = self._session(agent_id, session_id)
        self._check_not_stopped(agent_id, session_id, tool, state, now)
        environment = Environment(state.session.environment)
        if environment not in spec.environments:
            raise CredentialError(
                f"`{tool}` has no credential in {environment.value}",
                hint="credentials.tools.<tool>.environments in the policy lists where it exists",
            )
        backend = self.backends.get(environment)
        # INVARIANT: the backend is chosen by the session's environment and must be bound to it.
        if backend is None or backend.environment is not environment:
            raise CredentialError(f"no credential backend is configured for {environment.value}")
        grant = (
            self._check_decision(decision_id, agent_id, session_id, tool, now)
            if decision_id is not None
            else self._check_token(token or "", agent_id, session_id, tool, now)
        )
        issued = backend.issue(spec, now)
        expires = now + min(issued.ttl, spec.ttl)
        lease = LeaseRow(
            lease_id="lse_" + new_ulid(),
            grant_ref=grant,
            agent_id=agent_id,
            session_id=session_id,
            tool=tool,
            environment=environment.value,
            backend=backend.name,
            backend_ref=issued.backend_ref,
            issued_at=_iso(now),
            expires_at=_iso(expires),
        )
        try:
            with self.store.transaction():
                if not self.store.insert_lease(lease):
                    raise CredentialError(f"the grant `{grant}` was already used for a credential")
                self.audit.record_event(
                    "credential.issued",
                    {"agent_id": agent_id, "tool": tool, "lease_id": lease.lease_id},
                    {
                        "grant": grant,
                        "secret": spec.secret,
                        "environment": environment.value,
                        "backend": backend.name,
                        "expires_at": lease.expires_at,
                    },
                )
        except ClearanceError:
            self._revoke_backend(backend, issued.backend_ref)
            raise
        return Credential(
            lease_id=lease.lease_id,
            tool=tool,
            environment=environment,
            expires_at=expires,
            secret=issued.secret,
        )

    def _session(self, agent_id: str, session_id: str) -> SessionState:
        lookup = getattr(self._sessions, "session_state", None)
        state: SessionState | None = lookup(session_id) if lookup is not None else None
        if state is None or state.session.agent_id != agent_id:
            raise CredentialError("unknown session for this agent")
        if state.session.closed:
            raise CredentialError("the session is closed")
        return state

    def _check_not_stopped(
        self, agent_id: str, session_id: str, tool: str, state: SessionState, now: datetime
    ) -> None:
        if self.stops is None:
            return
        probe = Request(agent_id=agent_id, session_id=session_id, tool=tool)
        verdict = self.stops.check(probe, state, now)
        if verdict is not None and verdict.outcome is not Outcome.PERMIT:
            raise CredentialError(
                f"a stop is in force for this call ({verdict.rule})",
                hint="an operator halted the agent, tool or environment; nothing is issued",
            )

    def _check_decision(
        self, decision_id: str, agent_id: str, session_id: str, tool: str, now: datetime
    ) -> str:
        lookup = getattr(self._sessions, "get_decision", None)
        record = lookup(decision_id) if lookup is not None else None
        refused = CredentialError(
            "the decision does not grant this credential",
            hint="present the id of a recent PERMIT decision for this call",
        )
        if record is None:
            raise refused
        decision, request = record.decision, record.request
        if decision.get("outcome") != "PERMIT" or decision.get("shadow_outcome") is not None:
            raise refused
        if (request.get("agent_id"), request.get("session_id"), request.get("tool")) != (
            agent_id,
            session_id,
            tool,
        ):
            raise refused
        age = now - _parse(record.created_at)
        if age > self.max_decision_age or age < -self.max_decision_age:
            raise refused
        return f"decision:{decision_id}"

    def _check_token(
        self, token: str, agent_id: str, session_id: str, tool: str, now: datetime
    ) -> str:
        if self.tokens is None:
            raise CredentialError("this broker does not accept execution tokens")
        try:
            approval_id = self.tokens.verify_token(
                token, agent_id=agent_id, session_id=session_id, tool=tool, now=now
            )
        except ClearanceError as exc:
            raise CredentialError("the token does not grant this credential") from exc
        return f"approval:{approval_id}"

    def revoke_for(self, agent_id: str, now: datetime) -> int:
        """End every live lease of ``agent_id``; return how many were revoked.

        Every lease is tried; a lease whose backend refused stays marked live and, after the
        others are done, ``CredentialError`` says how many are left so the caller can retry.
        """
        revoked, failed = 0, 0
        for lease in self.store.active_leases(agent_id):
            backend = self.backends.get(Environment(lease.environment))
            if lease.backend_ref is not None and (
                backend is None or not self._revoke_backend(backend, lease.backend_ref)
            ):
                failed += 1
                continue
            self.store.revoke_lease(lease.lease_id, _iso(now))
            revoked += 1
        if revoked or failed:
            self._record("credential.revoked", agent_id, "*", {"count": revoked, "failed": failed})
        if failed:
            raise CredentialError(
                f"{failed} credential lease(s) of `{agent_id}` could not be revoked",
                hint="check the secret backend and run the revocation again",
            )
        return revoked

    def _revoke_backend(self, backend: Backend, backend_ref: str | None) -> bool:
        if backend_ref is None:
            return True
        try:
            backend.revoke(backend_ref)
        except CredentialError:
            log.exception("could not revoke a %s lease", backend.name)
            return False
        return True

    def _record(self, kind: str, agent_id: str, tool: str, payload: dict[str, Any]) -> None:
        try:
            self.audit.record_event(kind, {"agent_id": agent_id, "tool": tool}, payload)
        except ClearanceError:
            log.exception("could not record %s for %s", kind, agent_id)
