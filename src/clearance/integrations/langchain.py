"""LangChain / LangGraph: an ``AgentMiddleware`` that puts the gate in front of every tool call.

One middleware serves ``langchain.agents.create_agent`` and hand-built graphs with
``langgraph.prebuilt.ToolNode`` (its ``wrap_tool_call`` / ``awrap_tool_call`` take the same
callables). The tool runs only after a PERMIT for exactly the arguments it will receive::

    gatekeeper = ClearanceMiddleware(
        InProcessTransport(runtime.gate, approvals=runtime.approvals),
        SessionHandle(agent_id="fin-1", session_id=session.session_id),   # from the orchestrator
        approval_url=approval_link("http://127.0.0.1:8787"),
    )
    agent = create_agent(model, tools, middleware=[gatekeeper], checkpointer=InMemorySaver())
    graph = ToolNode(tools, wrap_tool_call=gatekeeper.wrap_tool_call,
                     awrap_tool_call=gatekeeper.awrap_tool_call)

What each decision becomes:

* PERMIT: the tool runs; its outcome (the ``ToolMessage``, or the exception) is reported.
* DENY and SILENCE (or an unreachable gate): a ``ToolMessage`` with ``status="error"`` naming
  the rule and reason, so the model can re-plan; the tool does not run.
* APPROVAL: the graph pauses with ``langgraph.types.interrupt()`` carrying a
  ``clearance_approval`` payload (approval id, expiry, dashboard link, summary). An operator
  decides in clearance; the caller resumes with ``Command(resume=...)``. **The resume value is
  never taken as approval**: the middleware reads the approval's state from the gate and, once
  approved, redeems the one-time execution token by resubmitting the identical request. While
  the gate still says pending, the graph pauses again. A resume of ``{"type": "edit", "args":
  {...}}`` is a new request with its own decision; the old approval never covers it.

LangGraph re-runs an interrupted node from its start when it resumes, so each call carries an
idempotency key derived from the thread, the task's checkpoint namespace and the tool call id:
the gate answers the re-run with the decision it already made (the same approval) instead of
opening a second approval request. A call that already ran is answered from memory on such a
re-run, never executed twice by this process.

Identity never comes from the model: the ``SessionHandle`` is fixed when the middleware is built,
or read from ``runtime.context`` (which only the code calling ``invoke`` sets) with
:func:`session_from_context`; never from graph state, tool arguments or messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp
from langgraph.prebuilt.tool_node import ToolCallRequest, ToolRuntime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, ValidationError

from clearance.approvals.service import State
from clearance.approvals.summary import mask_args
from clearance.approvals.waiting import PendingApproval
from clearance.errors import ClearanceError, ConfigError
from clearance.integrations.errors import ApprovalPending, Denied, GateUnavailable, ToolRefused
from clearance.integrations.mapping import (
    ApprovalLink,
    SessionHandle,
    build_request,
    enforce,
    refusal,
    refusal_text,
    result_of,
    sandbox_obligation,
)
from clearance.integrations.transport import Transport, decide, redemption, report, wait
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request

INTERRUPT_TYPE = "clearance_approval"
KEY_PREFIX = "langchain:"
REMEMBERED_CALLS = 4096

ToolResult = ToolMessage | Command[Any]
SessionSource = Callable[[ToolRuntime[Any, Any]], SessionHandle]


def session_from_context(runtime: ToolRuntime[Any, Any]) -> SessionHandle:
    """The ``SessionHandle`` the caller passed as ``invoke(..., context=handle)``.

    ``runtime.context`` is set per run by the code that calls ``invoke``, not by the model; it
    must be the handle object itself (a dict or string could have been built from model output).
    """
    context = runtime.context
    if not isinstance(context, SessionHandle):
        raise ConfigError(
            "no clearance session in the run's context",
            hint="call `invoke(..., context=SessionHandle(...))` or pass `session=` to the middleware",
        )
    return context


@dataclass(frozen=True, slots=True)
class _Gated:
    """A call the gate permitted: the request LangChain will run and the decision to report."""

    call: ToolCallRequest
    decision: Decision
    agent_id: str
    memo_key: str | None


class ClearanceMiddleware(AgentMiddleware[Any, Any, Any]):
    """Gates every tool call of an agent (or a ``ToolNode``) through one transport.

    Put it **last** in ``create_agent``'s ``middleware`` list: the last middleware is the
    innermost, so no other middleware can change a call between the decision and the tool.
    Approvals need a checkpointer (``InMemorySaver`` or a persistent one), as any interrupt does.
    """

    def __init__(
        self,
        transport: Transport,
        session: SessionHandle | SessionSource,
        *,
        approval_url: ApprovalLink | None = None,
        approval_wait_s: float = 0.0,
    ) -> None:
        """``approval_wait_s``: how long a resume waits for the gate to see an operator's vote."""
        super().__init__()
        self.transport = transport
        self._session = session
        self.approval_url = approval_url
        self.approval_wait_s = approval_wait_s
        self._ran: OrderedDict[str, ToolResult] = OrderedDict()
        self._lock = threading.Lock()

    # LangChain's hooks ------------------------------------------------------------------------
    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult]
    ) -> ToolResult:
        """Run ``handler`` only after a PERMIT; otherwise answer the model with the refusal."""
        gated = self._gate(request)
        if not isinstance(gated, _Gated):
            return gated
        try:
            result = handler(gated.call)
        except GraphBubbleUp:
            raise  # the tool itself paused the graph: it runs again on resume, nothing to report
        except BaseException as exc:
            self._failed(gated, exc)
            raise
        return self._ran_ok(gated, result)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolResult]],
    ) -> ToolResult:
        """``wrap_tool_call`` for async agents: the gate is asked from a worker thread."""
        gated = await asyncio.to_thread(self._gate, request)
        if not isinstance(gated, _Gated):
            return gated
        try:
            result = await handler(gated.call)
        except GraphBubbleUp:
            raise
        except BaseException as exc:
            await asyncio.to_thread(self._failed, gated, exc)
            raise
        return await asyncio.to_thread(self._ran_ok, gated, result)

    # the decision -----------------------------------------------------------------------------
    def _gate(self, call: ToolCallRequest) -> _Gated | ToolResult:
        """A permitted call, the result of a call that already ran, or the refusal message."""
        tool_call = call.tool_call
        try:
            session = self._resolve_session(call.runtime)
            request = build_request(
                session,
                tool_call["name"],
                _gated_args(call.tool, call.tool_call["args"]),
                idempotency_key=_call_key(call),
            )
            memo_key = _memo_key(request)
            earlier = self._recall(memo_key)
            if earlier is not None:
                return earlier
            request, decision = self._authorize(request, call.tool)
        except ToolRefused as exc:
            return _refused(call, refusal_text(exc))
        except ClearanceError as exc:
            return _refused(call, f"blocked: {exc}")
        if sandbox_obligation(decision) is not None:
            return _refused(
                call,
                f"blocked by rule `{decision.rule}`: the call must run in the clearance sandbox, "
                "which a LangChain tool running in this process cannot",
            )
        if request.args != call.tool_call["args"]:
            call = call.override(tool_call={**tool_call, "args": request.args})
        return _Gated(call, decision, session.agent_id, memo_key)

    def _resolve_session(self, runtime: ToolRuntime[Any, Any]) -> SessionHandle:
        if isinstance(self._session, SessionHandle):
            return self._session
        return self._session(runtime)

    def _authorize(self, request: Request, tool: BaseTool | None) -> tuple[Request, Decision]:
        """The request that may run and its PERMIT, or the ``ToolRefused`` saying why not.

        An APPROVAL pauses the graph; each resume asks the gate, never the resume value. An edit
        in the resume value becomes the request from then on (defaults filled in like the
        model's arguments), decided like any other.
        """
        decision = decide(self.transport, request)
        while decision.outcome is Outcome.APPROVAL:
            pending = refusal(decision, approval_url=self.approval_url)
            if not isinstance(pending, ApprovalPending):
                raise pending or GateUnavailable("an APPROVAL decision could not be waited on")
            answer = interrupt(_approval_payload(request, pending))
            edit = _edited_args(answer)
            edited = None if edit is None else _gated_args(tool, edit)
            if edited is not None and edited != request.args:
                request = _edit(request, edited)
                decision = decide(self.transport, request)
                continue
            decision = self._after_resume(request, decision)
        return request, enforce(decision, approval_url=self.approval_url)

    def _after_resume(self, request: Request, decision: Decision) -> Decision:
        """What the gate says now: a redeemed PERMIT, the same APPROVAL, or a refusal.

        The execution token is handed out once, on the first read after approval; a second
        read (a re-run of a call that already redeemed it) fails, and so does the call.
        """
        waiting = PendingApproval.from_decision(decision, request)
        status = wait(self.transport, waiting, timeout_s=self.approval_wait_s)
        if status.token is not None:
            return decide(self.transport, redemption(request, status.token))
        if status.state is State.PENDING:
            return decision  # the resume proved nothing: pause again on the same approval
        raise Denied(
            rule=f"approval:{status.state.value}",
            reason=status.reason or f"the approval request was {status.state.value}",
            decision=decision,
        )

    # the outcome ------------------------------------------------------------------------------
    def _ran_ok(self, gated: _Gated, result: ToolResult) -> ToolResult:
        message = _tool_message(result, gated.call)
        failed = message is not None and message.status == "error"
        content = None if message is None else message.content
        self._remember(gated, result)
        self._report(
            gated,
            success=not failed,
            output=None if failed else content,
            error=str(content) if failed else None,
        )
        return result

    def _failed(self, gated: _Gated, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        self._remember(gated, _refused(gated.call, f"the tool failed earlier in this run: {text}"))
        self._report(gated, success=False, output=None, error=text)

    def _recall(self, memo_key: str | None) -> ToolResult | None:
        if memo_key is None:
            return None
        with self._lock:
            return self._ran.get(memo_key)

    def _remember(self, gated: _Gated, result: ToolResult) -> None:
        if gated.memo_key is None:
            return
        with self._lock:
            self._ran[gated.memo_key] = result
            while len(self._ran) > REMEMBERED_CALLS:
                self._ran.popitem(last=False)

    def _report(self, gated: _Gated, *, success: bool, output: Any, error: str | None) -> None:
        result = result_of(gated.decision, success=success, output=output, error=error)
        report(self.transport, result, agent_id=gated.agent_id)


def _call_key(call: ToolCallRequest) -> str | None:
    """Stable across a resume of the same task, new for every other call; None outside a task.

    The checkpoint namespace names the task (LangGraph derives it from the checkpoint and the
    task's path), so a model that repeats a tool call id in a later turn gets a new key and a new
    decision rather than a replay of an old one. Without a namespace nothing can resume, and a
    key made of the tool call id alone would let a repeated id replay an old decision.
    """
    config = call.runtime.config if call.runtime is not None else {}
    configurable = config.get("configurable") or {}
    namespace = configurable.get("checkpoint_ns")
    if not namespace:
        return None
    parts = (
        str(configurable.get("thread_id", "")),
        str(namespace),
        str(call.tool_call.get("id") or ""),
    )
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return KEY_PREFIX + digest[:40]


def _memo_key(request: Request) -> str | None:
    """Which call of which task this is, with which arguments: what a re-run must match."""
    key = request.idempotency_key
    return None if key is None else f"{key}|{request.digest}"


def _gated_args(tool: BaseTool | None, sent: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments the tool will receive: those sent, with the tool's defaults filled in.

    A default is decided like an explicit value (as by the core guard). Arguments the tool's
    schema rejects are gated as sent; the tool refuses them itself.
    """
    args = dict(sent)
    schema = tool.tool_call_schema if tool is not None else None
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return args
    try:
        parsed = schema.model_validate(args)
    except ValidationError:
        return args
    extra = {k: v for k, v in args.items() if k not in schema.model_fields}
    return {**parsed.model_dump(mode="json"), **extra}


def _edit(request: Request, args: dict[str, Any]) -> Request:
    """An edited call: other arguments, so another digest and its own idempotency key."""
    edited = request.model_copy(update={"args": args, "idempotency_key": None})
    key = request.idempotency_key
    suffix = edited.digest.removeprefix("sha256:")[:16]
    return edited.model_copy(update={"idempotency_key": None if key is None else f"{key}:{suffix}"})


def _edited_args(answer: Any) -> dict[str, Any] | None:
    """The arguments of an ``{"type": "edit", "args": {...}}`` resume; None for anything else."""
    if isinstance(answer, Mapping) and answer.get("type") == "edit":
        args = answer.get("args")
        if isinstance(args, Mapping):
            return dict(args)
    return None


def _approval_payload(request: Request, pending: ApprovalPending) -> dict[str, Any]:
    """What the interrupt shows: enough for a person to find and decide the approval.

    It is stored in the checkpoint, so arguments are shown with secret-looking values masked.
    """
    return {
        "type": INTERRUPT_TYPE,
        "approval_id": pending.approval_id,
        "tool": request.tool,
        "args": mask_args(request.args, frozenset()),
        "rule": pending.rule,
        "reason": pending.reason,
        "expires_at": pending.expires_at,
        "dashboard_url": pending.url,
        "summary": f"`{request.tool}` needs approval: {pending.reason}",
        "resume": "approve or deny in clearance, then resume; the resume value is not an approval",
    }


def _refused(call: ToolCallRequest, text: str) -> ToolMessage:
    return ToolMessage(
        content=text,
        tool_call_id=call.tool_call.get("id") or "",
        name=call.tool_call["name"],
        status="error",
    )


def _tool_message(result: ToolResult, call: ToolCallRequest) -> ToolMessage | None:
    """The message a tool produced: the result itself, or the one a ``Command`` carries."""
    if isinstance(result, ToolMessage):
        return result
    update = result.update
    messages = update.get("messages", ()) if isinstance(update, Mapping) else ()
    call_id = call.tool_call.get("id")
    return next(
        (m for m in messages if isinstance(m, ToolMessage) and m.tool_call_id == call_id), None
    )
