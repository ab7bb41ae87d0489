"""The agent API under ``/v1/``: sessions (orchestrators), decisions, results, receipts, credentials.

The agent id of every request is the one bound to the caller's key; a body cannot name another
(``DecideRequestV1`` has no ``agent_id`` field and refuses unknown fields). A decision's HTTP
status follows its outcome (``wire.OUTCOME_STATUS``): PERMIT 200, APPROVAL 202, DENY 403,
SILENCE 503, so a plain ``curl`` of a refused call sees 403 and nothing can mistake a refusal for
a success by ignoring the body.

``POST /v1/decide`` and ``POST /v1/tokens/redeem`` carry nearly all the traffic, so they are
``LeanRoute``s: FastAPI documents them from their signatures like any other route, but serves them
without its per-request dependency, validation and serialisation machinery. The route
authenticates the key, reads the body bytes, parses them as a FastAPI route would, validates them
once with the wire model and calls the endpoint with exactly the values its signature declares;
errors are the same ``ApiError`` and ``RequestValidationError`` the app's handlers render for
every route. ``Gate.decide()`` blocks on the audit group commit, so it runs on a dedicated thread
pool (``decide_threads``): concurrent decisions share commits and the event loop keeps serving.
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the route annotations,
# which use dependency aliases local to `router()`.

import asyncio
import contextvars
import inspect
import json
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from clearance.approvals.service import ApprovalService
from clearance.gate.clock import iso
from clearance.gate.gate import Gate
from clearance.model.decision import Decision, Outcome, Verdict
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.model.session import Environment, Session
from clearance.server.identity import AgentPrincipal, OrchestratorPrincipal
from clearance.server.wire import (
    OUTCOME_STATUS,
    ApiError,
    ApprovalAnswerV1,
    ApprovalStatusRequestV1,
    ApprovalStatusV1,
    CredentialRequestV1,
    CredentialV1,
    DecideRequestV1,
    ErrorCode,
    ErrorV1,
    GrantsV1,
    OpenSessionRequestV1,
    ReceiptV1,
    RedeemRequestV1,
    not_available,
)
from clearance.store.protocol import SessionState

if TYPE_CHECKING:
    from clearance.server.app import ServerContext

KEY_SCOPE_RULE = "key-scope"

_calling_agent: contextvars.ContextVar[AgentPrincipal | None] = contextvars.ContextVar(
    "clearance_calling_agent", default=None
)


class KeyEnvironmentCheck:
    """Gate pre-check: a key works only in sessions of the environment it was issued for.

    The HTTP route sets the calling key in a context variable; in-process callers (no key) pass.
    Registered on the gate by ``create_app`` so the refusal is an audited DENY decision.
    """

    def check(self, request: Request, state: SessionState, now: datetime) -> Verdict | None:
        """DENY ``key-scope`` when the session's environment is not the key's."""
        del request, now
        principal = _calling_agent.get()
        if principal is None or state.session.environment is principal.environment:
            return None
        return Verdict(
            outcome=Outcome.DENY,
            rule=KEY_SCOPE_RULE,
            reason=(
                f"this key is for {principal.environment.value}; the session is in "
                f"{state.session.environment.value}"
            ),
        )


def install_key_check(gate: Gate) -> None:
    """Add ``KeyEnvironmentCheck`` to the gate's pre-checks once."""
    if not any(isinstance(p, KeyEnvironmentCheck) for p in gate.pre_checks):
        gate.pre_checks.insert(0, KeyEnvironmentCheck())


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorV1, "description": "missing or invalid key"},
    403: {"model": ErrorV1, "description": "not allowed for this principal"},
    413: {"model": ErrorV1, "description": "body too large"},
    415: {"model": ErrorV1, "description": "not JSON"},
    422: {"model": ErrorV1, "description": "unknown field or wrong type"},
    429: {"model": ErrorV1, "description": "rate limited"},
}

_DECISION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    202: {"model": Decision, "description": "APPROVAL: a human must approve (approval id inside)"},
    403: {"model": Decision, "description": "DENY (or an error body for a refused principal)"},
    503: {"model": Decision, "description": "SILENCE: the gate could not decide; do not dispatch"},
}


