"""The store protocol: what the gate needs from persistence, and what each method guarantees.

One protocol, two backends (SQLite embedded, PostgreSQL for replicas), one contract test suite.
Every method either does what it says or raises a ``StoreError`` subclass; the gate turns any
``StoreError`` into a SILENCE decision, never a PERMIT.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from clearance.model.session import Session


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A stored decision for ``(agent_id, key)``; ``digest`` is the request digest it was made for."""

    agent_id: str
    key: str
    digest: str
    decision_id: str
    decision: dict[str, Any]
    created_at: str


@dataclass(frozen=True, slots=True)
class StoredBundle:
    """An archived policy bundle: its canonical bytes under their digest."""

    digest: str
    data: bytes
    source_name: str
    signature: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class Activation:
    """One activation of a bundle digest, in order."""

    seq: int
    digest: str
    activated_at: str
    activated_by: str


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """What replay needs: the exact request and session facts, the decision and its policy digest."""

    decision_id: str
    request: dict[str, Any]
    facts: dict[str, Any]
    decision: dict[str, Any]
    policy: str
    created_at: str


@dataclass(frozen=True, slots=True)
class SessionState:
    """A session with the state the gate accumulated: taint sources and per-tool call counts."""

    session: Session
    taint: tuple[str, ...]
    calls: Mapping[str, int]


class Store(Protocol):
    """Persistence for sessions, idempotency, bundles, decisions and control state."""

    url: str

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the versions applied."""
        ...

    def schema_version(self) -> tuple[int, int]:
        """Return ``(applied, latest known)`` migration versions."""
        ...

    def ping(self) -> None:
        """Raise ``StoreUnavailableError`` unless the store answers."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def transaction(self) -> AbstractContextManager[Any]:
        """Group several writes atomically (nested use joins the outer transaction)."""
        ...

    # sessions -----------------------------------------------------------------------------
    def open_session(self, session: Session) -> None:
        """Insert a new session; ``ConflictError`` if the id exists."""
        ...

    def close_session(self, session_id: str, closed_at: str) -> None:
        """Mark a session closed; later decisions in it are DENY."""
        ...

    def session_state(self, session_id: str) -> SessionState | None:
        """The session with its taint and call counts, or None when unknown."""
        ...

    def add_taint(self, session_id: str, sources: list[str], at: str) -> None:
        """Record taint sources; taint never decreases."""
        ...

    def list_sessions(self, *, agent_id: str | None = None, limit: int = 100) -> list[Session]:
        """Recent sessions, newest first."""
        ...

    # decisions ----------------------------------------------------------------------------
    def record_decision(
        self,
        record: DecisionRecord,
        *,
        session_id: str,
        tool: str,
        count_call: bool,
        idempotency: IdempotencyRecord | None,
    ) -> IdempotencyRecord | None:
        """Store a decision atomically with its call count and idempotency record.

        When ``idempotency`` is given and a record for the same ``(agent_id, key)`` already exists
        (a concurrent retry won the race), nothing is written and the existing record is
        returned; the caller must answer with it so that one key never yields two decisions.
        """
        ...

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        """The archived decision, or None."""
        ...

    def recent_decisions(
        self, *, limit: int = 100, agent_id: str | None = None
    ) -> list[DecisionRecord]:
        """Newest first."""
        ...

    def get_idempotency(self, agent_id: str, key: str) -> IdempotencyRecord | None:
        """The stored decision for this agent and key, or None."""
        ...

    def prune_idempotency(self, before: str) -> int:
        """Delete idempotency records created before ``before``; return how many."""
        ...

    # policy bundles -----------------------------------------------------------------------
    def put_bundle(self, bundle: StoredBundle) -> None:
        """Archive a bundle (idempotent: the same digest is stored once)."""
        ...

    def get_bundle(self, digest: str) -> StoredBundle | None:
        """An archived bundle by digest, or None."""
        ...

    def list_bundles(self) -> list[StoredBundle]:
        """Every archived bundle, newest first."""
        ...

    def activate(self, digest: str, *, at: str, by: str) -> Activation:
        """Make ``digest`` the active policy (atomic); the bundle must be archived."""
        ...

    def active_digest(self) -> str | None:
        """The digest activated last, or None."""
        ...

    def activations(self) -> list[Activation]:
        """Activation history, newest first."""
        ...

    # generic key/value for small control state --------------------------------------------
    def kv_get(self, namespace: str, key: str) -> dict[str, Any] | None:
        """A small JSON document, or None."""
        ...

    def kv_put(self, namespace: str, key: str, value: dict[str, Any], at: str) -> None:
        """Insert or replace a small JSON document."""
        ...

    def kv_delete(self, namespace: str, key: str) -> None:
        """Remove a document if present."""
        ...

    def kv_list(self, namespace: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every document of a namespace."""
        ...
