"""Claude Agent SDK adapter: the real SDK types, called as the SDK calls them, against a real gate.

No CLI and no network: the callbacks are awaited directly with the SDK's own
``ToolPermissionContext`` and hook input shapes, and once more through the SDK's own control
protocol (``ClaudeSDKClient`` over a scripted transport that plays the Claude Code process).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, cast

import anyio
import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    HookContext,
    HookInput,
    PermissionResultAllow,
    PermissionResultDeny,
    ToolPermissionContext,
)
from tests import examples_kit
from tests.integration.integrations.hook_kit import (
    claude_pre,
    hook_dir,
    hook_runtime,
    hook_session,
)
from tests.integration.integrations.kit import (
    AGENT,
    APPROVER,
    DeadSidecar,
    approve,
    decisions_in_log,
    operator_thread,
    outcomes_for,
)
from tests.integration.integrations.served import serve_sidecar

from clearance.cli.runtime import Runtime
from clearance.gate.clock import SystemClock
from clearance.integrations.claude_sdk import HOOK_MARGIN_S, ClaudeGate
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.sidecar import SidecarTransport
from clearance.integrations.transport import InProcessTransport

__all__ = ["hook_dir", "hook_runtime", "hook_session"]

NO_SIGNAL: HookContext = {"signal": None}


def gate_for(runtime: Runtime, session: SessionHandle, *, wait_s: float = 0.0) -> ClaudeGate:
    return ClaudeGate(
        InProcessTransport(runtime.gate, approvals=runtime.approvals, poll_s=0.05),
        session,
        approval_wait_s=wait_s,
        approval_url=approval_link("http://127.0.0.1:8787"),
    )


def hook(callback: Any, event: dict[str, Any], tool_use_id: str) -> dict[str, Any]:
    """A hook callback as the SDK awaits it (input typed as the SDK's ``HookInput``)."""

    async def call() -> dict[str, Any]:
        return dict(await callback(cast("HookInput", event), tool_use_id, NO_SIGNAL))

    return anyio.run(call)


def ask(gate: ClaudeGate, command: str, tool_use_id: str = "toolu_01") -> Any:
    """``can_use_tool`` as the SDK awaits it."""
    tool_input = {"command": command, "description": "run it"}
    context = ToolPermissionContext(tool_use_id=tool_use_id, title=f"Claude wants to run {command}")
    return anyio.run(gate.can_use_tool, "Bash", tool_input, context)


def test_permit_allows_exactly_the_decided_input(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    gate = gate_for(hook_runtime, hook_session)
    tool_input = {"command": "git status", "description": "run it"}
    context = ToolPermissionContext(tool_use_id="toolu_ok")
    result = anyio.run(gate.can_use_tool, "Bash", tool_input, context)
    assert isinstance(result, PermissionResultAllow)
    assert result.updated_input == tool_input
    tool_input["command"] = "rm -rf /"  # changed after the decision: must not reach the tool
    assert result.updated_input == {"command": "git status", "description": "run it"}
    assert decisions_in_log(hook_runtime)[-1]["outcome"] == "PERMIT"


def test_deny_names_rule_and_reason(hook_runtime: Runtime, hook_session: SessionHandle) -> None:
    result = ask(gate_for(hook_runtime, hook_session), "rm -rf build")
    assert isinstance(result, PermissionResultDeny)
    assert "no-rm" in result.message
    assert "never deletes files" in result.message


def test_approval_round_trip_through_the_approval_service(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    gate = gate_for(hook_runtime, hook_session, wait_s=10.0)
    approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
    result = ask(gate, "git push origin main", "toolu_push")
    approver.join()
    assert isinstance(result, PermissionResultAllow)
    assert result.updated_input == {"command": "git push origin main", "description": "run it"}
    outcomes = [(d["outcome"], d["rule"]) for d in decisions_in_log(hook_runtime)]
    assert outcomes[0] == ("APPROVAL", "git-push")
    assert outcomes[-1][0] == "PERMIT"
    assert outcomes[-1][1].startswith("approval:")


def test_approval_round_trip_over_the_sidecar(hook_runtime: Runtime) -> None:
    opened = hook_runtime.gate.open_session(agent_id=AGENT, task="coding", environment="staging")
    session = SessionHandle(agent_id=AGENT, session_id=opened.session_id)
    with (
        serve_sidecar(hook_runtime) as served,
        SidecarTransport.connect(served.base_url, api_key=served.agent_key, poll_s=0.05) as http,
    ):
        gate = ClaudeGate(http, session, approval_wait_s=10.0)
        approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
        result = ask(gate, "git push origin main", "toolu_remote")
        approver.join()
        denied = ask(gate, "rm -rf /", "toolu_remote_rm")
    assert isinstance(result, PermissionResultAllow)
    assert isinstance(denied, PermissionResultDeny)
    assert "no-rm" in denied.message
    assert decisions_in_log(hook_runtime)[1]["rule"].startswith("approval:")


def test_unanswered_approval_times_out_as_deny(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    result = ask(gate_for(hook_runtime, hook_session, wait_s=0.3), "git push origin main")
    assert isinstance(result, PermissionResultDeny)
    assert "approval `apr_" in result.message
    assert "http://127.0.0.1:8787/approvals/apr_" in result.message


def test_operator_denial_reaches_the_model(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    gate = gate_for(hook_runtime, hook_session, wait_s=10.0)
    denier = operator_thread(
        hook_runtime,
        lambda aid: hook_runtime.approvals.deny(
            aid, APPROVER, SystemClock().now(), comment="release freeze"
        ),
    )
    result = ask(gate, "git push origin main", "toolu_frozen")
    denier.join()
    assert isinstance(result, PermissionResultDeny)
    assert result.message == "denied by rule `approval:denied`: release freeze"


def test_changed_input_after_approval_is_refused(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    gate = gate_for(hook_runtime, hook_session, wait_s=10.0)
    approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
    assert isinstance(ask(gate, "git push origin main", "toolu_7"), PermissionResultAllow)
    approver.join()
    swapped = ask(gate, "git push --force origin main", "toolu_7")
    assert isinstance(swapped, PermissionResultDeny)
    assert "idempotency-conflict" in swapped.message


def test_gate_unreachable_denies_without_dispatch(hook_session: SessionHandle) -> None:
    dead = DeadSidecar()
    gate = ClaudeGate(dead, hook_session, approval_wait_s=5.0)
    result = anyio.run(
        gate.can_use_tool,
        "Bash",
        {"command": "git status"},
        ToolPermissionContext(tool_use_id="toolu_x"),
    )
    assert isinstance(result, PermissionResultDeny)
    assert "the gate could not be reached" in result.message
    assert dead.calls == 1
    hooked = hook(gate.pre_tool_use, claude_pre("git status"), "toolu_01")
    assert hooked["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_unknown_tool_is_denied(hook_runtime: Runtime, hook_session: SessionHandle) -> None:
    gate = gate_for(hook_runtime, hook_session)
    context = ToolPermissionContext(tool_use_id="toolu_w")
    result = anyio.run(gate.can_use_tool, "Write", {"file_path": "/p/a", "content": ""}, context)
    assert isinstance(result, PermissionResultDeny)
    assert "unknown-tool" in result.message


def test_pre_tool_hook_answers_deny_or_nothing(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    gate = gate_for(hook_runtime, hook_session)
    allowed = hook(gate.pre_tool_use, claude_pre("git log"), "toolu_01")
    assert allowed == {}
    denied = hook(gate.pre_tool_use, claude_pre("rm x", "toolu_02"), "toolu_02")
    assert denied == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": "denied by rule `no-rm`: "
            "the agent never deletes files from the shell",
        }
    }


def test_hook_then_permission_prompt_for_one_approved_call(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    """Both callbacks installed: the prompt after an approved hook reuses that answer."""
    gate = gate_for(hook_runtime, hook_session, wait_s=10.0)
    approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
    event = claude_pre("git push origin main", "toolu_both")
    assert hook(gate.pre_tool_use, event, "toolu_both") == {}
    approver.join()
    result = anyio.run(
        gate.can_use_tool,
        "Bash",
        dict(event["tool_input"]),
        ToolPermissionContext(tool_use_id="toolu_both"),
    )
    assert isinstance(result, PermissionResultAllow)
    assert result.updated_input == event["tool_input"]
    assert len(decisions_in_log(hook_runtime)) == 2  # the APPROVAL and its redemption, no third


def test_post_tool_hooks_record_outcomes(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    gate = gate_for(hook_runtime, hook_session)
    ok = claude_pre("git log", "toolu_log")
    hook(gate.pre_tool_use, ok, "toolu_log")
    ok_id = decisions_in_log(hook_runtime)[-1]["decision_id"]
    post = {**ok, "hook_event_name": "PostToolUse", "duration_ms": 9,
            "tool_response": {"stdout": "commit abc", "stderr": "", "interrupted": False}}  # fmt: skip
    assert hook(gate.post_tool_use, post, "toolu_log") == {}
    bad = claude_pre("git status", "toolu_st")
    hook(gate.pre_tool_use, bad, "toolu_st")
    bad_id = decisions_in_log(hook_runtime)[-1]["decision_id"]
    failure = {**bad, "hook_event_name": "PostToolUseFailure", "error": "exit 128"}
    hook(gate.post_tool_use, failure, "toolu_st")
    assert outcomes_for(hook_runtime, ok_id)[0]["success"] is True
    assert "commit abc" in outcomes_for(hook_runtime, ok_id)[0]["output"]
    assert outcomes_for(hook_runtime, bad_id)[0]["error"] == "exit 128"


def test_hook_matchers_block_on_failure_and_outlast_the_approval_wait(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    hooks = gate_for(hook_runtime, hook_session, wait_s=120.0).hooks(matcher="Bash|Read")
    (pre,) = hooks["PreToolUse"]
    assert pre.on_failure == "block"
    assert pre.timeout == 120.0 + HOOK_MARGIN_S
    assert pre.matcher == "Bash|Read"
    assert set(hooks) == {"PreToolUse", "PostToolUse", "PostToolUseFailure"}
    assert "PreToolUse" not in gate_for(hook_runtime, hook_session).hooks(gate_pre_tool=False)


# --- through the SDK's own control protocol ---------------------------------------------------
def load_example() -> ModuleType:
    return examples_kit.load_example("claude-agent-sdk")


def test_the_sdk_plumbing_carries_the_gates_answers(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    """``ClaudeSDKClient`` registers the hooks and routes the CLI's requests to the callbacks."""
    example = load_example()
    gate = gate_for(hook_runtime, hook_session)
    cli = example.ScriptedCLI()
    options = ClaudeAgentOptions(can_use_tool=gate.can_use_tool, hooks=gate.hooks())
    ran: list[dict[str, Any]] = []

    async def session() -> list[Any]:
        runs = []
        async with ClaudeSDKClient(options, transport=cli):
            runs.append(
                await cli.call_tool("Bash", {"command": "git status"}, "toolu_a", ran.append)
            )
            runs.append(await cli.call_tool("Bash", {"command": "rm -rf /"}, "toolu_b", ran.append))
        return runs

    permitted, denied = anyio.run(session)
    assert cli.registered["PreToolUse"][0]["onFailure"] == "block"
    assert permitted.ran
    assert ran == [{"command": "git status"}]
    assert not denied.ran
    assert "no-rm" in denied.reason
    decision_id = decisions_in_log(hook_runtime)[0]["decision_id"]
    assert outcomes_for(hook_runtime, decision_id)[0]["success"] is True


def test_through_the_sdk_a_dead_gate_or_a_crashing_callback_blocks(
    hook_session: SessionHandle,
) -> None:
    example = load_example()
    dead = DeadSidecar()
    gate = ClaudeGate(dead, hook_session)
    cli = example.ScriptedCLI()
    options = ClaudeAgentOptions(can_use_tool=gate.can_use_tool, hooks=gate.hooks())
    ran: list[dict[str, Any]] = []

    async def session() -> tuple[Any, Any]:
        async with ClaudeSDKClient(options, transport=cli):
            down = await cli.call_tool("Bash", {"command": "git status"}, "toolu_d", ran.append)
            (hook_id,) = cli.registered["PreToolUse"][0]["hookCallbackIds"]
            crash = await cli.ask_sdk(  # a malformed event makes the callback raise
                {"subtype": "hook_callback", "callback_id": hook_id, "input": {}}
            )
        return down, crash

    down, crash = anyio.run(session)
    assert not down.ran
    assert ran == []
    assert "the gate could not be reached" in down.reason
    assert "blocked" in crash  # an error answer: under onFailure=block the CLI blocks the call


@pytest.mark.slow
def test_the_example_runs_offline() -> None:
    example = load_example()
    lines: list[str] = []
    example.main(say=lines.append)
    text = "\n".join(lines)
    assert "denied by rule" in text
    assert "approved by op-lead" in text
    assert "audit log:" in text
