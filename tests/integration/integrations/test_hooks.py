"""Coding-agent hooks: each dialect's documented JSON in and out, exit codes, fail-closed process.

Inputs follow INTEGRATIONS.md 4.1 (Claude Code), 4.6 (Codex) and 4.7 (Gemini CLI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.integration.integrations.hook_kit import (
    claude_pre,
    hook_dir,
    hook_runtime,
    hook_session,
)
from tests.integration.integrations.kit import (
    AGENT,
    APPROVER,
    approve,
    decisions_in_log,
    first_pending,
    operator_thread,
    outcomes_for,
)
from tests.integration.integrations.served import serve_sidecar
from typer.testing import CliRunner

from clearance.cli.commands.hook import app as hook_app
from clearance.cli.runtime import Runtime, open_runtime
from clearance.gate.clock import SystemClock
from clearance.gate.toolevents import target_for
from clearance.integrations.hooks import (
    HookAdapter,
    claude_settings,
    merge_settings,
)
from clearance.integrations.mapping import SessionHandle, approval_link
from clearance.integrations.transport import InProcessTransport

__all__ = ["hook_dir", "hook_runtime", "hook_session"]


def adapter(
    runtime: Runtime, session: SessionHandle, dialect: Any, *, wait_s: float = 0.0
) -> HookAdapter:
    transport = InProcessTransport(runtime.gate, approvals=runtime.approvals, poll_s=0.05)
    return HookAdapter(
        transport,
        session,
        dialect,
        approval_wait_s=wait_s,
        approval_url=approval_link("http://127.0.0.1:8787"),
    )


def codex_pre(command: str) -> dict[str, Any]:
    """A Codex PreToolUse event (4.6)."""
    return {
        "session_id": "codex-1",
        "transcript_path": None,
        "cwd": "/home/dev/project",
        "hook_event_name": "PreToolUse",
        "model": "gpt-5-codex",
        "permission_mode": "default",
        "tool_name": "Bash",
        "tool_input": {"command": command},
        "tool_use_id": "call_9",
    }


def gemini_before(file_path: str) -> dict[str, Any]:
    """A Gemini CLI BeforeTool event (4.7)."""
    return {
        "session_id": "gemini-1",
        "transcript_path": "/home/dev/.gemini/t.json",
        "cwd": "/home/dev/project",
        "hook_event_name": "BeforeTool",
        "timestamp": "2026-03-01T12:00:00Z",
        "tool_name": "Read",
        "tool_input": {"file_path": file_path},
        "mcp_context": None,
    }


# --- the mapping, in process ------------------------------------------------------------------
def test_claude_permit_keeps_the_users_own_rules(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    reply = adapter(hook_runtime, hook_session, "claude-code").handle(claude_pre("git status"))
    assert (reply.exit_code, reply.stdout, reply.stderr) == (0, "", "")
    assert decisions_in_log(hook_runtime)[-1]["outcome"] == "PERMIT"


def test_claude_deny_names_rule_and_reason(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    reply = adapter(hook_runtime, hook_session, "claude-code").handle(claude_pre("rm -rf /"))
    assert reply.exit_code == 0
    out = json.loads(reply.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse"
    assert out["permissionDecision"] == "deny"
    assert "no-rm" in out["permissionDecisionReason"]
    assert "never deletes" in out["permissionDecisionReason"]


def test_codex_speaks_the_claude_shape(hook_runtime: Runtime, hook_session: SessionHandle) -> None:
    reply = adapter(hook_runtime, hook_session, "codex").handle(codex_pre("rm notes.txt"))
    assert json.loads(reply.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_gemini_allow_and_deny(hook_runtime: Runtime, hook_session: SessionHandle) -> None:
    hook = adapter(hook_runtime, hook_session, "gemini")
    assert json.loads(hook.handle(gemini_before("/p/src/app.py")).stdout) == {"decision": "allow"}
    denied = json.loads(hook.handle(gemini_before("/p/.env")).stdout)
    assert denied["decision"] == "deny"
    assert "no-secrets" in denied["reason"]


def test_approval_is_never_the_clients_ask_prompt(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    reply = adapter(hook_runtime, hook_session, "claude-code").handle(claude_pre("git push origin"))
    out = json.loads(reply.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny"
    assert "approval `apr_" in out["permissionDecisionReason"]
    assert "http://127.0.0.1:8787/approvals/apr_" in out["permissionDecisionReason"]
    assert "ask" not in reply.stdout.replace("task", "")


def test_approval_round_trip_within_the_hook_timeout(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    hook = adapter(hook_runtime, hook_session, "claude-code", wait_s=10.0)
    approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
    reply = hook.handle(claude_pre("git push origin main", tool_use_id="toolu_push"))
    approver.join()
    assert (reply.exit_code, reply.stdout) == (0, "")
    assert decisions_in_log(hook_runtime)[-1]["rule"].startswith("approval:")


def dialect_event(dialect: str, command: str, tool_use_id: str) -> dict[str, Any]:
    """The dialect's own pre-tool event for a Bash command."""
    if dialect == "gemini":
        return {**gemini_before("x"), "tool_name": "Bash", "tool_input": {"command": command}}
    if dialect == "codex":
        return {**codex_pre(command), "tool_use_id": tool_use_id}
    return claude_pre(command, tool_use_id=tool_use_id)


