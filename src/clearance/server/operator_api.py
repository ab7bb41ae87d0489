"""The operator API under ``/v1/ops/``: login, approvals, kill switch, break-glass, policy, audit,
agents and keys.

Every route takes an operator session (cookie) and names the ``Permission`` it needs; writes also
need the session's CSRF token (``X-CSRF-Token``). API keys are refused on every route here
(``authorize.Authorizer``). Routes whose part is not configured on this gate answer 501
``not_available``.
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the route annotations,
# which use dependency aliases local to `router()`.

import difflib
import json
from collections import Counter
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from clearance.approvals.breakglass import BreakGlass
from clearance.approvals.breakglass import Scope as BreakGlassScope
from clearance.approvals.rules import ROLE_APPROVER, ROLE_BREAKGLASS, ROLE_VIEWER, Operator
from clearance.approvals.service import ApprovalService, ApprovalView
from clearance.control.killswitch import KillSwitch
from clearance.control.operator import Operator as ControlOperator
from clearance.control.scope import Scope
from clearance.errors import ClearanceError
from clearance.gate.clock import iso
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.model.session import SessionFacts
from clearance.policy.bundle import Bundle
from clearance.policy.evaluate import evaluate
from clearance.policy.load import load_policy
from clearance.server.authorize import SESSION_COOKIE, Permission, client_address
from clearance.server.identity import AuthenticationError, LoginResult, OperatorPrincipal, Role
from clearance.server.ratelimit import retry_after
from clearance.server.wire import (
    ActivationV1,
    AgentV1,
    ApiError,
    AuditStatusV1,
    BatchDecisionV1,
    BreakGlassOpenV1,
    BreakGlassV1,
    CloseV1,
    CommentV1,
    CreateAgentV1,
    CreateKeyV1,
    DryRunV1,
    ErrorCode,
    ErrorV1,
    KillSwitchV1,
    LoginRequestV1,
    LoginResponseV1,
    MintedKeyV1,
    PolicyActivateV1,
    PolicyDiffV1,
    PolicyUploadV1,
    PolicyVersionV1,
    QuestionV1,
    not_available,
)
from clearance.store.approvals_sql import BreakGlassRow
from clearance.store.protocol import Activation, DecisionRecord, StoredBundle

if TYPE_CHECKING:
    from clearance.server.app import ServerContext

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorV1, "description": "not logged in"},
    403: {"model": ErrorV1, "description": "role, CSRF token or API key refused"},
    404: {"model": ErrorV1, "description": "no such object"},
    422: {"model": ErrorV1, "description": "unknown field or wrong type"},
    501: {"model": ErrorV1, "description": "part not configured on this gate"},
}


def login(
    ctx: "ServerContext", request: HttpRequest, username: str, password: str, totp: str | None
) -> LoginResult:
    """Shared by the JSON login and the dashboard form: rate limit, check, open a session."""
    wait = ctx.login_limiter.acquire(f"{client_address(request)}|{username}")
    if wait > 0:
        ctx.metrics.refusals.labels(reason="rate-limited").inc()
        raise ApiError(
            429,
            ErrorCode.RATE_LIMITED,
            "too many login attempts",
            "wait before trying again",
            headers={"Retry-After": retry_after(wait)},
        )
    try:
        return ctx.identity.login(username, password, totp)
    except AuthenticationError as exc:
        ctx.metrics.refusals.labels(reason="login").inc()
        raise ApiError(401, ErrorCode.UNAUTHENTICATED, "wrong user name, password or code") from exc


def set_session_cookie(ctx: "ServerContext", response: Response, cookie: str) -> None:
    """The dashboard cookie: HttpOnly, SameSite=Strict, Secure when served over TLS."""
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=ctx.settings.session_ttl_s,
        httponly=True,
        secure=ctx.settings.tls,
        samesite="strict",
        path="/",
    )


def decision_row(record: DecisionRecord) -> dict[str, Any]:
    """A decision as listed in the feed and audit search (no receipts, args as stored)."""
    decision, request = record.decision, record.request
    return {
        "decision_id": record.decision_id,
        "time": record.created_at,
        "agent_id": request.get("agent_id"),
        "session_id": request.get("session_id"),
        "tool": request.get("tool"),
        "action": request.get("action"),
        "outcome": decision.get("outcome"),
        "rule": decision.get("rule"),
        "reason": decision.get("reason"),
        "tier": decision.get("tier"),
        "shadow": decision.get("shadow", False),
        "policy": record.policy,
    }


def search_decisions(
    ctx: "ServerContext",
    *,
    agent_id: str | None,
    tool: str | None,
    outcome: Outcome | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Recent decisions matching the filters, newest first (scans at most 10x ``limit``)."""
    rows = []
    for record in ctx.gate.store.recent_decisions(limit=limit * 10, agent_id=agent_id):
        row = decision_row(record)
        if tool is not None and row["tool"] != tool:
            continue
        if outcome is not None and row["outcome"] != outcome.value:
            continue
        rows.append(row)
        if len(rows) >= limit:
            break
    return rows


