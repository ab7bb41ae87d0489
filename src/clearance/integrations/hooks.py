"""Coding-agent hooks: Claude Code, Codex CLI and Gemini CLI ask the gate before every tool call.

One adapter, three dialects (INTEGRATIONS.md 4.8). The client sends its pre-tool event as JSON; the
gate decides; the reply is the dialect's decision JSON and exit code:

=====================  ===============================================  ========================
clearance              Claude Code / Codex                              Gemini CLI
=====================  ===============================================  ========================
PERMIT                 exit 0, no decision (the user's own rules stay)   ``decision: "allow"``
DENY                   ``permissionDecision: "deny"`` + rule and reason  ``decision: "deny"``
APPROVAL               waits for the operator, then as PERMIT or DENY   same
SILENCE / unreachable  exit 2, reason on stderr                         exit 2
=====================  ===============================================  ========================

The dialect-free part - decide, wait for an approval, record the outcome - is
:class:`ToolEventGate`; :class:`HookAdapter` spells its answers in a dialect, and the Claude Agent
SDK adapter (``clearance.integrations.claude_sdk``) uses the same core in process.

APPROVAL is never answered with the client's own ``ask``: the person at that prompt is the
principal whose agent made the call, and clearance forbids self-approval. The hook waits (up to
``approval_wait_s``, shorter than the client's hook timeout) for an operator to approve through
clearance, then redeems the execution token for the identical call; otherwise it denies with the
approval id and link so the model can say what it is waiting for.

Post-tool events become ``ActionResult`` records. Claude Code and Codex send ``tool_use_id`` with
both events; it is the pre-tool request's idempotency key, so the post-tool event finds its
decision by replaying the key (the gate answers from its record without deciding again). For a
call that ran after an approval that record is the APPROVAL whose token the call redeemed (the gate
keeps the APPROVAL under the key), and the outcome is recorded against it. Gemini sends no call
id, so its after-tool events cannot be attributed and are not recorded.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from clearance.errors import RequestError
from clearance.integrations.errors import GateUnavailable, SandboxRequired, ToolRefused
from clearance.integrations.mapping import (
    ApprovalLink,
    SessionHandle,
    build_request,
    refusal_text,
    result_of,
    sandbox_obligation,
)
from clearance.integrations.transport import Transport, authorize, decide, report
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request

Dialect = Literal["claude-code", "codex", "gemini"]
DIALECTS: tuple[Dialect, ...] = ("claude-code", "codex", "gemini")

BLOCK_EXIT = 2
_PRE_EVENTS = {"PreToolUse", "BeforeTool"}
_POST_EVENTS = {"PostToolUse", "AfterTool"}
_FAILURE_EVENTS = {"PostToolUseFailure"}
_PATH_KEYS = ("file_path", "notebook_path", "absolute_path", "path")


@dataclass(frozen=True, slots=True)
class HookReply:
    """What the hook process prints and how it exits."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""


def target_for(tool_input: Mapping[str, Any]) -> str | None:
    """The resource a call touches: the path of a file tool, the host of a fetch, a command's program.

    Derived from the tool input so policy can match on it; the input itself is still in ``args``.
    """
    for key in _PATH_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return value
    url = tool_input.get("url")
    if isinstance(url, str) and url:
        return urlsplit(url).hostname or None
    command = tool_input.get("command")
    if isinstance(command, str) and command.strip():
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        return words[0] if words else None
    return None


def block(reason: str) -> HookReply:
    """Exit 2 with the reason on stderr: every dialect treats it as a blocked call."""
    return HookReply(exit_code=BLOCK_EXIT, stderr=reason.replace("\n", " ") + "\n")


@dataclass(frozen=True, slots=True)
class ToolCallAnswer:
    """The gate's answer to one pre-tool event, before any dialect spells it.

    ``allow``: the call may run with exactly ``args`` (the arguments that were decided). ``deny``:
    a rule, an operator or an unanswered approval refused it; ``reason`` names the rule and why,
    for the model. ``block``: the gate did not decide (SILENCE, unreachable, unreadable input);
    callers block outright.
    """

    kind: Literal["allow", "deny", "block"]
    reason: str
    args: dict[str, Any] | None = None
    decision: Decision | None = None


