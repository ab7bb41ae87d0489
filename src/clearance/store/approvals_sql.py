"""Repository methods for approvals, execution tokens, break-glass, decay and credential leases.

Written once in portable SQL, like ``sql.py``: ``?`` placeholders, ``ON CONFLICT`` and ``RETURNING``
work on SQLite (>= 3.35) and PostgreSQL alike. ``ApprovalsSQL`` is a mixin over any class that
provides ``transaction()`` and ``read()`` cursors (``SQLStore`` and its backends); until a backend
inherits it, ``approval_store(store)`` binds the same methods to an existing ``SQLStore``.

The methods here are primitives; the rules (who may vote, how many votes, when a token is valid)
live in ``clearance.approvals`` and run inside ``transaction()`` so several primitives commit
together. Two guarantees are made by the SQL itself, not by the callers:

* a token is redeemed at most once: redemption is one conditional ``UPDATE ... RETURNING``;
* an operator votes at most once per approval: ``(approval_id, operator_id)`` is the primary key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from clearance.errors import ConfigError
from clearance.store.sql import BoundSQL, SQLAccess, SQLStore


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    """One approval request as stored.

    ``request`` is the masked display copy of the request; the binding to the exact call is
    ``request_digest``. ``context`` holds the agent's reasoning and the session's task,
    environment, principal, delegation and recent history, as shown to the approver.
    """

    approval_id: str
    decision_id: str
    batch_id: str
    session_id: str
    agent_id: str
    tool: str
    action: str
    request_digest: str
    request: dict[str, Any]
    rule: str
    reason: str
    tier: str | None
    obligations: list[dict[str, Any]]
    required: int
    approver_group: str | None
    context: dict[str, Any]
    summary: str
    policy: str
    state: str
    created_at: str
    expires_at: str
    updated_at: str
    decided_at: str | None = None
    token_expires: str | None = None


@dataclass(frozen=True, slots=True)
class VoteRow:
    """One operator's vote on one approval."""

    approval_id: str
    operator_id: str
    vote: str
    comment: str | None
    at: str


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A question from an operator or an answer from the agent, in order."""

    seq: int
    approval_id: str
    author: str
    kind: str
    body: str
    at: str


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A one-time execution token, stored only as the SHA-256 of its value."""

    token_hash: str
    approval_id: str
    request_digest: str
    agent_id: str
    session_id: str
    issued_at: str
    expires_at: str
    redeemed_at: str | None = None
    revoked_at: str | None = None