@pytest.mark.parametrize("dialect", ["claude-code", "codex", "gemini"])
def test_unanswered_approval_denies_with_id_and_link_never_ask(
    hook_runtime: Runtime, hook_session: SessionHandle, dialect: str
) -> None:
    hook = adapter(hook_runtime, hook_session, dialect, wait_s=0.3)
    reply = hook.handle(dialect_event(dialect, "git push origin main", "toolu_wait"))
    assert reply.exit_code == 0
    out = json.loads(reply.stdout)
    if dialect == "gemini":
        assert out["decision"] == "deny"
        reason = out["reason"]
    else:
        assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
        reason = out["hookSpecificOutput"]["permissionDecisionReason"]
    assert "approval `apr_" in reason
    assert "pending at http://127.0.0.1:8787/approvals/apr_" in reason
    assert "git-push" in reason
    assert '"ask"' not in reply.stdout


@pytest.mark.parametrize("dialect", ["claude-code", "codex", "gemini"])
def test_operator_approval_lets_every_dialect_run_the_call(
    hook_runtime: Runtime, hook_session: SessionHandle, dialect: str
) -> None:
    hook = adapter(hook_runtime, hook_session, dialect, wait_s=10.0)
    approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
    reply = hook.handle(dialect_event(dialect, "git push origin main", f"toolu_{dialect}"))
    approver.join()
    expected = json.dumps({"decision": "allow"}) if dialect == "gemini" else ""
    assert (reply.exit_code, reply.stdout) == (0, expected)
    assert decisions_in_log(hook_runtime)[-1]["outcome"] == "PERMIT"


