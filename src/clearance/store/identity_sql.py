"""Identity records of the service in portable SQL: agents, API keys, operators, roles, sessions.

The records hold no usable secret: API keys and dashboard session tokens are stored as SHA-256
digests of 256 random bits (a preimage search is hopeless, so a slow hash buys nothing), operator
passwords as argon2id hashes computed by the caller. Minting, hashing and verifying live in
``clearance.server.identity``; this module only reads and writes rows.

``IdentitySQL`` is a mixin over any class that provides ``transaction()`` and ``read()`` cursors
(``SQLStore`` and its backends), so the identity tables share the store's connection, migrations and
error translation (driver errors arrive here as ``StoreError`` subclasses). Until a backend inherits
it, ``identity_store(store)`` binds the same methods to an existing ``SQLStore``::

    store = open_store("sqlite:///clearance.db")
    identity = identity_store(store)
    identity.add_agent(AgentRecord("billing-bot", "production", "pays invoices", now, "alice"))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clearance.errors import ConfigError, ConflictError
from clearance.store.sql import BoundSQL, SQLAccess, SQLStore


class KeyKind(StrEnum):
    """Who holds an API key: an agent (decides) or an orchestrator (opens sessions)."""

    AGENT = "agent"
    ORCHESTRATOR = "orchestrator"


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """A registered agent, bound to one environment."""

    agent_id: str
    environment: str
    description: str
    created_at: str
    created_by: str
    disabled_at: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key's metadata and digest; the key itself is never stored."""

    key_id: str
    kind: KeyKind
    agent_id: str | None
    environment: str
    key_hash: str
    label: str
    created_at: str
    created_by: str
    revoked_at: str | None = None


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    """An operator: argon2id password hash, roles, optional TOTP secret."""

    username: str
    password_hash: str
    roles: tuple[str, ...]
    totp_secret: str | None
    created_at: str
    disabled_at: str | None = None


@dataclass(frozen=True, slots=True)
class DashboardSessionRecord:
    """A logged-in operator session, found by the digest of its cookie value."""

    token_hash: str
    username: str
    csrf_token: str
    created_at: str
    expires_at: str


_KEY_COLUMNS = (
    "key_id, kind, agent_id, environment, key_hash, label, created_at, created_by, revoked_at"
)