class ToolEventGate:
    """The dialect-free part of every hook: tool events in, answers and outcome records out.

    Shared by the command hooks (:class:`HookAdapter`) and the in-process Claude Agent SDK
    callbacks (``clearance.integrations.claude_sdk``), so both decide, wait for approvals and
    record outcomes the same way. Calls block while an approval is waited on.
    """

    def __init__(
        self,
        transport: Transport,
        session: SessionHandle,
        *,
        approval_wait_s: float = 300.0,
        approval_url: ApprovalLink | None = None,
    ) -> None:
        self.transport = transport
        self.session = session
        self.approval_wait_s = approval_wait_s
        self.approval_url = approval_url

    def pre_tool(self, payload: Mapping[str, Any]) -> ToolCallAnswer:
        """Decide one pre-tool event (``tool_name``, ``tool_input``, optional ``tool_use_id``).

        An APPROVAL is waited on up to ``approval_wait_s``; approved, the identical call is
        redeemed with its one-time token and that PERMIT is the answer; otherwise it is a deny
        carrying the approval id and link.
        """
        try:
            request = self.request_of(payload)
            decision = authorize(
                self.transport,
                request,
                approval_url=self.approval_url,
                wait_s=self.approval_wait_s,
            )
            if sandbox_obligation(decision) is not None:
                raise SandboxRequired(request.tool, decision)
        except GateUnavailable as exc:
            return ToolCallAnswer("block", f"clearance: {refusal_text(exc)}")
        except ToolRefused as exc:
            return ToolCallAnswer("deny", refusal_text(exc))
        except RequestError as exc:
            return ToolCallAnswer("block", f"clearance: {exc}")
        return ToolCallAnswer(
            "allow", "permitted by clearance", args=dict(request.args), decision=decision
        )

    def request_of(self, payload: Mapping[str, Any]) -> Request:
        """The gate request of a tool event; the call id becomes its idempotency key."""
        tool = payload.get("tool_name")
        tool_input = payload.get("tool_input")
        if not isinstance(tool, str) or not tool:
            raise RequestError("the hook input has no `tool_name`")
        if not isinstance(tool_input, dict):
            raise RequestError(f"the hook input for `{tool}` has no `tool_input` object")
        call_id = payload.get("tool_use_id")
        return build_request(
            self.session,
            tool,
            tool_input,
            target=target_for(tool_input),
            idempotency_key=f"hook:{call_id}" if isinstance(call_id, str) and call_id else None,
        )

    def post_tool(
        self, payload: Mapping[str, Any], *, failed: bool, decision: Decision | None = None
    ) -> str | None:
        """Record the outcome of a post-tool event; the problem when it was not recorded.

        ``decision`` is the pre-tool answer's decision when the caller kept it (in-process
        adapters); otherwise it is found through the call's idempotency key.
        """
        if decision is None:
            try:
                decision = self._decision_of(self.request_of(payload))
            except (GateUnavailable, RequestError) as exc:
                return f"clearance: outcome not recorded: {exc}"
        if decision is None:
            return None
        if failed:
            error = payload.get("error")
            result = result_of(decision, success=False, error=str(error or "the tool failed"))
        else:
            result = result_of(decision, success=True, output=payload.get("tool_response"))
        if not report(self.transport, result, agent_id=self.session.agent_id):
            return "clearance: outcome not recorded"
        return None

    def _decision_of(self, request: Request) -> Decision | None:
        """The decision the pre-tool event got, replayed by its idempotency key, or None.

        A PERMIT, or the APPROVAL whose token the call redeemed: the gate does not store the
        redemption under a key, so asking again under any other key would be a new request (and
        open a new approval).
        """
        if request.idempotency_key is None:
            return None
        decision = decide(self.transport, request)
        return decision if decision.outcome in (Outcome.PERMIT, Outcome.APPROVAL) else None


class HookAdapter:
    """Answers one hook event for one dialect, through one transport, for one trusted session."""

    def __init__(
        self,
        transport: Transport,
        session: SessionHandle,
        dialect: Dialect,
        *,
        approval_wait_s: float = 300.0,
        approval_url: ApprovalLink | None = None,
        explicit_allow: bool = False,
    ) -> None:
        self.gate = ToolEventGate(
            transport, session, approval_wait_s=approval_wait_s, approval_url=approval_url
        )
        self.dialect = dialect
        self.explicit_allow = explicit_allow

    def handle_text(self, text: str) -> HookReply:
        """The reply to the raw stdin of a hook; input that is not a JSON object blocks."""
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            return block(f"clearance: the hook input is not JSON ({exc.msg})")
        if not isinstance(payload, dict):
            return block("clearance: the hook input is not a JSON object")
        return self.handle(payload)

    def handle(self, payload: Mapping[str, Any]) -> HookReply:
        """The reply to one parsed hook event."""
        event = payload.get("hook_event_name")
        if event in _PRE_EVENTS:
            answer = self.gate.pre_tool(payload)
            if answer.kind == "block":
                return block(answer.reason)
            return self._deny(answer.reason) if answer.kind == "deny" else self._allow()
        if event in _POST_EVENTS or event in _FAILURE_EVENTS:
            problem = self.gate.post_tool(payload, failed=event in _FAILURE_EVENTS)
            return HookReply() if problem is None else HookReply(exit_code=1, stderr=problem + "\n")
        return HookReply()

    def _allow(self) -> HookReply:
        if self.dialect == "gemini":
            return HookReply(stdout=json.dumps({"decision": "allow"}))
        if not self.explicit_allow:
            return HookReply()
        return HookReply(stdout=json.dumps(pre_tool_output("allow", "permitted by clearance")))

    def _deny(self, reason: str) -> HookReply:
        if self.dialect == "gemini":
            return HookReply(stdout=json.dumps({"decision": "deny", "reason": reason}))
        return HookReply(stdout=json.dumps(pre_tool_output("deny", reason)))


