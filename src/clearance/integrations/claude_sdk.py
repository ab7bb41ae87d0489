"""Claude Agent SDK: every tool call of an in-process Claude agent is decided by the gate.

The SDK offers two places to stand: the ``can_use_tool`` permission callback and hook callbacks.
:class:`ClaudeGate` provides both, built on the same dialect-free core as ``clearance hook
claude-code`` (:class:`clearance.integrations.hooks.ToolEventGate`), so the in-process agent and
the CLI hook decide, wait for approvals and record outcomes identically::

    gate = ClaudeGate(
        InProcessTransport(runtime.gate, approvals=runtime.approvals),
        SessionHandle(agent_id="coder-1", session_id=session.session_id),
        approval_wait_s=120,
        approval_url=approval_link("http://127.0.0.1:8787"),
    )
    options = ClaudeAgentOptions(can_use_tool=gate.can_use_tool, hooks=gate.hooks())

Which callback binds: the PreToolUse hook runs for every tool call whatever the permission mode,
so it is the gate; ``can_use_tool`` is only consulted when Claude Code would otherwise prompt
(it never runs for tools in ``allowed_tools`` or under ``bypassPermissions``). Install the hooks;
add ``can_use_tool`` as well to keep the permission prompt out of the user's hands.

What each outcome becomes:

* PERMIT: ``PermissionResultAllow`` whose ``updated_input`` is exactly the decided arguments (a
  copy taken before the decision, so nothing changed afterwards reaches the tool); the hook gives
  no decision, leaving the SDK's own deny rules in force.
* DENY: ``PermissionResultDeny`` / a ``deny`` hook decision naming the rule and the reason.
* APPROVAL: never the client's own "ask" (the person at that prompt is the principal whose agent
  made the call). The callback waits up to ``approval_wait_s`` for an operator to approve in
  clearance, redeems the one-time execution token for the identical call, and allows only if the
  gate permits *that*; otherwise it denies with the approval id and link.
* SILENCE, gate unreachable, input that is not JSON: deny. The hook matchers are created with
  ``on_failure="block"``, so a callback that crashes blocks the call too.

PostToolUse and PostToolUseFailure hooks record the outcome against the decision (found by the
call's ``tool_use_id``, which is the request's idempotency key).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
from claude_agent_sdk import (
    HookContext,
    HookInput,
    HookJSONOutput,
    HookMatcher,
    PermissionResultAllow,
    PermissionResultDeny,
    ToolPermissionContext,
)
from claude_agent_sdk.types import HookEvent

from clearance.gate.toolevents import ToolCallAnswer, pre_tool_output
from clearance.integrations.hooks import ToolEventGate
from clearance.integrations.mapping import ApprovalLink, SessionHandle
from clearance.integrations.transport import Transport

log = logging.getLogger("clearance.integrations.claude_sdk")

#: Seconds a hook callback is given beyond the approval wait (the SDK's default is 60).
HOOK_MARGIN_S = 30.0
#: Pre-tool answers remembered for the ``can_use_tool`` call of the same tool use.
_REMEMBERED = 1024

PermissionResult = PermissionResultAllow | PermissionResultDeny


class ClaudeGate:
    """``can_use_tool`` and hook callbacks for one trusted session, through one transport."""

    def __init__(
        self,
        transport: Transport,
        session: SessionHandle,
        *,
        approval_wait_s: float = 300.0,
        approval_url: ApprovalLink | None = None,
    ) -> None:
        self.core = ToolEventGate(
            transport, session, approval_wait_s=approval_wait_s, approval_url=approval_url
        )
        # tool_use_id -> the allow answer given for it. When Claude Code asks ``can_use_tool``
        # about a tool use the PreToolUse hook already allowed, it gets the same answer rather
        # than a second decision (which, after an approval, would find its token already used);
        # the post-tool hook records the outcome against the remembered decision.
        self._allowed: OrderedDict[str, ToolCallAnswer] = OrderedDict()

    # permission callback ---------------------------------------------------------------------
    async def can_use_tool(
        self, tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResult:
        """The SDK's permission callback: allow exactly what the gate permitted, deny otherwise."""
        call_id = context.tool_use_id
        remembered = self._allowed.get(call_id) if call_id is not None else None
        if remembered is not None and remembered.args == tool_input:
            return PermissionResultAllow(updated_input=remembered.args)
        payload = {"tool_name": tool_name, "tool_input": tool_input, "tool_use_id": call_id}
        answer = await self._pre_tool(payload)
        if answer.kind == "allow" and answer.args is not None:
            self._remember(call_id, answer)
            return PermissionResultAllow(updated_input=answer.args)
        return PermissionResultDeny(message=answer.reason)

    # hook callbacks --------------------------------------------------------------------------
    async def pre_tool_use(
        self,
        hook_input: HookInput,
        tool_use_id: str | None,
        context: HookContext,  # noqa: ARG002 - the SDK's hook callback signature
    ) -> HookJSONOutput:
        """PreToolUse: no decision on PERMIT (other rules stay in force), ``deny`` otherwise."""
        if hook_input["hook_event_name"] != "PreToolUse":
            return {}
        payload: Mapping[str, Any] = hook_input
        answer = await self._pre_tool(payload)
        if answer.kind == "allow":
            self._remember(payload.get("tool_use_id") or tool_use_id, answer)
            return {}
        output = pre_tool_output("deny", answer.reason)
        return {"hookSpecificOutput": output["hookSpecificOutput"]}

    async def post_tool_use(
        self,
        hook_input: HookInput,
        tool_use_id: str | None,
        context: HookContext,  # noqa: ARG002 - the SDK's hook callback signature
    ) -> HookJSONOutput:
        """PostToolUse / PostToolUseFailure: record the outcome against the call's decision."""
        event = hook_input["hook_event_name"]
        if event not in ("PostToolUse", "PostToolUseFailure"):
            return {}
        payload: Mapping[str, Any] = hook_input
        call_id = payload.get("tool_use_id") or tool_use_id
        remembered = self._allowed.pop(call_id, None) if isinstance(call_id, str) else None
        decision = remembered.decision if remembered is not None else None
        problem = await anyio.to_thread.run_sync(
            lambda: self.core.post_tool(
                payload, failed=event == "PostToolUseFailure", decision=decision
            ),
            abandon_on_cancel=True,
        )
        if problem is not None:
            log.warning("%s (tool use %s)", problem, tool_use_id)
        return {}

    def hooks(
        self, *, matcher: str | None = None, gate_pre_tool: bool = True
    ) -> dict[HookEvent, list[HookMatcher]]:
        """``ClaudeAgentOptions.hooks``: gate before every matching tool, record after.

        The pre-tool matcher blocks when its callback fails and is given the approval wait plus
        a margin (the SDK's default hook timeout is shorter than a human's approval).
        """
        post = HookMatcher(
            matcher=matcher,
            hooks=[self.post_tool_use],
            timeout=HOOK_MARGIN_S,
            on_failure="continue",
        )
        hooks: dict[HookEvent, list[HookMatcher]] = {
            "PostToolUse": [post],
            "PostToolUseFailure": [post],
        }
        if gate_pre_tool:
            timeout = self.core.approval_wait_s + HOOK_MARGIN_S
            hooks["PreToolUse"] = [
                HookMatcher(
                    matcher=matcher, hooks=[self.pre_tool_use], timeout=timeout, on_failure="block"
                )
            ]
        return hooks

    # internals -------------------------------------------------------------------------------
    async def _pre_tool(self, payload: Mapping[str, Any]) -> ToolCallAnswer:
        """The core's answer, asked from a worker thread (it may wait minutes for an approval)."""
        return await anyio.to_thread.run_sync(self.core.pre_tool, payload, abandon_on_cancel=True)

    def _remember(self, call_id: object, answer: ToolCallAnswer) -> None:
        if not isinstance(call_id, str) or not call_id:
            return
        self._allowed[call_id] = answer
        while len(self._allowed) > _REMEMBERED:
            self._allowed.popitem(last=False)
