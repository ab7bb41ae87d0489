"""``ApprovalService``: approval requests, operator decisions and one-time execution tokens.

Life of an approval (``state``)::

    pending --approve x required--> approved --claim--> token --redeem (once)--> PERMIT
       |--deny (any one)----------> denied
       |--deadline passes---------> expired   (a DENY, recorded)
       '--agent killed------------> cancelled

The gate calls ``create`` for an APPROVAL verdict and ``redeem`` for a request that carries an
``approval_token``; both match the gate's ``ApprovalHandler`` protocol. Operators call ``approve``,
``deny``, ``explain`` and the batch variants (each refuses agent credentials, self-approval and a
second vote by the same person). The agent, holding the signed intent from its APPROVAL decision,
polls ``status`` (or waits with ``clearance.approvals.waiting``) and receives the execution token
once, then resubmits the identical request with it.

Every state change writes its audit event inside the same store transaction, so a change the
audit log refused is rolled back. A token that fails for any reason gives the caller one opaque
DENY ``invalid-token``; the precise reason is written to the audit log only.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from clearance.approvals.backlog import BacklogMonitor
from clearance.approvals.events import EventSink
from clearance.approvals.expiry import deadline, is_expired, iso
from clearance.approvals.notify import Notification, Notifier, notify_all
from clearance.approvals.rules import (
    ROLE_APPROVER,
    ROLE_VIEWER,
    Operator,
    approver_group,
    check_member,
    check_not_self,
    require_role,
    required_approvals,
)
from clearance.approvals.settings import ApprovalSettings, resolve
from clearance.approvals.summary import default_template, mask_args
from clearance.approvals.tokens import IntentClaims, IntentKey, RejectedToken, new_token, token_hash
from clearance.errors import (
    ApprovalError,
    ApprovalExpiredError,
    ApproverNotAllowedError,
    InvalidTokenError,
)
from clearance.formats.canonical import request_digest
from clearance.model.decision import Obligation, Outcome, Verdict
from clearance.model.request import Request
from clearance.model.tools import RiskTier
from clearance.store.approvals_sql import (
    ApprovalRow,
    ApprovalStore,
    MessageRow,
    TokenRow,
    VoteRow,
    approval_store,
)
from clearance.store.protocol import SessionState

log = logging.getLogger("clearance.approvals")

INVALID_TOKEN_RULE = "invalid-token"  # noqa: S105 - a rule name  # noqa: S105 - a rule name, not a secret
DRILL_RULE = "kill-switch-drill"
INVALID_TOKEN_REASON = "the execution token is not valid for this request"  # noqa: S105  # noqa: S105
_MAX_TEXT = 2000


class State(StrEnum):
    """Where an approval request is in its life."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ApprovalTicket:
    """What the agent gets with an APPROVAL decision (the gate's ``ApprovalTicket`` shape)."""

    approval_id: str
    expires: str
    intent: str


@dataclass(frozen=True, slots=True)
class ApprovalView:
    """Everything an operator sees about one approval request."""

    row: ApprovalRow
    votes: tuple[VoteRow, ...]
    messages: tuple[MessageRow, ...]

    @property
    def approval_id(self) -> str:
        """The approval id."""
        return self.row.approval_id

    @property
    def state(self) -> State:
        """The current state."""
        return State(self.row.state)

    @property
    def approvers(self) -> tuple[str, ...]:
        """Operators who approved, in order."""
        return tuple(v.operator_id for v in self.votes if v.vote == "approve")


@dataclass(frozen=True, slots=True)
class Batch:
    """Related pending requests (one session) shown as one item; each keeps its own digest."""

    batch_id: str
    items: tuple[ApprovalView, ...]


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """What the agent may learn about its own approval request.

    ``token`` is set once, on the first status read after approval; ``reason`` carries the
    reviewer's comment on a denial (so the agent can re-plan); ``questions`` are the operators'
    "explain" questions, still pending an answer.
    """

    approval_id: str
    state: State
    expires_at: str
    token: str | None = None
    token_expires: str | None = None
    reason: str | None = None
    questions: tuple[str, ...] = ()