def dry_run(ctx: "ServerContext", candidate: Bundle, sample: int) -> DryRunV1:
    """Re-evaluate recent requests with their recorded session facts against ``candidate``."""
    by_outcome: dict[str, Counter[str]] = {}
    examples: list[dict[str, Any]] = []
    replayed = changed = 0
    for record in ctx.gate.store.recent_decisions(limit=sample):
        try:
            request = Request.model_validate(record.request)
            facts = SessionFacts.model_validate(record.facts)
        except ValueError:
            continue
        was = str(record.decision.get("outcome"))
        verdict = evaluate(candidate.compiled, request, facts)
        now = verdict.outcome.value
        replayed += 1
        by_outcome.setdefault(was, Counter())[now] += 1
        if now != was:
            changed += 1
            if len(examples) < 20:
                examples.append(
                    {
                        "decision_id": record.decision_id,
                        "tool": request.tool,
                        "was": was,
                        "now": now,
                        "rule": verdict.rule,
                    }
                )
    return DryRunV1(
        digest=candidate.digest,
        replayed=replayed,
        changed=changed,
        by_outcome={k: dict(v) for k, v in by_outcome.items()},
        examples=examples,
    )


def _bundle_text(bundle: Bundle | None) -> list[str]:
    if bundle is None:
        return []
    document = json.loads(bundle.to_bytes())["document"]
    return json.dumps(document, indent=2, sort_keys=True).splitlines(keepends=True)


def bundle_diff(before: Bundle | None, after: Bundle) -> str:
    """A unified diff of two bundles' documents (``before`` None: everything is new)."""
    old = before.digest if before is not None else "(none)"
    return "".join(
        difflib.unified_diff(_bundle_text(before), _bundle_text(after), old, after.digest)
    )


def archive_policy(ctx: "ServerContext", text: str, source_name: str) -> Bundle:
    """Validate and compile a policy document and archive it (not activated); return the bundle.

    Raises ``PolicyError`` naming every problem; nothing is stored then.
    """
    bundle = load_policy(text, source_name=source_name)
    ctx.gate.store.put_bundle(_stored(bundle, ctx))
    return bundle