def _decision_response(decision: Decision) -> Response:
    return Response(
        content=decision.model_dump_json(),
        status_code=OUTCOME_STATUS[decision.outcome],
        media_type="application/json",
    )


def _missing_body() -> RequestValidationError:
    return RequestValidationError(
        [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
    )


def parse_body(raw: bytes, model: type[DecideRequestV1]) -> DecideRequestV1:
    """Validate the body bytes into ``model`` once, accepting exactly what a FastAPI route does.

    The standard library parses, as in a FastAPI route, not orjson: orjson turns an integer
    beyond 64 bits into a float without a word, so the arguments decided (and the digest bound
    to them) would differ from those sent, where the wire model refuses them with a 422 naming
    the field. Raises ``RequestValidationError``, rendered as 400 ``malformed_json`` or 422
    ``invalid_request`` by the app's handler.
    """
    if not raw:
        raise _missing_body()
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}]
        ) from exc
    if parsed is None:
        raise _missing_body()
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None


_Endpoint = Callable[..., Awaitable[Response]]


def lean_route(
    principal_of: Callable[[HTTPRequest], Awaitable[AgentPrincipal]],
) -> type[APIRoute]:
    """A route class for endpoints ``(body: <wire model>, principal: <agent>) -> Response``.

    FastAPI reads the endpoint's signature to document the route, as for any route. Serving, the
    route authenticates with ``principal_of`` first (an unauthenticated caller gets its 401
    before its body is even parsed), then validates the body once (``parse_body``) into the
    model the signature names, and calls the endpoint with both.
    """

    class LeanRoute(APIRoute):
        def get_route_handler(self) -> Callable[[HTTPRequest], Coroutine[Any, Any, Response]]:
            endpoint: _Endpoint = self.endpoint
            model = inspect.signature(endpoint).parameters["body"].annotation

            async def handle(http: HTTPRequest) -> Response:
                principal = await principal_of(http)
                body = parse_body(await http.body(), model)
                return await endpoint(body=body, principal=principal)

            return handle

    return LeanRoute


