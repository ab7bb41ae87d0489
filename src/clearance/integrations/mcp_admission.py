"""One MCP ``tools/call`` through the gate: the code the gateway and the server middleware share.

:class:`Admission` turns a call into either a PERMIT decision (dispatch, then :meth:`record`
its outcome) or the tool result the client sees instead. Refusals are tool results with
``is_error`` set, naming the rule and reason, so the model can re-plan; nothing is dispatched
on any other path::

    admission = Admission(transport, approval_url=approval_link("http://127.0.0.1:8787"))
    admitted = await admission.admit(ctx, session, params)      # params of the tools/call
    if isinstance(admitted, Decision):
        result = await downstream.call_tool("transfer_funds", params.arguments)
        await admission.record(session, admitted, result)
    else:
        return admitted                      # the refusal, as the client's tool result

Resource reads and prompt gets are decided the same way (:meth:`Admission.clear` with a
:class:`Call` naming the surface, action and target; see :mod:`clearance.integrations.mcp_content`).

Approvals take one of two roads:

* **URL elicitation**, when the client declared elicitation in URL mode: the client is asked to
  open the dashboard's approval page (on handshake-era connections a server-to-client request,
  on 2026-07-28 connections an ``InputRequiredResult`` the client answers by retrying). The
  client's "accept" only means the user went to the page; the call then waits for the operator's
  decision in clearance and redeems the one-time token for exactly this call. A form-mode
  "accept" would be answered by the agent's own client and is never used as an approval.
* **Retry with the token**: otherwise the client gets the approval id, expiry and link as a tool
  error. Retrying the identical call after approval succeeds (the admission kept the signed
  intent and claims the token itself), and so does a retry carrying the token in
  ``_meta["clearance/approval_token"]``. Either way the gate honours the token only for the
  request digest it was issued for: changed arguments are a new request.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import mcp.types as types

from clearance.approvals.service import AgentStatus, State
from clearance.approvals.waiting import PendingApproval
from clearance.errors import ClearanceError, RequestError
from clearance.integrations.errors import (
    ApprovalPending,
    Denied,
    GateUnavailable,
    SandboxRequired,
    ToolRefused,
)
from clearance.integrations.mapping import (
    ApprovalLink,
    SessionHandle,
    build_request,
    refusal,
    refusal_text,
    result_of,
    sandbox_obligation,
)
from clearance.integrations.transport import Transport, authorize, redemption, report, wait
from clearance.model.decision import Decision
from clearance.model.request import Request

TOKEN_META_KEY = "clearance/approval_token"  # noqa: S105 - a metadata key name, not a secret
APPROVAL_INPUT_KEY = "clearance/approval"
MAX_PENDING = 10_000
POLL_S = 0.25

log = logging.getLogger("clearance.integrations.mcp")

Refusal = types.CallToolResult | types.InputRequiredResult
Identify = Callable[[Any], SessionHandle]
Grants = Callable[[SessionHandle], frozenset[str] | None]


def error_result(text: str) -> types.CallToolResult:
    """A tool result the model reads as a failure with ``text`` as its reason."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def text_of(result: types.CallToolResult) -> str:
    """The text blocks of a tool result, joined."""
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def fixed_session(session: SessionHandle) -> Identify:
    """Every call belongs to ``session`` (stdio: the launcher's environment proves who calls)."""
    return lambda _ctx: session


def caller(identify: Identify, ctx: Any) -> SessionHandle | types.CallToolResult:
    """The caller's session, or the tool error saying why there is none (nothing is decided)."""
    try:
        return identify(ctx)
    except ToolRefused as exc:
        return error_result(refusal_text(exc))
    except ClearanceError as exc:  # e.g. the store could not be read: fail closed
        return error_result(f"blocked: {exc}")


def supports_url_elicitation(ctx: Any) -> bool:
    """Whether the client of ``ctx`` declared elicitation in URL mode."""
    capabilities = getattr(ctx.session, "client_capabilities", None)
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and elicitation.url is not None