def test_changed_input_under_an_approved_call_id_is_refused(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    hook = adapter(hook_runtime, hook_session, "claude-code", wait_s=10.0)
    approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
    hook.handle(claude_pre("git push origin main", tool_use_id="toolu_7"))
    approver.join()
    swapped = hook.handle(claude_pre("git push --force origin main", tool_use_id="toolu_7"))
    out = json.loads(swapped.stdout)["hookSpecificOutput"]
    assert out["permissionDecision"] == "deny"
    assert "idempotency-conflict" in out["permissionDecisionReason"]


def test_operator_denial_reaches_the_model(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    hook = adapter(hook_runtime, hook_session, "gemini", wait_s=10.0)
    denier = operator_thread(
        hook_runtime,
        lambda aid: hook_runtime.approvals.deny(
            aid, APPROVER, SystemClock().now(), comment="freeze"
        ),
    )
    event = {**gemini_before("x"), "tool_name": "Bash", "tool_input": {"command": "git push"}}
    reply = hook.handle(event)
    denier.join()
    assert json.loads(reply.stdout) == {
        "decision": "deny",
        "reason": "denied by rule `approval:denied`: freeze",
    }


def test_silence_blocks_with_exit_2(hook_runtime: Runtime, hook_session: SessionHandle) -> None:
    event = {
        **claude_pre("x"),
        "tool_name": "Write",
        "tool_input": {"file_path": "/p/a", "content": ""},
    }
    reply = adapter(hook_runtime, hook_session, "claude-code").handle(event)
    assert reply.exit_code == 2
    assert "unknown-tool" in reply.stderr


def test_post_tool_use_records_the_outcome(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    hook = adapter(hook_runtime, hook_session, "claude-code")
    hook.handle(claude_pre("git log", tool_use_id="toolu_log"))
    decision_id = decisions_in_log(hook_runtime)[-1]["decision_id"]
    post = {**claude_pre("git log", tool_use_id="toolu_log"), "hook_event_name": "PostToolUse",
            "tool_response": {"stdout": "commit abc", "stderr": "", "interrupted": False},
            "duration_ms": 12}  # fmt: skip
    assert hook.handle(post).exit_code == 0
    failed = {**claude_pre("git status", tool_use_id="toolu_st")}
    hook.handle(failed)
    failed_id = decisions_in_log(hook_runtime)[-1]["decision_id"]
    hook.handle({**failed, "hook_event_name": "PostToolUseFailure", "error": "exit 128"})
    assert outcomes_for(hook_runtime, decision_id)[0]["success"] is True
    assert outcomes_for(hook_runtime, failed_id)[0]["error"] == "exit 128"
    assert len(decisions_in_log(hook_runtime)) == 2


def test_post_tool_use_after_an_approval_opens_no_new_approval(
    hook_runtime: Runtime, hook_session: SessionHandle
) -> None:
    hook = adapter(hook_runtime, hook_session, "claude-code", wait_s=10.0)
    approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
    pre = claude_pre("git push origin main", tool_use_id="toolu_pushed")
    assert hook.handle(pre).stdout == ""
    approver.join()
    approval_id = decisions_in_log(hook_runtime)[0]["decision_id"]
    post = {**pre, "hook_event_name": "PostToolUse", "tool_response": {"stdout": "pushed"}}
    assert hook.handle(post).exit_code == 0
    assert [d["outcome"] for d in decisions_in_log(hook_runtime)] == ["APPROVAL", "PERMIT"]
    assert first_pending(hook_runtime) is None
    assert "pushed" in outcomes_for(hook_runtime, approval_id)[0]["output"]


def test_targets_per_tool() -> None:
    assert target_for({"command": "git push origin"}) == "git"
    assert target_for({"file_path": "/p/.env"}) == "/p/.env"
    assert target_for({"url": "https://docs.python.org/3/"}) == "docs.python.org"
    assert target_for({"query": "x"}) is None


def test_install_merges_and_replaces_old_clearance_hooks() -> None:
    mine = {"type": "command", "command": "lint.sh"}
    existing = {"model": "opus", "hooks": {"PreToolUse": [{"matcher": "Edit", "hooks": [mine]}]}}
    once = merge_settings(existing, claude_settings(["--data-dir", "/d"], timeout_s=330))
    twice = merge_settings(once, claude_settings(["--data-dir", "/d"], timeout_s=330))
    assert twice == once
    pre = twice["hooks"]["PreToolUse"]
    assert pre[0]["hooks"] == [mine]
    assert pre[1]["hooks"][0]["onFailure"] == "block"
    assert twice["model"] == "opus"


def test_install_points_the_hooks_at_the_sidecar() -> None:
    result = CliRunner().invoke(
        hook_app, ["install", "--gate-url", "http://127.0.0.1:8700", "--approval-wait", "120"]
    )
    assert result.exit_code == 0, result.output
    pre = json.loads(result.output)["hooks"]["PreToolUse"][0]["hooks"][0]
    assert pre["args"] == ["hook", "claude-code", "--gate-url", "http://127.0.0.1:8700",
                           "--approval-wait", "120"]  # fmt: skip
    assert (pre["timeout"], pre["onFailure"]) == (150, "block")
    assert "CLEARANCE_AGENT_KEY" not in result.output  # the key stays in the environment


# --- the process, as the client runs it -------------------------------------------------------
def run_hook(
    dialect: str, data_dir: Path, stdin: str, env: dict[str, str] | None
) -> subprocess.CompletedProcess[str]:
    code = "from clearance.cli.commands.hook import app; app(prog_name='clearance hook')"
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLEARANCE_")}
    return subprocess.run(
        [sys.executable, "-c", code, dialect, "--data-dir", str(data_dir), "--approval-wait", "0"],
        input=stdin,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
    )


def session_env(hook_dir: Path) -> dict[str, str]:
    rt = open_runtime(hook_dir)
    try:
        s = rt.gate.open_session(agent_id=AGENT, task="coding", environment="development")
    finally:
        rt.close()
    return {"CLEARANCE_AGENT_ID": s.agent_id, "CLEARANCE_SESSION_ID": s.session_id}


def test_process_permit_and_deny(hook_dir: Path) -> None:
    env = session_env(hook_dir)
    ok = run_hook("claude-code", hook_dir, json.dumps(claude_pre("git status")), env)
    assert (ok.returncode, ok.stdout) == (0, ""), ok.stderr
    no = run_hook("codex", hook_dir, json.dumps(codex_pre("rm -rf build")), env)
    assert no.returncode == 0
    assert json.loads(no.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


@pytest.mark.slow
def test_process_waits_for_an_approval_given_in_another_process(hook_dir: Path) -> None:
    """The hook process polls the shared store; an operator approves from the dashboard's side."""
    env = session_env(hook_dir)
    code = "from clearance.cli.commands.hook import app; app(prog_name='clearance hook')"
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLEARANCE_")}
    argv = [sys.executable, "-c", code, "claude-code", "--data-dir", str(hook_dir),
            "--approval-wait", "30"]  # fmt: skip
    with subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base, **env},
    ) as hook:
        assert hook.stdin is not None
        hook.stdin.write(json.dumps(claude_pre("git push origin main", "toolu_proc")))
        hook.stdin.close()
        # the dashboard's process: its own audit shard, the same store
        operator = open_runtime(hook_dir, clock=SystemClock(), replica_id="dashboard")
        try:
            operator_thread(operator, lambda aid: approve(operator, aid)).join()
            hook.wait(timeout=60)
        finally:
            operator.close()
        assert hook.stdout is not None
        assert hook.stderr is not None
        assert (hook.returncode, hook.stdout.read()) == (0, ""), hook.stderr.read()


def hook_process(dialect: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    code = "from clearance.cli.commands.hook import app; app(prog_name='clearance hook')"
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLEARANCE_")}
    return subprocess.Popen(
        [sys.executable, "-c", code, dialect, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base, **env},
    )


@pytest.mark.slow
def test_parallel_hooks_through_the_sidecar_all_decide(hook_runtime: Runtime) -> None:
    """Coding agents run tool calls in parallel; over the sidecar every hook gets its answer."""
    s = hook_runtime.gate.open_session(agent_id=AGENT, task="coding", environment="staging")
    with serve_sidecar(hook_runtime) as sidecar:
        env = {"CLEARANCE_AGENT_ID": AGENT, "CLEARANCE_SESSION_ID": s.session_id,
               "CLEARANCE_AGENT_KEY": sidecar.agent_key}  # fmt: skip
        args = ["--gate-url", sidecar.base_url, "--approval-wait", "0"]
        hooks = [hook_process("claude-code", args, env) for _ in range(6)]
        for number, hook in enumerate(hooks):
            command = "git status" if number % 2 else "rm -rf build"
            out, err = hook.communicate(json.dumps(claude_pre(command, f"toolu_{number}")), 60)
            assert hook.returncode == 0, err
            assert ("no-rm" in out) == (number % 2 == 0), out
    assert len(decisions_in_log(hook_runtime)) == 6


@pytest.mark.slow
def test_sidecar_hook_waits_for_the_dashboards_approval(hook_runtime: Runtime) -> None:
    s = hook_runtime.gate.open_session(agent_id=AGENT, task="coding", environment="staging")
    with serve_sidecar(hook_runtime) as sidecar:
        env = {"CLEARANCE_AGENT_ID": AGENT, "CLEARANCE_SESSION_ID": s.session_id,
               "CLEARANCE_AGENT_KEY": sidecar.agent_key}  # fmt: skip
        hook = hook_process("codex", ["--gate-url", sidecar.base_url, "--approval-wait", "30"], env)
        assert hook.stdin is not None
        hook.stdin.write(json.dumps(codex_pre("git push origin main")))
        hook.stdin.close()
        operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid)).join()
        hook.wait(timeout=60)
        assert hook.stdout is not None
        assert hook.stderr is not None
        assert (hook.returncode, hook.stdout.read()) == (0, ""), hook.stderr.read()
    assert decisions_in_log(hook_runtime)[-1]["rule"].startswith("approval:")


def test_sidecar_hook_without_an_agent_key_blocks(hook_dir: Path) -> None:
    env = {"CLEARANCE_AGENT_ID": AGENT, "CLEARANCE_SESSION_ID": "ses_x"}
    hook = hook_process("gemini", ["--gate-url", "http://127.0.0.1:9"], env)
    _, err = hook.communicate(json.dumps(gemini_before("/p/a.py")), 60)
    assert hook.returncode == 2
    assert "CLEARANCE_AGENT_KEY" in err


def test_sidecar_down_blocks(hook_dir: Path) -> None:
    env = {"CLEARANCE_AGENT_ID": AGENT, "CLEARANCE_SESSION_ID": "ses_x",
           "CLEARANCE_AGENT_KEY": "ck_live_nothing"}  # fmt: skip
    hook = hook_process("claude-code", ["--gate-url", "http://127.0.0.1:9"], env)
    _, err = hook.communicate(json.dumps(claude_pre("git status")), 60)
    assert hook.returncode == 2
    assert "could not be reached" in err


@pytest.mark.parametrize(
    ("case", "stdin"),
    [
        ("no session in the environment", json.dumps(claude_pre("git status"))),
        ("input is not JSON", "{not json"),
    ],
)
def test_process_blocks_when_it_cannot_decide(hook_dir: Path, case: str, stdin: str) -> None:
    env = session_env(hook_dir) if case != "no session in the environment" else None
    result = run_hook("claude-code", hook_dir, stdin, env)
    assert result.returncode == 2, case
    assert result.stderr.startswith("clearance:")
    assert result.stdout == ""


def test_a_crashing_hook_blocks(hook_dir: Path) -> None:
    env = session_env(hook_dir)
    (hook_dir / "clearance.db").write_bytes(b"this is not a database" * 100)
    for dialect in ("claude-code", "codex", "gemini"):
        result = run_hook(dialect, hook_dir, json.dumps(claude_pre("git status")), env)
        assert result.returncode == 2, (dialect, result.stderr)
        assert "clearance" in result.stderr