def router(ctx: "ServerContext") -> APIRouter:
    """The agent and orchestrator routes."""
    api = APIRouter(prefix="/v1", tags=["agent"])
    agent = Annotated[AgentPrincipal, Depends(ctx.authorizer.agent)]
    orchestrator = Annotated[OrchestratorPrincipal, Depends(ctx.authorizer.orchestrator)]
    gate = ctx.gate
    install_key_check(gate)
    labels: dict[str, tuple[frozenset[str], frozenset[str]]] = {}

    def policy_labels() -> tuple[frozenset[str], frozenset[str]]:
        bundle = gate.bundle
        if bundle is None:
            return frozenset(), frozenset()
        cached = labels.get(bundle.digest)
        if cached is None:
            compiled = bundle.compiled
            cached = (frozenset(compiled.tools), frozenset(r.id for r in compiled.rules))
            labels.clear()
            labels[bundle.digest] = cached
        return cached

    def decide_now(request: Request, principal: AgentPrincipal) -> Decision:
        """Decide on a worker thread; the key's principal rides in a context variable."""
        token = _calling_agent.set(principal)
        try:
            started = gate.clock.monotonic()
            decision = gate.decide(request)
            seconds = gate.clock.monotonic() - started
        finally:
            _calling_agent.reset(token)
        tools, rules = policy_labels()
        ctx.metrics.observe_decision(
            decision,
            tool=request.tool,
            environment=principal.environment.value,
            seconds=seconds,
            inventory=tools,
            policy_rules=rules,
        )
        return decision

    pool = (
        ThreadPoolExecutor(ctx.settings.decide_threads, thread_name_prefix="clearance-decide")
        if ctx.settings.decide_in_threadpool
        else None
    )

    async def run_decide(body: DecideRequestV1, principal: AgentPrincipal) -> Response:
        request = Request(agent_id=principal.agent_id, **dict(body))
        if pool is None:
            decision = decide_now(request, principal)
        else:
            loop = asyncio.get_running_loop()
            decision = await loop.run_in_executor(pool, decide_now, request, principal)
        return _decision_response(decision)

    async def decide(body: DecideRequestV1, principal: agent) -> Response:
        """Ask the gate whether the calling agent may make this tool call."""
        return await run_decide(body, principal)

    async def redeem(body: RedeemRequestV1, principal: agent) -> Response:
        """The approved request, unchanged, with ``approval_token``: PERMIT once, then DENY."""
        return await run_decide(body, principal)

    lean = lean_route(ctx.authorizer.agent)
    for path, endpoint, summary in (
        ("/decide", decide, "Decide one tool call"),
        ("/tokens/redeem", redeem, "Resubmit an approved call with its execution token"),
    ):
        api.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            response_model=Decision,
            responses=_DECISION_RESPONSES,
            summary=summary,
            route_class_override=lean,
        )

    @api.post("/results", status_code=202, responses=_ERRORS, summary="Report a call's outcome")
    async def report(body: ActionResult, principal: agent) -> dict[str, str]:
        """Record what happened after a permitted call was dispatched."""
        record = gate.store.get_decision(body.decision_id)
        if record is None or record.request.get("agent_id") != principal.agent_id:
            raise ApiError(
                404,
                ErrorCode.NOT_FOUND,
                f"no decision `{body.decision_id}` for this agent",
                "report results with the decision id the gate returned",
            )
        gate.report(body, agent_id=principal.agent_id)
        return {"decision_id": body.decision_id, "status": "recorded"}

    @api.get(
        "/sessions/{session_id}/grants",
        response_model=GrantsV1,
        responses={**_ERRORS, 404: {"model": ErrorV1}},
        summary="The tools one of your sessions may call under the active policy",
    )
    async def session_grants(session_id: str, principal: agent) -> GrantsV1:
        """For adapters that hide what a session cannot use (an MCP ``tools/list``); every call is
        still decided. Another agent's session is answered like an unknown one."""
        state = gate.store.session_state(session_id)
        if state is None or state.session.agent_id != principal.agent_id:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no session `{session_id}` for this agent")
        bundle = gate.bundle
        if bundle is None:
            return GrantsV1(session_id=session_id, policy=None, tools=[])
        granted = bundle.compiled.tasks.get(state.session.task, frozenset())
        return GrantsV1(session_id=session_id, policy=bundle.digest, tools=sorted(granted))

    @api.get(
        "/decisions/{decision_id}",
        response_model=Decision,
        responses={**_ERRORS, 404: {"model": ErrorV1}},
        summary="Fetch one of your decisions with its signed receipt",
    )
    async def get_decision(decision_id: str, principal: agent) -> Decision:
        """A decision this agent received, with its receipt."""
        record = gate.store.get_decision(decision_id)
        if record is None or record.request.get("agent_id") != principal.agent_id:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no decision `{decision_id}` for this agent")
        return Decision.model_validate(record.decision)

    @api.get(
        "/receipts/{decision_id}",
        response_model=ReceiptV1,
        responses={**_ERRORS, 404: {"model": ErrorV1}, 501: {"model": ErrorV1}},
        summary="A decision's signed receipt and the inclusion proof of its audit entry",
    )
    async def get_receipt(decision_id: str, principal: agent) -> ReceiptV1:
        """Evidence the agent (or its operator) can verify offline with the public key alone."""
        record = gate.store.get_decision(decision_id)
        if record is None or record.request.get("agent_id") != principal.agent_id:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no decision `{decision_id}` for this agent")
        audit = ctx.services.audit
        receipt = record.decision.get("receipt")
        if audit is None or not isinstance(receipt, dict):
            raise not_available("the audit proof service")
        proof = await run_in_threadpool(audit.inclusion_proof_for, receipt)
        return ReceiptV1(decision_id=decision_id, receipt=receipt, proof=proof)

    def approvals() -> ApprovalService:
        if ctx.services.approvals is None:
            raise not_available("the approval service")
        return ctx.services.approvals

    @api.post(
        "/approvals/{approval_id}/status",
        response_model=ApprovalStatusV1,
        responses={**_ERRORS, 501: {"model": ErrorV1}},
        summary="Poll an approval; the execution token is handed out once after approval",
    )
    async def approval_status(
        approval_id: str, body: ApprovalStatusRequestV1, principal: agent
    ) -> ApprovalStatusV1:
        """Present the signed intent of the APPROVAL decision; a denial carries its reason."""
        status = approvals().status(
            approval_id,
            intent=body.intent,
            agent_id=principal.agent_id,
            session_id=body.session_id,
            now=gate.clock.now(),
        )
        return ApprovalStatusV1(
            approval_id=status.approval_id,
            state=status.state.value,
            expires_at=status.expires_at,
            token=status.token,
            token_expires=status.token_expires,
            reason=status.reason,
            questions=list(status.questions),
        )

    @api.post(
        "/approvals/{approval_id}/answer",
        status_code=202,
        responses={**_ERRORS, 501: {"model": ErrorV1}},
        summary="Answer an operator's question about a pending approval",
    )
    async def approval_answer(
        approval_id: str, body: ApprovalAnswerV1, principal: agent
    ) -> dict[str, str]:
        """The answer is shown to approvers as the agent's (untrusted) words."""
        approvals().answer(
            approval_id,
            agent_id=principal.agent_id,
            session_id=body.session_id,
            text=body.text,
            now=gate.clock.now(),
        )
        return {"approval_id": approval_id, "status": "recorded"}

    @api.post(
        "/credentials",
        response_model=CredentialV1,
        responses={**_ERRORS, 501: {"model": ErrorV1}},
        summary="Exchange a permitted decision or an execution token for a short-lived credential",
    )
    async def exchange_credential(body: CredentialRequestV1, principal: agent) -> CredentialV1:
        """One grant buys one credential, from the backend of the session's environment.

        The response is the only place the secret appears; the audit log records the lease id.
        """
        broker = ctx.services.credentials
        if broker is None:
            raise not_available("the credentials broker")
        credential = await run_in_threadpool(
            partial(
                broker.issue,
                agent_id=principal.agent_id,
                session_id=body.session_id,
                tool=body.tool,
                decision_id=body.decision_id,
                token=body.approval_token,
                now=gate.clock.now(),
            )
        )
        return CredentialV1(
            lease_id=credential.lease_id,
            tool=credential.tool,
            environment=credential.environment.value,
            expires_at=iso(credential.expires_at),
            secret=credential.secret.reveal(),
        )

    @api.post(
        "/sessions",
        response_model=Session,
        status_code=201,
        responses={**_ERRORS, 404: {"model": ErrorV1}},
        summary="Open a session for an agent (orchestrators only)",
    )
    async def open_session(body: OpenSessionRequestV1, principal: orchestrator) -> Session:
        """Open a session; its task, environment and principal grant authority, so only an
        orchestrator may set them, and only in its own environment."""
        environment = body.environment or principal.environment
        if environment is not principal.environment:
            raise ApiError(
                403,
                ErrorCode.FORBIDDEN,
                f"this orchestrator key is for {principal.environment.value}",
                "use an orchestrator key issued for the session's environment",
            )
        registered = ctx.identity.records.get_agent(body.agent_id)
        if registered is None or registered.disabled_at is not None:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no active agent `{body.agent_id}`")
        if Environment(registered.environment) is not environment:
            raise ApiError(
                403,
                ErrorCode.FORBIDDEN,
                f"agent `{body.agent_id}` is registered for {registered.environment}",
                "open the session in the agent's environment",
            )
        return gate.open_session(
            agent_id=body.agent_id,
            task=body.task,
            environment=environment,
            principal=body.principal,
            instruction=body.instruction,
            delegation=body.delegation,
            attended=body.attended,
            labels=body.labels,
        )

    @api.delete(
        "/sessions/{session_id}",
        status_code=204,
        responses={**_ERRORS, 404: {"model": ErrorV1}},
        summary="Close a session (orchestrators only)",
    )
    async def close_session(session_id: str, principal: orchestrator) -> Response:
        """Close a session of the orchestrator's environment; later calls in it are DENY."""
        state = gate.store.session_state(session_id)
        if state is None or state.session.environment is not principal.environment:
            raise ApiError(
                404, ErrorCode.NOT_FOUND, f"no session `{session_id}` in this environment"
            )
        gate.close_session(session_id)
        return Response(status_code=204)

    return api
