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
SDK adapter (``clearance.integrations.claude_sdk``) uses the same core in process. Parsing the
events, building the request, wording refusals, spelling each dialect's answer and the outcome
records are ``clearance.gate.toolevents``, shared with the sidecar's HTTP hook endpoint
(``POST /v1/hooks/{dialect}``), which Claude Code can call directly with an ``http`` hook
(:func:`claude_http_settings`).

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
from typing import Any

from clearance.errors import RequestError
from clearance.gate.toolevents import (
    AGENT_KEY_ENV,
    BLOCK_EXIT,
    HOOK_ROUTE,
    SESSION_HEADER,
    TIMEOUT_PARAM,
    Dialect,
    EventKind,
    ToolCall,
    ToolCallAnswer,
    blocked_text,
    decision_output,
    denied_text,
    event_kind,
    outcome_of,
    parse_payload,
    pending_text,
)
from clearance.integrations.errors import (
    ApprovalPending,
    GateUnavailable,
    SandboxRequired,
    ToolRefused,
)
from clearance.integrations.mapping import (
    SESSION_ENV,
    ApprovalLink,
    SessionHandle,
    sandbox_obligation,
)
from clearance.integrations.transport import Transport, authorize, decide, report
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request


@dataclass(frozen=True, slots=True)
class HookReply:
    """What the hook process prints and how it exits."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""


def block(reason: str) -> HookReply:
    """Exit 2 with the reason on stderr: every dialect treats it as a blocked call."""
    return HookReply(exit_code=BLOCK_EXIT, stderr=reason.replace("\n", " ") + "\n")


def answer_of_refusal(error: ToolRefused) -> ToolCallAnswer:
    """The answer a refused call gets, worded as every hook transport words it."""
    if isinstance(error, GateUnavailable):
        return ToolCallAnswer("block", blocked_text(error.rule, error.reason))
    if isinstance(error, ApprovalPending):
        text = pending_text(error.approval_id, error.url, error.expires_at,
                            rule=error.rule, reason=error.reason)  # fmt: skip
        return ToolCallAnswer("deny", text)
    return ToolCallAnswer("deny", denied_text(error.rule, error.reason))


class ToolEventGate:
    """The dialect-free part of every hook: tool events in, answers and outcome records out.

    Shared by the command hooks (:class:`HookAdapter`) and the in-process Claude Agent SDK
    callbacks (``clearance.integrations.claude_sdk``), so both decide, wait for approvals and
    record outcomes the same way; the events, requests, wording and outcome records are
    ``clearance.gate.toolevents``'s, which the sidecar's HTTP hook endpoint uses as well. Calls
    block while an approval is waited on.
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
        except ToolRefused as exc:
            return answer_of_refusal(exc)
        except RequestError as exc:
            return ToolCallAnswer("block", f"clearance: {exc}")
        return ToolCallAnswer(
            "allow", "permitted by clearance", args=dict(request.args), decision=decision
        )

    def request_of(self, payload: Mapping[str, Any]) -> Request:
        """The gate request of a tool event; the call id becomes its idempotency key."""
        call = ToolCall.from_event(payload)
        return call.request(agent_id=self.session.agent_id, session_id=self.session.session_id)

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
        result = outcome_of(payload, decision.decision_id, failed=failed)
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
            payload = parse_payload(text)
        except RequestError as exc:
            return block(f"clearance: {exc.message}")
        return self.handle(payload)

    def handle(self, payload: Mapping[str, Any]) -> HookReply:
        """The reply to one parsed hook event."""
        kind = event_kind(payload)
        if kind is EventKind.PRE_TOOL:
            answer = self.gate.pre_tool(payload)
            if answer.kind == "block":
                return block(answer.reason)
            output = decision_output(self.dialect, answer, explicit_allow=self.explicit_allow)
            return HookReply(stdout="" if output is None else json.dumps(output))
        if kind in (EventKind.POST_TOOL, EventKind.TOOL_FAILED):
            problem = self.gate.post_tool(payload, failed=kind is EventKind.TOOL_FAILED)
            return HookReply() if problem is None else HookReply(exit_code=1, stderr=problem + "\n")
        return HookReply()


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


def claude_http_settings(gate_url: str, *, timeout_s: int) -> dict[str, Any]:
    """The ``hooks`` block calling the sidecar's HTTP hook endpoint instead of a command.

    No process per tool call. The agent key and the session id come from the agent's
    environment through header expansion (only the names in ``allowedEnvVars`` expand), so
    neither is written into the settings file. ``?timeout=`` tells the sidecar how long Claude
    Code waits, so it stops waiting for an approval in time to deny explicitly; ``onFailure:
    "block"`` makes an unreachable sidecar or a non-2xx answer block the call.
    """
    base = f"{gate_url.rstrip('/')}{HOOK_ROUTE}/claude-code"
    headers = {"Authorization": f"Bearer ${AGENT_KEY_ENV}", SESSION_HEADER: f"${SESSION_ENV}"}
    env = [AGENT_KEY_ENV, SESSION_ENV]

    def http_hook(timeout: int, on_failure: str) -> dict[str, Any]:
        return {"type": "http", "url": f"{base}?{TIMEOUT_PARAM}={timeout}", "headers": headers,
                "allowedEnvVars": env, "timeout": timeout, "onFailure": on_failure}  # fmt: skip

    post = http_hook(30, "continue")
    return {
        "hooks": {
            "PreToolUse": [{"matcher": "*", "hooks": [http_hook(timeout_s, "block")]}],
            "PostToolUse": [{"matcher": "*", "hooks": [post]}],
            "PostToolUseFailure": [{"matcher": "*", "hooks": [post]}],
        }
    }


def claude_managed_settings(
    gate_args: list[str], *, timeout_s: int, http_url: str | None = None
) -> dict[str, Any]:
    """The managed-settings block: only managed hooks run, so a user cannot remove the gate.

    With ``http_url`` the hooks are the HTTP variant, and the block also allow-lists the
    sidecar's hook URLs and the two environment variables their headers expand (managed
    settings restrict both when set).
    """
    if http_url is None:
        return {"allowManagedHooksOnly": True, **claude_settings(gate_args, timeout_s=timeout_s)}
    return {
        "allowManagedHooksOnly": True,
        "allowedHttpHookUrls": [f"{http_url.rstrip('/')}{HOOK_ROUTE}/*"],
        "httpHookAllowedEnvVars": [AGENT_KEY_ENV, SESSION_ENV],
        **claude_http_settings(http_url, timeout_s=timeout_s),
    }


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
        if f"{HOOK_ROUTE}/" in str(hook.get("url", "")):
            return True
    return False
