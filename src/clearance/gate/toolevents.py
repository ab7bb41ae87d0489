"""Coding-agent tool events: a client's hook JSON in, the gate's request, answer and outcome out.

Claude Code, Codex CLI and Gemini CLI announce every tool call as a JSON event (INTEGRATIONS.md
4.1, 4.6, 4.7) and read the answer in their own dialect. This module is the one mapping between
those events and the gate, free of any transport: the command hooks
(``clearance.integrations.hooks``), the Claude Agent SDK adapter and the sidecar's HTTP hook
endpoint (``clearance.server.hooks_api``) all parse, build requests, word refusals, spell answers
and record outcomes through it, so a call is decided the same way whichever way it arrives::

    payload = parse_payload(body)                        # RequestError unless a JSON object
    if event_kind(payload) is EventKind.PRE_TOOL:
        call = ToolCall.from_event(payload)
        request = call.request(agent_id="coder-1", session_id=session_id)
        answer = answer_for(gate.decide(request), args=request.args)
        body = decision_output("claude-code", answer)     # None: no decision, the user's rules

=====================  ===============================================  ========================
clearance              Claude Code / Codex                              Gemini CLI
=====================  ===============================================  ========================
PERMIT                 no decision (the user's own rules stay)          ``decision: "allow"``
DENY                   ``permissionDecision: "deny"`` + rule and reason  ``decision: "deny"``
APPROVAL               waited on; then as PERMIT or DENY, never "ask"   same
SILENCE                blocked (exit 2, or an explicit deny over HTTP)   same
=====================  ===============================================  ========================

Identity never comes from the event: the agent and the clearance session are the caller's (the
key, or what the launcher exported), and the client's own ``session_id`` is ignored.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import ValidationError

from clearance.errors import RequestError
from clearance.formats.canonical import NotCanonicalError, canonical_bytes
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.model.result import REPORTED_OUTPUT_CHARS, ActionResult
from clearance.store.protocol import Store

Dialect = Literal["claude-code", "codex", "gemini"]
DIALECTS: tuple[Dialect, ...] = ("claude-code", "codex", "gemini")
#: The exit code every supported client treats as "blocked", reason on stderr.
BLOCK_EXIT = 2
#: Prefix of the idempotency key a call id becomes (shared by every hook transport).
CALL_KEY_PREFIX = "hook:"
#: Where the sidecar answers HTTP hooks: ``POST {HOOK_ROUTE}/{dialect}``.
HOOK_ROUTE = "/v1/hooks"
#: The HTTP hook's header naming the clearance session the launcher opened.
SESSION_HEADER = "Clearance-Session"
#: The HTTP hook's query parameter naming the client's hook timeout, in seconds.
TIMEOUT_PARAM = "timeout"
#: The environment variable holding the agent's key, for hooks that reach the sidecar.
AGENT_KEY_ENV = "CLEARANCE_AGENT_KEY"

ApprovalLink = Callable[[str], str]


class EventKind(StrEnum):
    """What a hook event asks of the gate."""

    PRE_TOOL = "pre-tool"  # decide before the call runs
    POST_TOOL = "post-tool"  # record what the call returned
    TOOL_FAILED = "tool-failed"  # record that the call failed
    OTHER = "other"  # nothing to decide or record


_KINDS = {
    "PreToolUse": EventKind.PRE_TOOL,
    "BeforeTool": EventKind.PRE_TOOL,
    "PostToolUse": EventKind.POST_TOOL,
    "AfterTool": EventKind.POST_TOOL,
    "PostToolUseFailure": EventKind.TOOL_FAILED,
}
_PATH_KEYS = ("file_path", "notebook_path", "absolute_path", "path")


def event_kind(payload: Mapping[str, Any]) -> EventKind:
    """The kind of ``hook_event_name`` (any dialect's spelling); unknown names are ``OTHER``."""
    name = payload.get("hook_event_name")
    return _KINDS.get(name, EventKind.OTHER) if isinstance(name, str) else EventKind.OTHER


def parse_payload(text: str | bytes) -> dict[str, Any]:
    """The hook event as a JSON object; ``RequestError`` naming what is wrong otherwise."""
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise RequestError(
            f"the hook input is not JSON ({detail})",
            hint="send the client's hook event unchanged, one JSON object",
        ) from exc
    if not isinstance(payload, dict):
        raise RequestError("the hook input is not a JSON object")
    return payload


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


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The tool call a pre- or post-tool event names: ``tool_name``, ``tool_input``, ``tool_use_id``."""

    tool: str
    tool_input: dict[str, Any]
    call_id: str | None = None

    @classmethod
    def from_event(cls, payload: Mapping[str, Any]) -> ToolCall:
        """The call of a tool event; ``RequestError`` when it names no tool or input object."""
        tool = payload.get("tool_name")
        tool_input = payload.get("tool_input")
        if not isinstance(tool, str) or not tool:
            raise RequestError("the hook input has no `tool_name`")
        if not isinstance(tool_input, dict):
            raise RequestError(f"the hook input for `{tool}` has no `tool_input` object")
        call_id = payload.get("tool_use_id")
        return cls(tool, tool_input, call_id if isinstance(call_id, str) and call_id else None)

    @property
    def idempotency_key(self) -> str | None:
        """The key the pre-tool decision is stored under, so the post-tool event can find it.

        Claude Code and Codex send the same ``tool_use_id`` with both events; Gemini sends none,
        so its calls are not attributable and their outcomes are not recorded.
        """
        return None if self.call_id is None else f"{CALL_KEY_PREFIX}{self.call_id}"

    def request(self, *, agent_id: str, session_id: str) -> Request:
        """The gate request for this call, identity from the caller, never from the event.

        The input is copied through its canonical JSON: nothing the client keeps can change what
        was decided, and a value JSON cannot carry exactly is refused here.
        """
        try:
            args = orjson.loads(canonical_bytes(self.tool_input))
            return Request(
                agent_id=agent_id,
                session_id=session_id,
                tool=self.tool,
                args=args,
                target=target_for(self.tool_input),
                idempotency_key=self.idempotency_key,
            )
        except NotCanonicalError as exc:
            raise RequestError(f"the input of `{self.tool}` is not JSON: {exc}") from exc
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise RequestError(f"invalid call of `{self.tool}`: {where}: {problem['msg']}") from exc


# answers -------------------------------------------------------------------------------------
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


def denied_text(rule: str, reason: str) -> str:
    """The model's view of a DENY: the rule and the reason."""
    return f"denied by rule `{rule}`: {reason}"


def pending_text(
    approval_id: str, url: str | None, expires_at: str, *, rule: str, reason: str
) -> str:
    """The model's view of an approval nobody answered in time: where it waits and until when."""
    where = f" at {url}" if url else ""
    return (
        f"approval `{approval_id}` pending{where}, expires {expires_at}; "
        f"rule `{rule}`: {reason}; retry after approval"
    )


def blocked_text(rule: str, reason: str) -> str:
    """Why a call was blocked without a decision (SILENCE, an unreachable gate)."""
    return f"clearance: blocked: the gate did not decide ({rule}): {reason}"


def answer_for(
    decision: Decision, *, args: Mapping[str, Any], approval_url: ApprovalLink | None = None
) -> ToolCallAnswer:
    """The answer a final ``decision`` gives: an APPROVAL here is one that was not approved in time."""
    if decision.outcome is Outcome.PERMIT:
        return ToolCallAnswer("allow", "permitted by clearance", args=dict(args), decision=decision)
    if decision.outcome is Outcome.DENY:
        return ToolCallAnswer(
            "deny", denied_text(decision.rule, decision.reason), decision=decision
        )
    if decision.outcome is Outcome.APPROVAL and decision.approval_id and decision.approval_expires:
        url = approval_url(decision.approval_id) if approval_url else None
        text = pending_text(decision.approval_id, url, decision.approval_expires,
                            rule=decision.rule, reason=decision.reason)  # fmt: skip
        return ToolCallAnswer("deny", text, decision=decision)
    return ToolCallAnswer("block", blocked_text(decision.rule, decision.reason), decision=decision)


def pre_tool_output(decision: Literal["allow", "deny"], reason: str) -> dict[str, Any]:
    """Claude Code's (and Codex's) ``hookSpecificOutput`` for a PreToolUse answer (never ``ask``)."""
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": decision,
            "permissionDecisionReason": reason,
        }
    }