@dataclass(frozen=True, slots=True)
class BreakGlassRow:
    """A break-glass override with its signature over the canonical record."""

    override_id: str
    operator_id: str
    reason: str
    scope: dict[str, Any]
    opened_at: str
    expires_at: str
    signature: str
    closed_at: str | None = None
    closed_by: str | None = None
    uses: int = 0


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A credential handed to an agent; ``grant_ref`` is the decision or token it was issued on."""

    lease_id: str
    grant_ref: str
    agent_id: str
    session_id: str
    tool: str
    environment: str
    backend: str
    backend_ref: str | None
    issued_at: str
    expires_at: str
    revoked_at: str | None = None


_APPROVAL_COLUMNS = (
    "approval_id, decision_id, batch_id, session_id, agent_id, tool, action, request_digest, "
    "request, rule, reason, tier, obligations, required, approver_group, context, summary, "
    "policy, state, created_at, expires_at, updated_at, decided_at, token_expires"
)
_TOKEN_COLUMNS = (
    "token_hash, approval_id, request_digest, agent_id, session_id, issued_at, expires_at, "  # noqa: S105
    "redeemed_at, revoked_at"
)
_BREAKGLASS_COLUMNS = (
    "override_id, operator_id, reason, scope, opened_at, expires_at, signature, closed_at, "
    "closed_by, uses"
)
_LEASE_COLUMNS = (
    "lease_id, grant_ref, agent_id, session_id, tool, environment, backend, backend_ref, "
    "issued_at, expires_at, revoked_at"
)


def _approval(row: Sequence[Any]) -> ApprovalRow:
    return ApprovalRow(
        approval_id=row[0],
        decision_id=row[1],
        batch_id=row[2],
        session_id=row[3],
        agent_id=row[4],
        tool=row[5],
        action=row[6],
        request_digest=row[7],
        request=json.loads(row[8]),
        rule=row[9],
        reason=row[10],
        tier=row[11],
        obligations=json.loads(row[12]),
        required=int(row[13]),
        approver_group=row[14],
        context=json.loads(row[15]),
        summary=row[16],
        policy=row[17],
        state=row[18],
        created_at=row[19],
        expires_at=row[20],
        updated_at=row[21],
        decided_at=row[22],
        token_expires=row[23],
    )


def _token(row: Sequence[Any]) -> TokenRow:
    return TokenRow(*row)


def _breakglass(row: Sequence[Any]) -> BreakGlassRow:
    return BreakGlassRow(
        override_id=row[0],
        operator_id=row[1],
        reason=row[2],
        scope=json.loads(row[3]),
        opened_at=row[4],
        expires_at=row[5],
        signature=row[6],
        closed_at=row[7],
        closed_by=row[8],
        uses=int(row[9]),
    )


def _lease(row: Sequence[Any]) -> LeaseRow:
    return LeaseRow(*row)


@runtime_checkable
class ApprovalStore(Protocol):
    """What approvals, break-glass and the credential broker need from the store."""

    def transaction(self) -> AbstractContextManager[Any]:
        """A write transaction; nested use joins the outer one."""
        ...

    def insert_approval(self, row: ApprovalRow) -> None:
        """Store a new pending approval."""
        ...

    def get_approval(self, approval_id: str) -> ApprovalRow | None:
        """One approval, or None."""
        ...

    def list_approvals(
        self,
        *,
        state: str | None = None,
        agent_id: str | None = None,
        batch_id: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[ApprovalRow]:
        """Approvals (created at or after ``since`` when given), oldest first."""
        ...

    def count_pending(self, agent_id: str) -> int:
        """How many approvals of ``agent_id`` are pending."""
        ...

    def lock_pending(self, approval_id: str, at: str) -> ApprovalRow | None:
        """Lock a pending approval for the rest of the transaction; None unless pending."""
        ...

    def add_vote(self, vote: VoteRow) -> bool:
        """Record a vote; False when this operator already voted on this approval."""
        ...

    def votes(self, approval_id: str) -> list[VoteRow]:
        """Every vote on an approval, in order."""
        ...

    def finish_approval(
        self, approval_id: str, state: str, at: str, *, token_expires: str | None = None
    ) -> bool:
        """Move a pending approval to ``state``; False when it was no longer pending."""
        ...

    def expire_pending(self, now: str) -> list[ApprovalRow]:
        """Mark every pending approval whose expiry has passed as expired; return them."""
        ...

    def cancel_pending(self, agent_id: str, at: str) -> list[ApprovalRow]:
        """Mark every pending approval of ``agent_id`` as cancelled; return them."""
        ...

    def add_message(self, approval_id: str, author: str, kind: str, body: str, at: str) -> int:
        """Append a question or an answer; return its sequence number."""
        ...

    def messages(self, approval_id: str) -> list[MessageRow]:
        """Questions and answers of an approval, in order."""
        ...

    def insert_token(self, row: TokenRow) -> bool:
        """Store a token; False when the approval already has one."""
        ...

    def redeem_token(
        self, token_hash: str, *, request_digest: str, agent_id: str, session_id: str, now: str
    ) -> TokenRow | None:
        """Atomically mark a matching, unexpired, unused, unrevoked token redeemed."""
        ...

    def get_token(self, token_hash: str) -> TokenRow | None:
        """A token by its hash, or None."""
        ...

    def revoke_tokens(self, agent_id: str, at: str) -> int:
        """Revoke every unredeemed token of ``agent_id``; return how many."""
        ...

    def insert_breakglass(self, row: BreakGlassRow) -> None:
        """Store a new override."""
        ...

    def get_breakglass(self, override_id: str) -> BreakGlassRow | None:
        """An override, or None."""
        ...

    def list_breakglass(self, *, active_at: str | None = None) -> list[BreakGlassRow]:
        """Every override, or only those open and unexpired at ``active_at``; newest first."""
        ...

    def close_breakglass(self, override_id: str, by: str, at: str) -> bool:
        """Close an open override; False when it was already closed."""
        ...

    def count_breakglass_use(self, override_id: str) -> None:
        """Add one to an override's use counter."""
        ...

    def decay_count(self, agent_id: str, tool: str, rule: str) -> int:
        """Incident-free approvals counted for this agent, tool and rule."""
        ...

    def decay_bump(self, agent_id: str, tool: str, rule: str, at: str) -> int:
        """Add one incident-free approval; return the new count."""
        ...

    def decay_reset(self, agent_id: str, tool: str, rule: str, at: str) -> None:
        """Start counting again from zero."""
        ...

    def insert_lease(self, row: LeaseRow) -> bool:
        """Store a lease; False when its grant was already used for a credential."""
        ...

    def active_leases(self, agent_id: str) -> list[LeaseRow]:
        """Unrevoked leases of ``agent_id``."""
        ...

    def revoke_lease(self, lease_id: str, at: str) -> None:
        """Mark a lease revoked."""
        ...