def pre_tool_output(decision: Literal["allow", "deny"], reason: str) -> dict[str, Any]:
    """Claude Code's ``hookSpecificOutput`` for a PreToolUse answer (never ``ask``)."""
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": decision,
            "permissionDecisionReason": reason,
        }
    }


# installation ---------------------------------------------------------------------------------
def hook_command(dialect: Dialect, gate_args: list[str]) -> list[str]:
    """The exec-form command line of the hook (no shell, so nothing in it is re-parsed)."""
    return ["clearance", "hook", dialect, *gate_args]


def claude_settings(gate_args: list[str], *, timeout_s: int) -> dict[str, Any]:
    """The ``hooks`` block for Claude Code's settings.json.

    ``onFailure: "block"`` makes a hook that cannot start, times out or crashes count as exit 2:
    without it Claude Code runs the tool when the gate hook fails.
    """
    argv = hook_command("claude-code", gate_args)
    pre = {"type": "command", "command": argv[0], "args": argv[1:], "timeout": timeout_s,
           "onFailure": "block"}  # fmt: skip
    post = {"type": "command", "command": argv[0], "args": argv[1:], "timeout": 30,
            "onFailure": "continue"}  # fmt: skip
    return {
        "hooks": {
            "PreToolUse": [{"matcher": "*", "hooks": [pre]}],
            "PostToolUse": [{"matcher": "*", "hooks": [post]}],
            "PostToolUseFailure": [{"matcher": "*", "hooks": [post]}],
        }
    }


def claude_managed_settings(gate_args: list[str], *, timeout_s: int) -> dict[str, Any]:
    """The managed-settings block: only managed hooks run, so a user cannot remove the gate."""
    return {"allowManagedHooksOnly": True, **claude_settings(gate_args, timeout_s=timeout_s)}


def gemini_settings(gate_args: list[str], *, timeout_s: int) -> dict[str, Any]:
    """The ``hooks`` block for Gemini CLI's settings.json (timeouts in milliseconds)."""
    command = shlex.join(hook_command("gemini", gate_args))
    entry = {"type": "command", "command": command, "name": "clearance",
             "timeout": timeout_s * 1000, "description": "clearance authorization gate"}  # fmt: skip
    return {
        "hooks": {
            "BeforeTool": [{"matcher": ".*", "hooks": [entry]}],
            "AfterTool": [{"matcher": ".*", "hooks": [{**entry, "timeout": 30_000}]}],
        }
    }


def codex_toml(gate_args: list[str], *, timeout_s: int) -> str:
    """Inline TOML for Codex CLI's config (Codex has no HTTP hooks, so the command is the client)."""
    command = json.dumps(shlex.join(hook_command("codex", gate_args)))
    lines = []
    for event, timeout in (("PreToolUse", timeout_s), ("PostToolUse", 30)):
        lines += [f"[[hooks.{event}]]", f"[[hooks.{event}.hooks]]", 'type = "command"',
                  f"command = {command}", f"timeout = {timeout}", ""]  # fmt: skip
    return "\n".join(lines)


def merge_settings(existing: Mapping[str, Any], snippet: Mapping[str, Any]) -> dict[str, Any]:
    """``existing`` settings with the snippet's hooks added; earlier clearance entries replaced.

    Other hooks and settings are kept as they are.
    """
    merged = dict(existing)
    hooks = dict(merged.get("hooks") or {})
    for event, groups in snippet["hooks"].items():
        kept = [g for g in hooks.get(event, []) if not _is_clearance_group(g)]
        hooks[event] = [*kept, *groups]
    merged["hooks"] = hooks
    for key, value in snippet.items():
        if key != "hooks":
            merged[key] = value
    return merged


def _is_clearance_group(group: Any) -> bool:
    if not isinstance(group, dict):
        return False
    for hook in group.get("hooks", []):
        if not isinstance(hook, dict):
            continue
        argv = [hook.get("command", ""), *hook.get("args", [])]
        if argv[0] == "clearance" or str(argv[0]).startswith("clearance hook"):
            return True
    return False
