"""The HTTP hook endpoint: ``POST /v1/hooks/{dialect}`` answers coding-agent hook events.

Claude Code's ``http`` hooks post the same event JSON a command hook reads on stdin; this route
answers with the same decision JSON ``clearance hook claude-code`` prints, through the mapping
both share (``clearance.gate.toolevents``). ``codex`` and ``gemini`` speak those clients'
dialects for anything that posts their events (neither client has HTTP hooks of its own)::

    POST /v1/hooks/claude-code?timeout=330
    Authorization: Bearer <agent key>            identity: the key's agent, never the body
    Clearance-Session: <session id>              the session the launcher opened (as for the
                                                 command hook's CLEARANCE_SESSION_ID)

* Pre-tool events (``PreToolUse``, ``BeforeTool``) are decided. PERMIT is "no decision" (``{}``,
  so the user's own rules stay in force) unless ``?allow=true`` asks for an explicit allow; DENY
  is the dialect's deny with the rule and reason.
* APPROVAL is never the client's "ask". The route waits for an operator's decision without
  holding a worker thread (status reads between sleeps), for the hook's ``?timeout=`` seconds
  less a margin, at most ``max_wait_s``; approved, it redeems the one-time execution token for
  the identical arguments and answers with *that* decision; otherwise it denies with the
  approval id and its dashboard link. Without ``?timeout=`` it does not wait.
* Post-tool events (``PostToolUse``, ``PostToolUseFailure``, ``AfterTool``) record an
  ``ActionResult`` against the decision stored under the call's ``tool_use_id``; the answer is
  ``{}``. An outcome that could not be recorded is a 503 (the call already ran; a non-2xx is the
  client's non-blocking error).
* Any other event is ``{}``: no decision.

Fail closed: a missing, wrong or revoked key, an orchestrator key, a rate limit, a body that is
not a JSON event, no session or another environment's session, an unknown dialect, SILENCE and
any failure while deciding all answer **200 with an explicit deny** in the dialect's JSON. A
non-2xx is a non-blocking error to Claude Code unless the hook sets ``onFailure: "block"``, so
refusals are never left to it; only the service's own guards (a body over the size limit, a body
that is not ``application/json``) answer non-2xx before this route runs, and the installed hook
blocks on those.
"""

# No `from __future__ import annotations` here: FastAPI evaluates the route annotations.

import logging
import math
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from clearance.approvals.service import AgentStatus, ApprovalService, State
from clearance.approvals.waiting import PendingApproval, check
from clearance.errors import ClearanceError, RequestError
from clearance.gate.toolevents import (
    DIALECTS,
    HOOK_ROUTE,
    SESSION_HEADER,
    TIMEOUT_PARAM,
    Dialect,
    EventKind,
    ToolCall,
    ToolCallAnswer,
    answer_for,
    blocked_text,
    decided_call,
    decision_output,
    denied_text,
    event_kind,
    outcome_of,
    parse_payload,
    universal_deny,
)
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.server.identity import AgentPrincipal
from clearance.server.wire import ApiError, ErrorCode, ErrorV1

if TYPE_CHECKING:
    from clearance.server.app import ServerContext

log = logging.getLogger("clearance.server.hooks")

#: The default longest wait for an approval, whatever ``?timeout=`` says (``hook_max_wait_s``).
MAX_WAIT_S = 600.0
#: Seconds kept back from the hook's timeout to redeem the token and answer before it expires.
HOOK_MARGIN_S = 5.0
#: Seconds between approval status reads while waiting.
POLL_S = 0.5

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the dialect's decision JSON; `{}` is no decision"},
    413: {"model": ErrorV1, "description": "body too large (the hook blocks on it)"},
    415: {"model": ErrorV1, "description": "not JSON (the hook blocks on it)"},
    503: {"model": ErrorV1, "description": "a post-tool outcome could not be recorded"},
}


def hook_wait_s(query: Mapping[str, str], *, max_wait_s: float) -> float:
    """How long to wait for an approval: the hook's ``?timeout=`` less the margin, capped.

    ``RequestError`` when the parameter is not a number of seconds (the call is then denied).
    """
    raw = query.get(TIMEOUT_PARAM)
    if raw is None:
        return 0.0
    try:
        timeout = float(raw)
    except ValueError:
        timeout = math.nan
    if not math.isfinite(timeout) or timeout < 0:
        raise RequestError(
            f"`?{TIMEOUT_PARAM}={raw}` is not a number of seconds",
            hint=f"set `?{TIMEOUT_PARAM}=` to the hook's own `timeout` setting",
        )
    return max(0.0, min(timeout - HOOK_MARGIN_S, max_wait_s))