class ApprovalsSQL(SQLAccess):
    """Portable SQL for ``ApprovalStore``; mix into a class that has ``transaction``/``read``."""

    # approvals ----------------------------------------------------------------------------
    def insert_approval(self, row: ApprovalRow) -> None:
        """Store a new pending approval."""
        with self.transaction() as cur:
            cur.execute(
                f"INSERT INTO approvals ({_APPROVAL_COLUMNS}) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    row.approval_id,
                    row.decision_id,
                    row.batch_id,
                    row.session_id,
                    row.agent_id,
                    row.tool,
                    row.action,
                    row.request_digest,
                    _dumps(row.request),
                    row.rule,
                    row.reason,
                    row.tier,
                    _dumps(row.obligations),
                    row.required,
                    row.approver_group,
                    _dumps(row.context),
                    row.summary,
                    row.policy,
                    row.state,
                    row.created_at,
                    row.expires_at,
                    row.updated_at,
                    row.decided_at,
                    row.token_expires,
                ),
            )

    def get_approval(self, approval_id: str) -> ApprovalRow | None:
        """One approval, or None."""
        with self.read() as cur:
            cur.execute(
                f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE approval_id = ?", (approval_id,)
            )
            row = cur.fetchone()
        return None if row is None else _approval(row)

    def list_approvals(
        self,
        *,
        state: str | None = None,
        agent_id: str | None = None,
        batch_id: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[ApprovalRow]:
        """Approvals filtered by state, agent, batch and creation time, oldest first."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("state", state), ("agent_id", agent_id), ("batch_id", batch_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        sql = f"SELECT {_APPROVAL_COLUMNS} FROM approvals"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, approval_id LIMIT ?"
        params.append(limit)
        with self.read() as cur:
            cur.execute(sql, params)
            return [_approval(r) for r in cur.fetchall()]

    def count_pending(self, agent_id: str) -> int:
        """How many approvals of ``agent_id`` are pending."""
        with self.read() as cur:
            cur.execute(
                "SELECT count(*) FROM approvals WHERE agent_id = ? AND state = 'pending'",
                (agent_id,),
            )
            return int(cur.fetchone()[0])

    def lock_pending(self, approval_id: str, at: str) -> ApprovalRow | None:
        """Touch a pending approval so its row stays locked until the transaction ends.

        Writing the row first serialises concurrent voters on PostgreSQL (row lock) as SQLite's
        ``BEGIN IMMEDIATE`` already does, so two approvers cannot each count only their own vote.
        """
        with self.transaction() as cur:
            cur.execute(
                "UPDATE approvals SET updated_at = ? WHERE approval_id = ? AND state = 'pending' "
                f"RETURNING {_APPROVAL_COLUMNS}",
                (at, approval_id),
            )
            row = cur.fetchone()
        return None if row is None else _approval(row)

    def add_vote(self, vote: VoteRow) -> bool:
        """Record a vote; False when this operator already voted on this approval."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO approval_votes (approval_id, operator_id, vote, comment, at) "
                "VALUES (?,?,?,?,?) ON CONFLICT (approval_id, operator_id) DO NOTHING "
                "RETURNING operator_id",
                (vote.approval_id, vote.operator_id, vote.vote, vote.comment, vote.at),
            )
            return cur.fetchone() is not None

    def votes(self, approval_id: str) -> list[VoteRow]:
        """Every vote on an approval, in order."""
        with self.read() as cur:
            cur.execute(
                "SELECT approval_id, operator_id, vote, comment, at FROM approval_votes "
                "WHERE approval_id = ? ORDER BY at, operator_id",
                (approval_id,),
            )
            return [VoteRow(*r) for r in cur.fetchall()]

    def finish_approval(
        self, approval_id: str, state: str, at: str, *, token_expires: str | None = None
    ) -> bool:
        """Move a pending approval to ``state``; False when it was no longer pending."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE approvals SET state = ?, decided_at = ?, updated_at = ?, "
                "token_expires = ? WHERE approval_id = ? AND state = 'pending' "
                "RETURNING approval_id",
                (state, at, at, token_expires, approval_id),
            )
            return cur.fetchone() is not None

    def expire_pending(self, now: str) -> list[ApprovalRow]:
        """Mark every pending approval whose expiry has passed as expired; return them."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE approvals SET state = 'expired', decided_at = ?, updated_at = ? "
                f"WHERE state = 'pending' AND expires_at <= ? RETURNING {_APPROVAL_COLUMNS}",
                (now, now, now),
            )
            return [_approval(r) for r in cur.fetchall()]

    def cancel_pending(self, agent_id: str, at: str) -> list[ApprovalRow]:
        """Mark every pending approval of ``agent_id`` as cancelled; return them."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE approvals SET state = 'cancelled', decided_at = ?, updated_at = ? "
                f"WHERE agent_id = ? AND state = 'pending' RETURNING {_APPROVAL_COLUMNS}",
                (at, at, agent_id),
            )
            return [_approval(r) for r in cur.fetchall()]

    def add_message(self, approval_id: str, author: str, kind: str, body: str, at: str) -> int:
        """Append a question or an answer; return its sequence number."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO approval_messages (approval_id, author, kind, body, at) "
                "VALUES (?,?,?,?,?) RETURNING seq",
                (approval_id, author, kind, body, at),
            )
            return int(cur.fetchone()[0])

    def messages(self, approval_id: str) -> list[MessageRow]:
        """Questions and answers of an approval, in order."""
        with self.read() as cur:
            cur.execute(
                "SELECT seq, approval_id, author, kind, body, at FROM approval_messages "
                "WHERE approval_id = ? ORDER BY seq",
                (approval_id,),
            )
            return [MessageRow(int(r[0]), *r[1:]) for r in cur.fetchall()]

    # tokens -------------------------------------------------------------------------------
    def insert_token(self, row: TokenRow) -> bool:
        """Store a token; False when the approval already has one (one token per approval)."""
        with self.transaction() as cur:
            cur.execute(
                f"INSERT INTO approval_tokens ({_TOKEN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT DO NOTHING RETURNING token_hash",
                (
                    row.token_hash,
                    row.approval_id,
                    row.request_digest,
                    row.agent_id,
                    row.session_id,
                    row.issued_at,
                    row.expires_at,
                    row.redeemed_at,
                    row.revoked_at,
                ),
            )
            return cur.fetchone() is not None

    def redeem_token(
        self, token_hash: str, *, request_digest: str, agent_id: str, session_id: str, now: str
    ) -> TokenRow | None:
        """Atomically mark a matching, unexpired, unused, unrevoked token redeemed.

        Every binding is in the ``WHERE`` clause, so a token presented with other arguments, by
        another agent or session, or too late is left untouched (the rightful holder can still
        use it) and a token is never redeemed twice, even by concurrent callers.
        """
        with self.transaction() as cur:
            cur.execute(
                "UPDATE approval_tokens SET redeemed_at = ? WHERE token_hash = ? "
                "AND redeemed_at IS NULL AND revoked_at IS NULL AND request_digest = ? "
                f"AND agent_id = ? AND session_id = ? AND expires_at > ? RETURNING {_TOKEN_COLUMNS}",
                (now, token_hash, request_digest, agent_id, session_id, now),
            )
            row = cur.fetchone()
        return None if row is None else _token(row)

    def get_token(self, token_hash: str) -> TokenRow | None:
        """A token by its hash, or None."""
        with self.read() as cur:
            cur.execute(
                f"SELECT {_TOKEN_COLUMNS} FROM approval_tokens WHERE token_hash = ?", (token_hash,)
            )
            row = cur.fetchone()
        return None if row is None else _token(row)

    def revoke_tokens(self, agent_id: str, at: str) -> int:
        """Revoke every unredeemed token of ``agent_id``; return how many."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE approval_tokens SET revoked_at = ? WHERE agent_id = ? "
                "AND redeemed_at IS NULL AND revoked_at IS NULL RETURNING token_hash",
                (at, agent_id),
            )
            return len(cur.fetchall())

    # break-glass --------------------------------------------------------------------------
    def insert_breakglass(self, row: BreakGlassRow) -> None:
        """Store a new override."""
        with self.transaction() as cur:
            cur.execute(
                f"INSERT INTO breakglass ({_BREAKGLASS_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    row.override_id,
                    row.operator_id,
                    row.reason,
                    _dumps(row.scope),
                    row.opened_at,
                    row.expires_at,
                    row.signature,
                    row.closed_at,
                    row.closed_by,
                    row.uses,
                ),
            )

    def get_breakglass(self, override_id: str) -> BreakGlassRow | None:
        """An override, or None."""
        with self.read() as cur:
            cur.execute(
                f"SELECT {_BREAKGLASS_COLUMNS} FROM breakglass WHERE override_id = ?",
                (override_id,),
            )
            row = cur.fetchone()
        return None if row is None else _breakglass(row)

    def list_breakglass(self, *, active_at: str | None = None) -> list[BreakGlassRow]:
        """Every override, or only those open and unexpired at ``active_at``; newest first."""
        sql = f"SELECT {_BREAKGLASS_COLUMNS} FROM breakglass"
        params: list[Any] = []
        if active_at is not None:
            sql += " WHERE closed_at IS NULL AND expires_at > ? AND opened_at <= ?"
            params += [active_at, active_at]
        sql += " ORDER BY opened_at DESC, override_id DESC"
        with self.read() as cur:
            cur.execute(sql, params)
            return [_breakglass(r) for r in cur.fetchall()]

    def close_breakglass(self, override_id: str, by: str, at: str) -> bool:
        """Close an open override; False when it was already closed or does not exist."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE breakglass SET closed_at = ?, closed_by = ? WHERE override_id = ? "
                "AND closed_at IS NULL RETURNING override_id",
                (at, by, override_id),
            )
            return cur.fetchone() is not None

    def count_breakglass_use(self, override_id: str) -> None:
        """Add one to an override's use counter."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE breakglass SET uses = uses + 1 WHERE override_id = ?", (override_id,)
            )

    # decay --------------------------------------------------------------------------------
    def decay_count(self, agent_id: str, tool: str, rule: str) -> int:
        """Incident-free approvals counted for this agent, tool and rule."""
        with self.read() as cur:
            cur.execute(
                "SELECT n FROM approval_decay WHERE agent_id = ? AND tool = ? AND rule = ?",
                (agent_id, tool, rule),
            )
            row = cur.fetchone()
        return 0 if row is None else int(row[0])

    def decay_bump(self, agent_id: str, tool: str, rule: str, at: str) -> int:
        """Add one incident-free approval; return the new count."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO approval_decay (agent_id, tool, rule, n, updated_at) "
                "VALUES (?,?,?,1,?) ON CONFLICT (agent_id, tool, rule) DO UPDATE SET "
                "n = approval_decay.n + 1, updated_at = excluded.updated_at RETURNING n",
                (agent_id, tool, rule, at),
            )
            return int(cur.fetchone()[0])

    def decay_reset(self, agent_id: str, tool: str, rule: str, at: str) -> None:
        """Start counting again from zero."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO approval_decay (agent_id, tool, rule, n, updated_at) "
                "VALUES (?,?,?,0,?) ON CONFLICT (agent_id, tool, rule) DO UPDATE SET "
                "n = 0, updated_at = excluded.updated_at",
                (agent_id, tool, rule, at),
            )

    # credential leases --------------------------------------------------------------------
    def insert_lease(self, row: LeaseRow) -> bool:
        """Store a lease; False when its grant was already used for a credential."""
        with self.transaction() as cur:
            cur.execute(
                f"INSERT INTO credential_leases ({_LEASE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT DO NOTHING RETURNING lease_id",
                (
                    row.lease_id,
                    row.grant_ref,
                    row.agent_id,
                    row.session_id,
                    row.tool,
                    row.environment,
                    row.backend,
                    row.backend_ref,
                    row.issued_at,
                    row.expires_at,
                    row.revoked_at,
                ),
            )
            return cur.fetchone() is not None

    def active_leases(self, agent_id: str) -> list[LeaseRow]:
        """Unrevoked leases of ``agent_id``, oldest first."""
        with self.read() as cur:
            cur.execute(
                f"SELECT {_LEASE_COLUMNS} FROM credential_leases WHERE agent_id = ? "
                "AND revoked_at IS NULL ORDER BY issued_at, lease_id",
                (agent_id,),
            )
            return [_lease(r) for r in cur.fetchall()]

    def revoke_lease(self, lease_id: str, at: str) -> None:
        """Mark a lease revoked."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE credential_leases SET revoked_at = ? WHERE lease_id = ? "
                "AND revoked_at IS NULL",
                (at, lease_id),
            )


class _BoundApprovalsSQL(BoundSQL, ApprovalsSQL):
    """``ApprovalsSQL`` over an ``SQLStore`` that does not inherit the mixin itself."""


def approval_store(store: object) -> ApprovalStore:
    """The approval repository of ``store``: the store itself when it mixes in ``ApprovalsSQL``.

    Raises ``ConfigError`` for a store that is not SQL-backed: approvals, tokens and leases must
    be shared by every gate replica, so an in-memory stand-in would silently break single use.
    """
    if isinstance(store, ApprovalsSQL):
        return store
    if isinstance(store, SQLStore):
        return _BoundApprovalsSQL(store)
    raise ConfigError(
        f"the store `{type(store).__name__}` cannot hold approvals",
        hint="use the SQLite or PostgreSQL store (`open_store`)",
    )
