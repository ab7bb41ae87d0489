"""The store protocol written once in portable SQL; backends supply connections and dialect.

Both SQLite (>= 3.35) and PostgreSQL accept every statement here: ``INSERT ... ON CONFLICT``,
``RETURNING`` and ``?`` placeholders (the PostgreSQL backend rewrites them to ``%s``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import orjson

from clearance.errors import ConflictError
from clearance.model.session import Environment, Session
from clearance.store.protocol import (
    Activation,
    DecisionRecord,
    IdempotencyRecord,
    SessionState,
    StoredBundle,
)


class Cursor(Protocol):
    """The slice of a DB-API cursor the SQL store uses."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any:
        """Run one statement."""
        ...

    def fetchone(self) -> Any:
        """Next row or None."""
        ...

    def fetchall(self) -> list[Any]:
        """Remaining rows."""
        ...


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def session_from_row(row: Sequence[Any]) -> Session:
    """The session a row holds: read on every decision, so built without a second validation
    (the row was written from a validated ``Session``; the environment is still checked)."""
    return Session.model_construct(
        session_id=row[0],
        agent_id=row[1],
        task=row[2],
        environment=Environment(row[3]),
        principal=row[4],
        instruction=row[5],
        delegation=tuple(orjson.loads(row[6])),
        attended=bool(row[7]),
        labels=orjson.loads(row[8]),
        opened_at=row[9],
        closed=row[10] is not None,
    )


SESSION_COLUMNS = (
    "session_id, agent_id, task, environment, principal, instruction, delegation, attended, "
    "labels, opened_at, closed_at"
)


class SQLAccess(ABC):
    """Anything that hands out cursors: a store, or a repository mixin that runs on one."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Cursor]:
        """A write transaction; nested use joins the outer one."""

    @abstractmethod
    def read(self) -> AbstractContextManager[Cursor]:
        """A cursor for reads (joins an open transaction on this thread)."""


class BoundSQL(SQLAccess):
    """Runs a repository mixin over a store that does not inherit it: forwards the cursors.

    ``class _BoundX(BoundSQL, XSQL)`` gives ``XSQL``'s methods on any ``SQLAccess``.
    """

    def __init__(self, store: SQLAccess) -> None:
        self._store = store

    def transaction(self) -> AbstractContextManager[Cursor]:
        """The bound store's write transaction."""
        return self._store.transaction()

    def read(self) -> AbstractContextManager[Cursor]:
        """The bound store's read cursor."""
        return self._store.read()