def batch_id_for(session_id: str) -> str:
    """Batches group the requests of one session; the id does not reveal the session id."""
    return "bat_" + hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:20]


def fresh_digest(request: Request) -> str:
    """The request digest computed now from the request's fields.

    ``Request.digest`` is cached on the instance, and pydantic's ``model_copy(update=...)`` copies
    that cache: a copy with swapped arguments would still carry the digest of the original.
    Approvals bind to what the request *is*, so they never trust the cached value.
    """
    return request_digest(
        agent_id=request.agent_id,
        session_id=request.session_id,
        tool=request.tool,
        action=request.action,
        args=request.args,
        target=request.target,
    )


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:_MAX_TEXT]


class ApprovalService:
    """Approval requests and execution tokens over the shared store (see module docstring)."""

    def __init__(
        self,
        store: object,
        *,
        key: IntentKey,
        audit: EventSink,
        settings: ApprovalSettings | Callable[[], ApprovalSettings] = ApprovalSettings(),  # noqa: B008 - frozen value
        notifiers: Sequence[Notifier] = (),
        backlog: BacklogMonitor | None = None,
    ) -> None:
        self.store: ApprovalStore = approval_store(store)
        self._history_source = store
        self.key = key
        self.audit = audit
        self._settings = settings
        self.notifiers = list(notifiers)
        self.backlog = backlog
        self._changed = threading.Condition()

    @property
    def settings(self) -> ApprovalSettings:
        """The settings of the policy in force."""
        return resolve(self._settings)

    # gate hooks ---------------------------------------------------------------------------
    def create(
        self,
        request: Request,
        state: SessionState,
        verdict: Verdict,
        decision_id: str,
        policy_digest: str,
        now: datetime,
    ) -> ApprovalTicket:
        """Persist a pending approval for exactly this request and return its signed ticket."""
        settings = self.settings
        session = state.session
        approval_id = "apr_" + decision_id
        at = iso(now)
        expires = deadline(now, settings.timeout)
        masked_args = mask_args(request.args, settings.mask_fields)
        context = {
            "reasoning": _clip(request.reasoning),
            "task": session.task,
            "environment": session.environment.value,
            "principal": session.principal,
            "instruction": _clip(session.instruction),
            "delegation": list(session.delegation),
            "history": self._history(request, settings.history),
        }
        template = settings.templates.get(request.tool) or default_template(
            request.args, target=request.target, reasoning=request.reasoning
        )
        summary = template.render(
            {
                "args": request.args,
                "request": {
                    "agent_id": request.agent_id,
                    "tool": request.tool,
                    "action": request.action,
                    "target": request.target,
                    "reasoning": request.reasoning,
                },
                "session": {
                    "task": session.task,
                    "environment": session.environment.value,
                    "principal": session.principal,
                },
            },
            mask=settings.mask_fields,
        )
        row = ApprovalRow(
            approval_id=approval_id,
            decision_id=decision_id,
            batch_id=batch_id_for(request.session_id),
            session_id=request.session_id,
            agent_id=request.agent_id,
            tool=request.tool,
            action=request.action,
            request_digest=fresh_digest(request),
            request={
                "tool": request.tool,
                "action": request.action,
                "target": request.target,
                "args": masked_args,
            },
            rule=verdict.rule,
            reason=verdict.reason,
            tier=verdict.tier.value if verdict.tier else None,
            obligations=[o.model_dump(mode="json") for o in verdict.obligations],
            required=required_approvals(verdict, request.tool, settings),
            approver_group=approver_group(verdict, settings),
            context=context,
            summary=summary,
            policy=policy_digest,
            state=State.PENDING.value,
            created_at=at,
            expires_at=expires,
            updated_at=at,
        )
        with self.store.transaction():
            self.store.insert_approval(row)
            self.audit.record_event(
                "approval.created",
                {"approval_id": approval_id, "agent_id": row.agent_id, "decision_id": decision_id},
                {
                    "request_digest": row.request_digest,
                    "rule": row.rule,
                    "tier": row.tier,
                    "required": row.required,
                    "group": row.approver_group,
                    "expires_at": expires,
                    "summary": summary,
                },
            )
        intent = self.key.sign_intent(
            IntentClaims(
                approval_id=approval_id,
                request_digest=row.request_digest,
                agent_id=row.agent_id,
                session_id=row.session_id,
                expires=expires,
            )
        )
        self._notify("created", row)
        if self.backlog is not None:
            self.backlog.observe(row.agent_id, now)
        return ApprovalTicket(approval_id=approval_id, expires=expires, intent=intent)

    def redeem(self, request: Request, state: SessionState, now: datetime) -> Verdict:  # noqa: ARG002 - protocol shape
        """PERMIT ``approval:<id>`` for the approved call; one opaque DENY for any bad token."""
        try:
            return self._redeem(request, now)
        except RejectedToken as rejected:
            self._record_rejection(request, rejected.reason)
        return Verdict(outcome=Outcome.DENY, rule=INVALID_TOKEN_RULE, reason=INVALID_TOKEN_REASON)

    def _redeem(self, request: Request, now: datetime) -> Verdict:
        hashed = token_hash(request.approval_token or "")
        digest = fresh_digest(request)
        with self.store.transaction():
            token = self.store.redeem_token(
                hashed,
                request_digest=digest,
                agent_id=request.agent_id,
                session_id=request.session_id,
                now=iso(now),
            )
            if token is None:
                raise RejectedToken(self._why_not_redeemed(hashed, request, digest, now))
            row = self.store.get_approval(token.approval_id)
            if row is None or row.state != State.APPROVED.value:
                raise RejectedToken("approval-not-approved")
            approvers = [
                v.operator_id for v in self.store.votes(row.approval_id) if v.vote == "approve"
            ]
            self.audit.record_event(
                "approval.token_redeemed",
                {"approval_id": row.approval_id, "agent_id": row.agent_id},
                {"request_digest": row.request_digest},
            )
        return Verdict(
            outcome=Outcome.PERMIT,
            rule=f"approval:{row.approval_id}",
            reason=f"approved by {', '.join(approvers)} under rule {row.rule}",
            tier=RiskTier(row.tier) if row.tier else None,
            obligations=tuple(Obligation.model_validate(o) for o in row.obligations),
        )

    def _why_not_redeemed(self, hashed: str, request: Request, digest: str, now: datetime) -> str:
        token = self.store.get_token(hashed)
        if token is None:
            return "unknown-token"
        checks = (
            (token.redeemed_at is not None, "replayed"),
            (token.revoked_at is not None, "revoked"),
            (token.agent_id != request.agent_id, "other-agent"),
            (token.session_id != request.session_id, "other-session"),
            (token.request_digest != digest, "request-mismatch"),
            (is_expired(token.expires_at, now), "expired"),
        )
        return next((reason for failed, reason in checks if failed), "not-redeemable")

    def _record_rejection(self, request: Request, reason: str) -> None:
        try:
            self.audit.record_event(
                "approval.token_rejected",
                {"agent_id": request.agent_id, "session_id": request.session_id},
                {"reason": reason, "request_digest": fresh_digest(request), "tool": request.tool},
            )
        except Exception:
            log.exception("could not record a rejected token (%s)", reason)

    # operator actions ---------------------------------------------------------------------
    def approve(
        self, approval_id: str, operator: Operator, now: datetime, *, comment: str | None = None
    ) -> ApprovalView:
        """Add ``operator``'s approval; the request is approved once enough distinct people agree."""
        require_role(operator, ROLE_APPROVER)
        outcome = self._vote(approval_id, operator, "approve", comment, now)
        return self._after_vote(approval_id, outcome)

    def deny(
        self, approval_id: str, operator: Operator, now: datetime, *, comment: str | None = None
    ) -> ApprovalView:
        """Deny the request: one deny from an eligible operator ends it."""
        require_role(operator, ROLE_APPROVER)
        outcome = self._vote(approval_id, operator, "deny", comment, now)
        return self._after_vote(approval_id, outcome)

    def approve_batch(
        self, approval_ids: Sequence[str], operator: Operator, now: datetime
    ) -> list[ApprovalView]:
        """Approve exactly the listed requests, all or none (one transaction)."""
        return self._batch(approval_ids, operator, "approve", now)

    def deny_batch(
        self, approval_ids: Sequence[str], operator: Operator, now: datetime
    ) -> list[ApprovalView]:
        """Deny exactly the listed requests, all or none (one transaction)."""
        return self._batch(approval_ids, operator, "deny", now)

    def _batch(
        self, approval_ids: Sequence[str], operator: Operator, vote: str, now: datetime
    ) -> list[ApprovalView]:
        require_role(operator, ROLE_APPROVER)
        if len(set(approval_ids)) != len(approval_ids):
            raise ApprovalError("the batch lists an approval twice")
        outcomes: list[tuple[str, _VoteOutcome]] = []
        with self.store.transaction():
            for approval_id in approval_ids:
                outcome = self._vote(approval_id, operator, vote, None, now)
                if outcome.error is not None:
                    raise outcome.error
                outcomes.append((approval_id, outcome))
        return [self._after_vote(approval_id, outcome) for approval_id, outcome in outcomes]

    def explain(
        self, approval_id: str, operator: Operator, question: str, now: datetime
    ) -> ApprovalView:
        """Ask the agent to explain: the request stays pending and the agent sees the question."""
        require_role(operator, ROLE_APPROVER)
        row = self._pending_for(approval_id, operator, now)
        with self.store.transaction():
            self.store.add_message(
                approval_id, operator.id, "question", question[:_MAX_TEXT], iso(now)
            )
            self.audit.record_event(
                "approval.question",
                {"approval_id": approval_id, "operator": operator.id},
                {"question": question[:_MAX_TEXT]},
            )
        self._notify("question", row, detail=question[:_MAX_TEXT])
        return self.show(approval_id, operator)

    def answer(
        self, approval_id: str, *, agent_id: str, session_id: str, text: str, now: datetime
    ) -> None:
        """The agent's answer to a question (untrusted text, shown to the approvers)."""
        row = self.store.get_approval(approval_id)
        if row is None or row.agent_id != agent_id or row.session_id != session_id:
            raise ApprovalError(f"no approval `{approval_id}` for this agent")
        if row.state != State.PENDING.value:
            raise ApprovalError(f"approval `{approval_id}` is {row.state}, not pending")
        with self.store.transaction():
            self.store.add_message(approval_id, agent_id, "answer", text[:_MAX_TEXT], iso(now))
            self.audit.record_event(
                "approval.answer",
                {"approval_id": approval_id, "agent_id": agent_id},
                {"answer": text[:_MAX_TEXT]},
            )
        self._notify("answer", row, detail=text[:_MAX_TEXT])

    def list_pending(
        self, operator: Operator, now: datetime, *, agent_id: str | None = None
    ) -> list[ApprovalView]:
        """Pending requests (expiring the overdue ones first), oldest first."""
        require_role(operator, ROLE_APPROVER, ROLE_VIEWER)
        self.expire_due(now)
        rows = self.store.list_approvals(state=State.PENDING.value, agent_id=agent_id, limit=1000)
        return [self._view(r) for r in rows]

    def batches(self, operator: Operator, now: datetime) -> list[Batch]:
        """Pending requests grouped by session: approve all, deny all, or review each."""
        grouped: dict[str, list[ApprovalView]] = {}
        for view in self.list_pending(operator, now):
            grouped.setdefault(view.row.batch_id, []).append(view)
        return [Batch(batch_id=b, items=tuple(items)) for b, items in grouped.items()]

    def review_each(self, batch_id: str, operator: Operator, now: datetime) -> list[ApprovalView]:
        """The items of one batch, to decide one by one."""
        require_role(operator, ROLE_APPROVER, ROLE_VIEWER)
        self.expire_due(now)
        rows = self.store.list_approvals(state=State.PENDING.value, batch_id=batch_id, limit=1000)
        return [self._view(r) for r in rows]

    def show(self, approval_id: str, operator: Operator) -> ApprovalView:
        """One approval with its votes and messages."""
        require_role(operator, ROLE_APPROVER, ROLE_VIEWER)
        row = self.store.get_approval(approval_id)
        if row is None:
            raise ApprovalError(
                f"no approval `{approval_id}`", hint="list them with `clearance approvals list`"
            )
        return self._view(row)

    def expire_due(self, now: datetime) -> list[str]:
        """Expire every pending request past its deadline; each is recorded as a DENY."""
        with self.store.transaction():
            expired = self.store.expire_pending(iso(now))
            for row in expired:
                self._record_end(row, State.EXPIRED, "expired before enough approvals", now)
        for row in expired:
            self._notify("expired", row)
        if expired:
            self._wake()
        return [row.approval_id for row in expired]

    def cancel_for(self, agent_id: str, now: datetime) -> int:
        """Cancel every pending request of ``agent_id`` (kill switch); return how many."""
        with self.store.transaction():
            cancelled = self.store.cancel_pending(agent_id, iso(now))
            for row in cancelled:
                self._record_end(row, State.CANCELLED, "the agent was stopped", now)
        for row in cancelled:
            self._notify("cancelled", row)
        self._wake()
        return len(cancelled)

    def revoke_tokens_for(self, agent_id: str, now: datetime) -> int:
        """Revoke every unredeemed execution token of ``agent_id`` (kill switch); return how many."""
        with self.store.transaction():
            n = self.store.revoke_tokens(agent_id, iso(now))
            if n:
                self.audit.record_event(
                    "approval.tokens_revoked", {"agent_id": agent_id}, {"count": n}
                )
        return n

    def pending_count(self, agent_id: str) -> int:
        """How many requests of ``agent_id`` wait for a human."""
        return self.store.count_pending(agent_id)

    # the agent's side ---------------------------------------------------------------------
    def status(
        self, approval_id: str, *, intent: str, agent_id: str, session_id: str, now: datetime
    ) -> AgentStatus:
        """The agent's view of its request; hands out the execution token once after approval.

        The signed intent proves the caller is the agent and session the request was made in.
        Raises ``InvalidTokenError`` (opaque; reason audited) for a bad intent, an intent for
        another agent or session, or a token that was already handed out.
        """
        try:
            return self._status(approval_id, intent, agent_id, session_id, now)
        except RejectedToken as rejected:
            self._record_claim_rejection(approval_id, agent_id, rejected.reason)
            raise InvalidTokenError from None

    def _status(
        self, approval_id: str, intent: str, agent_id: str, session_id: str, now: datetime
    ) -> AgentStatus:
        claims = self.key.verify_intent(intent)
        if claims.approval_id != approval_id:
            raise RejectedToken("intent-for-other-approval")
        if claims.agent_id != agent_id or claims.session_id != session_id:
            raise RejectedToken("intent-for-other-agent-or-session")
        row = self.store.get_approval(approval_id)
        if row is None or row.request_digest != claims.request_digest:
            raise RejectedToken("intent-does-not-match-approval")
        if row.state == State.PENDING.value and is_expired(row.expires_at, now):
            self.expire_due(now)
            row = self.store.get_approval(approval_id) or row
        messages = self.store.messages(approval_id)
        answered = {m.seq for m in messages if m.kind == "answer"}
        questions = tuple(
            m.body
            for m in messages
            if m.kind == "question" and not any(a > m.seq for a in answered)
        )
        base = AgentStatus(
            approval_id=approval_id,
            state=State(row.state),
            expires_at=row.expires_at,
            questions=questions,
        )
        if row.state == State.DENIED.value:
            comments = [v.comment for v in self.store.votes(approval_id) if v.vote == "deny"]
            return replace(base, reason=next((c for c in comments if c), "denied by an approver"))
        if row.state == State.EXPIRED.value:
            return replace(base, reason="no decision before the deadline")
        if row.state != State.APPROVED.value:
            return base
        if is_expired(row.token_expires or iso(now), now):
            return replace(
                base, state=State.EXPIRED, reason="approved, but the token was not claimed in time"
            )
        token, expires = self._issue_token(row, now)
        return replace(base, token=token, token_expires=expires)

    def issue_drill_token(
        self, request: Request, *, operator_id: str, ttl: timedelta, now: datetime
    ) -> str:
        """A live execution token for a kill-switch drill's scratch request.

        A drill must prove that halting an agent revokes the tokens it holds, which needs a real
        token in the real store. The approval behind it is recorded as approved by the operator
        who runs the drill (an ``approval.drill`` audit event says so), binds only the scratch
        request's digest, and lives ``ttl`` at most; it never passes through an approver group
        because the scratch tool is granted by no policy and dispatches nothing.
        """
        at = iso(now)
        expires = deadline(now, ttl)
        approval_id = "apr_drill_" + token_hash(new_token())[:26]
        row = ApprovalRow(
            approval_id=approval_id,
            decision_id=approval_id,
            batch_id=batch_id_for(request.session_id),
            session_id=request.session_id,
            agent_id=request.agent_id,
            tool=request.tool,
            action=request.action,
            request_digest=fresh_digest(request),
            request={"tool": request.tool, "action": request.action, "args": request.args},
            rule=DRILL_RULE,
            reason=f"kill-switch drill run by {operator_id}",
            tier=None,
            obligations=[],
            required=1,
            approver_group=None,
            context={"drill": True},
            summary=f"kill-switch drill token for {request.agent_id}",
            policy="",
            state=State.APPROVED.value,
            created_at=at,
            expires_at=expires,
            updated_at=at,
            decided_at=at,
            token_expires=expires,
        )
        with self.store.transaction():
            self.store.insert_approval(row)
            self.audit.record_event(
                "approval.drill",
                {"approval_id": approval_id, "agent_id": row.agent_id, "operator": operator_id},
                {"request_digest": row.request_digest, "expires_at": expires},
            )
        token, _ = self._issue_token(row, now)
        return token

    def _issue_token(self, row: ApprovalRow, now: datetime) -> tuple[str, str]:
        expires = row.token_expires or iso(now)
        token = new_token()
        with self.store.transaction():
            if not self.store.insert_token(
                TokenRow(
                    token_hash=token_hash(token),
                    approval_id=row.approval_id,
                    request_digest=row.request_digest,
                    agent_id=row.agent_id,
                    session_id=row.session_id,
                    issued_at=iso(now),
                    expires_at=expires,
                )
            ):
                raise RejectedToken("token-already-issued")
            self.audit.record_event(
                "approval.token_issued",
                {"approval_id": row.approval_id, "agent_id": row.agent_id},
                {"expires_at": expires},
            )
        return token, expires

    def _record_claim_rejection(self, approval_id: str, agent_id: str, reason: str) -> None:
        try:
            self.audit.record_event(
                "approval.token_rejected",
                {"approval_id": approval_id, "agent_id": agent_id},
                {"reason": reason},
            )
        except Exception:
            log.exception("could not record a rejected claim (%s)", reason)

    def verify_token(
        self, token: str, *, agent_id: str, session_id: str, tool: str, now: datetime
    ) -> str:
        """The approval id of a live token for this agent, session and tool, without using it up.

        For the credential broker: a token is good for a credential while it is unrevoked and
        unexpired, whether or not the gate has redeemed it yet. Raises ``InvalidTokenError``
        (opaque; the reason is audited) otherwise.
        """
        try:
            row = self.store.get_token(token_hash(token))
            if row is None:
                raise RejectedToken("unknown-token")
            if row.revoked_at is not None:
                raise RejectedToken("revoked")
            if row.agent_id != agent_id or row.session_id != session_id:
                raise RejectedToken("other-agent-or-session")
            if is_expired(row.expires_at, now):
                raise RejectedToken("expired")
            approval = self.store.get_approval(row.approval_id)
            if approval is None or approval.tool != tool:
                raise RejectedToken("other-tool")
        except RejectedToken as rejected:
            self._record_claim_rejection("-", agent_id, rejected.reason)
            raise InvalidTokenError from None
        return row.approval_id

    def wait_changed(self, timeout_s: float) -> None:
        """Block until some approval changes in this process, or ``timeout_s`` passes."""
        with self._changed:
            self._changed.wait(timeout_s)

    # internals ----------------------------------------------------------------------------
    def _pending_for(self, approval_id: str, operator: Operator, now: datetime) -> ApprovalRow:
        row = self.store.get_approval(approval_id)
        if row is None:
            raise ApprovalError(f"no approval `{approval_id}`")
        check_member(operator, row.approver_group, self.settings)
        if row.state != State.PENDING.value:
            raise ApprovalError(f"approval `{approval_id}` is already {row.state}")
        if is_expired(row.expires_at, now):
            self.expire_due(now)
            raise ApprovalExpiredError(f"approval `{approval_id}` expired at {row.expires_at}")
        return row

    def _vote(
        self, approval_id: str, operator: Operator, vote: str, comment: str | None, now: datetime
    ) -> _VoteOutcome:
        """Record one vote; returns what happened, with the error to raise after commit."""
        row = self.store.get_approval(approval_id)
        if row is None:
            return _VoteOutcome(error=ApprovalError(f"no approval `{approval_id}`"))
        check_member(operator, row.approver_group, self.settings)
        if vote == "approve":
            check_not_self(operator, row.agent_id, row.context)
        at = iso(now)
        with self.store.transaction():
            locked = self.store.lock_pending(approval_id, at)
            if locked is None:
                return _VoteOutcome(
                    error=ApprovalError(f"approval `{approval_id}` is no longer pending")
                )
            if is_expired(locked.expires_at, now):
                self.store.finish_approval(approval_id, State.EXPIRED.value, at)
                self._record_end(locked, State.EXPIRED, "expired before enough approvals", now)
                return _VoteOutcome(
                    ended=State.EXPIRED,
                    error=ApprovalExpiredError(
                        f"approval `{approval_id}` expired at {locked.expires_at}"
                    ),
                )
            if not self.store.add_vote(VoteRow(approval_id, operator.id, vote, _clip(comment), at)):
                raise ApproverNotAllowedError(
                    f"operator `{operator.id}` already voted on `{approval_id}`",
                    hint="a critical request needs a different second approver",
                )
            self.audit.record_event(
                "approval.vote",
                {"approval_id": approval_id, "operator": operator.id},
                {"vote": vote, "comment": _clip(comment)},
            )
            if vote == "deny":
                self.store.finish_approval(approval_id, State.DENIED.value, at)
                self._record_end(
                    locked,
                    State.DENIED,
                    comment or f"denied by {operator.id}",
                    now,
                    approvers=(operator.id,),
                )
                return _VoteOutcome(ended=State.DENIED)
            approvals = [v for v in self.store.votes(approval_id) if v.vote == "approve"]
            if len({v.operator_id for v in approvals}) < locked.required:
                return _VoteOutcome()
            token_expires = deadline(now, self.settings.token_ttl)
            self.store.finish_approval(
                approval_id, State.APPROVED.value, at, token_expires=token_expires
            )
            self._record_end(
                locked,
                State.APPROVED,
                "approved",
                now,
                approvers=tuple(dict.fromkeys(v.operator_id for v in approvals)),
            )
            return _VoteOutcome(ended=State.APPROVED)

    def _after_vote(self, approval_id: str, outcome: _VoteOutcome) -> ApprovalView:
        view = self._view_of(approval_id)
        if outcome.ended is not None:
            self._notify(outcome.ended.value, view.row)
            self._wake()
        if outcome.error is not None:
            raise outcome.error
        return view

    def _record_end(
        self,
        row: ApprovalRow,
        state: State,
        why: str,
        now: datetime,
        *,
        approvers: tuple[str, ...] = (),
    ) -> None:
        """Audit the end of a request and keep the decay counters honest (inside a transaction).

        ``approvers`` are the operators whose votes ended it (every approver of an approval, the
        one who denied), the audit record's ``approver`` field.
        """
        outcome = Outcome.PERMIT if state is State.APPROVED else Outcome.DENY
        self.audit.record_event(
            f"approval.{state.value}",
            {"approval_id": row.approval_id, "agent_id": row.agent_id, "outcome": outcome.value},
            {
                "reason": why,
                "request_digest": row.request_digest,
                "rule": row.rule,
                "approver": ", ".join(approvers) or None,
                "approvers": list(approvers),
            },
        )
        if not self.settings.decays(RiskTier(row.tier) if row.tier else None):
            return
        if state is State.APPROVED:
            self.store.decay_bump(row.agent_id, row.tool, row.rule, iso(now))
        elif state in (State.DENIED, State.EXPIRED):
            self.store.decay_reset(row.agent_id, row.tool, row.rule, iso(now))

    def _view_of(self, approval_id: str) -> ApprovalView:
        row = self.store.get_approval(approval_id)
        if row is None:
            raise ApprovalError(f"no approval `{approval_id}`")
        return self._view(row)

    def _view(self, row: ApprovalRow) -> ApprovalView:
        return ApprovalView(
            row=row,
            votes=tuple(self.store.votes(row.approval_id)),
            messages=tuple(self.store.messages(row.approval_id)),
        )

    def _history(self, request: Request, limit: int) -> list[dict[str, Any]]:
        recent = getattr(self._history_source, "recent_decisions", None)
        if recent is None or limit <= 0:
            return []
        history: list[dict[str, Any]] = []
        # The agent's last ``limit`` decisions, kept when they are from this session: an agent
        # running several sessions at once shows fewer, which keeps approval creation cheap.
        for record in recent(limit=limit, agent_id=request.agent_id):
            if record.request.get("session_id") != request.session_id:
                continue
            history.append(
                {
                    "time": record.created_at,
                    "tool": record.request.get("tool"),
                    "action": record.request.get("action"),
                    "outcome": record.decision.get("outcome"),
                    "rule": record.decision.get("rule"),
                }
            )
            if len(history) >= limit:
                break
        return history

    def _notify(self, kind: str, row: ApprovalRow, *, detail: str | None = None) -> None:
        notify_all(
            self.notifiers,
            Notification(
                kind=kind,
                approval_id=row.approval_id,
                agent_id=row.agent_id,
                tool=row.tool,
                summary=row.summary,
                tier=row.tier,
                expires_at=row.expires_at,
                required=row.required,
                detail=detail,
            ),
        )

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


@dataclass(frozen=True, slots=True)
class _VoteOutcome:
    ended: State | None = None
    error: ApprovalError | None = None