def router(ctx: "ServerContext") -> APIRouter:
    """The operator routes."""
    api = APIRouter(prefix="/v1/ops", tags=["operator"], responses=_ERRORS)
    auth = ctx.authorizer
    gate = ctx.gate
    reader = Annotated[OperatorPrincipal, Depends(auth.operator(Permission.READ))]
    approver = Annotated[OperatorPrincipal, Depends(auth.operator(Permission.APPROVE))]
    killer = Annotated[OperatorPrincipal, Depends(auth.operator(Permission.ENGAGE_KILL_SWITCH))]
    admin = Annotated[OperatorPrincipal, Depends(auth.operator(Permission.ADMIN))]
    breaker = Annotated[OperatorPrincipal, Depends(auth.operator(Permission.BREAK_GLASS))]

    def approvals() -> ApprovalService:
        if ctx.services.approvals is None:
            raise not_available("the approval service")
        return ctx.services.approvals

    # session --------------------------------------------------------------------------------
    @api.post("/login", response_model=LoginResponseV1, summary="Log in; sets the session cookie")
    async def login_json(body: LoginRequestV1, request: HttpRequest) -> JSONResponse:
        """Password (and TOTP when enrolled); the CSRF token for later writes is in the body."""
        if "authorization" in request.headers:
            raise ApiError(403, ErrorCode.FORBIDDEN, "API keys cannot log in as operators")
        result = login(ctx, request, body.username, body.password, body.totp)
        payload = LoginResponseV1(
            username=result.operator.username,
            roles=sorted(r.value for r in result.operator.roles),
            csrf_token=result.csrf_token,
            expires_at=result.expires_at,
        )
        response = JSONResponse(payload.model_dump())
        set_session_cookie(ctx, response, result.cookie)
        return response

    @api.post("/logout", status_code=204, summary="End the session")
    async def logout(operator: reader) -> Response:
        """Forget the session and clear the cookie."""
        ctx.identity.logout(operator)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @api.get("/me", summary="Who is logged in")
    async def me(operator: reader) -> dict[str, Any]:
        """The operator's name and roles."""
        return {"username": operator.username, "roles": sorted(r.value for r in operator.roles)}

    # approvals ------------------------------------------------------------------------------
    @api.get("/approvals", summary="Pending approvals")
    async def list_approvals(operator: reader) -> list[dict[str, Any]]:
        """Pending, unexpired approvals with their context, oldest first."""
        views = approvals().list_pending(approval_operator(operator), gate.clock.now())
        return [approval_json(v) for v in views]

    @api.get("/approvals/{approval_id}", summary="One approval with its full context")
    async def show_approval(approval_id: str, operator: reader) -> dict[str, Any]:
        """Summary, masked args, reasoning, session history, tier, votes, messages, expiry."""
        return approval_json(approvals().show(approval_id, approval_operator(operator)))

    @api.post("/approvals/{approval_id}/approve", summary="Approve (one vote)")
    async def approve(approval_id: str, body: CommentV1, operator: approver) -> dict[str, Any]:
        """Vote to approve; critical tiers need a second, distinct approver."""
        view = approvals().approve(
            approval_id, approval_operator(operator), gate.clock.now(), comment=body.comment
        )
        return approval_json(view)

    @api.post("/approvals/{approval_id}/deny", summary="Deny; the reason reaches the agent")
    async def deny(approval_id: str, body: CommentV1, operator: approver) -> dict[str, Any]:
        """Deny the request; the comment is returned to the agent so it can re-plan."""
        view = approvals().deny(
            approval_id, approval_operator(operator), gate.clock.now(), comment=body.comment
        )
        return approval_json(view)

    @api.post("/approvals/{approval_id}/explain", summary="Ask the agent to explain")
    async def explain(approval_id: str, body: QuestionV1, operator: approver) -> dict[str, Any]:
        """Send the question to the agent; the approval stays pending."""
        view = approvals().explain(
            approval_id, approval_operator(operator), body.question, gate.clock.now()
        )
        return approval_json(view)

    @api.post("/approvals/batch", summary="Approve or deny exactly the listed approvals")
    async def batch(body: BatchDecisionV1, operator: approver) -> list[dict[str, Any]]:
        """All or none: the ids the operator saw, each re-checked, in one transaction."""
        service = approvals()
        decide = service.approve_batch if body.action == "approve" else service.deny_batch
        views = decide(body.approval_ids, approval_operator(operator), gate.clock.now())
        return [approval_json(v) for v in views]

    # kill switch, breakers, break-glass -----------------------------------------------------
    def kill_switch() -> KillSwitch:
        if ctx.services.control is None:
            raise not_available("the kill switch")
        return ctx.services.control

    @api.get("/control", summary="Kill switch, drains and breaker trips in force")
    async def control_state(operator: reader) -> dict[str, Any]:
        """Every stop in force with its recorded effects, and recent changes."""
        del operator
        return kill_switch().status().to_dict()

    @api.post(
        "/control/kill-switch",
        summary="Halt or resume everyone, an agent, a tool or an environment",
    )
    async def set_kill_switch(body: KillSwitchV1, operator: killer) -> dict[str, Any]:
        """Halting needs approver or admin; resuming needs admin (checked by the kill switch)."""
        switch = kill_switch()
        if body.agent_id is not None:
            scope = Scope.agent(body.agent_id)
        elif body.tool is not None:
            scope = Scope.tool(body.tool)
        elif body.environment is not None:
            scope = Scope.environment(body.environment.value)
        else:
            scope = Scope.everything()
        who = ControlOperator(operator.username, frozenset(r.value for r in operator.roles))
        now = gate.clock.now()
        if body.engaged:
            # Halt hooks do I/O (revoking Vault leases, killing jobs): keep it off the event loop.
            report = await run_in_threadpool(
                partial(switch.halt, scope, operator=who, reason=body.reason, now=now)
            )
            return {"scope": scope.key, "engaged": True, "summary": report.summary()}
        switch.resume(scope, operator=who, reason=body.reason, now=now)
        return {"scope": scope.key, "engaged": False}

    def break_glass() -> BreakGlass:
        if ctx.services.breakglass is None:
            raise not_available("break-glass")
        return ctx.services.breakglass

    @api.post(
        "/break-glass",
        response_model=BreakGlassV1,
        status_code=201,
        summary="Open a signed, time-bounded break-glass override",
    )
    async def open_break_glass(body: BreakGlassOpenV1, operator: breaker) -> BreakGlassV1:
        """Only operators a policy grant names, for a scope and duration inside that grant.

        Opening and every use are audited (entry kind ``breakglass``) and alerted.
        """
        row = break_glass().open(
            approval_operator(operator),
            reason=body.reason,
            scope=BreakGlassScope(agent=body.agent, tool=body.tool, tiers=frozenset(body.tiers)),
            duration=timedelta(minutes=body.minutes),
            now=gate.clock.now(),
        )
        return _override(row)

    @api.get("/break-glass", response_model=list[BreakGlassV1], summary="Break-glass overrides")
    async def list_break_glass(
        operator: reader, *, include_closed: bool = False
    ) -> list[BreakGlassV1]:
        """Overrides in force now; with ``include_closed=true`` every override ever opened."""
        rows = break_glass().list(
            approval_operator(operator), gate.clock.now(), active_only=not include_closed
        )
        return [_override(r) for r in rows]

    @api.post(
        "/break-glass/{override_id}/close",
        response_model=BreakGlassV1,
        summary="Close a break-glass override before its deadline",
    )
    async def close_break_glass(override_id: str, body: CloseV1, operator: breaker) -> BreakGlassV1:
        """Close at once; the next matching call is decided by the policy again."""
        del body
        service = break_glass()
        service.close(override_id, approval_operator(operator), gate.clock.now())
        row = service.store.get_breakglass(override_id)
        if row is None:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no break-glass override `{override_id}`")
        return _override(row)

    # policy ---------------------------------------------------------------------------------
    @api.get("/policy/versions", response_model=list[PolicyVersionV1], summary="Archived bundles")
    async def policy_versions(operator: reader) -> list[PolicyVersionV1]:
        """Every archived bundle, newest first, with the active one marked."""
        del operator
        active = gate.store.active_digest()
        return [
            PolicyVersionV1(
                digest=b.digest,
                source_name=b.source_name,
                created_at=b.created_at,
                active=b.digest == active,
            )
            for b in gate.store.list_bundles()
        ]

    @api.get("/policy/activations", response_model=list[ActivationV1], summary="Activation history")
    async def policy_activations(operator: reader) -> list[ActivationV1]:
        """Who activated which digest when, newest first."""
        del operator
        return [_activation(a) for a in gate.store.activations()]

    @api.post("/policy/bundles", status_code=201, summary="Upload a policy (not activated)")
    async def upload(body: PolicyUploadV1, operator: admin) -> dict[str, str]:
        """Validate, compile and archive a policy; returns its digest for dry-run and activation."""
        del operator
        return {"digest": archive_policy(ctx, body.text, body.source_name).digest}

    @api.post("/policy/dry-run", response_model=DryRunV1, summary="Replay recent traffic")
    async def policy_dry_run(body: PolicyActivateV1, operator: admin) -> DryRunV1:
        """How the archived bundle ``digest`` would have decided recent requests (shadow)."""
        del operator
        return dry_run(ctx, archived(ctx, body.digest), ctx.settings.shadow_sample)

    @api.post("/policy/activate", summary="Activate an archived bundle by digest")
    async def activate(body: PolicyActivateV1, operator: admin) -> dict[str, str]:
        """Make the bundle active on this gate; recorded in the activation history."""
        bundle = archived(ctx, body.digest)
        gate.activate(bundle, by=operator.username)
        return {"digest": bundle.digest, "activated_by": operator.username}

    @api.get("/policy/diff", response_model=PolicyDiffV1, summary="Diff two archived bundles")
    async def policy_diff(
        operator: reader,
        old: Annotated[str, Query(pattern=r"^sha256:[0-9a-f]{64}$")],
        new: Annotated[str, Query(pattern=r"^sha256:[0-9a-f]{64}$")],
    ) -> PolicyDiffV1:
        """A unified diff of the two bundles' documents."""
        del operator
        return PolicyDiffV1(
            old=old, new=new, diff=bundle_diff(archived(ctx, old), archived(ctx, new))
        )

    # audit ----------------------------------------------------------------------------------
    @api.get("/audit/decisions", summary="Search decisions")
    async def audit_search(
        operator: reader,
        agent_id: Annotated[str | None, Query(max_length=128)] = None,
        tool: Annotated[str | None, Query(max_length=256)] = None,
        outcome: Outcome | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """Recent decisions, newest first, filtered by agent, tool and outcome."""
        del operator
        return search_decisions(ctx, agent_id=agent_id, tool=tool, outcome=outcome, limit=limit)

    @api.get("/audit/export", summary="Export decisions as JSON lines")
    async def audit_export(
        operator: reader,
        agent_id: Annotated[str | None, Query(max_length=128)] = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    ) -> Response:
        """The stored decisions (request as stored, decision with receipt), one per line."""
        del operator
        lines = (
            json.dumps(
                {"decision_id": r.decision_id, "request": r.request, "decision": r.decision},
                sort_keys=True,
            )
            for r in gate.store.recent_decisions(limit=limit, agent_id=agent_id)
        )
        return Response("\n".join(lines) + "\n", media_type="application/x-ndjson")

    @api.get("/audit/status", response_model=AuditStatusV1, summary="Audit log verification")
    async def audit_status(operator: reader) -> AuditStatusV1:
        """The audit log's last verification result."""
        del operator
        audit = ctx.services.audit
        if audit is None:
            raise not_available("audit verification")
        detail = await run_in_threadpool(audit.verification_status, gate.clock.now())
        return AuditStatusV1(available=True, detail=detail)

    # agents and keys ------------------------------------------------------------------------
    @api.get("/agents", response_model=list[AgentV1], summary="Agents and their keys")
    async def list_agents(operator: reader) -> list[AgentV1]:
        """Every registered agent with its keys' metadata."""
        del operator
        return [agent_view(ctx, a.agent_id) for a in ctx.identity.records.list_agents()]

    @api.post("/agents", response_model=AgentV1, status_code=201, summary="Register an agent")
    async def create_agent(body: CreateAgentV1, operator: admin) -> AgentV1:
        """Register an agent in one environment."""
        ctx.identity.register_agent(
            body.agent_id,
            environment=body.environment,
            description=body.description,
            created_by=operator.username,
        )
        return agent_view(ctx, body.agent_id)

    @api.post(
        "/agents/{agent_id}/keys",
        response_model=MintedKeyV1,
        status_code=201,
        summary="Mint an agent key (shown once)",
    )
    async def create_key(agent_id: str, body: CreateKeyV1, operator: admin) -> MintedKeyV1:
        """A new key for the agent; the secret is in this response only."""
        minted = ctx.identity.create_agent_key(
            agent_id, created_by=operator.username, label=body.label
        )
        return MintedKeyV1(
            key_id=minted.key_id,
            secret=minted.secret,
            agent_id=minted.record.agent_id,
            environment=minted.record.environment,
        )

    @api.delete("/keys/{key_id}", status_code=204, summary="Revoke a key")
    async def revoke_key(key_id: str, operator: admin) -> Response:
        """Revoke at once; the next request with the key is 401."""
        del operator
        ctx.identity.revoke_key(key_id)
        return Response(status_code=204)

    return api


def agent_view(ctx: "ServerContext", agent_id: str) -> AgentV1:
    """An agent with its keys' metadata."""
    agent = ctx.identity.records.get_agent(agent_id)
    if agent is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no agent `{agent_id}`")
    keys = [
        {
            "key_id": k.key_id,
            "label": k.label,
            "environment": k.environment,
            "created_at": k.created_at,
            "revoked": k.revoked_at is not None,
        }
        for k in ctx.identity.records.list_keys(agent_id=agent_id)
    ]
    return AgentV1(
        agent_id=agent.agent_id,
        environment=agent.environment,
        description=agent.description,
        created_at=agent.created_at,
        disabled=agent.disabled_at is not None,
        keys=keys,
    )


def archived(ctx: "ServerContext", digest: str) -> Bundle:
    try:
        return ctx.gate.bundle_by_digest(digest)
    except ClearanceError as exc:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no usable archived bundle `{digest}`") from exc


def _stored(bundle: Bundle, ctx: "ServerContext") -> StoredBundle:
    return StoredBundle(
        digest=bundle.digest,
        data=bundle.to_bytes(),
        source_name=bundle.source_name,
        signature=bundle.signature.hex() if bundle.signature is not None else None,
        created_at=iso(ctx.gate.clock.now()),
    )


def _override(row: BreakGlassRow) -> BreakGlassV1:
    return BreakGlassV1(
        override_id=row.override_id,
        operator_id=row.operator_id,
        reason=row.reason,
        scope=row.scope,
        opened_at=row.opened_at,
        expires_at=row.expires_at,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        uses=row.uses,
        signature=row.signature,
    )


def _activation(activation: Activation) -> ActivationV1:
    return ActivationV1(
        seq=activation.seq,
        digest=activation.digest,
        activated_at=activation.activated_at,
        activated_by=activation.activated_by,
    )


_ROLE_FOR_APPROVALS: dict[Role, str] = {
    Role.VIEWER: ROLE_VIEWER,
    Role.APPROVER: ROLE_APPROVER,
    Role.ADMIN: ROLE_APPROVER,
    Role.BREAK_GLASS: ROLE_BREAKGLASS,
}


def approval_operator(operator: OperatorPrincipal) -> Operator:
    """The approval service's view of a logged-in operator (never carries the agent role)."""
    return Operator(
        id=operator.username,
        roles=frozenset(_ROLE_FOR_APPROVALS[r] for r in operator.roles),
    )


def approval_json(view: ApprovalView) -> dict[str, Any]:
    """An approval as the API and the dashboard show it (args are the masked display copy)."""
    row = view.row
    return {
        "approval_id": row.approval_id,
        "decision_id": row.decision_id,
        "batch_id": row.batch_id,
        "agent_id": row.agent_id,
        "session_id": row.session_id,
        "tool": row.tool,
        "action": row.action,
        "summary": row.summary,
        "request": row.request,
        "request_digest": row.request_digest,
        "rule": row.rule,
        "reason": row.reason,
        "tier": row.tier,
        "required": row.required,
        "approver_group": row.approver_group,
        "context": row.context,
        "state": row.state,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "approvers": list(view.approvers),
        "votes": [
            {"operator": v.operator_id, "vote": v.vote, "comment": v.comment, "at": v.at}
            for v in view.votes
        ],
        "messages": [
            {"author": m.author, "kind": m.kind, "body": m.body, "at": m.at} for m in view.messages
        ],
    }