class SQLStore(SQLAccess):
    """Portable implementation of ``Store``; subclasses provide transactions and migrations."""

    url: str

    # sessions -----------------------------------------------------------------------------
    def open_session(self, session: Session) -> None:
        """Insert a new session; ``ConflictError`` if the id exists."""
        try:
            with self.transaction() as cur:
                cur.execute(
                    f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        session.session_id,
                        session.agent_id,
                        session.task,
                        session.environment.value,
                        session.principal,
                        session.instruction,
                        _dumps(list(session.delegation)),
                        1 if session.attended else 0,
                        _dumps(session.labels),
                        session.opened_at,
                        None,
                    ),
                )
        except ConflictError as exc:
            raise ConflictError(
                f"session `{session.session_id}` already exists",
                hint="session ids are minted by the gate; open a new session instead",
            ) from exc

    def close_session(self, session_id: str, closed_at: str) -> None:
        """Mark a session closed; later decisions in it are DENY."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE sessions SET closed_at = ? WHERE session_id = ? AND closed_at IS NULL",
                (closed_at, session_id),
            )

    def session_state(self, session_id: str) -> SessionState | None:
        """The session with its taint and call counts, or None when unknown."""
        with self.read() as cur:
            cur.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?",
                (session_id,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute("SELECT tool, n FROM session_calls WHERE session_id = ?", (session_id,))
            calls = {tool: int(n) for tool, n in cur.fetchall()}
            cur.execute(
                "SELECT source FROM session_taint WHERE session_id = ? ORDER BY first_at, source",
                (session_id,),
            )
            taint = tuple(r[0] for r in cur.fetchall())
        return SessionState(session=session_from_row(row), taint=taint, calls=calls)

    def add_taint(self, session_id: str, sources: list[str], at: str) -> None:
        """Record taint sources; taint never decreases."""
        with self.transaction() as cur:
            for source in sources:
                cur.execute(
                    "INSERT INTO session_taint (session_id, source, first_at) VALUES (?,?,?) "
                    "ON CONFLICT (session_id, source) DO NOTHING",
                    (session_id, source, at),
                )

    def list_sessions(self, *, agent_id: str | None = None, limit: int = 100) -> list[Session]:
        """Recent sessions, newest first."""
        sql = f"SELECT {SESSION_COLUMNS} FROM sessions"
        params: list[Any] = []
        if agent_id is not None:
            sql += " WHERE agent_id = ?"
            params.append(agent_id)
        sql += " ORDER BY opened_at DESC LIMIT ?"
        params.append(limit)
        with self.read() as cur:
            cur.execute(sql, params)
            return [session_from_row(r) for r in cur.fetchall()]

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
        """Store a decision with its call count and idempotency record, atomically."""
        with self.transaction() as cur:
            if idempotency is not None:
                cur.execute(
                    "INSERT INTO idempotency (agent_id, key, digest, decision_id, decision, "
                    "created_at) VALUES (?,?,?,?,?,?) ON CONFLICT (agent_id, key) DO NOTHING "
                    "RETURNING decision_id",
                    (
                        idempotency.agent_id,
                        idempotency.key,
                        idempotency.digest,
                        idempotency.decision_id,
                        _dumps(idempotency.decision),
                        idempotency.created_at,
                    ),
                )
                if cur.fetchone() is None:
                    existing = self._idempotency(cur, idempotency.agent_id, idempotency.key)
                    if existing is not None:
                        return existing
            cur.execute(
                "INSERT INTO decisions (decision_id, session_id, agent_id, policy, request, "
                "facts, decision, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    record.decision_id,
                    session_id,
                    record.request.get("agent_id"),
                    record.policy,
                    _dumps(record.request),
                    _dumps(record.facts),
                    _dumps(record.decision),
                    record.created_at,
                ),
            )
            if count_call:
                cur.execute(
                    "INSERT INTO session_calls (session_id, tool, n) VALUES (?,?,1) "
                    "ON CONFLICT (session_id, tool) DO UPDATE SET n = session_calls.n + 1",
                    (session_id, tool),
                )
        return None

    @staticmethod
    def _decision_from_row(row: Sequence[Any]) -> DecisionRecord:
        return DecisionRecord(
            decision_id=row[0],
            policy=row[1],
            request=orjson.loads(row[2]),
            facts=orjson.loads(row[3]),
            decision=orjson.loads(row[4]),
            created_at=row[5],
        )

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        """The archived decision, or None."""
        with self.read() as cur:
            cur.execute(
                "SELECT decision_id, policy, request, facts, decision, created_at FROM decisions "
                "WHERE decision_id = ?",
                (decision_id,),
            )
            row = cur.fetchone()
        return None if row is None else self._decision_from_row(row)

    def recent_decisions(
        self, *, limit: int = 100, agent_id: str | None = None
    ) -> list[DecisionRecord]:
        """Newest first (decision ids are ULIDs, so they sort by time)."""
        sql = "SELECT decision_id, policy, request, facts, decision, created_at FROM decisions"
        params: list[Any] = []
        if agent_id is not None:
            sql += " WHERE agent_id = ?"
            params.append(agent_id)
        sql += " ORDER BY decision_id DESC LIMIT ?"
        params.append(limit)
        with self.read() as cur:
            cur.execute(sql, params)
            return [self._decision_from_row(r) for r in cur.fetchall()]

    @staticmethod
    def _idempotency(cur: Cursor, agent_id: str, key: str) -> IdempotencyRecord | None:
        cur.execute(
            "SELECT digest, decision_id, decision, created_at FROM idempotency "
            "WHERE agent_id = ? AND key = ?",
            (agent_id, key),
        )
        row = cur.fetchone()
        if row is None:
            return None
        return IdempotencyRecord(
            agent_id=agent_id,
            key=key,
            digest=row[0],
            decision_id=row[1],
            decision=orjson.loads(row[2]),
            created_at=row[3],
        )

    def get_idempotency(self, agent_id: str, key: str) -> IdempotencyRecord | None:
        """The stored decision for this agent and key, or None."""
        with self.read() as cur:
            return self._idempotency(cur, agent_id, key)

    def prune_idempotency(self, before: str) -> int:
        """Delete idempotency records created before ``before``; return how many."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM idempotency WHERE created_at < ? RETURNING key", (before,))
            return len(cur.fetchall())

    # bundles ------------------------------------------------------------------------------
    def put_bundle(self, bundle: StoredBundle) -> None:
        """Archive a bundle (the same digest is stored once)."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO bundles (digest, data, source_name, signature, created_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT (digest) DO NOTHING",
                (
                    bundle.digest,
                    bundle.data,
                    bundle.source_name,
                    bundle.signature,
                    bundle.created_at,
                ),
            )

    @staticmethod
    def _bundle_from_row(row: Sequence[Any]) -> StoredBundle:
        return StoredBundle(
            digest=row[0],
            data=bytes(row[1]),
            source_name=row[2],
            signature=row[3],
            created_at=row[4],
        )

    def get_bundle(self, digest: str) -> StoredBundle | None:
        """An archived bundle by digest, or None."""
        with self.read() as cur:
            cur.execute(
                "SELECT digest, data, source_name, signature, created_at FROM bundles "
                "WHERE digest = ?",
                (digest,),
            )
            row = cur.fetchone()
        return None if row is None else self._bundle_from_row(row)

    def list_bundles(self) -> list[StoredBundle]:
        """Every archived bundle, newest first."""
        with self.read() as cur:
            cur.execute(
                "SELECT digest, data, source_name, signature, created_at FROM bundles "
                "ORDER BY created_at DESC"
            )
            return [self._bundle_from_row(r) for r in cur.fetchall()]

    def activate(self, digest: str, *, at: str, by: str) -> Activation:
        """Make ``digest`` the active policy; the bundle must be archived first."""
        with self.transaction() as cur:
            cur.execute("SELECT 1 FROM bundles WHERE digest = ?", (digest,))
            if cur.fetchone() is None:
                raise ConflictError(
                    f"no archived bundle `{digest}`",
                    hint="archive the bundle (policy upload) before activating it",
                )
            cur.execute(
                "INSERT INTO activations (digest, activated_at, activated_by) VALUES (?,?,?) "
                "RETURNING seq",
                (digest, at, by),
            )
            seq = int(cur.fetchone()[0])
        return Activation(seq=seq, digest=digest, activated_at=at, activated_by=by)

    def active_digest(self) -> str | None:
        """The digest activated last, or None."""
        with self.read() as cur:
            cur.execute("SELECT digest FROM activations ORDER BY seq DESC LIMIT 1")
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def activations(self) -> list[Activation]:
        """Activation history, newest first."""
        with self.read() as cur:
            cur.execute(
                "SELECT seq, digest, activated_at, activated_by FROM activations ORDER BY seq DESC"
            )
            return [Activation(int(r[0]), r[1], r[2], r[3]) for r in cur.fetchall()]

    # key/value ----------------------------------------------------------------------------
    def kv_get(self, namespace: str, key: str) -> dict[str, Any] | None:
        """A small JSON document, or None."""
        with self.read() as cur:
            cur.execute("SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
            row = cur.fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def kv_put(self, namespace: str, key: str, value: dict[str, Any], at: str) -> None:
        """Insert or replace a small JSON document."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO kv (namespace, key, value, updated_at) VALUES (?,?,?,?) "
                "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (namespace, key, _dumps(value), at),
            )

    def kv_delete(self, namespace: str, key: str) -> None:
        """Remove a document if present."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))

    def kv_list(self, namespace: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every document of a namespace, by key."""
        with self.read() as cur:
            cur.execute("SELECT key, value FROM kv WHERE namespace = ? ORDER BY key", (namespace,))
            rows = cur.fetchall()
        for key, value in rows:
            yield key, dict(orjson.loads(value))
