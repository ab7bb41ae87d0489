"""The tool-event mapping every hook transport shares: documented events in, documented answers out.

Events and answers follow INTEGRATIONS.md 4.1-4.2 (Claude Code), 4.6 (Codex) and 4.7 (Gemini CLI).
"""

from __future__ import annotations

from typing import Any

import pytest

from clearance.errors import RequestError
from clearance.gate.toolevents import (
    EventKind,
    ToolCall,
    ToolCallAnswer,
    answer_for,
    decision_output,
    event_kind,
    outcome_of,
    parse_payload,
    universal_deny,
)
from clearance.model.decision import Decision, Outcome
from clearance.model.result import REPORTED_OUTPUT_CHARS

DIGEST = "sha256:" + "0" * 64


def decision(outcome: Outcome, rule: str, reason: str, **extra: Any) -> Decision:
    return Decision(decision_id="dec_1", outcome=outcome, rule=rule, reason=reason,
                    policy=DIGEST, request_digest=DIGEST, time="2026-01-01T00:00:00Z",
                    **extra)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("PreToolUse", EventKind.PRE_TOOL),
        ("BeforeTool", EventKind.PRE_TOOL),
        ("PostToolUse", EventKind.POST_TOOL),
        ("AfterTool", EventKind.POST_TOOL),
        ("PostToolUseFailure", EventKind.TOOL_FAILED),
        ("PermissionRequest", EventKind.OTHER),
        ("UserPromptSubmit", EventKind.OTHER),
        (None, EventKind.OTHER),
        (["PreToolUse"], EventKind.OTHER),
    ],
)
def test_event_kinds_of_every_dialect(name: Any, kind: EventKind) -> None:
    assert event_kind({"hook_event_name": name}) is kind


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "the hook input is not JSON"),
        (b'{"a": "\xff"}', "the hook input is not JSON (not UTF-8)"),
        ("[]", "the hook input is not a JSON object"),
        ('"PreToolUse"', "the hook input is not a JSON object"),
    ],
)
def test_unreadable_input_is_a_request_error(text: str | bytes, problem: str) -> None:
    with pytest.raises(RequestError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_payload(text)


def test_the_request_takes_identity_from_the_caller_never_the_event() -> None:
    tool_input = {"command": "git push origin main"}
    event = {"session_id": "claude-session", "agent_id": "sub-agent-7", "tool_name": "Bash",
             "tool_input": tool_input, "tool_use_id": "toolu_1"}  # fmt: skip
    request = ToolCall.from_event(event).request(agent_id="coder", session_id="ses_1")
    assert (request.agent_id, request.session_id) == ("coder", "ses_1")
    assert (request.tool, request.target) == ("Bash", "git")
    assert request.idempotency_key == "hook:toolu_1"
    tool_input["command"] = "rm -rf /"  # the client's copy changes afterwards
    assert request.args == {"command": "git push origin main"}


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"tool_input": {}}, "no `tool_name`"),
        ({"tool_name": "", "tool_input": {}}, "no `tool_name`"),
        ({"tool_name": "Bash", "tool_input": "ls"}, "no `tool_input` object"),
        ({"tool_name": "Bash"}, "no `tool_input` object"),
    ],
)
def test_a_tool_event_without_a_call_is_refused(event: dict[str, Any], problem: str) -> None:
    with pytest.raises(RequestError, match=problem):
        ToolCall.from_event(event)


def test_values_json_cannot_carry_are_refused_not_altered() -> None:
    call = ToolCall("Bash", {"command": "x", "timeout": float("nan")})
    with pytest.raises(RequestError, match="the input of `Bash` is not JSON"):
        call.request(agent_id="coder", session_id="ses_1")


DENY = decision(Outcome.DENY, "no-rm", "never from the shell")
PENDING = decision(Outcome.APPROVAL, "git-push", "needs a lead", approval_id="apr_1",
                   approval_expires="2026-01-01T00:15:00Z", intent="x")  # fmt: skip
SILENCE = decision(Outcome.SILENCE, "unknown-tool", "`Write` is not in the inventory")


@pytest.mark.parametrize(
    ("made", "kind", "reason"),
    [
        (decision(Outcome.PERMIT, "git-read", "local"), "allow", "permitted by clearance"),
        (DENY, "deny", "denied by rule `no-rm`: never from the shell"),
        (PENDING, "deny", "approval `apr_1` pending at https://gate/approvals/apr_1, expires "
                          "2026-01-01T00:15:00Z; rule `git-push`: needs a lead; retry after approval"),
        (SILENCE, "block", "clearance: blocked: the gate did not decide (unknown-tool): "
                           "`Write` is not in the inventory"),
    ],
)  # fmt: skip
def test_each_outcome_becomes_an_answer(made: Decision, kind: str, reason: str) -> None:
    answer = answer_for(made, args={"a": 1}, approval_url=lambda a: f"https://gate/approvals/{a}")
    assert (answer.kind, answer.reason) == (kind, reason)
    assert answer.args == ({"a": 1} if kind == "allow" else None)


ALLOW = ToolCallAnswer("allow", "permitted by clearance", args={})
REFUSE = ToolCallAnswer("deny", "denied by rule `r`: why")
BLOCK = ToolCallAnswer("block", "clearance: blocked")


@pytest.mark.parametrize("dialect", ["claude-code", "codex"])
def test_claude_shape(dialect: Any) -> None:
    assert decision_output(dialect, ALLOW) is None  # the user's own rules stay in force
    assert decision_output(dialect, ALLOW, explicit_allow=True) == {
        "hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow",
                               "permissionDecisionReason": "permitted by clearance"}}  # fmt: skip
    for answer in (REFUSE, BLOCK):
        out = decision_output(dialect, answer)
        assert out is not None
        assert out["hookSpecificOutput"]["permissionDecision"] == "deny"  # never "ask"
        assert out["hookSpecificOutput"]["permissionDecisionReason"] == answer.reason


def test_gemini_shape() -> None:
    assert decision_output("gemini", ALLOW) == {"decision": "allow"}
    assert decision_output("gemini", REFUSE) == {"decision": "deny", "reason": REFUSE.reason}
    assert decision_output("gemini", BLOCK) == {"decision": "deny", "reason": BLOCK.reason}


def test_the_universal_deny_is_a_deny_in_every_dialect() -> None:
    out = universal_deny("unknown dialect")
    assert (out["decision"], out["reason"]) == ("block", "unknown dialect")
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_outcomes_report_the_response_up_to_the_scanned_cap() -> None:
    big = {"stdout": "x" * 5000}
    result = outcome_of({"tool_response": big}, "dec_1", failed=False)
    assert (result.success, result.output_size) == (True, len('{"stdout":""}') + 5000)
    assert result.output == '{"stdout":"' + "x" * 5000 + '"}'  # all of it reaches the scanners
    huge = outcome_of({"tool_response": "y" * (REPORTED_OUTPUT_CHARS + 10)}, "d", failed=False)
    assert huge.output_size == REPORTED_OUTPUT_CHARS + 10
    assert len(huge.output) == REPORTED_OUTPUT_CHARS
    assert outcome_of({"tool_response": "done"}, "dec_1", failed=False).output == "done"
    failed = outcome_of({"error": "exit 128", "is_interrupt": False}, "dec_1", failed=True)
    assert (failed.success, failed.error) == (False, "exit 128")
    assert outcome_of({}, "dec_1", failed=True).error == "the tool failed"