def decision_output(
    dialect: Dialect, answer: ToolCallAnswer, *, explicit_allow: bool = False
) -> dict[str, Any] | None:
    """The dialect's decision JSON for ``answer``; None means "no decision" (exit 0, empty body).

    A ``block`` answer is spelled as a deny here; the command hooks block with exit 2 before
    they get this far, while over HTTP an explicit deny is the only answer a client cannot
    mistake for a non-blocking error.
    """
    if dialect == "gemini":
        if answer.kind == "allow":
            return {"decision": "allow"}
        return {"decision": "deny", "reason": answer.reason}
    if answer.kind != "allow":
        return pre_tool_output("deny", answer.reason)
    return pre_tool_output("allow", answer.reason) if explicit_allow else None


def universal_deny(reason: str) -> dict[str, Any]:
    """A deny every supported dialect reads, for input whose dialect is not known.

    Gemini reads the top-level ``decision`` (``block`` is its alias of ``deny``), Claude Code and
    Codex read ``hookSpecificOutput`` (and treat a top-level ``block`` as a deny as well).
    """
    return {"decision": "block", "reason": reason, **pre_tool_output("deny", reason)}


# outcomes ------------------------------------------------------------------------------------
def outcome_of(payload: Mapping[str, Any], decision_id: str, *, failed: bool) -> ActionResult:
    """The ``ActionResult`` of a post-tool event: ``tool_response`` (or ``error``) summarised.

    The size counts the whole response as JSON; the reported text is cut to
    ``REPORTED_OUTPUT_CHARS`` (all of it scanned by the gate; the audit log keeps a masked summary).
    """
    if failed:
        error = str(payload.get("error") or "the tool failed")
        return ActionResult(decision_id=decision_id, success=False, error=error[:4096])
    response = payload.get("tool_response")
    if response is None:
        return ActionResult(decision_id=decision_id, success=True)
    text = response if isinstance(response, str) else orjson.dumps(response, default=str).decode()
    return ActionResult(
        decision_id=decision_id,
        success=True,
        output_size=len(text.encode("utf-8")),
        output=text[:REPORTED_OUTPUT_CHARS],
    )


def decided_call(store: Store, request: Request) -> str | None:
    """The id of the decision that let ``request`` run, found under its call's key, or None.

    Read from the store, never decided again: a post-tool event must not open a decision (or an
    approval) for a call that already ran. Only a PERMIT, or the APPROVAL whose token the call
    redeemed (the gate keeps the APPROVAL under the key), for the same request digest counts.
    """
    key = request.idempotency_key
    if key is None:
        return None
    record = store.get_idempotency(request.agent_id, key)
    if record is None or record.digest != request.digest:
        return None
    outcome = record.decision.get("outcome")
    return record.decision_id if outcome in (Outcome.PERMIT, Outcome.APPROVAL) else None