@dataclass(frozen=True, slots=True)
class Call:
    """One MCP request as the gate sees it: surface, verb, arguments and target.

    ``params`` are the MCP request's own parameters: the approval token travels in their
    ``_meta`` and a client's answer to our URL elicitation in their ``input_responses``; neither
    ever changes what is decided.
    """

    tool: str
    args: Mapping[str, Any]
    params: types.RequestParams
    action: str = "call"
    target: str | None = None

    @classmethod
    def of_tool(cls, params: types.CallToolRequestParams) -> Call:
        """The ``tools/call`` of ``params``: the namespaced tool name with its arguments."""
        return cls(tool=params.name, args=params.arguments or {}, params=params)

    @property
    def token(self) -> str | None:
        """The execution token the client sent in ``_meta``, if any."""
        token = (self.params.meta or {}).get(TOKEN_META_KEY)
        return token if isinstance(token, str) else None

    @property
    def user_went_to_page(self) -> bool:
        """Whether a retried call carries the client's "accept" of our URL elicitation."""
        responses = getattr(self.params, "input_responses", None) or {}
        answer = responses.get(APPROVAL_INPUT_KEY)
        return isinstance(answer, types.ElicitResult) and answer.action == "accept"


class Admission:
    """Decides MCP tool calls through ``transport`` and records what the permitted ones did.

    ``approval_wait_s`` is how long a call from a client without URL elicitation waits for an
    operator before answering "pending"; ``elicitation_wait_s`` is how long a call waits once the
    client has sent its user to the approval page. Both are bounded: a call never hangs forever.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        approval_url: ApprovalLink | None = None,
        approval_wait_s: float = 0.0,
        elicitation_wait_s: float = 300.0,
    ) -> None:
        self.transport = transport
        self.approval_url = approval_url
        self.approval_wait_s = approval_wait_s
        self.elicitation_wait_s = elicitation_wait_s
        self._pending: dict[str, tuple[PendingApproval, Decision]] = {}

    async def admit(
        self,
        ctx: Any,
        session: SessionHandle,
        params: types.CallToolRequestParams,
    ) -> Decision | Refusal:
        """A PERMIT decision for exactly this tool call, or the tool result that replaces it."""
        try:
            return await self.clear(ctx, session, Call.of_tool(params))
        except ToolRefused as exc:
            return error_result(refusal_text(exc))
        except RequestError as exc:
            return error_result(f"blocked: {exc}")

    async def clear(
        self, ctx: Any, session: SessionHandle, call: Call
    ) -> Decision | types.InputRequiredResult:
        """A PERMIT decision for exactly ``call``, or the input a modern client must give first.

        Raises:
            ToolRefused: the gate did not permit it (denied, pending, unavailable, or a sandbox
                this gateway cannot provide).
            RequestError: the call cannot be put to the gate (its arguments are not JSON).
        """
        request = build_request(
            session,
            call.tool,
            call.args,
            action=call.action,
            target=call.target,
            approval_token=call.token,
        )
        decision = await self._decide(ctx, request, call)
        if isinstance(decision, types.InputRequiredResult):
            return decision
        if sandbox_obligation(decision) is not None:
            raise SandboxRequired(call.tool, decision)
        return decision

    async def record(
        self,
        session: SessionHandle,
        decision: Decision,
        result: types.CallToolResult | None,
        *,
        failure: str | None = None,
    ) -> None:
        """Report what a permitted tool call did (``failure`` when it did not return a result)."""
        if result is None:
            await self.record_output(
                session, decision, error=failure or "the tool returned no result"
            )
        elif result.is_error:
            error = text_of(result) or "the tool reported an error"
            await self.record_output(session, decision, error=error)
        else:
            output = result.structured_content or text_of(result)
            await self.record_output(session, decision, output=output)

    async def record_output(
        self,
        session: SessionHandle,
        decision: Decision,
        *,
        output: Any = None,
        error: str | None = None,
    ) -> None:
        """Report what a permitted request returned (``output``) or why it failed (``error``).

        The output goes to the gate as any tool output does: recorded against the decision, and
        scanned and tainting the session where the policy marks the surface an untrusted source.
        """
        outcome = result_of(decision, success=error is None, output=output, error=error)
        await anyio.to_thread.run_sync(
            functools.partial(report, self.transport, outcome, agent_id=session.agent_id)
        )

    # deciding -------------------------------------------------------------------------------
    async def _decide(
        self, ctx: Any, request: Request, call: Call
    ) -> Decision | types.InputRequiredResult:
        held = self._pending.get(request.digest) if request.approval_token is None else None
        if held is not None:
            wait_s = self.elicitation_wait_s if call.user_went_to_page else 0.0
            return await self._resume(request, held, wait_s=wait_s)
        elicit = supports_url_elicitation(ctx) and self.approval_url is not None
        try:
            return await self._authorize(request, wait_s=0.0 if elicit else self.approval_wait_s)
        except ApprovalPending as exc:
            if exc.decision is None:
                raise
            held = (PendingApproval.from_decision(exc.decision, request), exc.decision)
            self._hold(request.digest, held)
            if not elicit:
                raise
            return await self._elicit(ctx, request, held, exc)

    async def _authorize(self, request: Request, *, wait_s: float) -> Decision:
        return await anyio.to_thread.run_sync(
            functools.partial(
                authorize,
                self.transport,
                request,
                approval_url=self.approval_url,
                wait_s=wait_s,
            )
        )

    def _hold(self, digest: str, held: tuple[PendingApproval, Decision]) -> None:
        """Keep the signed intent of a pending approval, so a retry can claim the token."""
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(next(iter(self._pending)))
        self._pending[digest] = held

    async def _elicit(
        self,
        ctx: Any,
        request: Request,
        held: tuple[PendingApproval, Decision],
        exc: ApprovalPending,
    ) -> Decision | types.InputRequiredResult:
        url = exc.url or ""
        message = (
            f"`{request.tool}` needs approval in clearance (rule `{exc.rule}`: {exc.reason}); "
            f"open the link to review it, expires {exc.expires_at}"
        )
        if not getattr(ctx.session, "can_send_request", False):
            # 2026-07-28: no server-to-client requests; the client answers and retries the call.
            ask = types.ElicitRequest(
                params=types.ElicitRequestURLParams(
                    message=message, url=url, elicitation_id=exc.approval_id
                )
            )
            return types.InputRequiredResult(input_requests={APPROVAL_INPUT_KEY: ask})
        try:
            answer = await ctx.session.elicit_url(
                message, url, exc.approval_id, related_request_id=ctx.request_id
            )
        except Exception as failed:  # the client could not be asked: it gets the pending answer
            log.info("URL elicitation for %s failed: %s", exc.approval_id, failed)
            raise exc from failed
        if answer.action != "accept":
            raise exc
        decision = await self._resume(request, held, wait_s=self.elicitation_wait_s)
        try:
            await ctx.session.send_elicit_complete(exc.approval_id)
        except Exception:  # a courtesy notice; the call itself is already approved
            log.info("no elicitation/complete for %s", exc.approval_id, exc_info=True)
        return decision

    async def _resume(
        self, request: Request, held: tuple[PendingApproval, Decision], *, wait_s: float
    ) -> Decision:
        """Wait up to ``wait_s`` for the operator, then redeem the token for exactly ``request``."""
        pending, first = held
        status = await self._status(pending, wait_s)
        if status.state is State.PENDING:
            raise refusal(first, approval_url=self.approval_url) or GateUnavailable(
                "approval state unknown"
            )
        self._pending.pop(request.digest, None)
        if status.token is None:
            raise Denied(
                rule=f"approval:{status.state.value}",
                reason=status.reason or f"the approval request was {status.state.value}",
                decision=first,
            )
        return await self._authorize(redemption(request, status.token), wait_s=0.0)

    async def _status(self, pending: PendingApproval, wait_s: float) -> AgentStatus:
        """Poll the approval without holding a thread for the whole wait (a cancel stops it)."""
        deadline = anyio.current_time() + wait_s
        while True:
            status = await anyio.to_thread.run_sync(
                functools.partial(wait, self.transport, pending, timeout_s=0)
            )
            if status.state is not State.PENDING or anyio.current_time() >= deadline:
                return status
            await anyio.sleep(min(POLL_S, max(deadline - anyio.current_time(), 0.0)))