def _key_from_row(row: Sequence[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row[0],
        kind=KeyKind(row[1]),
        agent_id=row[2],
        environment=row[3],
        key_hash=row[4],
        label=row[5],
        created_at=row[6],
        created_by=row[7],
        revoked_at=row[8],
    )


class IdentitySQL(SQLAccess):
    """Portable SQL for identity rows; mix into a class that has ``transaction``/``read``."""

    # agents -------------------------------------------------------------------------------
    def add_agent(self, agent: AgentRecord) -> None:
        """Register an agent; ``ConflictError`` when the id is taken."""
        try:
            with self.transaction() as cur:
                cur.execute(
                    "INSERT INTO agents (agent_id, environment, description, created_at, "
                    "created_by, disabled_at) VALUES (?,?,?,?,?,?)",
                    (
                        agent.agent_id,
                        agent.environment,
                        agent.description,
                        agent.created_at,
                        agent.created_by,
                        agent.disabled_at,
                    ),
                )
        except ConflictError as exc:
            raise ConflictError(
                f"agent `{agent.agent_id}` already exists",
                hint="choose another agent id, or create a new key for the existing agent",
            ) from exc

    def get_agent(self, agent_id: str) -> AgentRecord | None:
        """The agent, or None."""
        with self.read() as cur:
            cur.execute(
                "SELECT agent_id, environment, description, created_at, created_by, disabled_at "
                "FROM agents WHERE agent_id = ?",
                (agent_id,),
            )
            row = cur.fetchone()
        return None if row is None else AgentRecord(*row)

    def list_agents(self) -> list[AgentRecord]:
        """Every agent, by id."""
        with self.read() as cur:
            cur.execute(
                "SELECT agent_id, environment, description, created_at, created_by, disabled_at "
                "FROM agents ORDER BY agent_id"
            )
            return [AgentRecord(*row) for row in cur.fetchall()]

    # API keys -----------------------------------------------------------------------------
    def add_key(self, key: ApiKeyRecord) -> None:
        """Store a key's digest and metadata."""
        with self.transaction() as cur:
            cur.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    key.key_id,
                    key.kind.value,
                    key.agent_id,
                    key.environment,
                    key.key_hash,
                    key.label,
                    key.created_at,
                    key.created_by,
                    key.revoked_at,
                ),
            )

    def key_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        """The key whose digest is ``key_hash`` (revoked or not), or None."""
        with self.read() as cur:
            cur.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,))
            row = cur.fetchone()
        return None if row is None else _key_from_row(row)

    def list_keys(self, *, agent_id: str | None = None) -> list[ApiKeyRecord]:
        """Keys (metadata only), newest first; of one agent when ``agent_id`` is given."""
        sql = f"SELECT {_KEY_COLUMNS} FROM api_keys"
        params: list[Any] = []
        if agent_id is not None:
            sql += " WHERE agent_id = ?"
            params.append(agent_id)
        sql += " ORDER BY created_at DESC, key_id"
        with self.read() as cur:
            cur.execute(sql, params)
            return [_key_from_row(row) for row in cur.fetchall()]

    def revoke_key(self, key_id: str, at: str) -> bool:
        """Revoke a key; False when no unrevoked key has that id."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL "
                "RETURNING key_id",
                (at, key_id),
            )
            return cur.fetchone() is not None

    # operators ----------------------------------------------------------------------------
    def add_operator(self, operator: OperatorRecord) -> None:
        """Create an operator with roles; ``ConflictError`` when the name is taken."""
        try:
            with self.transaction() as cur:
                cur.execute(
                    "INSERT INTO operators (username, password_hash, totp_secret, created_at, "
                    "disabled_at) VALUES (?,?,?,?,?)",
                    (
                        operator.username,
                        operator.password_hash,
                        operator.totp_secret,
                        operator.created_at,
                        operator.disabled_at,
                    ),
                )
                for role in operator.roles:
                    cur.execute(
                        "INSERT INTO operator_roles (username, role) VALUES (?,?)",
                        (operator.username, role),
                    )
        except ConflictError as exc:
            raise ConflictError(
                f"operator `{operator.username}` already exists",
                hint="choose another user name",
            ) from exc

    def get_operator(self, username: str) -> OperatorRecord | None:
        """The operator with roles, or None."""
        with self.read() as cur:
            cur.execute(
                "SELECT username, password_hash, totp_secret, created_at, disabled_at "
                "FROM operators WHERE username = ?",
                (username,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(
                "SELECT role FROM operator_roles WHERE username = ? ORDER BY role", (username,)
            )
            roles = tuple(r[0] for r in cur.fetchall())
        return OperatorRecord(
            username=row[0],
            password_hash=row[1],
            roles=roles,
            totp_secret=row[2],
            created_at=row[3],
            disabled_at=row[4],
        )

    def list_operators(self) -> list[OperatorRecord]:
        """Every operator, by name."""
        with self.read() as cur:
            cur.execute("SELECT username FROM operators ORDER BY username")
            names = [r[0] for r in cur.fetchall()]
        return [op for op in map(self.get_operator, names) if op is not None]

    def set_password_hash(self, username: str, password_hash: str) -> None:
        """Replace a password hash (argon2 parameter upgrade on login)."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE operators SET password_hash = ? WHERE username = ?",
                (password_hash, username),
            )

    def disable_operator(self, username: str, at: str) -> bool:
        """Disable an operator and end their sessions; False when unknown or already disabled."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE operators SET disabled_at = ? WHERE username = ? AND disabled_at IS NULL "
                "RETURNING username",
                (at, username),
            )
            changed = cur.fetchone() is not None
            cur.execute("DELETE FROM dashboard_sessions WHERE username = ?", (username,))
        return changed

    # dashboard sessions -------------------------------------------------------------------
    def add_session(self, session: DashboardSessionRecord) -> None:
        """Store a new dashboard session."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO dashboard_sessions (token_hash, username, csrf_token, created_at, "
                "expires_at) VALUES (?,?,?,?,?)",
                (
                    session.token_hash,
                    session.username,
                    session.csrf_token,
                    session.created_at,
                    session.expires_at,
                ),
            )

    def session_by_hash(self, token_hash: str, *, now: str) -> DashboardSessionRecord | None:
        """The unexpired session whose cookie digest is ``token_hash``, or None."""
        with self.read() as cur:
            cur.execute(
                "SELECT token_hash, username, csrf_token, created_at, expires_at "
                "FROM dashboard_sessions WHERE token_hash = ? AND expires_at > ?",
                (token_hash, now),
            )
            row = cur.fetchone()
        return None if row is None else DashboardSessionRecord(*row)

    def delete_session(self, token_hash: str) -> None:
        """Log out: forget the session."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM dashboard_sessions WHERE token_hash = ?", (token_hash,))

    def prune_sessions(self, *, now: str) -> int:
        """Delete expired sessions; return how many."""
        with self.transaction() as cur:
            cur.execute(
                "DELETE FROM dashboard_sessions WHERE expires_at <= ? RETURNING token_hash", (now,)
            )
            return len(cur.fetchall())

    # where keys are used from -----------------------------------------------------------------
    def note_key_source(
        self, key_id: str, kind: str, value: str, *, agent_id: str | None, at: str
    ) -> tuple[bool, list[str]]:
        """Record that ``key_id`` was used from ``value`` (an address or client).

        Returns whether this is a new source, and the sources of this kind known before it.
        """
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO key_sources (key_id, kind, value, agent_id, first_seen) "
                "VALUES (?,?,?,?,?) ON CONFLICT (key_id, kind, value) DO NOTHING RETURNING key_id",
                (key_id, kind, value, agent_id, at),
            )
            new = cur.fetchone() is not None
            cur.execute(
                "SELECT value FROM key_sources WHERE key_id = ? AND kind = ? AND value <> ? "
                "ORDER BY first_seen, value",
                (key_id, kind, value),
            )
            known = [str(r[0]) for r in cur.fetchall()]
        return new, known


class _BoundIdentitySQL(BoundSQL, IdentitySQL):
    """``IdentitySQL`` over an ``SQLStore`` that does not inherit the mixin itself."""


def identity_store(store: object) -> IdentitySQL:
    """The identity repository of ``store``: the store itself when it mixes in ``IdentitySQL``.

    Raises ``ConfigError`` for a store that is not SQL-backed: keys, operators and dashboard
    sessions must be shared by every gate replica.
    """
    if isinstance(store, IdentitySQL):
        return store
    if isinstance(store, SQLStore):
        return _BoundIdentitySQL(store)
    raise ConfigError(
        f"the store `{type(store).__name__}` cannot hold identities",
        hint="use the SQLite or PostgreSQL store (`open_store`)",
    )
