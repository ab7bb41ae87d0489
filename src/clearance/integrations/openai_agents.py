"""Put the gate in front of an OpenAI Agents SDK agent (the ``[openai-agents]`` extra).

:func:`protect` returns a copy of the agent whose every function tool (and every local MCP server)
carries a clearance tool input guardrail and output guardrail::

    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals)
    agent = protect(agent, transport, SessionHandle("ops-agent-1", session_id))
    result = await Runner.run(agent, "pay the supplier")

What each outcome does to the run:

* PERMIT: the tool runs; the output guardrail reports its ``ActionResult`` (success or failure,
  output size and summary) against the decision, which feeds breakers and taint.
* DENY: the tool does not run; the model gets ``denied by rule `...`: reason`` as the tool's
  result (``reject_content``) and can re-plan.
* APPROVAL: the tool's ``needs_approval`` says yes, so the SDK stops the run with an interruption.
  When the run resumes after ``state.approve(item)`` the input guardrail asks clearance again:
  only a clearance approval by an operator yields the execution token that is redeemed for this
  exact call. An approval given only inside the SDK proves nothing (anyone holding the run state
  can give it), so the model is told the approval is still pending and the tool does not run.
* The kill switch (or a drain) for this agent: the run halts with
  ``ToolInputGuardrailTripwireTriggered``; the model does not get to try something else.
* SILENCE or an unreachable gate: the run halts with ``ToolInputGuardrailTripwireTriggered``
  (``on_unavailable="halt"``, the default) or the model is told (``"tell_model"``); either way the
  tool does not run.

Every call is sent with the idempotency key ``openai-agents:<session>:<call id>``, so the
``needs_approval`` check and the guardrail share one decision, and a run resumed from its
serialised state (in another process, too) finds the APPROVAL of that call again. Arguments
edited in the stored state no longer match that key's request digest: DENY
``idempotency-conflict``.

A local ``ShellTool`` and a ``CustomTool`` take no guardrails, so their executors are wrapped:
the gate decides each call before the user's executor runs it. Tools the SDK runs on OpenAI's side (web
and file search, code interpreter, image generation, hosted MCP, a hosted shell), and tools
without guardrail support (computer, local shell, apply-patch), cannot be gated here:
:func:`protect` raises ``UngatedToolError`` rather than start an agent the gate would not cover.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from typing import Any, Literal

from agents import (
    Agent,
    CustomTool,
    FunctionTool,
    Handoff,
    RunContextWrapper,
    ShellCommandRequest,
    ShellTool,
    ToolApprovalItem,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
    ToolOutputGuardrail,
    ToolOutputGuardrailData,
)
from agents.mcp import MCPServer
from agents.tool import (
    resolve_function_tool_failure_error_function,
    set_function_tool_failure_error_function,
)
from agents.tool_context import ToolContext

from clearance.approvals.service import ApprovalService
from clearance.errors import ConfigError, RequestError
from clearance.gate.gate import Gate
from clearance.integrations.errors import (
    ApprovalPending,
    Denied,
    GateUnavailable,
    SandboxRequired,
    ToolRefused,
    UngatedToolError,
)
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
from clearance.integrations.transport import (
    InProcessTransport,
    Transport,
    authorize,
    decide,
    report,
)
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request

log = logging.getLogger("clearance.integrations.openai_agents")

GUARDRAIL_NAME = "clearance"
KEY_PREFIX = "openai-agents"
# ``authorize`` reads an approval's status only when asked to wait; this is one read, no sleep.
ONE_STATUS_READ_S = 1e-6

# DENY rules that end the run rather than let the model re-plan: the kill switch and a drain.
HALT_RULES = frozenset({"kill-switch", "drain"})
# Marks an executor a protection wrapped (shell, custom tools); the attribute holds it.
WRAPPED_BY = "__clearance_protection__"

OnUnavailable = Literal["halt", "tell_model"]
NeedsApproval = Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]


def protect(
    agent: Agent[Any],
    gate: Transport | Gate,
    session: SessionHandle,
    *,
    approval_url: ApprovalLink | None = None,
    approval_wait_s: float = 0.0,
    on_unavailable: OnUnavailable = "halt",
) -> Agent[Any]:
    """A copy of ``agent`` (and of the agents it hands off to) whose tools clearance gates.

    ``gate`` is a transport (``InProcessTransport``, ``SidecarTransport``) or a ``Gate``, whose
    approval service is used when it has one. ``session`` comes from whoever opened the session,
    never from the model. ``approval_wait_s > 0`` makes the guardrail wait that long for a human
    before refusing (useful for MCP server tools, which have no per-call approval pause).
    The user's tools are not modified; local MCP servers are shared with the original agent and
    get the guardrails added in place.

    Raises:
        UngatedToolError: a tool, handoff or MCP server cannot be gated; do not run the agent.
        ConfigError: a tool or MCP server is already protected for another session.
    """
    transport = gate if not isinstance(gate, Gate) else _in_process(gate)
    protection = Protection(
        transport,
        session,
        approval_url=approval_url,
        approval_wait_s=approval_wait_s,
        on_unavailable=on_unavailable,
    )
    return protection.agent(agent)


def _in_process(gate: Gate) -> InProcessTransport:
    approvals = gate.approvals if isinstance(gate.approvals, ApprovalService) else None
    return InProcessTransport(gate, approvals=approvals)


def is_protected(agent: Agent[Any]) -> bool:
    """True when clearance gates every tool and MCP server of ``agent``."""
    return all(_is_gated(tool) for tool in agent.tools) and all(
        _has_guardrail(s.tool_input_guardrails) for s in agent.mcp_servers
    )


def _is_gated(tool: object) -> bool:
    if isinstance(tool, FunctionTool):
        return _has_guardrail(tool.tool_input_guardrails)
    if isinstance(tool, ShellTool):
        return isinstance(getattr(tool.executor, WRAPPED_BY, None), Protection)
    if isinstance(tool, CustomTool):
        return isinstance(getattr(tool.on_invoke_tool, WRAPPED_BY, None), Protection)
    return False


def clearance_approval(item: ToolApprovalItem) -> ApprovalPending | None:
    """The clearance approval behind an SDK interruption: id, expiry and dashboard link.

    What an app shows (or sends to the operators) while the run waits. None when the
    interruption is not clearance's (the tool's own ``needs_approval`` asked for it) or when the
    tool is not protected. Reading it never claims the execution token: the guardrail does that
    when the run resumes.

    Raises:
        GateUnavailable: the gate could not be asked.
    """
    agent = item.agent
    tool = next(
        (t for t in agent.tools if isinstance(t, FunctionTool) and t.name == item.tool_name),
        None,
    )
    owner = _owner(tool.tool_input_guardrails) if tool is not None else None
    if owner is None or item.tool_name is None or item.call_id is None:
        return None
    return owner.approval_of(item.tool_name, item.arguments or "{}", item.call_id)


def _has_guardrail(guardrails: list[ToolInputGuardrail[Any]] | None) -> bool:
    return _owner(guardrails) is not None


def _owner(guardrails: list[ToolInputGuardrail[Any]] | None) -> Protection | None:
    """The ``Protection`` whose guardrail is in ``guardrails``, if any."""
    for guardrail in guardrails or ():
        owner = getattr(guardrail.guardrail_function, "__self__", None)
        if isinstance(owner, Protection):
            return owner
    return None


class Protection:
    """The guardrails of one trusted session; :func:`protect` builds one per call.

    It keeps, per tool call, the decision ``needs_approval`` got (so the guardrail does not ask
    twice), the PERMIT the output guardrail reports against, and whether the body raised; and,
    per request digest, the first call still waiting for approval (so a retry joins that
    approval). A call id the guardrail already let through is refused a second time: an
    idempotency key answers a repeat with the stored decision, and a model must not turn that
    into a second execution.
    """

    def __init__(
        self,
        transport: Transport,
        session: SessionHandle,
        *,
        approval_url: ApprovalLink | None = None,
        approval_wait_s: float = 0.0,
        on_unavailable: OnUnavailable = "halt",
    ) -> None:
        self.transport = transport
        self.session = session
        self.approval_url = approval_url
        self.approval_wait_s = approval_wait_s
        self.on_unavailable = on_unavailable
        self.input_guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(
            guardrail_function=self.check_input, name=GUARDRAIL_NAME
        )
        self.output_guardrail: ToolOutputGuardrail[Any] = ToolOutputGuardrail(
            guardrail_function=self.record_output, name=GUARDRAIL_NAME
        )
        self._decided: dict[str, Decision] = {}
        self._permitted: dict[str, Decision] = {}
        self._failed: dict[str, str] = {}
        self._ran: set[str] = set()
        self._waiting: dict[str, Request] = {}

    # wiring ----------------------------------------------------------------------------------
    def agent(self, agent: Agent[Any], seen: dict[int, Agent[Any]] | None = None) -> Agent[Any]:
        """A protected copy of ``agent``; handoff cycles map to the same copies."""
        seen = {} if seen is None else seen
        if id(agent) in seen:
            return seen[id(agent)]
        tools = [self.tool(tool) for tool in agent.tools]
        clone = agent.clone(tools=tools, handoffs=[])
        seen[id(agent)] = clone
        clone.handoffs = [self._handoff(h, seen) for h in agent.handoffs]
        for server in agent.mcp_servers:
            self.server(server)
        return clone

    def tool(self, tool: object) -> FunctionTool | ShellTool | CustomTool:
        """A copy of a function tool with the guardrails and ``needs_approval`` wired."""
        if isinstance(tool, ShellTool):
            return self.shell(tool)
        if isinstance(tool, CustomTool):
            return self.custom(tool)
        if not isinstance(tool, FunctionTool):
            name = getattr(tool, "name", type(tool).__name__)
            raise UngatedToolError(
                str(name),
                f"a {type(tool).__name__} runs without tool guardrails, so no decision can stop it",
                hint="remove it from the agent, or expose the action as a function tool",
            )
        inner = getattr(tool, "_agent_instance", None)
        if isinstance(inner, Agent) and not is_protected(inner):
            raise UngatedToolError(
                tool.name,
                f"it runs agent `{inner.name}`, whose tools are not gated",
                hint="build the tool from the protected agent: `protect(inner, ...).as_tool(...)`",
            )
        if self._already_mine(tool.name, tool.tool_input_guardrails):
            return tool
        clone = copy.copy(tool)
        # Decide last (nothing can change the call after the decision); record first (a later
        # output guardrail that rejects cannot make the outcome go unreported).
        clone.tool_input_guardrails = [*(tool.tool_input_guardrails or ()), self.input_guardrail]
        clone.tool_output_guardrails = [self.output_guardrail, *(tool.tool_output_guardrails or ())]
        clone.needs_approval = self._needs_approval(tool)
        self._record_failures(tool, clone)
        return clone

    def shell(self, tool: ShellTool) -> ShellTool:
        """A copy of a local shell tool whose executor asks the gate before every command.

        Shell tools take no guardrails, and their SDK approval can be given once for all calls
        (``always_approve``), so the gate sits in the executor itself: nothing else runs the
        commands. A refusal is returned as the command's output, for the model to read.
        """
        run = tool.executor
        if run is None:
            raise UngatedToolError(
                tool.name,
                "a hosted shell runs on OpenAI's side, where no decision can stop it",
                hint="give the ShellTool a local executor, or leave it out",
            )
        if self._wrapped_by_me(tool.name, run):
            return tool

        async def executor(request: ShellCommandRequest) -> Any:
            call = request.data
            args = asdict(call.action)
            return await self._run_gated(tool.name, args, call.call_id, lambda: run(request))

        setattr(executor, WRAPPED_BY, self)
        return replace(tool, executor=executor)

    def custom(self, tool: CustomTool) -> CustomTool:
        """A copy of a custom (free-text input) tool whose invoker asks the gate first.

        The gated arguments are ``{"input": <the model's text>}``.
        """
        run = tool.on_invoke_tool
        if self._wrapped_by_me(tool.name, run):
            return tool

        async def invoke(ctx: ToolContext[Any], text: str) -> Any:
            args = {"input": text}
            return await self._run_gated(tool.name, args, ctx.tool_call_id, lambda: run(ctx, text))

        setattr(invoke, WRAPPED_BY, self)
        return replace(tool, on_invoke_tool=invoke)

    def _wrapped_by_me(self, name: str, run: object) -> bool:
        owner = getattr(run, WRAPPED_BY, None)
        if isinstance(owner, Protection):
            return self._already_mine(name, [owner.input_guardrail])
        return False

    async def _run_gated(
        self, tool: str, args: dict[str, Any], call_id: str, run: Callable[[], Any]
    ) -> Any:
        """Run ``run()`` only on a PERMIT and report its outcome; else return the refusal text."""
        try:
            decision = await self.admit(tool, args, call_id)
        except ToolRefused as exc:
            return refusal_text(exc)
        except RequestError as exc:
            return f"blocked: {exc}"
        try:
            output = run()
            output = await output if inspect.isawaitable(output) else output
        except Exception as exc:
            await self._report(decision, error=f"{type(exc).__name__}: {exc}")
            raise
        await self._report(decision, output=output)
        return output

    def server(self, server: MCPServer) -> None:
        """Add the guardrails to a local MCP server's tools (in place, once)."""
        if self._already_mine(server.name, server.tool_input_guardrails):
            return
        server.tool_input_guardrails = [*(server.tool_input_guardrails or ()), self.input_guardrail]
        server.tool_output_guardrails = [
            self.output_guardrail,
            *(server.tool_output_guardrails or ()),
        ]

    def _already_mine(self, name: str, guardrails: list[ToolInputGuardrail[Any]] | None) -> bool:
        """True if this protection already gates it; another protection's tool is refused.

        Keeping another protection's guardrail would decide this agent's calls as that
        protection's session: the wrong identity, silently.
        """
        owner = _owner(guardrails)
        if owner is None:
            return False
        if owner is self:
            return True
        raise ConfigError(
            f"`{name}` is already protected for session `{owner.session.session_id}`",
            hint="protect the original agent (or give each session its own MCP server object)",
        )

    def _handoff(self, target: Agent[Any] | Handoff[Any, Any], seen: dict[int, Agent[Any]]) -> Any:
        if isinstance(target, Agent):
            return self.agent(target, seen)
        ref = getattr(target, "_agent_ref", None)
        agent = ref() if callable(ref) else None
        if isinstance(agent, Agent) and is_protected(agent):
            return target
        raise UngatedToolError(
            target.tool_name,
            "the handoff's target agent is not protected",
            hint="hand off to the agent itself, or build the handoff from `protect(target, ...)`",
        )

    def _needs_approval(self, tool: FunctionTool) -> NeedsApproval:
        """Ask the gate; an APPROVAL pauses the run. The tool's own setting still applies too."""
        own = tool.needs_approval
        name = tool.name

        async def needs_approval(
            ctx: RunContextWrapper[Any], params: dict[str, Any], call: str
        ) -> bool:
            decision = await asyncio.to_thread(self._first_decision, name, params, call)
            if decision is not None and decision.outcome is Outcome.APPROVAL:
                return True
            if callable(own):
                answer = own(ctx, params, call)
                return bool(await answer if inspect.isawaitable(answer) else answer)
            return bool(own)

        return needs_approval

    def _record_failures(self, tool: FunctionTool, clone: FunctionTool) -> None:
        """Wrap the tool's failure formatter so a body that raised is reported as a failure."""
        if resolve_function_tool_failure_error_function(tool) is None:
            return  # the SDK re-raises: the run fails, there is no result to report

        async def formatter(ctx: RunContextWrapper[Any], error: Exception) -> str:
            call_id = getattr(ctx, "tool_call_id", None)
            if isinstance(call_id, str):
                self._failed[self._key(call_id)] = f"{type(error).__name__}: {error}"
            original = resolve_function_tool_failure_error_function(tool, ctx)
            text = original(ctx, error) if original is not None else str(error)
            return str(await text if inspect.isawaitable(text) else text)

        set_function_tool_failure_error_function(clone, formatter)

    # decisions -------------------------------------------------------------------------------
    def _key(self, call_id: str) -> str:
        return f"{KEY_PREFIX}:{self.session.session_id}:{call_id}"

    def _request(self, tool: str, args: dict[str, Any], call_id: str) -> Request:
        return build_request(self.session, tool, args, idempotency_key=self._key(call_id))

    def _first_decision(self, tool: str, args: dict[str, Any], call_id: str) -> Decision | None:
        """The decision ``needs_approval`` asks for; None when it could not be had.

        Failing here must not fail open: the guardrail decides again and refuses.
        """
        try:
            request = self._request(tool, args, call_id)
            asked = self._waiting.get(request.digest, request)
            decision = decide(self.transport, asked)
        except (ToolRefused, RequestError):
            return None
        if decision.outcome is Outcome.APPROVAL:
            self._waiting.setdefault(request.digest, asked)
        self._decided[request.idempotency_key or ""] = decision
        return decision

    def _held(self, request: Request) -> Decision | None:
        """``needs_approval``'s answer for exactly ``request``, unless it was an APPROVAL.

        An APPROVAL is always asked again with a status read: the run may have resumed after an
        approval, and only clearance's approval state says whether a human granted it.
        """
        held = self._decided.pop(request.idempotency_key or "", None)
        if (
            held is None
            or held.request_digest != request.digest
            or held.outcome is Outcome.APPROVAL
        ):
            return None
        return held

    def _authorize(self, request: Request) -> Decision:
        """The gate's PERMIT for ``request``, waiting on (or reading) an approval; or ToolRefused.

        A retry of a call that is waiting for approval (same request digest, new call id) is asked
        as the first call was, so it finds that approval instead of opening a second one; the
        token it redeems is still bound to the digest.
        """
        asked = self._waiting.get(request.digest, request)
        wait_s = max(self.approval_wait_s, ONE_STATUS_READ_S)
        try:
            decision = authorize(
                self.transport, asked, approval_url=self.approval_url, wait_s=wait_s
            )
        except ApprovalPending:
            self._waiting.setdefault(request.digest, asked)
            raise
        except Denied:
            self._waiting.pop(request.digest, None)
            raise
        self._waiting.pop(request.digest, None)
        return decision

    def approval_of(self, tool: str, arguments: str, call_id: str) -> ApprovalPending | None:
        """The pending approval of one call, from ``needs_approval``'s answer or the gate's record.

        The gate answers the call's idempotency key with the stored APPROVAL, so this works in a
        process that resumed the run from its saved state, too.
        """
        request = self._request(tool, _arguments(arguments), call_id)
        decision = self._decided.get(request.idempotency_key or "")
        if decision is None or decision.request_digest != request.digest:
            decision = decide(self.transport, request)
        pending = refusal(decision, approval_url=self.approval_url)
        return pending if isinstance(pending, ApprovalPending) else None

    # guardrails ------------------------------------------------------------------------------
    async def admit(self, tool: str, args: dict[str, Any], call_id: str) -> Decision:
        """The PERMIT for one call; ``ToolRefused`` or ``RequestError`` when it may not run."""
        key = self._key(call_id)
        if key in self._ran:
            raise RequestError(f"tool call `{call_id}` already ran; a new call needs a new id")
        request = self._request(tool, args, call_id)
        held = self._held(request)
        if held is not None:
            decision = enforce(held, approval_url=self.approval_url)
        else:
            decision = await asyncio.to_thread(self._authorize, request)
        if sandbox_obligation(decision) is not None:
            raise SandboxRequired(tool, decision)
        self._ran.add(key)
        return decision

    async def check_input(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        """Run the tool only on a PERMIT for exactly these arguments; otherwise say why not."""
        ctx = data.context
        try:
            args = _arguments(ctx.tool_arguments)
            decision = await self.admit(ctx.tool_name, args, ctx.tool_call_id)
        except GateUnavailable as exc:
            return self._unavailable(exc)
        except Denied as exc:
            if exc.rule in HALT_RULES:  # an operator stopped this agent: stop the run too
                return ToolGuardrailFunctionOutput.raise_exception(
                    output_info={**_info(exc.decision), "refusal": refusal_text(exc)}
                )
            return ToolGuardrailFunctionOutput.reject_content(
                refusal_text(exc), output_info=_info(exc.decision)
            )
        except ToolRefused as exc:
            return ToolGuardrailFunctionOutput.reject_content(
                refusal_text(exc), output_info=_info(exc.decision)
            )
        except RequestError as exc:
            return ToolGuardrailFunctionOutput.reject_content(f"blocked: {exc}")
        self._permitted[self._key(ctx.tool_call_id)] = decision
        return ToolGuardrailFunctionOutput.allow(output_info=_info(decision))

    async def record_output(self, data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        """Report what the permitted call did; an output clearance never permitted is withheld."""
        key = self._key(data.context.tool_call_id)
        decision = self._permitted.pop(key, None)
        if decision is None:
            log.error("tool output without a clearance permit for %s", data.context.tool_name)
            return ToolGuardrailFunctionOutput.reject_content(
                "blocked: clearance did not permit this call, so its output is withheld"
            )
        error = self._failed.pop(key, None)
        await self._report(decision, output=data.output if error is None else None, error=error)
        return ToolGuardrailFunctionOutput.allow(output_info=_info(decision))

    async def _report(
        self, decision: Decision, *, output: Any = None, error: str | None = None
    ) -> None:
        result = result_of(decision, success=error is None, output=output, error=error)
        await asyncio.to_thread(report, self.transport, result, agent_id=self.session.agent_id)

    def _unavailable(self, exc: GateUnavailable) -> ToolGuardrailFunctionOutput:
        if self.on_unavailable == "tell_model":
            return ToolGuardrailFunctionOutput.reject_content(refusal_text(exc))
        return ToolGuardrailFunctionOutput.raise_exception(
            output_info={**_info(exc.decision), "refusal": refusal_text(exc)}
        )


def _arguments(raw: str) -> dict[str, Any]:
    """The call's arguments exactly as the tool will receive them (the model's JSON object)."""
    try:
        args = json.loads(raw or "{}")
    except ValueError as exc:
        raise RequestError(f"the tool arguments are not JSON: {exc}") from exc
    if not isinstance(args, dict):
        raise RequestError("the tool arguments are not a JSON object")
    return args


def _info(decision: Decision | None) -> dict[str, Any]:
    """What the SDK keeps in the guardrail result: enough to find the decision in the audit log."""
    if decision is None:
        return {}
    return {
        "decision_id": decision.decision_id,
        "outcome": decision.outcome.value,
        "rule": decision.rule,
        "approval_id": decision.approval_id,
    }