def _answer(dialect: Dialect, answer: ToolCallAnswer, *, explicit_allow: bool) -> JSONResponse:
    return JSONResponse(decision_output(dialect, answer, explicit_allow=explicit_allow) or {})


def _refused(dialect: Dialect, reason: str) -> JSONResponse:
    return _answer(dialect, ToolCallAnswer("deny", reason), explicit_allow=False)


class HookEndpoint:
    """Answers hook events for authenticated agents, against the server's gate and approvals."""

    def __init__(self, ctx: "ServerContext", *, max_wait_s: float, poll_s: float) -> None:
        self.ctx = ctx
        self.gate = ctx.gate
        self.max_wait_s = max_wait_s
        self.poll_s = poll_s

    async def answer(self, dialect: str, http: HttpRequest) -> JSONResponse:
        """The response to one posted hook event; every refusal is the dialect's deny."""
        if dialect not in DIALECTS:
            reason = (
                f"clearance: unknown hook dialect `{dialect}`; post hook events to "
                f"{HOOK_ROUTE}/claude-code, {HOOK_ROUTE}/codex or {HOOK_ROUTE}/gemini"
            )
            return JSONResponse(universal_deny(reason))
        known: Dialect = next(d for d in DIALECTS if d == dialect)
        try:
            principal = await self.ctx.authorizer.agent(http)
            payload = parse_payload(await http.body())
            kind = event_kind(payload)
            if kind is EventKind.OTHER:
                return JSONResponse({})
            request = await self._request_of(payload, http, principal)
            if kind is EventKind.PRE_TOOL:
                wait_s = hook_wait_s(http.query_params, max_wait_s=self.max_wait_s)
                answer = await self._pre_tool(request, principal, wait_s, http)
            else:
                return await self._post_tool(request, payload, kind, principal)
        except ApiError as exc:  # the key: missing, unknown, revoked, not an agent's, limited
            hint = f" ({exc.hint})" if exc.hint else ""
            return _refused(known, f"clearance: {exc.message}{hint}")
        except RequestError as exc:
            return _refused(known, f"clearance: {exc}")
        except Exception as exc:  # the hook route's fail-closed boundary: deny
            log.exception("the hook endpoint failed; the call is denied")
            # The exception's text stays in the log: it may name stores or paths the model
            # (and the client's transcript) should not see.
            failure = f"the gate failed ({type(exc).__name__}); see the sidecar's log"
            return _refused(known, blocked_text("hook-endpoint", failure))
        allow = http.query_params.get("allow", "").lower() in ("1", "true", "yes")
        return _answer(known, answer, explicit_allow=allow)

    async def _request_of(
        self, payload: Mapping[str, Any], http: HttpRequest, principal: AgentPrincipal
    ) -> Request:
        """The call's request, in the session the header names, for the key's agent.

        A session of another agent, or a closed or unknown one, is left to the gate, which
        refuses it (DENY ``session``); one of this agent's sessions in an environment the key is
        not for is refused here, as the agent API's key check does.
        """
        call = ToolCall.from_event(payload)
        session_id = http.headers.get(SESSION_HEADER)
        if not session_id:
            raise RequestError(
                "no clearance session named",
                hint=f"send the session id the launcher opened as the `{SESSION_HEADER}` header",
            )
        state = await run_in_threadpool(self.gate.store.session_state, session_id)
        if (
            state is not None
            and state.session.agent_id == principal.agent_id
            and state.session.environment is not principal.environment
        ):
            raise RequestError(
                f"session `{session_id}` is in {state.session.environment.value}; this key is "
                f"for {principal.environment.value}"
            )
        return call.request(agent_id=principal.agent_id, session_id=session_id)

    async def _decide(self, request: Request, principal: AgentPrincipal) -> Decision:
        """``Gate.decide`` in a worker thread, counted in ``/metrics`` like the agent API's."""

        def decide() -> tuple[Decision, float]:
            started = self.gate.clock.monotonic()
            decision = self.gate.decide(request)
            return decision, self.gate.clock.monotonic() - started

        decision, seconds = await run_in_threadpool(decide)
        bundle = self.gate.bundle
        compiled = bundle.compiled if bundle is not None else None
        self.ctx.metrics.observe_decision(
            decision,
            tool=request.tool,
            environment=principal.environment.value,
            seconds=seconds,
            inventory=compiled.tools if compiled is not None else (),
            policy_rules={r.id for r in compiled.rules} if compiled is not None else (),
        )
        return decision

    async def _pre_tool(
        self, request: Request, principal: AgentPrincipal, wait_s: float, http: HttpRequest
    ) -> ToolCallAnswer:
        """Decide; wait for an APPROVAL and redeem its token; the answer of the final decision."""
        base = str(http.base_url).rstrip("/")

        def link(approval_id: str) -> str:
            return f"{base}/approvals/{approval_id}"

        decision = await self._decide(request, principal)
        approvals = self.ctx.services.approvals
        if decision.outcome is not Outcome.APPROVAL or wait_s <= 0 or approvals is None:
            return answer_for(decision, args=request.args, approval_url=link)
        pending = PendingApproval.from_decision(decision, request)
        status = await self._wait(approvals, pending, wait_s, http)
        if status.token is not None:
            # The identical call with its one-time token. No idempotency key: the key keeps the
            # APPROVAL (the post-tool event records the outcome against it).
            redeemed = request.model_copy(
                update={"approval_token": status.token, "idempotency_key": None}
            )
            final = await self._decide(redeemed, principal)
            return answer_for(final, args=request.args, approval_url=link)
        if status.state is State.PENDING:
            return answer_for(decision, args=request.args, approval_url=link)
        state = status.state.value
        reason = status.reason or f"the approval request was {state}"
        return ToolCallAnswer("deny", denied_text(f"approval:{state}", reason), decision=decision)

    async def _wait(
        self,
        approvals: ApprovalService,
        pending: PendingApproval,
        wait_s: float,
        http: HttpRequest,
    ) -> AgentStatus:
        """Poll the approval up to ``wait_s`` without holding a thread between reads.

        Stops early when the client has gone (its hook timed out): the one-time token is then
        left unclaimed rather than redeemed for a call nobody will run.
        """
        clock = self.gate.clock
        give_up = clock.monotonic() + wait_s
        while True:
            status = await run_in_threadpool(partial(check, approvals, pending, now=clock.now()))
            remaining = give_up - clock.monotonic()
            if status.state is not State.PENDING or remaining <= 0:
                return status
            await anyio.sleep(min(self.poll_s, remaining))
            if await http.is_disconnected():
                return status

    async def _post_tool(
        self,
        request: Request,
        payload: Mapping[str, Any],
        kind: EventKind,
        principal: AgentPrincipal,
    ) -> JSONResponse:
        """Record the outcome against the call's decision; ``{}``, or 503 when not recorded."""
        decision_id = await run_in_threadpool(decided_call, self.gate.store, request)
        if decision_id is None:
            log.info("no decision under `%s`; the outcome is not recorded", request.idempotency_key)
            return JSONResponse({})
        result = outcome_of(payload, decision_id, failed=kind is EventKind.TOOL_FAILED)
        try:
            await run_in_threadpool(partial(self.gate.report, result, agent_id=principal.agent_id))
        except ClearanceError as exc:
            log.exception("the outcome of decision %s was not recorded", decision_id)
            error = ApiError(
                503,
                ErrorCode.UNAVAILABLE,
                f"the outcome of decision `{decision_id}` was not recorded: {exc.message}",
                "the call already ran; check the gate's store and audit log",
            )
            return JSONResponse(error.body(), status_code=error.status)
        return JSONResponse({})


def router(
    ctx: "ServerContext", *, max_wait_s: float = MAX_WAIT_S, poll_s: float = POLL_S
) -> APIRouter:
    """The hook route."""
    api = APIRouter(prefix=HOOK_ROUTE, tags=["hooks"])
    endpoint = HookEndpoint(ctx, max_wait_s=max_wait_s, poll_s=poll_s)

    @api.post(
        "/{dialect}",
        responses=_RESPONSES,
        summary="Answer a coding agent's hook event (Claude Code http hooks)",
    )
    async def hook(dialect: str, request: HttpRequest) -> JSONResponse:
        """Decide a pre-tool event, record a post-tool outcome; refusals are explicit denies."""
        return await endpoint.answer(dialect, request)

    return api
